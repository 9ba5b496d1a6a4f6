package provisioning_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loopgate/loopgate/provisioning"
)

// BenchmarkPlanTypicalLoop measures the pure planner on the reference example
// with a retention change (two config alters) to plan.
func BenchmarkPlanTypicalLoop(b *testing.B) {
	l := checkoutNudge()
	observed := provisioning.Derive(l, euCluster)
	l.Spec.RetentionMs = 24 * 3600 * 1000
	desired := provisioning.Derive(l, euCluster)
	b.ReportAllocs()
	for b.Loop() {
		if p := provisioning.Plan(desired, observed); len(p.Actions) != 2 {
			b.Fatalf("%d actions", len(p.Actions))
		}
	}
}

// BenchmarkDeriveTypicalLoop measures Derive on the reference example.
func BenchmarkDeriveTypicalLoop(b *testing.B) {
	l := checkoutNudge()
	b.ReportAllocs()
	for b.Loop() {
		provisioning.Derive(l, euCluster)
	}
}

// BenchmarkObservePlanNoop measures a no-op re-plan of a provisioned typical
// loop on the in-process cluster: Observe (metadata, configs, ACLs, quotas)
// plus Plan.
func BenchmarkObservePlanNoop(b *testing.B) {
	e := newEnv(b)
	desired := provisioning.Derive(randomLoop(b), e.cat)
	e.converge(b, desired, desired)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		obs, err := e.admin.Observe(ctx, desired)
		if err != nil {
			b.Fatal(err)
		}
		if p := provisioning.Plan(desired, obs); !p.Empty() {
			b.Fatalf("not a no-op: %+v", p)
		}
	}
}

// BenchmarkObservePlanNoop1000Loops measures the batched no-op re-plan of
// 1,000 typical loops (2,000 topics, 5,000 ACLs, 2,000 quotas) in one
// Observe: the shape the reconciler uses for the benchmark table's "no-op re-plan of
// 1,000 loops ≤ 0.5 s". Setup also provisions all of them in one Execute.
func BenchmarkObservePlanNoop1000Loops(b *testing.B) {
	e := newEnv(b)
	var desired provisioning.Resources
	for i := range 1000 {
		l := checkoutNudge()
		l.Metadata.Name = fmt.Sprintf("loop-%04d", i)
		l.Spec.Producers[0].Principal = fmt.Sprintf("User:producer-%04d", i)
		l.Spec.Consumers[0].Principal = fmt.Sprintf("User:consumer-%04d", i)
		l.Spec.Consumers[0].Group = fmt.Sprintf("group-%04d", i)
		r := provisioning.Derive(l, e.cat)
		desired.Topics = append(desired.Topics, r.Topics...)
		desired.ACLs = append(desired.ACLs, r.ACLs...)
		desired.Quotas = append(desired.Quotas, r.Quotas...)
	}
	desired.Sort()
	start := time.Now()
	e.converge(b, desired, desired)
	b.Logf("provisioning 1,000 loops (observe + plan + execute): %v", time.Since(start))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		obs, err := e.admin.Observe(ctx, desired)
		if err != nil {
			b.Fatal(err)
		}
		if p := provisioning.Plan(desired, obs); !p.Empty() {
			b.Fatalf("not a no-op: %d actions", len(p.Actions))
		}
	}
}
