package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	kcl   *kgo.Client  // the same independent client, for raw requests
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
	f := &fixture{st: st, cat: cat, admin: provisioning.NewKafkaAdmin(cl), kadm: kadm.NewClient(indep), kcl: indep}
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

// crashingAdmin executes only the first n actions of a batch and then
// "crashes": the process dies mid-Execute, before any status is written.
type crashingAdmin struct {
	provisioning.Admin
	n int
}

func (a crashingAdmin) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	if _, err := a.Admin.Execute(ctx, actions[:a.n]); err != nil {
		return nil, err
	}
	return nil, errCrash
}

var errCrash = errors.New("simulated crash")

// crashingStore refuses every transaction after the first n (the process
// is gone): nothing after the crash is written.
type crashingStore struct {
	store.Store
	n *int
}

func (s crashingStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if *s.n <= 0 {
		return errCrash
	}
	*s.n--
	return s.Store.Update(ctx, fn)
}

// Interrupted reconcile (kill -9 in the middle of Execute): the intent is on
// record and the topics about to be created are claimed; after a restart
// the next reconcile converges with no duplicate resources, does not take
// its own half-created topics for foreign ones, and keeps the chain intact.
func TestInterruptedReconcileConverges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, testLoop("crashy", "g"))

	txs := 1 // the intent transaction commits; nothing after the crash does
	crashing := reconciler.New(crashingStore{Store: f.st, n: &txs}, f.cat,
		map[string]provisioning.Admin{"eu-test": crashingAdmin{Admin: f.admin, n: 1}}, reconciler.Options{})
	if err := crashing.Reconcile(ctx, "growth/crashy"); err == nil {
		t.Fatal("the crashing reconcile reported success")
	}
	if got := f.topics(t); len(got) != 1 {
		t.Fatalf("after the crash %d topics exist, want the 1 created before it: %v", len(got), got)
	}
	events, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	if len(events) != 1 || events[0].Action != "loop.provision.start" {
		t.Fatalf("audit after the crash = %v, want only the intent event", events)
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
	if len(again.Plan.Actions) != 0 || len(again.Plan.Problems) != 0 {
		t.Errorf("not converged after restart: %v %v", again.Plan.Actions, again.Plan.Problems)
	}
	if got := f.get(t, "crashy").Status.State; got != loop.StateReady {
		t.Errorf("state = %s, want READY", got)
	}
	events, _ = f.st.ListAudit(ctx, store.AuditFilter{Action: "loop.provision"})
	if len(events) != 1 {
		t.Fatalf("provision events after restart: %d, want 1", len(events))
	}
	var details struct {
		Operations []map[string]string `json:"operations"`
	}
	_ = json.Unmarshal(events[0].Details, &details)
	for _, op := range details.Operations {
		if strings.Contains(op["op"], "growth.crashy.events") && strings.HasPrefix(op["op"], "CreateTopics") {
			t.Errorf("the restart created the already created topic again: %v", op)
		}
	}
	if res, err := f.st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
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

// racingAdmin creates a topic behind loopgate's back between Observe and
// Execute: the create then meets a foreign topic of another shape.
type racingAdmin struct {
	provisioning.Admin
	before func()
}

func (a racingAdmin) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	a.before()
	return a.Admin.Execute(ctx, actions)
}

// A batch converges several loops with shared admin calls, yet each loop
// gets its own audit events listing exactly its own operations, and a loop
// whose operation fails is marked FAILED without holding back the others.
func TestReconcileBatchAttributesPerLoop(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	race := racingAdmin{Admin: f.admin, before: func() {
		if _, err := f.kadm.CreateTopic(ctx, 1, 1, nil, "growth.batch-c.events"); err != nil {
			t.Error(err)
		}
	}}
	rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": race}, reconciler.Options{})
	for _, name := range []string{"batch-a", "batch-b", "batch-c"} {
		f.create(t, testLoop(name, "shared-group"))
	}
	errs := rec.ReconcileBatch(ctx, []string{"growth/batch-a", "growth/batch-b", "growth/batch-c"})
	if len(errs) != 1 || !errors.Is(errs["growth/batch-c"], provisioning.ErrTopicExists) {
		t.Fatalf("batch errors = %v, want only batch-c failing with ErrTopicExists", errs)
	}
	for _, name := range []string{"batch-a", "batch-b"} {
		if st := f.get(t, name).Status; st.State != loop.StateReady {
			t.Errorf("%s state = %s, want READY", name, st.State)
		}
	}
	c := f.get(t, "batch-c").Status
	if c.State != loop.StateFailed || c.Condition(loop.CondProvisioned).Reason != reconciler.ReasonTopicNotOwned {
		t.Errorf("batch-c status = %s %+v, want FAILED with reason TopicNotOwned (terminal)", c.State, c.Condition(loop.CondProvisioned))
	}
	if !reconciler.IsTerminal(errs["growth/batch-c"]) {
		t.Errorf("a foreign topic must be a terminal failure: %v", errs["growth/batch-c"])
	}
	if slices.Contains(c.Inventory.Topics, "growth.batch-c.events") {
		t.Errorf("the foreign topic stayed claimed in batch-c's inventory: %v", c.Inventory.Topics)
	}

	// Quotas of the shared principal are the sum over all three loops.
	peak := float64(2 << 20)
	if q := f.quotas(t)["shared-producer"]["producer_byte_rate"]; q != 3*peak {
		t.Errorf("shared producer quota = %v, want %v", q, 3*peak)
	}
	// Each loop's provision event names its own topic and no other loop's.
	events, err := f.st.ListAudit(ctx, store.AuditFilter{Action: "loop.provision"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		name := strings.TrimPrefix(e.Resource, "teams/growth/loops/")
		seen[name] = true
		for _, other := range []string{"batch-a", "batch-b", "batch-c"} {
			if other != name && strings.Contains(string(e.Details), "growth."+other+".events") {
				t.Errorf("provision event of %s lists %s's topic: %s", name, other, e.Details)
			}
		}
		if !strings.Contains(string(e.Details), "growth."+name+".events") {
			t.Errorf("provision event of %s does not list its own topic: %s", name, e.Details)
		}
	}
	if !seen["batch-a"] || !seen["batch-b"] || !seen["batch-c"] {
		t.Errorf("provision events for %v, want all three loops (batch-c's records its failure)", seen)
	}
	if res, err := f.st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
	}

	// The next reconcile of batch-c refuses to take the foreign topic over;
	// the converged loops reconcile with no writes.
	before, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	errs = f.rec.ReconcileBatch(ctx, []string{"growth/batch-a", "growth/batch-b", "growth/batch-c"})
	if err := errs["growth/batch-c"]; err == nil || !strings.Contains(err.Error(), "not created by loopgate") {
		t.Errorf("second reconcile of batch-c: %v, want a TopicNotOwned refusal", err)
	}
	if len(errs) != 1 {
		t.Errorf("second batch errors = %v", errs)
	}
	after, _ := f.st.ListAudit(ctx, store.AuditFilter{})
	for _, e := range after[len(before):] {
		if e.Resource != "teams/growth/loops/batch-c" {
			t.Errorf("re-reconciling a converged loop wrote %s %s", e.Action, e.Resource)
		}
	}
	if tp := f.topics(t); tp["growth.batch-c.events"] != 1 {
		t.Errorf("the foreign topic was changed: %d partitions, want its own 1", tp["growth.batch-c.events"])
	}
}

// A topic that exists before its loop is provisioned belongs to someone
// else: the plan refuses it (the same rule for :plan and apply) and the
// topic is left alone.
func TestForeignTopicIsNeverTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.kadm.CreateTopic(ctx, 1, 1, nil, "growth.squatted.events"); err != nil {
		t.Fatal(err)
	}
	l := testLoop("squatted", "g")
	f.create(t, l)
	res, err := reconciler.Compute(ctx, reconciler.StorePeers{Store: f.st, Catalog: f.cat}, f.admin, l, f.cat.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Problems) != 1 || res.Plan.Problems[0].Reason != reconciler.ReasonTopicNotOwned {
		t.Fatalf("plan problems = %v, want one TopicNotOwned", res.Plan.Problems)
	}
	for _, a := range res.Plan.Actions {
		if strings.Contains(a.Resource, "growth.squatted.events") {
			t.Errorf("plan touches the foreign topic: %s %s", a.Kind, a.Resource)
		}
	}
	if err := f.rec.Reconcile(ctx, "growth/squatted"); err == nil {
		t.Fatal("reconcile took over a foreign topic")
	}
	if st := f.get(t, "squatted").Status; st.State != loop.StateFailed || st.Condition(loop.CondProvisioned).Reason != reconciler.ReasonTopicNotOwned {
		t.Errorf("status = %s %+v, want FAILED / TopicNotOwned", st.State, st.Condition(loop.CondProvisioned))
	}
	if tp := f.topics(t); tp["growth.squatted.events"] != 1 {
		t.Errorf("foreign topic changed: %v", tp)
	}
}
