package app_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/policytest"
)

// compliance returns a loop's PolicyCompliant condition.
func compliance(t *testing.T, ctx context.Context, loops lgv1.LoopServiceClient, name string) *lgv1.Condition {
	t.Helper()
	l, err := loops.GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range l.GetStatus().GetConditions() {
		if c.GetType() == "PolicyCompliant" {
			return c
		}
	}
	return nil
}

func waitCompliance(t *testing.T, ctx context.Context, loops lgv1.LoopServiceClient, name, want string) *lgv1.Condition {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := compliance(t, ctx, loops, name)
		if c.GetStatus() == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: PolicyCompliant %v, want status %s", name, c, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The story: a candidate that tightens PII retention is pushed; a
// bundle with a failing test is refused naming it; the uploader alone can
// neither approve nor activate it; after a second reviewer approves and it
// is activated, the PII loop shows non-compliant with the rule id and
// message while its topics stay; new requests are judged by it; rollback
// restores compliance; every step is in the audit trail.
func TestPolicyBundleLifecycle(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	policies := lgv1.NewPolicyServiceClient(r.conn)
	growth, reviewer, reviewer2 := asDemo(t, "growth"), asDemo(t, "reviewer"), asDemo(t, "reviewer2")

	pii := batchLoop("pii-week", "piiw-")
	pii.Spec.Classification = "pii"
	pii.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	internal := batchLoop("internal-week", "intw-")
	internal.Spec.Classification = "internal"
	internal.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	for _, l := range []*lgv1.Loop{pii, internal} {
		id := strings.TrimPrefix(l.GetName(), "teams/growth/loops/")
		l.Name = ""
		if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: id, Loop: l}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		l.Name = "teams/growth/loops/" + id
		awaitReady(t, growth, loops, l.Name)
	}

	// A team member may not push; a bundle whose test fails is refused,
	// naming the test.
	good := policytest.PIIRetention(t, "pii-3d-2026.12.1", policytest.PIIRetentionTest)
	if _, err := policies.PushPolicyBundle(growth, &lgv1.PushPolicyBundleRequest{Archive: good}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a team member pushing a bundle: %v, want PERMISSION_DENIED", err)
	}
	failing := policytest.PIIRetention(t, "broken-2026.12.1", strings.Replace(policytest.PIIRetentionTest, "259200000}}})", "259200001}}})", 1))
	_, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: failing})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "test_pii_three_days_allowed") {
		t.Errorf("pushing a bundle with a failing test: %v, want FAILED_PRECONDITION naming test_pii_three_days_allowed", err)
	}

	pushed, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: good})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.GetState() != lgv1.PolicyBundle_CANDIDATE || pushed.GetRequiredApprovals() != 1 || len(pushed.GetTests()) == 0 {
		t.Errorf("pushed bundle: state %v, %d approvals required, %d tests", pushed.GetState(), pushed.GetRequiredApprovals(), len(pushed.GetTests()))
	}
	name := pushed.GetName()

	// Four eyes: the uploader can neither approve nor activate alone.
	if _, err := policies.ApprovePolicyBundle(reviewer, &lgv1.ApprovePolicyBundleRequest{Name: name, Digest: pushed.GetDigest()}); status.Code(err) != codes.PermissionDenied || reasonOf(err) != "SELF_APPROVAL" {
		t.Errorf("the uploader approving: %v, want SELF_APPROVAL", err)
	}
	if _, err := policies.ActivatePolicyBundle(reviewer, &lgv1.ActivatePolicyBundleRequest{Name: name}); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "APPROVALS_MISSING" {
		t.Errorf("activating without approval: %v, want APPROVALS_MISSING", err)
	}
	if _, err := policies.ApprovePolicyBundle(reviewer2, &lgv1.ApprovePolicyBundleRequest{Name: name, Digest: "0000"}); status.Code(err) != codes.Aborted {
		t.Errorf("approving another digest: %v, want ABORTED", err)
	}
	if c := compliance(t, growth, loops, pii.GetName()); c.GetStatus() != "True" {
		t.Fatalf("before activation the PII loop complies: %v", c)
	}
	// Before activation, the impact lists exactly the affected loop, with
	// the new rule, and replays recent decisions: the PII loop's creation
	// would flip to denied.
	im, err := policies.GetPolicyImpact(reviewer2, &lgv1.GetPolicyImpactRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if len(im.GetLoops()) != 1 || im.GetLoops()[0].GetLoop() != pii.GetName() || im.GetLoops()[0].GetVerdictAfter() != "denied" ||
		len(im.GetLoops()[0].GetChanges()) != 1 || im.GetLoops()[0].GetChanges()[0].GetViolation().GetId() != "PII_RETENTION_OVER_3D" ||
		im.GetLoops()[0].GetChanges()[0].GetChange() != "NEW" || im.GetLoopsEvaluated() != 2 {
		t.Errorf("impact on loops = %v (of %d evaluated), want only %s newly denied by PII_RETENTION_OVER_3D", im.GetLoops(), im.GetLoopsEvaluated(), pii.GetName())
	}
	if im.GetDecisionsReplayed() < 2 || len(im.GetFlips()) != 1 || im.GetFlips()[0].GetResource() != pii.GetName() {
		t.Errorf("impact replayed %d decisions, flips %v; want the PII loop's creation to flip", im.GetDecisionsReplayed(), im.GetFlips())
	}
	// The candidate's decisions are in the decision log (kind impact): the
	// affected loop's is kept with its input and explains itself by the new
	// rule; an unaffected loop's has its digest only.
	if len(im.GetLoops()) == 1 {
		ex, err := policies.ExplainPolicyDecision(reviewer2, &lgv1.ExplainPolicyDecisionRequest{Name: im.GetLoops()[0].GetCandidateDecision()})
		if err != nil || !ex.GetReproduced() || ex.GetDecision().GetKind() != "impact" || len(ex.GetRules()) == 0 ||
			ex.GetRules()[0].GetViolation().GetId() != "PII_RETENTION_OVER_3D" {
			t.Errorf("explaining the candidate's decision %q: %v %v, want kind impact reproduced by PII_RETENTION_OVER_3D", im.GetLoops()[0].GetCandidateDecision(), ex, err)
		}
	}
	if len(im.GetFlips()) == 1 && !strings.HasPrefix(im.GetFlips()[0].GetCandidateDecision(), "policy/decisions/") {
		t.Errorf("the flip names no candidate decision: %v", im.GetFlips()[0])
	}
	if _, err := policies.GetPolicyImpact(growth, &lgv1.GetPolicyImpactRequest{Name: name}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a team member asking for the impact on every team: %v, want PERMISSION_DENIED", err)
	}

	// The decision log: the creation's decision, kept with its input, is
	// explained by the rule that fired; another team may not read it.
	decisions, err := policies.ListPolicyDecisions(growth, &lgv1.ListPolicyDecisionsRequest{Resource: pii.GetName()})
	if err != nil || len(decisions.GetDecisions()) == 0 {
		t.Fatalf("decisions about %s: %v %v", pii.GetName(), decisions, err)
	}
	created := decisions.GetDecisions()[len(decisions.GetDecisions())-1]
	if created.GetKind() != "request" || !created.GetInputKept() || created.GetInputDigest() == "" || created.GetVerdict() != "allowed" {
		t.Errorf("recorded creation decision = %v", created)
	}
	ex, err := policies.ExplainPolicyDecision(growth, &lgv1.ExplainPolicyDecisionRequest{Name: created.GetName()})
	if err != nil || !ex.GetReproduced() {
		t.Errorf("explaining %s: %v %v, want it reproduced", created.GetName(), ex, err)
	}
	if _, err := policies.ListPolicyDecisions(asDemo(t, "risk"), &lgv1.ListPolicyDecisionsRequest{Resource: pii.GetName()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another team reading growth's decisions: %v, want PERMISSION_DENIED", err)
	}
	if _, err := policies.ExplainPolicyDecision(asDemo(t, "risk"), &lgv1.ExplainPolicyDecisionRequest{Name: created.GetName()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another team explaining growth's decision: %v, want PERMISSION_DENIED", err)
	}

	if _, err := policies.ApprovePolicyBundle(reviewer2, &lgv1.ApprovePolicyBundleRequest{Name: name, Digest: pushed.GetDigest(), Comment: "matches the data review"}); err != nil {
		t.Fatal(err)
	}
	act, err := policies.ActivatePolicyBundle(reviewer, &lgv1.ActivatePolicyBundleRequest{Name: name, Comment: "data review 2026"})
	if err != nil {
		t.Fatal(err)
	}
	if act.GetBundle() != name || act.GetAction() != "ACTIVATE" {
		t.Errorf("activation = %v", act)
	}

	// The PII loop is flagged with the rule id and message, the other not;
	// neither is changed on the cluster.
	c := waitCompliance(t, growth, loops, pii.GetName(), "False")
	if !strings.Contains(c.GetMessage(), "PII_RETENTION_OVER_3D") || !strings.Contains(c.GetMessage(), "at most 3 days") {
		t.Errorf("non-compliant condition = %v, want the rule id and its message", c)
	}
	if c := compliance(t, growth, loops, internal.GetName()); c.GetStatus() != "True" {
		t.Errorf("the internal loop: %v, want compliant", c)
	}
	if l, err := loops.GetLoop(growth, &lgv1.GetLoopRequest{Name: pii.GetName()}); err != nil || l.GetStatus().GetState() != lgv1.Loop_READY {
		t.Errorf("the flagged loop: %v %v, want still READY", l.GetStatus().GetState(), err)
	}

	// New requests are judged by the new bundle.
	another := batchLoop("pii-new", "piin-")
	another.Name = ""
	another.Spec.Classification = "pii"
	another.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	_, err = loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "pii-new", Loop: another})
	if _, ok := denials(err)["PII_RETENTION_OVER_3D"]; !ok {
		t.Errorf("creating a PII loop kept a week after activation: %v, want PII_RETENTION_OVER_3D", err)
	}

	// Rollback restores compliance.
	if _, err := policies.RollbackPolicy(reviewer2, &lgv1.RollbackPolicyRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("rollback without a comment: %v, want INVALID_ARGUMENT", err)
	}
	rb, err := policies.RollbackPolicy(reviewer2, &lgv1.RollbackPolicyRequest{Comment: "too strict for the checkout team"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.GetBundle() != "policy/bundles/builtin" {
		t.Errorf("rollback went to %s, want the built-in bundle", rb.GetBundle())
	}
	waitCompliance(t, growth, loops, pii.GetName(), "True")
	list, err := policies.ListPolicyBundles(growth, &lgv1.ListPolicyBundlesRequest{})
	if err != nil || list.GetActive() != "policy/bundles/builtin" {
		t.Errorf("active after rollback: %v %v", list.GetActive(), err)
	}

	// Plans are in the decision log too, with their input.
	if _, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: []*lgv1.Loop{pii}}); err != nil {
		t.Fatal(err)
	}
	// (written in the background: the plan's answer does not wait)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		latest, err := policies.ListPolicyDecisions(growth, &lgv1.ListPolicyDecisionsRequest{Resource: pii.GetName(), PageSize: 1})
		if err == nil && len(latest.GetDecisions()) == 1 && latest.GetDecisions()[0].GetKind() == "plan" && latest.GetDecisions()[0].GetInputKept() {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("newest decision about %s after a plan: %v %v, want kind plan with its input", pii.GetName(), latest.GetDecisions(), err)
			break
		}
	}

	// Every step is in the audit trail.
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, ev := range events.GetEvents() {
		if strings.HasPrefix(ev.GetAction(), "policy.") || ev.GetAction() == "loop.reevaluate" {
			seen = append(seen, ev.GetAction()+":"+ev.GetOutcome())
		}
		if ev.GetAction() == "loop.reevaluate" && ev.GetDecisionId() == "" {
			t.Errorf("re-evaluation event %s links no decision", ev.GetId())
		}
	}
	for _, want := range []string{"policy.push:FORBIDDEN", "policy.push:DENIED", "policy.push:OK", "policy.approve:FORBIDDEN",
		"policy.activate:DENIED", "policy.approve:OK", "policy.activate:OK", "loop.reevaluate:DENIED", "policy.rollback:OK", "loop.reevaluate:OK"} {
		if !slices.Contains(seen, want) {
			t.Errorf("audit trail lacks %s; has %v", want, seen)
		}
	}
}

// ListPolicyActivations reads the history through admission: page_size is
// bounded (refused naming the field, audited under policy.list), and
// honoured.
// activateCandidate pushes a candidate of the default bundle (revision),
// has a second reviewer approve it and activates it.
func activateCandidate(t *testing.T, r *running, revision string) *lgv1.PolicyBundle {
	t.Helper()
	policies := lgv1.NewPolicyServiceClient(r.conn)
	reviewer, reviewer2 := asDemo(t, "reviewer"), asDemo(t, "reviewer2")
	pushed, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: policytest.Candidate(t, revision, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.ApprovePolicyBundle(reviewer2, &lgv1.ApprovePolicyBundleRequest{Name: pushed.GetName(), Digest: pushed.GetDigest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.ActivatePolicyBundle(reviewer, &lgv1.ActivatePolicyBundleRequest{Name: pushed.GetName()}); err != nil {
		t.Fatal(err)
	}
	return pushed
}

func TestPolicyActivationsPageSize(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	policies := lgv1.NewPolicyServiceClient(r.conn)
	reviewer, reviewer2 := asDemo(t, "reviewer"), asDemo(t, "reviewer2")
	pushed := activateCandidate(t, r, "paged-1")
	if _, err := policies.RollbackPolicy(reviewer2, &lgv1.RollbackPolicyRequest{Comment: "back"}); err != nil {
		t.Fatal(err)
	}

	for _, size := range []int32{-1, 1001} {
		_, err := policies.ListPolicyActivations(reviewer, &lgv1.ListPolicyActivationsRequest{PageSize: size})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || fieldViolations(st)["page_size"] == "" {
			t.Errorf("page_size %d: %v, want INVALID_ARGUMENT naming page_size", size, err)
		}
	}
	one, err := policies.ListPolicyActivations(reviewer, &lgv1.ListPolicyActivationsRequest{PageSize: 1})
	if err != nil || len(one.GetActivations()) != 1 || one.GetActivations()[0].GetSeq() != 2 || one.GetActivations()[0].GetAction() != "ROLLBACK" {
		t.Errorf("page_size 1: %v, %v; want the rollback (seq 2) alone", one, err)
	}
	// The next page, older: the activation; then no more.
	two, err := policies.ListPolicyActivations(reviewer, &lgv1.ListPolicyActivationsRequest{PageSize: 1, PageToken: one.GetNextPageToken()})
	if err != nil || len(two.GetActivations()) != 1 || two.GetActivations()[0].GetSeq() != 1 || two.GetNextPageToken() != "" {
		t.Errorf("page 2 after %q: %v, %v; want the activation (seq 1) and no further page", one.GetNextPageToken(), two, err)
	}
	for _, bad := range []string{"seq-x", "seq-0", "1", "seq-+1"} {
		_, err := policies.ListPolicyActivations(reviewer, &lgv1.ListPolicyActivationsRequest{PageToken: bad})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || fieldViolations(st)["page_token"] == "" {
			t.Errorf("page_token %q: %v, want INVALID_ARGUMENT naming page_token", bad, err)
		}
	}
	all, err := policies.ListPolicyActivations(reviewer, &lgv1.ListPolicyActivationsRequest{})
	if err != nil || len(all.GetActivations()) != 2 || all.GetActivations()[1].GetBundle() != pushed.GetName() {
		t.Errorf("default page: %v, %v; want the rollback, then the activation of %s", all, err, pushed.GetName())
	}
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: "policy.list", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Audited (identical refusals in a short window are one event).
	invalid := 0
	for _, ev := range events.GetEvents() {
		if ev.GetOutcome() == "INVALID" && ev.GetResource() == "policy/activations" && strings.Contains(ev.GetDetails().String(), "page_size") {
			invalid++
		}
	}
	if invalid != 1 {
		t.Errorf("%d INVALID policy.list events about policy/activations naming page_size, want 1", invalid)
	}
}
