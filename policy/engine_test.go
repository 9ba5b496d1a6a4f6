package policy_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
)

func newDefaultEngine(t testing.TB) *policy.Engine {
	t.Helper()
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewEngine(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// writeBundle writes a bundle directory with the given files and returns its path.
func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadBundle(t *testing.T, files map[string]string) *bundle.Bundle {
	t.Helper()
	b, err := policy.LoadBundle(writeBundle(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ids(vs []policy.Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func TestEvaluateAllowsTypicalLoop(t *testing.T) {
	e := newDefaultEngine(t)
	d, err := e.Evaluate(context.Background(), typicalInput())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed() || d.NeedsApproval() || len(d.Warn) != 0 {
		t.Fatalf("typical loop: want allowed without approval or warnings, got %+v", d)
	}
	if !strings.HasPrefix(d.ID, "dec_") || len(d.ID) != 30 {
		t.Errorf("decision id %q: want dec_ and 26 characters", d.ID)
	}
	if d.BundleRevision != e.Revision() || !strings.HasPrefix(d.BundleRevision, "default-") {
		t.Errorf("bundle revision %q, engine revision %q: want the default bundle's", d.BundleRevision, e.Revision())
	}
}

func TestEvaluateGivesEachDecisionANewID(t *testing.T) {
	e := newDefaultEngine(t)
	seen := map[string]bool{}
	for range 100 {
		d, err := e.Evaluate(context.Background(), typicalInput())
		if err != nil {
			t.Fatal(err)
		}
		if seen[d.ID] {
			t.Fatalf("decision id %s issued twice", d.ID)
		}
		seen[d.ID] = true
	}
}

// A request that breaks several rules must get every violation at once, each
// with its field, so the requester can fix them in one round.
func TestEvaluateReportsEveryViolation(t *testing.T) {
	in := typicalInput()
	in.Loop.Spec.Owners = nil
	in.Loop.Spec.Residency = "us" // pii outside the pii regions
	in.Cluster.Region = "us"
	in.Loop.Spec.RetentionMs = 45 * 24 * 3600 * 1000
	in.Loop.Spec.Streams[1].Schema.Definition = ""
	in.Loop.Spec.Throughput.BytesPerSecond = 50 << 20
	in.Loop.Spec.Consumers = nil
	in.Loop.Spec.SLO.FreshnessMs = 0
	in.Loop.Spec.SLO.LatencyP99Ms = 100

	d, err := newDefaultEngine(t).Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Violation{ // sorted by field, then id
		{ID: "OWNERS_REQUIRED", Field: "spec.owners"},
		{ID: "PII_RESIDENCY", Field: "spec.residency"},
		{ID: "PII_RETENTION_TOO_LONG", Field: "spec.retention"},
		{ID: "SCHEMA_REQUIRED", Field: "spec.streams[1].schema"},
		{ID: "THROUGHPUT_EXCEEDS_TEAM_LIMIT", Field: "spec.throughput.bytesPerSecond"},
	}
	if len(d.Deny) != len(want) {
		t.Fatalf("deny = %+v\nwant ids %v", d.Deny, ids(want))
	}
	for i, w := range want {
		got := d.Deny[i]
		if got.ID != w.ID || got.Field != w.Field || got.Msg == "" {
			t.Errorf("deny[%d] = %+v, want id %s at %s with a message", i, got, w.ID, w.Field)
		}
	}
	if !strings.Contains(d.Deny[2].Msg, "45d") || !strings.Contains(d.Deny[2].Msg, "30d") {
		t.Errorf("retention message %q should name the requested 45d and the 30d cap", d.Deny[2].Msg)
	}
	if got := ids(d.Warn); !reflect.DeepEqual(got, []string{"NO_CONSUMERS", "FRESHNESS_NOT_SET"}) {
		t.Errorf("warn ids = %v", got)
	}
	if got := ids(d.Approval); !reflect.DeepEqual(got, []string{"LATENCY_BELOW_FLOOR"}) {
		t.Errorf("approval ids = %v", got)
	}
	if d.Allowed() || d.NeedsApproval() {
		t.Errorf("Allowed() = %v, NeedsApproval() = %v; want both false for a denied request", d.Allowed(), d.NeedsApproval())
	}
}

// Each approval rule of the default bundle says who approves and how many
// (loop.rego documents the routing).
func TestEvaluateHoldsForApproval(t *testing.T) {
	ctx := context.Background()
	def := newDefaultEngine(t)
	// pii may also be stored in us: PII_OUTSIDE_HOME_REGION can fire.
	b := mustDefault(t)
	b.Data["loopgate"].(map[string]any)["config"].(map[string]any)["pii_regions"] = []any{"eu", "us"}
	widened, err := policy.NewEngine(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	update := func(in *policy.Input) {
		in.Operation = policy.OpUpdate
		in.Previous = typicalLoop()
	}
	for _, tc := range []struct {
		name   string
		engine *policy.Engine
		edit   func(*policy.Input)
		want   []policy.Violation // without messages
	}{
		{"tight latency SLO", def, func(in *policy.Input) { in.Loop.Spec.SLO.LatencyP99Ms = 200; in.Loop.Spec.SLO.FreshnessMs = 100 },
			[]policy.Violation{{ID: "LATENCY_BELOW_FLOOR", Field: "spec.slo.latencyP99", Role: policy.RolePlatformAdmin, Approvals: 1}}},
		{"retention cut to a third on update", def, func(in *policy.Input) {
			update(in)
			in.Loop.Spec.RetentionMs = 24 * 3600 * 1000
		}, []policy.Violation{{ID: "RETENTION_REDUCED", Field: "spec.retention", Role: policy.RoleTeamAdmin, Approvals: 1}}},
		{"classification lowered on update", def, func(in *policy.Input) {
			update(in)
			in.Loop.Spec.Classification = loop.Internal
		}, []policy.Violation{{ID: "CLASSIFICATION_LOWERED", Field: "spec.classification", Role: policy.RoleSecurityReviewer, Approvals: 1}}},
		{"pii outside its home region", widened, func(in *policy.Input) {
			in.Loop.Spec.Residency = "us"
			in.Cluster.Region = "us"
		}, []policy.Violation{{ID: "PII_OUTSIDE_HOME_REGION", Field: "spec.residency", Role: policy.RoleSecurityReviewer, Approvals: 2}}},
		{"several reasons, sorted by field", widened, func(in *policy.Input) {
			update(in)
			in.Previous.Spec.Residency = "us"
			in.Loop.Spec.Residency = "us"
			in.Cluster.Region = "us"
			in.Loop.Spec.RetentionMs = 24 * 3600 * 1000
			in.Loop.Spec.SLO.LatencyP99Ms = 200
			in.Loop.Spec.SLO.FreshnessMs = 100
		}, []policy.Violation{
			{ID: "PII_OUTSIDE_HOME_REGION", Field: "spec.residency", Role: policy.RoleSecurityReviewer, Approvals: 2},
			{ID: "RETENTION_REDUCED", Field: "spec.retention", Role: policy.RoleTeamAdmin, Approvals: 1},
			{ID: "LATENCY_BELOW_FLOOR", Field: "spec.slo.latencyP99", Role: policy.RolePlatformAdmin, Approvals: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := typicalInput()
			tc.edit(&in)
			d, err := tc.engine.Evaluate(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed() || !d.NeedsApproval() {
				t.Fatalf("want allowed and needing approval, got %+v", d)
			}
			got := slices.Clone(d.Approval)
			for i := range got {
				if got[i].Msg == "" {
					t.Errorf("approval %s has no message", got[i].ID)
				}
				got[i].Msg = ""
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("approval = %+v\nwant       %+v", got, tc.want)
			}
		})
	}
}

func TestEvaluateRefusesPartitionShrinkOnUpdate(t *testing.T) {
	in := typicalInput()
	in.Operation = policy.OpUpdate
	in.Previous = typicalLoop()
	in.Loop.Spec.Streams[0].Partitions = 6
	in.Derived = derivedFor(in.Loop)

	d, err := newDefaultEngine(t).Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Deny) != 1 || d.Deny[0].ID != "PARTITIONS_SHRINK" || d.Deny[0].Field != "spec.streams[0].partitions" {
		t.Fatalf("deny = %+v, want PARTITIONS_SHRINK at spec.streams[0].partitions", d.Deny)
	}
}

func TestEvaluateAllowsDelete(t *testing.T) {
	in := typicalInput()
	in.Operation = policy.OpDelete
	in.Previous = in.Loop
	in.Team.AllowedRegions = nil // even a loop that would no longer be admitted can be removed
	d, err := newDefaultEngine(t).Evaluate(context.Background(), in)
	if err != nil || !d.Allowed() {
		t.Fatalf("delete: got %+v, %v; want allowed", d, err)
	}
}

// The policy must be able to refuse, not crash, when the loop is missing.
func TestEvaluateWithoutLoopFailsClosed(t *testing.T) {
	in := typicalInput()
	in.Loop = nil
	d, err := newDefaultEngine(t).Evaluate(context.Background(), in)
	assertFailedClosed(t, d, err)
}

func assertFailedClosed(t *testing.T, d policy.Decision, err error) {
	t.Helper()
	if !errors.Is(err, policy.ErrEvaluationFailed) {
		t.Errorf("error = %v, want one wrapping ErrEvaluationFailed", err)
	}
	if d.Allowed() || len(d.Deny) != 1 || d.Deny[0].ID != policy.PolicyEvaluationFailed || d.Deny[0].Msg == "" {
		t.Errorf("decision = %+v, want a single %s deny", d, policy.PolicyEvaluationFailed)
	}
	if d.ID == "" {
		t.Errorf("a fail-closed decision still needs an id for the audit trail")
	}
}

const manifest = `{"revision":"test-1","roots":["loopgate"]}`

func TestEvaluateFailsClosed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rego string
		want string // in the error
	}{
		{"rule conflicts at eval time", `package loopgate.loop
f(_) := 1
f(x) := 2 if x.operation
deny contains {"id": "X", "msg": "never", "field": ""} if f(input) == 3
`, "eval_conflict_error"},
		{"builtin error", `package loopgate.loop
deny contains {"id": "BAD", "msg": "x", "field": ""} if to_number(input.loop.metadata.name) > 1
`, "to_number"},
		{"package missing", `package loopgate.other
deny contains {"id": "X", "msg": "x", "field": ""} if false
`, "undefined"},
		{"no deny set", `package loopgate.loop
warn contains {"id": "W", "msg": "x", "field": ""} if true
`, "deny"},
		{"element without id", `package loopgate.loop
deny contains {"msg": "no id", "field": "spec"} if true
`, `no "id"`},
		{"element is a string", `package loopgate.loop
deny contains "old style message" if true
`, "want an {id, msg, field} object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := loadBundle(t, map[string]string{".manifest": manifest, "policy.rego": tc.rego})
			e, err := policy.NewEngine(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Evaluate(ctx, typicalInput())
			assertFailedClosed(t, d, err)
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should mention %q", err, tc.want)
			}
			if d.BundleRevision != "test-1" {
				t.Errorf("bundle revision = %q, want test-1", d.BundleRevision)
			}
		})
	}
}

func TestSwapActivatesNewBundle(t *testing.T) {
	ctx := context.Background()
	e := newDefaultEngine(t)
	strict := loadBundle(t, map[string]string{
		".manifest": `{"revision":"strict-2","roots":["loopgate"]}`,
		"p.rego": `package loopgate.loop
deny contains {"id": "FROZEN", "msg": "no changes this week", "field": ""} if input.operation != "DELETE"
`})
	if err := e.Swap(ctx, strict); err != nil {
		t.Fatal(err)
	}
	d, err := e.Evaluate(ctx, typicalInput())
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision() != "strict-2" || d.BundleRevision != "strict-2" || !reflect.DeepEqual(ids(d.Deny), []string{"FROZEN"}) {
		t.Fatalf("after swap: revision %q, decision %+v", e.Revision(), d)
	}
}

func TestSwapKeepsOldBundleWhenNewOneDoesNotCompile(t *testing.T) {
	ctx := context.Background()
	e := newDefaultEngine(t)
	before := e.Revision()
	bad := map[string]*bundle.Bundle{
		"nil":                nil,
		"without a manifest": {Manifest: bundle.Manifest{Revision: "hand-made"}},
		// An unsafe variable parses but does not compile.
		"uncompilable": loadBundle(t, map[string]string{".manifest": `{"revision":"broken","roots":["loopgate"]}`,
			"p.rego": "package loopgate.loop\ndeny contains x if { y := 1 }\n"}),
	}
	for name, b := range bad {
		if err := e.Swap(ctx, b); err == nil {
			t.Errorf("%s bundle: Swap succeeded, want an error", name)
		}
		if e.Revision() != before {
			t.Errorf("%s bundle: revision %q after failed swap, want %q", name, e.Revision(), before)
		}
		d, err := e.Evaluate(ctx, typicalInput())
		if err != nil || !d.Allowed() || d.BundleRevision != before {
			t.Errorf("%s bundle: after failed swap got %+v, %v; want the old bundle deciding", name, d, err)
		}
	}
}

// A bundle without any policy compiles, but it cannot decide: it must deny.
func TestEmptyBundleFailsClosed(t *testing.T) {
	ctx := context.Background()
	e, err := policy.NewEngine(ctx, loadBundle(t, map[string]string{".manifest": manifest}))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Evaluate(ctx, typicalInput())
	assertFailedClosed(t, d, err)
}

func mustDefault(t *testing.T) *bundle.Bundle {
	t.Helper()
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Evaluations in flight while bundles are swapped must each see one whole
// bundle (run with -race).
func TestEvaluateConcurrentWithSwap(t *testing.T) {
	ctx := context.Background()
	e := newDefaultEngine(t)
	frozen := loadBundle(t, map[string]string{
		".manifest": `{"revision":"frozen","roots":["loopgate"]}`,
		"p.rego":    "package loopgate.loop\ndeny contains {\"id\": \"FROZEN\", \"msg\": \"frozen\", \"field\": \"\"} if true\n"})
	def := mustDefault(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				d, err := e.Evaluate(ctx, typicalInput())
				if err != nil {
					t.Error(err)
					return
				}
				if frozenDecision := d.BundleRevision == "frozen"; frozenDecision == d.Allowed() {
					t.Errorf("decision %+v mixes bundles", d)
					return
				}
			}
		})
	}
	for i := range 20 {
		b := def
		if i%2 == 0 {
			b = frozen
		}
		if err := e.Swap(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// The decision is what the server returns and the store persists: its JSON
// must carry every list, even empty ones.
func TestDecisionJSON(t *testing.T) {
	d, err := newDefaultEngine(t).Evaluate(context.Background(), typicalInput())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "bundleRevision", "deny", "warn", "approval"} {
		if m[k] == nil {
			t.Errorf("decision JSON %s lacks %q", raw, k)
		}
	}
}

// Guard against a status leaking into policy input: policy judges the desired
// state only, so a loop's status must not change the decision.
func TestEvaluateIgnoresStatus(t *testing.T) {
	in := typicalInput()
	in.Loop.Status = loop.Status{State: loop.StateFailed, NeedsApproval: true}
	d, err := newDefaultEngine(t).Evaluate(context.Background(), in)
	if err != nil || !d.Allowed() || d.NeedsApproval() {
		t.Fatalf("got %+v, %v", d, err)
	}
}
