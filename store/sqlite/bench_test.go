package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// benchLoop is a typical loop: two Avro streams, a producer, a consumer.
func benchLoop(team string, i int) *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: team, Name: fmt.Sprintf("loop-%05d", i), Labels: map[string]string{"domain": "checkout"}},
		Spec: loop.Spec{
			Description: "Nudge shoppers who abandon checkout while the session is live",
			Owners:      []string{"ana@example.com"}, Classification: loop.PII, Residency: "eu",
			RetentionMs: 259200000, SLO: loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput: loop.Throughput{BytesPerSecond: 2097152, PeakFactor: 3, RecordBytes: 600},
			Streams: []loop.Stream{
				{Name: "events", Partitions: 12, Schema: loop.Schema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}`}},
				{Name: "actions", Schema: loop.Schema{Format: "avro",
					Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []loop.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
		Status: loop.Status{State: loop.StateReady, ObservedGeneration: 1, Cluster: "eu-1", DecisionID: audit.NewID()},
	}
}

// reportP99 adds p50 and p99 latency metrics from per-operation samples.
func reportP99(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkListLoops lists one page out of 10,000 stored loops in 20 teams
// (docs/benchmarks.md: list 10,000 loops, one page, p99 ≤ 20 ms for the request).
func BenchmarkListLoops(b *testing.B) {
	ctx := context.Background()
	s := openT(b, filepath.Join(b.TempDir(), "loopgate.db"))
	for t := range 20 {
		team := fmt.Sprintf("team-%02d", t)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := range 500 {
				if err := tx.CreateLoop(ctx, benchLoop(team, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	_, mid, err := s.ListLoops(ctx, store.ListOptions{PageSize: 5000}) // token into the middle
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opts store.ListOptions
	}{
		{"first-page-50", store.ListOptions{}},
		{"team-first-page-50", store.ListOptions{Team: "team-07"}},
		{"middle-page-50", store.ListOptions{PageToken: mid}},
		{"first-page-1000", store.ListOptions{PageSize: 1000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var samples []time.Duration
			for b.Loop() {
				start := time.Now()
				page, _, err := s.ListLoops(ctx, bc.opts)
				samples = append(samples, time.Since(start))
				if err != nil || len(page) == 0 {
					b.Fatalf("ListLoops: %d loops, %v", len(page), err)
				}
			}
			reportP99(b, samples)
		})
	}
}

// BenchmarkAppendAudit measures audit appends, each in its own committed
// (and, for the file store, fsynced) transaction, and batched 100 per
// transaction as a bulk apply would.
func BenchmarkAppendAudit(b *testing.B) {
	ev := audit.Event{Actor: "ana@example.com", Action: "loop.update", Resource: "teams/growth/loops/checkout-nudge",
		Outcome: audit.OutcomeOK, Details: []byte(`{"generation":3,"ops":[{"op":"CreateTopics","topics":["growth.checkout-nudge.events"]}]}`)}
	for _, bc := range []struct {
		name  string
		path  func(b *testing.B) string
		batch int
	}{
		{"file-1-per-tx", func(b *testing.B) string { return filepath.Join(b.TempDir(), "loopgate.db") }, 1},
		{"file-100-per-tx", func(b *testing.B) string { return filepath.Join(b.TempDir(), "loopgate.db") }, 100},
		{"memory-1-per-tx", func(*testing.B) string { return MemoryPath }, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			s := openT(b, bc.path(b))
			var samples []time.Duration
			for b.Loop() {
				start := time.Now()
				err := s.Update(ctx, func(tx store.Tx) error {
					for range bc.batch {
						if _, err := tx.AppendAudit(ctx, ev); err != nil {
							return err
						}
					}
					return nil
				})
				samples = append(samples, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*bc.batch)/b.Elapsed().Seconds(), "events/s")
			reportP99(b, samples)
		})
	}
}

// BenchmarkVerifyAudit recomputes a chain of 10,000 events.
func BenchmarkVerifyAudit(b *testing.B) {
	ctx := context.Background()
	s := openT(b, filepath.Join(b.TempDir(), "loopgate.db"))
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range 10000 {
			if _, err := tx.AppendAudit(ctx, audit.Event{Actor: "ana@example.com", Action: "loop.update",
				Resource: fmt.Sprintf("teams/growth/loops/loop-%d", i%100), Outcome: audit.OutcomeOK,
				Details: []byte(`{"generation":3}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := s.VerifyAudit(ctx)
		if err != nil || !res.OK || res.Events != 10000 {
			b.Fatalf("VerifyAudit = %+v, %v", res, err)
		}
	}
}
