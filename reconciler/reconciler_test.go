package reconciler_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

type fixture struct {
	st    store.Store
	cat   *catalog.Catalog
	admin provisioning.Admin
	kadm  *kadm.Client // independent client, not loopgate's executor
	rec   *reconciler.Reconciler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	ec, err := embedded.Start(ctx, embedded.Options{Name: "eu-test", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	cl, err := provisioning.Connect(ec.Conn())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	indep, err := provisioning.Connect(ec.Conn(), kgo.ClientID("independent"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(indep.Close)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := &catalog.Catalog{
		Teams:    map[string]catalog.Team{"growth": {Name: "growth"}},
		Clusters: []catalog.Cluster{{Name: "eu-test", Region: "eu", ReplicationFactor: 1, BootstrapServers: ec.BootstrapServers()}},
	}
	f := &fixture{st: st, cat: cat, admin: provisioning.NewKafkaAdmin(cl), kadm: kadm.NewClient(indep)}
	f.rec = reconciler.New(st, cat, map[string]provisioning.Admin{"eu-test": f.admin}, reconciler.Options{})
	return f
}

func testLoop(name, consumerGroup string) *loop.Loop {
	l := &loop.Loop{
		Metadata: loop.Metadata{Name: name, Team: "growth", UID: name + "-uid", Generation: 1},
		Spec: loop.Spec{
			Owners: []string{"ana@example.com"}, Classification: loop.Internal, Residency: "eu",
			RetentionMs: 86400000, SLO: loop.SLO{LatencyP99Ms: 2000},
			Throughput: loop.Throughput{BytesPerSecond: 1 << 20, PeakFactor: 2},
			Streams: []loop.Stream{{Name: "events", Partitions: 3, Schema: loop.Schema{Format: "avro",
				Definition: `{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}`}}},
			Producers: []loop.Producer{{Principal: "User:shared-producer", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:shared-consumer", Group: consumerGroup, Streams: []string{"events"}}},
		},
		Status: loop.Status{State: loop.StateProvisioning},
	}
	return l
}

func (f *fixture) create(t *testing.T, l *loop.Loop) {
	t.Helper()
	err := f.st.Update(context.Background(), func(tx store.Tx) error { return tx.CreateLoop(context.Background(), l) })
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) reconcile(t *testing.T, key string) {
	t.Helper()
	if err := f.rec.Reconcile(context.Background(), key); err != nil {
		t.Fatalf("reconcile %s: %v", key, err)
	}
}

func (f *fixture) get(t *testing.T, name string) *loop.Loop {
	t.Helper()
	l, err := f.st.GetLoop(context.Background(), "growth", name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) quotas(t *testing.T) map[string]map[string]float64 {
	t.Helper()
	qs, err := f.kadm.DescribeClientQuotas(context.Background(), false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, q := range qs {
		for _, e := range q.Entity {
			if e.Name != nil {
				m := map[string]float64{}
				for _, v := range q.Values {
					m[v.Key] = v.Value
				}
				out[*e.Name] = m
			}
		}
	}
	return out
}

func (f *fixture) topics(t *testing.T) map[string]int {
	t.Helper()
	td, err := f.kadm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for n, d := range td {
		if strings.HasPrefix(n, "growth.") {
			out[n] = len(d.Partitions)
		}
	}
	return out
}

func (f *fixture) groupACLs(t *testing.T, group string) int {
	t.Helper()
	res, err := f.kadm.DescribeACLs(context.Background(), kadm.NewACLs().Groups(group).Allow().AllowHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range res {
		n += len(r.Described)
	}
	return n
}

// Shared principals and groups: quotas are summed over every loop that names
// a principal, and deleting one loop keeps what the other still needs.
func TestSharedPrincipalsAndGroups(t *testing.T) {
	f := newFixture(t)
	a, b := testLoop("loop-a", "shared-group"), testLoop("loop-b", "shared-group")
	f.create(t, a)
	f.reconcile(t, "growth/loop-a")
	f.create(t, b)
	f.reconcile(t, "growth/loop-b")
	f.reconcile(t, "growth/loop-a") // converge a with b's share of the quota

	peak := float64(2 << 20)
	if q := f.quotas(t)["shared-producer"]["producer_byte_rate"]; q != 2*peak {
		t.Errorf("producer quota with two loops = %v, want %v (the sum)", q, 2*peak)
	}

	// Delete loop-b: its topic goes, the shared group ACL and the quota of
	// loop-a stay (quota back to one loop's share).
	f.markDeleted(t, "loop-b")
	f.reconcile(t, "growth/loop-b")
	if _, err := f.st.GetLoop(context.Background(), "growth", "loop-b"); err == nil {
		t.Fatal("deleted loop still stored after deprovisioning")
	}
	tp := f.topics(t)
	if _, ok := tp["growth.loop-b.events"]; ok {
		t.Errorf("loop-b's topic survived its deletion: %v", tp)
	}
	if _, ok := tp["growth.loop-a.events"]; !ok {
		t.Errorf("loop-a's topic was deleted with loop-b: %v", tp)
	}
	if n := f.groupACLs(t, "shared-group"); n != 1 {
		t.Errorf("group ACLs for shared-group after deleting one of two loops = %d, want 1", n)
	}
	if q := f.quotas(t)["shared-producer"]["producer_byte_rate"]; q != peak {
		t.Errorf("producer quota after deleting one of two loops = %v, want %v", q, peak)
	}
}

func (f *fixture) markDeleted(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	err := f.st.Update(ctx, func(tx store.Tx) error {
		l, err := tx.GetLoop(ctx, "growth", name)
		if err != nil {
			return err
		}
		etag := l.Metadata.Etag
		l.Metadata.DeleteTime = time.Now()
		l.Status.State = loop.StateDeleting
		return tx.UpdateLoop(ctx, l, etag)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A loop awaiting approval is never provisioned (invariant 1).
func TestAwaitingApprovalProvisionsNothing(t *testing.T) {
	f := newFixture(t)
	l := testLoop("held", "g")
	l.Status = loop.Status{State: loop.StatePendingApproval, NeedsApproval: true}
	f.create(t, l)
	f.reconcile(t, "growth/held")
	if tp := f.topics(t); len(tp) != 0 {
		t.Fatalf("a loop awaiting approval was provisioned: %v", tp)
	}
	events, err := f.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Errorf("audit events for a held loop: %v", events)
	}
}

// Drift: a topic deleted behind loopgate's back is recreated on the next
// reconcile, the status says so, and the audit trail records the exact
// admin operations. A converged loop reconciles with no writes at all.
func TestDriftIsCorrectedAndAudited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, testLoop("drifty", "g"))
	f.reconcile(t, "growth/drifty")
	if got := f.get(t, "drifty").Status.State; got != loop.StateReady {
		t.Fatalf("state after first reconcile = %s", got)
	}
	before, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	f.reconcile(t, "growth/drifty") // converged: nothing to do
	if after, _ := f.st.ListAudit(ctx, store.AuditFilter{}); len(after) != len(before) {
		t.Errorf("a converged reconcile wrote %d audit events", len(after)-len(before))
	}

	if _, err := f.kadm.DeleteTopics(ctx, "growth.drifty.events"); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "growth/drifty")
	if tp := f.topics(t); tp["growth.drifty.events"] != 3 {
		t.Fatalf("drift not corrected: %v", tp)
	}
	l := f.get(t, "drifty")
	if c := l.Status.Condition(loop.CondInSync); c == nil || c.Reason != "DriftCorrected" {
		t.Errorf("InSync condition after drift = %+v, want reason DriftCorrected", c)
	}
	events, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	last := events[len(events)-1]
	if last.Action != "loop.provision" || !strings.Contains(string(last.Details), "CreateTopics") {
		t.Errorf("last audit event = %s %s, want loop.provision naming CreateTopics", last.Action, last.Details)
	}
	if res, err := f.st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
	}
}

// Interrupted reconcile (kill -9 between the intent event and the status
// write): the intent is on record, and the next reconcile converges with no
// duplicate resources and an intact chain.
func TestInterruptedReconcileConverges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l := testLoop("crashy", "g")
	f.create(t, l)

	// Simulate the first half of a reconcile: plan, record intent, execute,
	// then "crash" before the status write.
	res, err := reconciler.Compute(ctx, reconciler.StorePeers{Store: f.st, Catalog: f.cat}, f.admin, l, f.cat.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	half := res.Plan.Actions[:len(res.Plan.Actions)/2]
	if _, err := f.admin.Execute(ctx, half); err != nil {
		t.Fatal(err)
	}
	// Restart: a fresh reconciler converges the rest.
	rec2 := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": f.admin}, reconciler.Options{})
	if err := rec2.Reconcile(ctx, "growth/crashy"); err != nil {
		t.Fatal(err)
	}
	again, err := reconciler.Compute(ctx, reconciler.StorePeers{Store: f.st, Catalog: f.cat}, f.admin, f.get(t, "crashy"), f.cat.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Plan.Actions) != 0 {
		t.Errorf("not converged after restart: %v", again.Plan.Actions)
	}
	if got := f.get(t, "crashy").Status.State; got != loop.StateReady {
		t.Errorf("state = %s, want READY", got)
	}
	var provision audit.Event
	events, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	for _, e := range events {
		if e.Action == "loop.provision" {
			provision = e
		}
	}
	var details struct {
		Operations []map[string]string `json:"operations"`
	}
	_ = json.Unmarshal(provision.Details, &details)
	if len(details.Operations) != len(res.Plan.Actions)-len(half) {
		t.Errorf("provision event lists %d operations, want the %d that were left", len(details.Operations), len(res.Plan.Actions)-len(half))
	}
}

// racingStore simulates an API write that lands while a reconcile is in
// flight: right after the reconciler reads the loop, generation 2 is written.
type racingStore struct {
	store.Store
	raced bool
	race  func()
}

func (r *racingStore) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	l, err := r.Store.GetLoop(ctx, team, name)
	if err == nil && !r.raced {
		r.raced = true
		r.race()
	}
	return l, err
}

// The generation guard: a reconcile of generation 1 never overwrites the
// status of generation 2 written meanwhile.
func TestStatusOfNewerGenerationIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, testLoop("racy", "g"))
	rs := &racingStore{Store: f.st, race: func() {
		err := f.st.Update(ctx, func(tx store.Tx) error {
			l, err := tx.GetLoop(ctx, "growth", "racy")
			if err != nil {
				return err
			}
			etag := l.Metadata.Etag
			l.Metadata.Generation = 2
			l.Status.State = loop.StatePendingApproval
			l.Status.NeedsApproval = true
			return tx.UpdateLoop(ctx, l, etag)
		})
		if err != nil {
			t.Error(err)
		}
	}}
	rec := reconciler.New(rs, f.cat, map[string]provisioning.Admin{"eu-test": f.admin}, reconciler.Options{})
	if err := rec.Reconcile(ctx, "growth/racy"); err != nil {
		t.Fatal(err)
	}
	if !rs.raced {
		t.Fatal("the race was not staged")
	}
	got := f.get(t, "racy")
	if got.Status.State != loop.StatePendingApproval || got.Metadata.Generation != 2 {
		t.Errorf("status of generation 2 overwritten by a reconcile of generation 1: %s gen %d", got.Status.State, got.Metadata.Generation)
	}
}
