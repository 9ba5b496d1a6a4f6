package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/loopgate/loopgate/internal/testpg"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
)

// The request path of a create: loop + policy decision + audit event in
// one transaction.
func BenchmarkCreateLoopWithDecisionAndAudit(b *testing.B) {
	s := open(b, testpg.DSN(b))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("loop-%d", i)
		err := s.Update(ctx, func(tx store.Tx) error {
			l := sampleLoop("growth", name)
			if err := tx.CreateLoop(ctx, l); err != nil {
				return err
			}
			id := fmt.Sprintf("dec-%d", i)
			if err := tx.PutDecision(ctx, store.Decision{ID: id, Resource: l.Metadata.ResourceName(),
				Operation: "CREATE", BundleRevision: "r1", Result: json.RawMessage(`{"deny":[],"warn":[],"approval":[]}`)}); err != nil {
				return err
			}
			ev := auditEvent("ana", "loop.create", l.Metadata.ResourceName())
			ev.DecisionID = id
			_, err := tx.AppendAudit(ctx, ev)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// Audit appends from two processes at once: measures how the serialised
// writers scale (they do not: this is the contended throughput).
func BenchmarkAuditAppendTwoProcessesParallel(b *testing.B) {
	dsn := testpg.DSN(b)
	stores := []*postgres.Store{open(b, dsn), open(b, dsn)}
	ctx := context.Background()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		s := stores[next.Add(1)%2]
		for pb.Next() {
			err := s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.AppendAudit(ctx, auditEvent("ana", "loop.update", "teams/growth/loops/x"))
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// One default-size page out of 10,000 loops, from the middle (docs/benchmarks.md:
// p99 ≤ 20 ms for the whole API call).
func BenchmarkListLoopsPageOf10000(b *testing.B) {
	s := open(b, testpg.DSN(b))
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range 10000 {
			if err := tx.CreateLoop(ctx, sampleLoop(fmt.Sprintf("team-%02d", i%20), fmt.Sprintf("loop-%05d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	token := store.EncodePageToken("", "team-10", "loop-05000")
	for b.Loop() {
		loops, _, err := s.ListLoops(ctx, store.ListOptions{PageToken: token})
		if err != nil || len(loops) != store.DefaultLoopPageSize {
			b.Fatalf("ListLoops: %d loops, %v", len(loops), err)
		}
	}
}
