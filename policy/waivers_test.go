package policy_test

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/policy"
)

func evaluate(t *testing.T, e *policy.Engine, in policy.Input) policy.Decision {
	t.Helper()
	d, err := e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Waivers through the engine: a waived rule no longer denies and is shown
// as a warning; an unwaivable one still denies; a waiver the caller does not
// pass (expired, revoked) changes nothing.
func TestEngineHonoursWaivers(t *testing.T) {
	e := newDefaultEngine(t)
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	noOwners := typicalInput()
	noOwners.Loop.Spec.Owners = nil
	denied := evaluate(t, e, noOwners)
	if !slices.Equal(ids(denied.Deny), []string{"OWNERS_REQUIRED"}) {
		t.Fatalf("without a waiver: deny = %v, want OWNERS_REQUIRED", ids(denied.Deny))
	}

	waived := noOwners
	waived.Waivers = []policy.Waiver{{Rule: "OWNERS_REQUIRED", Until: until, Reason: "owners move to the new directory (INC-42)"}}
	d := evaluate(t, e, waived)
	if !d.Allowed() || len(d.Warn) != 1 {
		t.Fatalf("waived: %+v, want allowed with one warning", d)
	}
	w := d.Warn[0]
	if w.ID != "OWNERS_REQUIRED" || w.Field != "spec.owners" || w.Role != "" ||
		!strings.HasPrefix(w.Msg, "waived until 2026-12-01T00:00:00Z (owners move to the new directory (INC-42)); otherwise denied: ") {
		t.Errorf("warning = %+v, want OWNERS_REQUIRED saying until when and why", w)
	}

	// An expired or revoked waiver is not passed: the decision is the one
	// without it.
	expired := noOwners
	expired.Waivers = []policy.Waiver{}
	if d := evaluate(t, e, expired); !reflect.DeepEqual(d.Deny, denied.Deny) || !reflect.DeepEqual(d.Warn, denied.Warn) {
		t.Errorf("without the expired waiver: %+v, want %+v", d, denied)
	}

	// PII outside the pii regions stays denied whatever the waivers say.
	piiUS := typicalInput()
	piiUS.Loop.Spec.Residency, piiUS.Cluster.Region = "us", "us"
	piiUS.Waivers = []policy.Waiver{{Rule: "PII_RESIDENCY", Until: until, Reason: "please"}}
	d = evaluate(t, e, piiUS)
	if !slices.Equal(ids(d.Deny), []string{"PII_RESIDENCY"}) || !slices.Equal(ids(d.Warn), []string{"WAIVER_IGNORED"}) {
		t.Errorf("unwaivable: deny %v, warn %v; want PII_RESIDENCY denied and WAIVER_IGNORED", ids(d.Deny), ids(d.Warn))
	}

	// A waived approval reason no longer holds the request.
	fast := typicalInput()
	fast.Loop.Spec.SLO.LatencyP99Ms, fast.Loop.Spec.SLO.FreshnessMs = 200, 100
	if d := evaluate(t, e, fast); !d.NeedsApproval() {
		t.Fatalf("tight SLO: %+v, want held for approval", d)
	}
	fast.Waivers = []policy.Waiver{{Rule: "LATENCY_BELOW_FLOOR", Until: until, Reason: "capacity reserved"}}
	if d := evaluate(t, e, fast); d.NeedsApproval() || !slices.Equal(ids(d.Warn), []string{"LATENCY_BELOW_FLOOR"}) {
		t.Errorf("waived approval: %+v, want allowed with a LATENCY_BELOW_FLOOR warning", d)
	}
}

// A malformed waiver time from a stored input makes the bundle unable to
// decide: the request is refused, not let through.
func TestMalformedWaiverFailsClosed(t *testing.T) {
	e := newDefaultEngine(t)
	in := typicalInput()
	in.Loop.Spec.Owners = nil
	in.Waivers = []policy.Waiver{{Rule: "OWNERS_REQUIRED", Until: time.Now().Add(time.Hour), Reason: "r"}}
	raw, err := policy.InputJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.Replace(string(raw), `"until":"`, `"until":"soon`, 1))
	d, err := e.EvaluateJSON(context.Background(), raw)
	assertFailedClosed(t, d, err)
}

// EvaluateJSON of InputJSON decides as Evaluate does.
func TestEvaluateJSONMatchesEvaluate(t *testing.T) {
	e := newDefaultEngine(t)
	ctx := context.Background()
	update := typicalInput()
	update.Operation, update.Previous = policy.OpUpdate, typicalLoop()
	update.Loop.Spec.RetentionMs = 3600 * 1000
	update.Loop.Spec.Owners = nil
	update.Waivers = []policy.Waiver{{Rule: "OWNERS_REQUIRED", Until: time.Now().Add(time.Hour), Reason: `<needs> "quotes" & more`}}
	many := typicalInput()
	many.Loop.Spec.Residency, many.Cluster.Region = "us", "us"
	many.Loop.Spec.Streams[1].Schema.Definition = ""
	many.Loop.Spec.SLO.FreshnessMs = 0
	for name, in := range map[string]policy.Input{"typical": typicalInput(), "update with a waiver": update, "every kind": many} {
		t.Run(name, func(t *testing.T) {
			want := evaluate(t, e, in)
			raw, err := policy.InputJSON(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.EvaluateJSON(ctx, raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID == "" || got.ID == want.ID {
				t.Errorf("decision id %q: want a new one", got.ID)
			}
			got.ID = want.ID
			if !reflect.DeepEqual(got, want) {
				t.Errorf("EvaluateJSON = %+v\nEvaluate     = %+v", got, want)
			}
			// EvaluateInput: the same decision, and InputJSON's bytes.
			both, input, err := e.EvaluateInput(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			both.ID = want.ID
			if !reflect.DeepEqual(both, want) || !bytes.Equal(input, raw) {
				t.Errorf("EvaluateInput = %+v, input %s\nEvaluate      = %+v, InputJSON %s", both, input, want, raw)
			}
		})
	}
	for name, raw := range map[string][]byte{
		"not JSON":  []byte("{"),
		"an array":  []byte("[]"),
		"too large": []byte(`{"x":"` + strings.Repeat("a", policy.MaxInputBytes) + `"}`),
	} {
		t.Run(name, func(t *testing.T) {
			d, err := e.EvaluateJSON(ctx, raw)
			assertFailedClosed(t, d, err)
		})
	}
}

// ruleRow returns the line of the rule of src that produces id (the line
// before `"ID",`), 1-based.
func ruleRow(t *testing.T, file, id string) int {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == `"`+id+`",` {
			return i // the rule head is the line before, 1-based i
		}
	}
	t.Fatalf("%s has no rule %s", file, id)
	return 0
}

func TestExplainNamesRulesAndLocations(t *testing.T) {
	ctx := context.Background()
	in := typicalInput()
	in.Loop.Spec.Owners = nil
	in.Loop.Spec.Consumers = nil
	in.Loop.Spec.SLO.LatencyP99Ms, in.Loop.Spec.SLO.FreshnessMs = 200, 100
	in.Loop.Spec.Streams[1].Schema.Definition = ""
	in.Waivers = []policy.Waiver{{Rule: "SCHEMA_REQUIRED", Until: time.Now().Add(time.Hour), Reason: "schema registry outage"}}
	raw, err := policy.InputJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	x, err := policy.Explain(ctx, b, raw)
	if err != nil {
		t.Fatal(err)
	}
	want := evaluate(t, newDefaultEngine(t), in)
	x.Decision.ID = want.ID
	if !reflect.DeepEqual(x.Decision, want) {
		t.Errorf("explained decision %+v\nwant %+v", x.Decision, want)
	}
	type fired struct{ kind, id, field, location string }
	var got []fired
	for _, r := range x.Rules {
		got = append(got, fired{r.Kind, r.ID, r.Field, r.Location})
		if r.Msg == "" || !strings.HasPrefix(r.Rule, "data.loopgate.loop.findings.") {
			t.Errorf("rule %+v: want a message and the findings rule", r)
		}
	}
	loc := func(file, id string) string {
		return "loop/" + file + ":" + itoa(ruleRow(t, "bundles/default/loop/"+file, id))
	}
	wantFired := []fired{
		{"deny", "OWNERS_REQUIRED", "spec.owners", loc("ownership.rego", "OWNERS_REQUIRED")},
		{"warn", "NO_CONSUMERS", "spec.consumers", loc("ownership.rego", "NO_CONSUMERS")},
		{"warn", "SCHEMA_REQUIRED", "spec.streams[1].schema", loc("streams.rego", "SCHEMA_REQUIRED")}, // waived: where it was found
		{"approval", "LATENCY_BELOW_FLOOR", "spec.slo.latencyP99", loc("slo.rego", "LATENCY_BELOW_FLOOR")},
	}
	if !reflect.DeepEqual(got, wantFired) {
		t.Errorf("rules = %v\nwant    %v", got, wantFired)
	}
	if len(x.Trace) == 0 || len(x.Trace) > policy.MaxTraceLines {
		t.Errorf("trace of %d lines, want 1 to %d", len(x.Trace), policy.MaxTraceLines)
	}
	if !slices.ContainsFunc(x.Trace, func(l string) bool { return strings.Contains(l, "ownership.rego") }) {
		t.Errorf("trace does not go through ownership.rego:\n%s", strings.Join(x.Trace, "\n"))
	}

	// The engine explains with its active bundle, and fails closed on bad input.
	if x, err := newDefaultEngine(t).Explain(ctx, []byte("nope")); err == nil || len(x.Decision.Deny) != 1 || x.Decision.Deny[0].ID != policy.PolicyEvaluationFailed {
		t.Errorf("Explain of bad input: %+v, %v; want a fail-closed decision", x, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCompare(t *testing.T) {
	v := func(id, field, msg string) policy.Violation { return policy.Violation{ID: id, Field: field, Msg: msg} }
	allowed := policy.Decision{Warn: []policy.Violation{v("NO_CONSUMERS", "spec.consumers", "m")}}
	denied := policy.Decision{
		Deny: []policy.Violation{v("OWNERS_REQUIRED", "spec.owners", "m"), v("SCHEMA_REQUIRED", "spec.streams[1].schema", "m")},
		Warn: []policy.Violation{v("NO_CONSUMERS", "spec.consumers", "another message")},
	}
	held := policy.Decision{Approval: []policy.Violation{{ID: "LATENCY_BELOW_FLOOR", Field: "spec.slo.latencyP99", Msg: "m", Role: policy.RolePlatformAdmin, Approvals: 1}}}

	d := policy.Compare(allowed, denied)
	if !d.Flips() || d.Before != policy.VerdictAllowed || d.After != policy.VerdictDenied || !d.Changed() {
		t.Errorf("allowed -> denied: %+v, want a flip", d)
	}
	if !reflect.DeepEqual(ids(d.Deny.New), []string{"OWNERS_REQUIRED", "SCHEMA_REQUIRED"}) || len(d.Deny.Resolved) != 0 {
		t.Errorf("deny delta = %+v", d.Deny)
	}
	if len(d.Warn.New) != 0 || len(d.Warn.Resolved) != 0 {
		t.Errorf("a warning whose message changed is neither new nor resolved: %+v", d.Warn)
	}

	back := policy.Compare(denied, allowed)
	if !back.Flips() || !reflect.DeepEqual(ids(back.Deny.Resolved), []string{"OWNERS_REQUIRED", "SCHEMA_REQUIRED"}) || len(back.Deny.New) != 0 {
		t.Errorf("denied -> allowed: %+v", back)
	}

	if d := policy.Compare(allowed, held); !d.Flips() || d.After != policy.VerdictNeedsApproval ||
		!reflect.DeepEqual(d.Approval.New, held.Approval) || !reflect.DeepEqual(ids(d.Warn.Resolved), []string{"NO_CONSUMERS"}) {
		t.Errorf("allowed -> needs approval: %+v", d)
	}

	// A new warning alone changes the decision but does not flip it.
	moreWarn := policy.Decision{Warn: append(slices.Clone(allowed.Warn), v("NO_ACTION_STREAM", "spec.action", "m"))}
	if d := policy.Compare(allowed, moreWarn); d.Flips() || !d.Changed() || !reflect.DeepEqual(ids(d.Warn.New), []string{"NO_ACTION_STREAM"}) {
		t.Errorf("new warning: %+v, want changed without a flip", d)
	}
	if d := policy.Compare(denied, denied); d.Flips() || d.Changed() {
		t.Errorf("same decision: %+v, want no change", d)
	}
}
