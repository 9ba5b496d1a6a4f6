package policy_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/policy"
)

// evaluateRego decides typicalInput with a bundle made of one policy file.
func evaluateRego(t *testing.T, rego string) (policy.Decision, error) {
	t.Helper()
	ctx := context.Background()
	e, err := policy.NewEngine(ctx, loadBundle(t, map[string]string{".manifest": manifest, "policy.rego": rego}))
	if err != nil {
		t.Fatal(err)
	}
	return e.Evaluate(ctx, typicalInput())
}

func TestApproverRoles(t *testing.T) {
	want := []string{"team-admin", "security-reviewer", "admin"}
	got := policy.ApproverRoles()
	if !reflect.DeepEqual(got, want) ||
		!reflect.DeepEqual(got, []string{policy.RoleTeamAdmin, policy.RoleSecurityReviewer, policy.RolePlatformAdmin}) {
		t.Fatalf("ApproverRoles() = %v, want %v", got, want)
	}
	got[0] = "mallory"
	if again := policy.ApproverRoles(); !reflect.DeepEqual(again, want) {
		t.Errorf("ApproverRoles() = %v after a caller changed an earlier result; want a new slice each time", again)
	}
}

// Approval elements carry role and approvals, normalised; deny and warn
// elements carry neither.
func TestEvaluateDecodesApprovers(t *testing.T) {
	d, err := evaluateRego(t, `package loopgate.loop
deny := set()
warn contains {"id": "W", "msg": "w", "field": "spec.w"}
approval contains {"id": "DEFAULTS", "msg": "neither", "field": "spec.a"}
approval contains {"id": "ROLE_ONLY", "msg": "role", "field": "spec.b", "role": "team-admin"}
approval contains {"id": "COUNT_ONLY", "msg": "count", "field": "spec.c", "approvals": 3}
approval contains {"id": "BOTH", "msg": "both", "field": "spec.d", "role": "admin", "approvals": 5}
approval contains {"id": "FLOAT_COUNT", "msg": "2.0", "field": "spec.e", "role": "security-reviewer", "approvals": 4 / 2}
approval contains {"id": "EXTRA_KEYS", "msg": "ignored", "field": "spec.f", "severity": "high"}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []policy.Violation{
		{ID: "DEFAULTS", Msg: "neither", Field: "spec.a", Role: policy.RoleSecurityReviewer, Approvals: 1},
		{ID: "ROLE_ONLY", Msg: "role", Field: "spec.b", Role: policy.RoleTeamAdmin, Approvals: 1},
		{ID: "COUNT_ONLY", Msg: "count", Field: "spec.c", Role: policy.RoleSecurityReviewer, Approvals: 3},
		{ID: "BOTH", Msg: "both", Field: "spec.d", Role: policy.RolePlatformAdmin, Approvals: 5},
		{ID: "FLOAT_COUNT", Msg: "2.0", Field: "spec.e", Role: policy.RoleSecurityReviewer, Approvals: 2},
		{ID: "EXTRA_KEYS", Msg: "ignored", Field: "spec.f", Role: policy.RoleSecurityReviewer, Approvals: 1},
	}
	if !reflect.DeepEqual(d.Approval, want) {
		t.Errorf("approval = %+v\nwant       %+v", d.Approval, want)
	}
	if w := []policy.Violation{{ID: "W", Msg: "w", Field: "spec.w"}}; !reflect.DeepEqual(d.Warn, w) {
		t.Errorf("warn = %+v, want %+v (no role or approvals)", d.Warn, w)
	}
	if !d.Allowed() || !d.NeedsApproval() {
		t.Errorf("Allowed() = %v, NeedsApproval() = %v; want both true", d.Allowed(), d.NeedsApproval())
	}
}

// Reasons that differ only in who approves are distinct set elements; they
// come out in one order every time.
func TestApprovalsSortedByRoleAndCount(t *testing.T) {
	rego := `package loopgate.loop
deny := set()
approval contains {"id": "SAME", "msg": "m", "field": "spec.x", "role": r, "approvals": n} if {
	some r in ["security-reviewer", "admin", "team-admin"]
	some n in [2, 1]
}
`
	var want []policy.Violation
	for _, r := range []string{"admin", "security-reviewer", "team-admin"} {
		for _, n := range []int{1, 2} {
			want = append(want, policy.Violation{ID: "SAME", Msg: "m", Field: "spec.x", Role: r, Approvals: n})
		}
	}
	for range 5 {
		d, err := evaluateRego(t, rego)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d.Approval, want) {
			t.Fatalf("approval = %+v\nwant       %+v", d.Approval, want)
		}
	}
}

// A bad role or count, or approvers on a deny or warn, cannot be routed: the
// decision fails closed and the error names the rule and the problem.
func TestMalformedApproversFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		elem string // the rule head after "<set> contains"
		set  string
		want []string // in the error
	}{
		{"role not a string", `{"id": "R1", "msg": "m", "field": "", "role": 1}`, "approval",
			[]string{`"R1"`, `"role" is a number`}},
		{"role null", `{"id": "R2", "msg": "m", "field": "", "role": null}`, "approval",
			[]string{`"R2"`, `"role" is a null`}},
		{"role unknown", `{"id": "R3", "msg": "m", "field": "", "role": "boss"}`, "approval",
			[]string{`"R3"`, `"role" "boss" is not one of team-admin, security-reviewer, admin`}},
		{"role empty", `{"id": "R4", "msg": "m", "field": "", "role": ""}`, "approval",
			[]string{`"R4"`, `"role" "" is not one of`}},
		{"role in another case", `{"id": "R5", "msg": "m", "field": "", "role": "Admin"}`, "approval",
			[]string{`"R5"`, `"role" "Admin" is not one of`}},
		{"approvals zero", `{"id": "A1", "msg": "m", "field": "", "approvals": 0}`, "approval",
			[]string{`"A1"`, `"approvals" is 0, want an integer from 1 to 5`}},
		{"approvals six", `{"id": "A2", "msg": "m", "field": "", "approvals": 6}`, "approval",
			[]string{`"A2"`, `"approvals" is 6`}},
		{"approvals negative", `{"id": "A3", "msg": "m", "field": "", "approvals": -1}`, "approval",
			[]string{`"A3"`, `"approvals" is -1`}},
		{"approvals fractional", `{"id": "A4", "msg": "m", "field": "", "approvals": 1.5}`, "approval",
			[]string{`"A4"`, `"approvals" is 1.5`}},
		{"approvals a string", `{"id": "A5", "msg": "m", "field": "", "approvals": "2"}`, "approval",
			[]string{`"A5"`, `"approvals" is "2"`}},
		{"approvals null", `{"id": "A6", "msg": "m", "field": "", "approvals": null}`, "approval",
			[]string{`"A6"`, `"approvals" is null`}},
		{"approvals huge", `{"id": "A7", "msg": "m", "field": "", "approvals": 1e400}`, "approval",
			[]string{`"A7"`, `"approvals" is`}},
		{"role on a deny", `{"id": "D1", "msg": "m", "field": "", "role": "admin"}`, "deny",
			[]string{"data.loopgate.loop.deny", `"D1"`, `"role" is only allowed in approval elements`}},
		{"approvals on a warn", `{"id": "W1", "msg": "m", "field": "", "approvals": 1}`, "warn",
			[]string{"data.loopgate.loop.warn", `"W1"`, `"approvals" is only allowed in approval elements`}},
		{"approval helper used for a warn", `{"id": "W2", "msg": "m", "field": "", "role": "security-reviewer", "approvals": 1}`, "warn",
			[]string{`"W2"`, `only allowed in approval elements`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rego := "package loopgate.loop\n"
			if tc.set != "deny" {
				rego += "deny := set()\n"
			}
			rego += tc.set + " contains " + tc.elem + "\n"
			// A well-formed reason next to the bad one changes nothing.
			rego += `approval contains {"id": "FINE", "msg": "m", "field": ""}` + "\n"
			d, err := evaluateRego(t, rego)
			assertFailedClosed(t, d, err)
			if len(d.Approval) != 0 || len(d.Warn) != 0 {
				t.Errorf("fail-closed decision keeps approval %+v, warn %+v; want none", d.Approval, d.Warn)
			}
			for _, w := range tc.want {
				if err != nil && !strings.Contains(err.Error(), w) {
					t.Errorf("error %q should mention %s", err, w)
				}
			}
		})
	}
}

// Role and approvals are in the JSON of approval reasons only.
func TestViolationJSON(t *testing.T) {
	for _, tc := range []struct {
		v    policy.Violation
		want string
	}{
		{policy.Violation{ID: "D", Msg: "m", Field: "spec.x"}, `{"id":"D","msg":"m","field":"spec.x"}`},
		{policy.Violation{ID: "A", Msg: "m", Field: "", Role: policy.RoleTeamAdmin, Approvals: 2},
			`{"id":"A","msg":"m","field":"","role":"team-admin","approvals":2}`},
	} {
		raw, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != tc.want {
			t.Errorf("json(%+v) = %s, want %s", tc.v, raw, tc.want)
		}
	}
}
