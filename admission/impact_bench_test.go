package admission

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/internal/policytest"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// BenchmarkPolicyImpact measures `loopctl policy impact` of a candidate that
// adds a rule (tightened PII retention) over 1,000 and 10,000 stored loops
// of team growth (half of them PII kept a week: affected), plus the replay
// of the 1,000 most recent decisions, on SQLite. Reported: impact-s per
// analysis, affected loops, and per-loop cost.
func BenchmarkPolicyImpact(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run("loops="+strconv.Itoa(n), func(b *testing.B) { benchImpact(b, n) })
	}
}

func benchImpact(b *testing.B, n int) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	builtin, err := policy.DefaultBundle()
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policy.NewEngine(ctx, builtin)
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Embedded(b.TempDir())
	for i := range cfg.Teams {
		cfg.Teams[i].MaxPartitions = 1 << 30
	}
	c := &Core{Store: st, Policy: engine, Catalog: cfg.Catalog(), Governance: &PolicyGovernance{Builtin: builtin}}
	id := Identity{Subject: "bench@example.com", Teams: []string{"growth"}}
	reviewer := Identity{Subject: "reviewer@example.com", Roles: []string{RoleSecurityReviewer}}

	// Stored loops, each admitted through Create in batches (decisions
	// with inputs included).
	start := time.Now()
	for i := range n {
		l := &loop.Loop{
			Metadata: loop.Metadata{Team: "growth", Name: fmt.Sprintf("l%05d", i)},
			Spec: loop.Spec{
				Owners: []string{"ana@example.com"}, Classification: loop.Internal, Residency: "eu", RetentionMs: 7 * 86400000,
				SLO: loop.SLO{LatencyP99Ms: 2000}, Throughput: loop.Throughput{BytesPerSecond: 1 << 16, PeakFactor: 2},
				Streams: []loop.Stream{{Name: "events", Partitions: 1, Schema: loop.Schema{Format: "avro",
					Definition: `{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}`}}},
				Producers: []loop.Producer{{Principal: fmt.Sprintf("User:p%05d", i), Streams: []string{"events"}}},
			},
		}
		if i%2 == 0 {
			l.Spec.Classification = loop.PII
		}
		if _, err := c.Create(ctx, id, l, WriteOptions{}); err != nil {
			b.Fatalf("create %d: %v", i, err)
		}
	}
	b.Logf("admitted %d loops in %v", n, time.Since(start).Round(time.Millisecond))
	pushed, err := c.PushPolicyBundle(ctx, reviewer, policytest.PIIRetention(b, "pii-3d-bench", policytest.PIIRetentionTest))
	if err != nil {
		b.Fatal(err)
	}
	var last *PolicyImpact
	b.ResetTimer()
	for b.Loop() {
		if last, err = c.PolicyImpact(ctx, reviewer, pushed.Revision, MaxImpactReplay, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(last.Loops) != n/2 || last.LoopsEvaluated != n || last.DecisionsReplayed != min(n, MaxImpactReplay) {
		b.Fatalf("impact: %d affected of %d evaluated, %d replayed; want %d, %d, %d", len(last.Loops), last.LoopsEvaluated, last.DecisionsReplayed, n/2, n, min(n, MaxImpactReplay))
	}
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(perOp.Seconds(), "impact-s")
	b.ReportMetric(float64(perOp.Microseconds())/float64(n+last.DecisionsReplayed), "µs/evaluation")
	b.ReportMetric(float64(len(last.Flips)), "flips")
	_ = store.MaxDecisionInputBytes
}
