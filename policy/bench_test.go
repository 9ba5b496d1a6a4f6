package policy_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/loopgate/loopgate/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchmarkEvaluate measures one decision on a typical loop through the
// engine: input encoding, evaluation, decoding, sorting and the decision id.
// Target (docs/benchmarks.md): p99 ≤ 1 ms and ≤ 1.3× BenchmarkRawOPA.
func BenchmarkEvaluate(b *testing.B) {
	e := newDefaultEngine(b)
	ctx := context.Background()
	in := typicalInput()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		start := time.Now()
		d, err := e.Evaluate(ctx, in)
		lat = append(lat, time.Since(start))
		if err != nil || !d.Allowed() {
			b.Fatalf("typical loop: %+v, %v", d, err)
		}
	}
	cpu.report(len(lat))
	reportP99(b, lat)
}

// BenchmarkEvaluateWithWaivers is BenchmarkEvaluate for a loop with two
// active waivers, one of which lifts a denial (which becomes a warning):
// waivers are part of every decision's input, so they must stay cheap.
func BenchmarkEvaluateWithWaivers(b *testing.B) {
	e := newDefaultEngine(b)
	ctx := context.Background()
	in := typicalInput()
	in.Loop.Spec.Owners = nil
	until := time.Now().Add(24 * time.Hour)
	in.Waivers = []policy.Waiver{
		{Rule: "OWNERS_REQUIRED", Until: until, Reason: "owners move to the new directory"},
		{Rule: "LATENCY_BELOW_FLOOR", Until: until, Reason: "capacity reserved"},
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		start := time.Now()
		d, err := e.Evaluate(ctx, in)
		lat = append(lat, time.Since(start))
		if err != nil || !d.Allowed() || len(d.Warn) != 1 {
			b.Fatalf("waived loop: %+v, %v", d, err)
		}
	}
	cpu.report(len(lat))
	reportP99(b, lat)
}

// BenchmarkRawOPA is the baseline: OPA's own prepared evaluation of the same
// bundle and query with the input already built as an AST value.
func BenchmarkRawOPA(b *testing.B) {
	bundle, err := policy.DefaultBundle()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pq, err := rego.New(
		rego.Query(policy.DecisionQuery), // the query the engine runs
		rego.ParsedBundle("loopgate", bundle),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		b.Fatal(err)
	}
	input := rawInput(b)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		start := time.Now()
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
		lat = append(lat, time.Since(start))
		if err != nil || len(rs) != 1 {
			b.Fatalf("raw OPA: %v, %v", rs, err)
		}
	}
	cpu.report(len(lat))
	reportP99(b, lat)
}

// rawInput is the typical input as the JSON document policy sees, built
// once: exactly what the engine evaluates (policy.InputJSON).
func rawInput(b *testing.B) ast.Value {
	raw, err := policy.InputJSON(typicalInput())
	if err != nil {
		b.Fatal(err)
	}
	v, err := ast.ValueFromReader(bytesReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "p99-ns")
}

// cpuClock measures the CPU time of the whole process (evaluation and GC) per
// operation: on a shared, loaded machine wall-clock figures include time spent
// waiting for a core, CPU time does not.
type cpuClock struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuClock { return cpuClock{b, processCPU(b)} }

func (c cpuClock) report(n int) {
	if n > 0 {
		c.b.ReportMetric(float64((processCPU(c.b)-c.start).Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
