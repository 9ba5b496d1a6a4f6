package census

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Team is one team's loops on a loopgate server, through its gRPC API.
// Loops are named by their id within the team.
type Team struct {
	Name  string
	Loops lgv1.LoopServiceClient
}

func (tm Team) loopName(id string) string { return "teams/" + tm.Name + "/loops/" + id }

// Get is the loop id of the team.
func (tm Team) Get(ctx context.Context, id string) (*lgv1.Loop, error) {
	return tm.Loops.GetLoop(ctx, &lgv1.GetLoopRequest{Name: tm.loopName(id)})
}

// Create creates OutageLoop(team, id), request id "create-<id>".
func (tm Team) Create(ctx context.Context, id string) (*lgv1.Loop, error) {
	l, err := tm.Loops.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/" + tm.Name, LoopId: id, Loop: OutageLoop(tm.Name, id), RequestId: "create-" + id})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", id, err)
	}
	return l, nil
}

// CreateAll creates each loop of ids in turn (Create); an error fails the
// test.
func (tm Team) CreateAll(t testing.TB, ctx context.Context, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := tm.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// CreateConcurrently creates the loops of ids at once (Create) and calls
// outage as soon as the first create returns, while the others are being
// created and provisioned.
func (tm Team) CreateConcurrently(t testing.TB, ctx context.Context, ids []string, outage func()) {
	t.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	first := make(chan struct{})
	errs := make(chan error, len(ids))
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(first) })
			if _, err := tm.Create(ctx, id); err != nil {
				errs <- err
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

// ChangeWhileDown is what the outage tests do while the cluster is away:
// it creates the loops of late, updates the loop changing (48h retention,
// 4 partitions on its first stream; request id "update-<changing>") and
// deletes the loop doomed (request id "delete-<doomed>").
func (tm Team) ChangeWhileDown(t testing.TB, ctx context.Context, late []string, changing, doomed string) {
	t.Helper()
	tm.CreateAll(t, ctx, late...)
	cur, err := tm.Get(ctx, changing)
	if err != nil {
		t.Fatal(err)
	}
	spec := proto.Clone(cur.GetSpec()).(*lgv1.LoopSpec)
	spec.RetentionMs = 48 * 3600 * 1000
	spec.Streams[0].Partitions = 4
	if _, err := tm.Loops.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: &lgv1.Loop{Name: cur.GetName(), Etag: cur.GetEtag(), Spec: spec}, RequestId: "update-" + changing}); err != nil {
		t.Fatalf("update during the outage: %v", err)
	}
	if _, err := tm.Loops.DeleteLoop(ctx, &lgv1.DeleteLoopRequest{Name: tm.loopName(doomed), RequestId: "delete-" + doomed}); err != nil {
		t.Fatalf("delete during the outage: %v", err)
	}
}

// WaitConverged waits until every loop of ready is READY at its generation
// and every loop of gone is gone; it fails the test after within.
func (tm Team) WaitConverged(t testing.TB, ctx context.Context, ready, gone []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending []string
		for _, id := range ready {
			l, err := tm.Get(ctx, id)
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			if st := l.GetStatus(); st.GetState() != lgv1.Loop_READY || st.GetObservedGeneration() != l.GetGeneration() {
				pending = append(pending, fmt.Sprintf("%s %s (generation %d, observed %d): %s", id, st.GetState(), l.GetGeneration(), st.GetObservedGeneration(), Conditions(st)))
			}
		}
		for _, id := range gone {
			if l, err := tm.Get(ctx, id); err == nil {
				pending = append(pending, fmt.Sprintf("%s still there: %s %s", id, l.GetStatus().GetState(), Conditions(l.GetStatus())))
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

// WaitUnreachable waits, within the outage (the cluster went away at down
// for outage), until every loop of ids with work to do has a condition
// that says its cluster is unreachable (UnreachableCondition); it fails the
// test a second before the outage ends. Only the loops of mayBeReady
// (created just before the outage) may instead be READY: provisioned as the
// cluster went away; any other loop READY at its generation fails the test
// at once.
func (tm Team) WaitUnreachable(t testing.TB, ctx context.Context, ids, mayBeReady []string, clusterName string, down time.Time, outage time.Duration) {
	t.Helper()
	for {
		var missing []string
		seen := map[string]string{}
		for _, id := range ids {
			l, err := tm.Get(ctx, id)
			if err != nil {
				t.Fatalf("get %s during the outage: %v", id, err)
			}
			st := l.GetStatus()
			if st.GetState() == lgv1.Loop_READY && st.GetObservedGeneration() == l.GetGeneration() {
				if !slices.Contains(mayBeReady, id) {
					t.Fatalf("%s is READY at generation %d, written while its cluster was down: %s", id, l.GetGeneration(), Conditions(st))
				}
				seen[id] = "READY: provisioned as the cluster went away"
				continue
			}
			c := UnreachableCondition(st, clusterName, l.GetGeneration())
			if c == nil {
				missing = append(missing, fmt.Sprintf("%s %s: %s", id, st.GetState(), Conditions(st)))
				continue
			}
			seen[id] = fmt.Sprintf("%s, %s=%s %s: %s", st.GetState(), c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage())
		}
		if len(missing) == 0 {
			t.Logf("%v into the outage every loop with work to do waits and names the cause:", time.Since(down).Round(time.Millisecond))
			for _, id := range ids {
				t.Logf("  %s: %s", id, seen[id])
			}
			return
		}
		if time.Since(down) > outage-time.Second {
			for _, id := range ids {
				if seen[id] != "" {
					t.Logf("  %s: %s", id, seen[id])
				}
			}
			t.Fatalf("%v into the outage, loops do not say that cluster %s is unreachable:\n  %s", time.Since(down).Round(time.Second), clusterName, strings.Join(missing, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unreachable is what a condition says when the cluster cannot be reached.
var unreachable = regexp.MustCompile(`(?i)unreachable|not reachable|cannot reach|could not reach|connection refused|unable to dial|dial tcp`)

// UnreachableCondition returns the Provisioned or InSync condition, False,
// of the loop's current generation gen, that names the cluster and says it
// cannot be reached; nil if there is none.
func UnreachableCondition(st *lgv1.LoopStatus, clusterName string, gen int64) *lgv1.Condition {
	for _, c := range st.GetConditions() {
		text := c.GetReason() + " " + c.GetMessage()
		if (c.GetType() == "Provisioned" || c.GetType() == "InSync") && c.GetStatus() == "False" && c.GetObservedGeneration() == gen &&
			strings.Contains(text, clusterName) && unreachable.MatchString(text) {
			return c
		}
	}
	return nil
}

// Conditions is every condition of st, on one line, for test messages.
func Conditions(st *lgv1.LoopStatus) string {
	var parts []string
	for _, c := range st.GetConditions() {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s (generation %d)", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage(), c.GetObservedGeneration()))
	}
	return strings.Join(parts, "; ")
}

// OutageLoop is a small loop of team with its own principals: two streams
// (events, 2 partitions, and actions, 1), a producer (User:<id>-api), an
// acting service (User:<id>-engine) that consumes events in group
// <id>-engine and writes the action stream.
func OutageLoop(team, id string) *lgv1.Loop {
	schema := func(rec string) *lgv1.StreamSchema {
		return &lgv1.StreamSchema{Format: "avro", Definition: `{"type":"record","name":"` + rec + `","fields":[{"name":"id","type":"string"}]}`}
	}
	return &lgv1.Loop{
		Name: "teams/" + team + "/loops/" + id,
		Spec: &lgv1.LoopSpec{
			Owners: []string{"ana@example.com"}, Classification: "internal", Residency: "eu", RetentionMs: 24 * 3600 * 1000,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 100 << 10, PeakFactor: 2},
			Streams: []*lgv1.Stream{
				{Name: "events", Partitions: 2, Schema: schema("E")},
				{Name: "actions", Partitions: 1, Schema: schema("A")},
			},
			Producers: []*lgv1.Producer{{Principal: "User:" + id + "-api", Streams: []string{"events"}}, {Principal: "User:" + id + "-engine", Streams: []string{"actions"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:" + id + "-engine", Group: id + "-engine", Streams: []string{"events"}}},
			Action:    &lgv1.LoopAction{Stream: "actions"},
		},
	}
}
