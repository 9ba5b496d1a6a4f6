package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/catalog"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// listBenchLoop is a typical provisioned loop (examples/checkout-nudge.yaml)
// with the status the admission and the reconciler leave on it.
func listBenchLoop(team string, i int, now time.Time) *loop.Loop {
	name := fmt.Sprintf("loop-%04d", i)
	l := &loop.Loop{
		Metadata: loop.Metadata{Team: team, Name: name, Labels: map[string]string{"domain": "checkout"}},
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
			Producers: []loop.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}, {Principal: "User:nudge-engine", Streams: []string{"actions"}}},
			Consumers: []loop.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
		Status: loop.Status{State: loop.StateReady, ObservedGeneration: 1, Cluster: "eu-1", DecisionID: "dec-" + name,
			RequestedBy: "admin@example.com", Partitions: 15, BundleRevision: "rev-1",
			Inventory: loop.Inventory{Topics: []string{team + "." + name + ".events", team + "." + name + ".actions"},
				Groups: []string{"nudge-engine"}, Principals: []string{"checkout-api", "nudge-engine"}},
			Warnings: []loop.Violation{{ID: "pii-retention", Msg: "PII kept longer than 24h", Field: "spec.retention"}},
		},
	}
	for _, c := range []string{loop.CondPolicyCompliant, loop.CondProvisioned, loop.CondInSync} {
		l.Status.SetCondition(loop.Condition{Type: c, Status: loop.True, Reason: "Ok", Message: "all good", ObservedGeneration: 1}, now)
	}
	return l
}

// BenchmarkListLoopsThousand is the ListLoops RPC handler (without the gRPC
// transport) listing 1,000 loops in one page as a platform admin, from a
// SQLite store: the store read, the JSON decoding, the cost forecast and
// the mapping to proto. The web portal's fresh overview pays this on every
// request. It also runs the store read alone, for comparison.
func BenchmarkListLoopsThousand(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "loopgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	now := time.Now()
	err = st.Update(ctx, func(tx store.Tx) error {
		for i := range 1000 {
			if err := tx.CreateLoop(ctx, listBenchLoop([]string{"growth", "risk"}[i%2], i, now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cat := &catalog.Catalog{Clusters: []catalog.Cluster{{Name: "eu-1", Region: "eu", Zones: []string{"a", "b", "c"},
		ReplicationFactor: 3, BootstrapServers: []string{"kafka-eu-1:9092"}}}}
	svc := &loopService{core: &admission.Core{Store: st, Catalog: cat}}
	admin := withIdentity(ctx, Identity{Subject: "admin@example.com", Roles: []string{admission.RoleAdmin}})
	report := func(b *testing.B, samples []time.Duration) {
		slices.Sort(samples)
		at := func(q float64) float64 {
			return float64(samples[int(q*float64(len(samples)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(at(0.50), "p50-ms")
		b.ReportMetric(at(0.99), "p99-ms")
	}
	b.Run("rpc", func(b *testing.B) {
		b.ReportAllocs()
		var samples []time.Duration
		for b.Loop() {
			start := time.Now()
			resp, err := svc.ListLoops(admin, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 1000})
			samples = append(samples, time.Since(start))
			if err != nil || len(resp.GetLoops()) != 1000 || resp.GetLoops()[0].GetStatus().GetCost() == nil {
				b.Fatalf("ListLoops: %d loops, %v", len(resp.GetLoops()), err)
			}
		}
		report(b, samples)
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		var samples []time.Duration
		for b.Loop() {
			start := time.Now()
			page, _, err := st.ListLoops(ctx, store.ListOptions{PageSize: 1000})
			samples = append(samples, time.Since(start))
			if err != nil || len(page) != 1000 {
				b.Fatalf("ListLoops: %d loops, %v", len(page), err)
			}
		}
		report(b, samples)
	})
}
