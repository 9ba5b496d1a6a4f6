package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// outageFor is how long the cluster is away.
const outageFor = 30 * time.Second

// TestBrokerOutage: loopgate's only Kafka cluster (a kfake cluster this test
// runs on a fixed port, with SASL/SCRAM and ACLs, as an external cluster)
// goes away for 30s while applies are in flight, then comes back on the
// same port, empty (as after losing its disks: loopgate must re-create
// what is missing). Meanwhile loops are created, updated and deleted.
// Every loop with work to do waits with a Provisioned/InSync condition
// that names the cluster and says it cannot be reached; none is reported
// READY at a generation it could not provision; after the cluster returns
// every loop converges and the cluster holds exactly what the loops need.
func TestBrokerOutage(t *testing.T) {
	began := time.Now()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	pass := randomHex(t)
	const user, clusterName = "outage-admin", "eu-outage"
	startCluster := func() *kfake.Cluster {
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			var kf *kfake.Cluster
			kf, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("outage"),
				kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass), kfake.EnableACLs(), kfake.DefaultNumPartitions(1))
			if err == nil {
				return kf
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("starting kfake on %s: %v", addr, err)
		return nil
	}
	kf := startCluster()
	var kfMu sync.Mutex
	t.Cleanup(func() { kfMu.Lock(); kf.Close(); kfMu.Unlock() })

	t.Setenv("HOME", t.TempDir())
	cfg := &config.Config{
		DataDir: filepath.Join(t.TempDir(), "data"),
		Resync:  5 * time.Second,
		Clusters: []config.Cluster{{
			Name: clusterName, Region: "eu", ReplicationFactor: 1, BootstrapServers: []string{addr},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: user, Password: pass},
		}},
		Teams:          []catalog.Team{{Name: "growth", AllowedRegions: []string{"eu"}, MaxPartitionsPerLoop: 64, MaxPartitions: 1000, MaxBytesPerSecond: 50 << 20}},
		DevCredentials: true,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runServer(t, cfg, slog.LevelDebug)
	cl := lgv1.NewLoopServiceClient(r.conn)
	ctx := r.ctx
	create := func(name string) *lgv1.Loop {
		t.Helper()
		l, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: name, Loop: outageLoop(name), RequestId: "create-" + name})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return l
	}

	// Before: three loops provisioned.
	for _, name := range []string{"steady", "changing", "doomed"} {
		create(name)
	}
	waitConverged(t, cl, ctx, []string{"steady", "changing", "doomed"}, nil, 20*time.Second)

	// Applies in flight, then the cluster goes away.
	early := []string{"early-1", "early-2", "early-3", "early-4", "early-5", "early-6"}
	var down time.Time
	createConcurrently(t, cl, ctx, early, func() {
		kfMu.Lock()
		kf.Close()
		kfMu.Unlock()
		down = time.Now()
	})
	t.Logf("cluster %s (%s) down %v after the start, while %v were being created", clusterName, addr, down.Sub(began).Round(time.Millisecond), early)

	// While it is away: more creates, an update, a delete.
	time.Sleep(time.Second)
	late := []string{"late-1", "late-2"}
	for _, name := range late {
		create(name)
	}
	cur, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/changing"})
	if err != nil {
		t.Fatal(err)
	}
	upd := proto.Clone(cur).(*lgv1.Loop)
	upd.Spec.RetentionMs = 48 * 3600 * 1000
	upd.Spec.Streams[0].Partitions = 4
	if _, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: &lgv1.Loop{Name: upd.Name, Etag: upd.Etag, Spec: upd.Spec}, RequestId: "update-changing"}); err != nil {
		t.Fatalf("update during the outage: %v", err)
	}
	if _, err := cl.DeleteLoop(ctx, &lgv1.DeleteLoopRequest{Name: "teams/growth/loops/doomed", RequestId: "delete-doomed"}); err != nil {
		t.Fatalf("delete during the outage: %v", err)
	}

	// Every loop with work to do waits, and says why. An early loop may
	// have been provisioned in the moment the cluster went away, and then
	// has no work to do; the others were written while it was down.
	waiting := append(append(append([]string{}, early...), late...), "changing", "doomed")
	var seen map[string]string
	for {
		var missing []string
		seen = map[string]string{}
		for _, name := range waiting {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name})
			if err != nil {
				t.Fatalf("get %s during the outage: %v", name, err)
			}
			st := l.GetStatus()
			if st.GetState() == lgv1.Loop_READY && st.GetObservedGeneration() == l.GetGeneration() {
				if !slices.Contains(early, name) {
					t.Fatalf("%s is READY at generation %d, written while its cluster was down: %s", name, l.GetGeneration(), conditionsText(st))
				}
				seen[name] = "READY: provisioned as the cluster went away"
				continue
			}
			c := unreachableCondition(st, clusterName, l.GetGeneration())
			if c == nil {
				missing = append(missing, fmt.Sprintf("%s %s: %s", name, st.GetState(), conditionsText(st)))
				continue
			}
			seen[name] = fmt.Sprintf("%s, %s=%s %s: %s", st.GetState(), c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage())
		}
		if len(missing) == 0 {
			break
		}
		if time.Since(down) > outageFor-time.Second {
			t.Fatalf("%v into the outage, loops do not say that cluster %s is unreachable:\n  %s", time.Since(down).Round(time.Second), clusterName, strings.Join(missing, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%v into the outage every loop with work to do waits and names the cause:", time.Since(down).Round(time.Millisecond))
	for _, name := range waiting {
		t.Logf("  %s: %s", name, seen[name])
	}

	// The cluster comes back on the same port, empty.
	time.Sleep(time.Until(down.Add(outageFor)))
	kfMu.Lock()
	kf = startCluster()
	kfMu.Unlock()
	back := time.Now()
	t.Logf("cluster back after %v", back.Sub(down).Round(time.Millisecond))

	all := append(append([]string{"steady", "changing"}, early...), late...)
	waitConverged(t, cl, ctx, all, []string{"doomed"}, 40*time.Second)
	t.Logf("converged %v after the cluster returned", time.Since(back).Round(time.Millisecond))

	// The returned cluster holds exactly what the loops need.
	list, err := cl.ListLoops(ctx, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := wantOnCluster(list.GetLoops(), clusterName, user)
	got := censusOf(t, []string{addr}, user, pass)
	if d := want.diff(got); len(d) > 0 {
		t.Errorf("cluster %s after the outage differs from what the loops need:\n  %s", clusterName, strings.Join(d, "\n  "))
	} else {
		t.Logf("census: %d topics, %d ACLs, %d quotas, %d SCRAM users, exactly what the %d loops need", len(got.topics), len(got.acls), len(got.quotas), len(got.scram), len(list.GetLoops()))
	}
	res, err := lgv1.NewAuditServiceClient(r.conn).VerifyAuditChain(ctx, &lgv1.VerifyAuditChainRequest{})
	if err != nil || !res.GetOk() {
		t.Errorf("audit chain: %v %v", res, err)
	}
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

// createConcurrently creates the loops at once and calls outage as soon as
// the first create returns, while the others are being created and
// provisioned.
func createConcurrently(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, names []string, outage func()) {
	t.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	first := make(chan struct{})
	errs := make(chan error, len(names))
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(first) })
			if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: name, Loop: outageLoop(name), RequestId: "create-" + name}); err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
			}
		}()
	}
	<-first
	outage()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// outageLoop is a small loop with its own principals: two streams (2 and
// 1 partitions), a producer, an acting service that consumes and writes
// the action stream.
func outageLoop(name string) *lgv1.Loop {
	schema := func(rec string) *lgv1.StreamSchema {
		return &lgv1.StreamSchema{Format: "avro", Definition: `{"type":"record","name":"` + rec + `","fields":[{"name":"id","type":"string"}]}`}
	}
	return &lgv1.Loop{
		Name: "teams/growth/loops/" + name,
		Spec: &lgv1.LoopSpec{
			Owners: []string{"ana@example.com"}, Classification: "internal", Residency: "eu", RetentionMs: 24 * 3600 * 1000,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 100 << 10, PeakFactor: 2},
			Streams: []*lgv1.Stream{
				{Name: "events", Partitions: 2, Schema: schema("E")},
				{Name: "actions", Partitions: 1, Schema: schema("A")},
			},
			Producers: []*lgv1.Producer{{Principal: "User:" + name + "-api", Streams: []string{"events"}}, {Principal: "User:" + name + "-engine", Streams: []string{"actions"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:" + name + "-engine", Group: name + "-engine", Streams: []string{"events"}}},
			Action:    &lgv1.LoopAction{Stream: "actions"},
		},
	}
}

// unreachable is what a condition says when the cluster cannot be reached.
var unreachable = regexp.MustCompile(`(?i)unreachable|not reachable|cannot reach|could not reach|connection refused|unable to dial|dial tcp`)

// unreachableCondition returns the Provisioned or InSync condition, False,
// of the loop's current generation, that names the cluster and says it
// cannot be reached.
func unreachableCondition(st *lgv1.LoopStatus, clusterName string, gen int64) *lgv1.Condition {
	for _, c := range st.GetConditions() {
		if (c.GetType() == "Provisioned" || c.GetType() == "InSync") && c.GetStatus() == "False" && c.GetObservedGeneration() == gen &&
			strings.Contains(c.GetReason()+" "+c.GetMessage(), clusterName) && unreachable.MatchString(c.GetReason()+" "+c.GetMessage()) {
			return c
		}
	}
	return nil
}

func conditionsText(st *lgv1.LoopStatus) string {
	var parts []string
	for _, c := range st.GetConditions() {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s (generation %d)", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage(), c.GetObservedGeneration()))
	}
	return strings.Join(parts, "; ")
}

// waitConverged waits until every loop of ready is READY at its generation
// and every loop of gone is gone.
func waitConverged(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, ready, gone []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending []string
		for _, name := range ready {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name})
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			if st := l.GetStatus(); st.GetState() != lgv1.Loop_READY || st.GetObservedGeneration() != l.GetGeneration() {
				pending = append(pending, fmt.Sprintf("%s %s (generation %d, observed %d): %s", name, st.GetState(), l.GetGeneration(), st.GetObservedGeneration(), conditionsText(st)))
			}
		}
		for _, name := range gone {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name})
			if err == nil {
				pending = append(pending, fmt.Sprintf("%s still there: %s %s", name, l.GetStatus().GetState(), conditionsText(l.GetStatus())))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged within %v:\n  %s", within, strings.Join(pending, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// clusterCensus is everything on a cluster: topics (but Kafka's internal
// ones), ACLs, client quotas and SCRAM users.
type clusterCensus struct {
	topics map[string]int32
	acls   map[string]bool
	quotas map[string]map[string]int64
	scram  map[string]bool
}

func newClusterCensus() clusterCensus {
	return clusterCensus{topics: map[string]int32{}, acls: map[string]bool{}, quotas: map[string]map[string]int64{}, scram: map[string]bool{}}
}

// censusOf reads a cluster with an independent admin client.
func censusOf(t *testing.T, bootstrap []string, user, pass string) clusterCensus {
	t.Helper()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := newClusterCensus()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("census: topics: %v", err)
	}
	for name, d := range topics {
		out.topics[name] = int32(len(d.Partitions))
	}
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, kcl)
	if err == nil && resp.ErrorCode != 0 {
		err = fmt.Errorf("error code %d", resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("census: ACLs: %v", err)
	}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			k := fmt.Sprintf("%s %s %s %s", a.Principal, a.Operation, r.ResourceType, r.ResourceName)
			if a.PermissionType != kmsg.ACLPermissionTypeAllow || r.ResourcePatternType != kmsg.ACLResourcePatternTypeLiteral || a.Host != "*" {
				k += fmt.Sprintf(" (%s %s host %s)", a.PermissionType, r.ResourcePatternType, a.Host)
			}
			out.acls[k] = true
		}
	}
	quotas, err := adm.DescribeClientQuotas(ctx, false, nil)
	if err != nil {
		t.Fatalf("census: quotas: %v", err)
	}
	for _, q := range quotas {
		var ent []string
		for _, e := range q.Entity {
			name := "<default>"
			if e.Name != nil {
				name = *e.Name
			}
			ent = append(ent, e.Type+"="+name)
		}
		m := map[string]int64{}
		for _, v := range q.Values {
			m[v.Key] = int64(v.Value)
		}
		out.quotas[strings.Join(ent, ",")] = m
	}
	users, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatalf("census: SCRAM users: %v", err)
	}
	for name := range users {
		out.scram[name] = true
	}
	return out
}

// wantOnCluster is what the loops on clusterName need, from their status
// (topics, what each principal may do) and spec (partitions, peak rate),
// by the rules of docs/loop-spec.md; the only SCRAM user is loopgate's.
func wantOnCluster(loops []*lgv1.Loop, clusterName, superuser string) clusterCensus {
	want := newClusterCensus()
	want.scram[superuser] = true
	for _, l := range loops {
		st := l.GetStatus()
		if st.GetCluster() != clusterName {
			continue
		}
		f := float64(l.GetSpec().GetThroughput().GetPeakFactor())
		if f == 0 {
			f = 1
		}
		peak := int64(math.Ceil(float64(l.GetSpec().GetThroughput().GetBytesPerSecond()) * f))
		parts := map[string]int32{}
		for _, s := range l.GetSpec().GetStreams() {
			parts[s.GetName()] = s.GetPartitions()
		}
		for _, s := range st.GetStreams() {
			want.topics[s.GetTopic()] = parts[s.GetStream()]
		}
		for _, g := range st.GetPrincipals() {
			p := g.GetPrincipal()
			q := want.quotas["user="+strings.TrimPrefix(p, "User:")]
			if q == nil {
				q = map[string]int64{}
				want.quotas["user="+strings.TrimPrefix(p, "User:")] = q
			}
			for _, tp := range g.GetProduceTopics() {
				want.acls[p+" WRITE TOPIC "+tp], want.acls[p+" DESCRIBE TOPIC "+tp] = true, true
			}
			for _, tp := range g.GetConsumeTopics() {
				want.acls[p+" READ TOPIC "+tp], want.acls[p+" DESCRIBE TOPIC "+tp] = true, true
			}
			for _, gr := range g.GetGroups() {
				want.acls[p+" READ GROUP "+gr] = true
			}
			if len(g.GetProduceTopics()) > 0 {
				q["producer_byte_rate"] += peak
			}
			if len(g.GetConsumeTopics()) > 0 {
				q["consumer_byte_rate"] += peak
			}
		}
	}
	return want
}

// diff lists, sorted, the orphans, the missing and the different.
func (want clusterCensus) diff(got clusterCensus) []string {
	var out []string
	for n, p := range got.topics {
		if w, ok := want.topics[n]; !ok {
			out = append(out, fmt.Sprintf("orphan topic %s", n))
		} else if w != p {
			out = append(out, fmt.Sprintf("topic %s has %d partitions, want %d", n, p, w))
		}
	}
	for n := range want.topics {
		if _, ok := got.topics[n]; !ok {
			out = append(out, "missing topic "+n)
		}
	}
	for a := range got.acls {
		if !want.acls[a] {
			out = append(out, "orphan ACL "+a)
		}
	}
	for a := range want.acls {
		if !got.acls[a] {
			out = append(out, "missing ACL "+a)
		}
	}
	for e, v := range got.quotas {
		if w, ok := want.quotas[e]; !ok {
			out = append(out, fmt.Sprintf("orphan quota %s %v", e, v))
		} else if fmt.Sprint(w) != fmt.Sprint(v) {
			out = append(out, fmt.Sprintf("quota %s is %v, want %v", e, v, w))
		}
	}
	for e, w := range want.quotas {
		if _, ok := got.quotas[e]; !ok {
			out = append(out, fmt.Sprintf("missing quota %s %v", e, w))
		}
	}
	for u := range got.scram {
		if !want.scram[u] {
			out = append(out, "orphan SCRAM user "+u)
		}
	}
	for u := range want.scram {
		if !got.scram[u] {
			out = append(out, "missing SCRAM user "+u)
		}
	}
	sort.Strings(out)
	return out
}
