package app_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/policytest"
)

// The story for waivers: a loop that the active bundle would deny
// (PII kept a week under a three-day rule) is flagged; a team member cannot
// grant a waiver, nor can anyone waive a rule the bundle never waives; a
// security reviewer's waiver makes the loop compliant with the waiver named
// in a warning; another team cannot list it; revoking it flags the loop
// again; a short waiver expires and the loop is flagged again without
// anyone acting; every step is in the audit trail.
func TestWaiversEndToEnd(t *testing.T) {
	interval := app.WaiverCheckInterval
	app.WaiverCheckInterval = 100 * time.Millisecond
	t.Cleanup(func() { app.WaiverCheckInterval = interval })
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	policies := lgv1.NewPolicyServiceClient(r.conn)
	waivers := lgv1.NewWaiverServiceClient(r.conn)
	growth, risk, reviewer, reviewer2 := asDemo(t, "growth"), asDemo(t, "risk"), asDemo(t, "reviewer"), asDemo(t, "reviewer2")

	pii := batchLoop("pii-waived", "piiwv-")
	pii.Name = ""
	pii.Spec.Classification = "pii"
	pii.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "pii-waived", Loop: pii}); err != nil {
		t.Fatal(err)
	}
	name := "teams/growth/loops/pii-waived"
	awaitReady(t, growth, loops, name)

	// A bundle with a waivable rule the loop breaks is activated: written
	// as a finding, like the default bundle's own rules.
	pushed, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: policytest.PIIRetentionWaivable(t, "pii-3d-waivers", policytest.PIIRetentionTest)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.ApprovePolicyBundle(reviewer2, &lgv1.ApprovePolicyBundleRequest{Name: pushed.GetName(), Digest: pushed.GetDigest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.ActivatePolicyBundle(reviewer, &lgv1.ActivatePolicyBundleRequest{Name: pushed.GetName(), Comment: "data review"}); err != nil {
		t.Fatal(err)
	}
	if c := waitCompliance(t, growth, loops, name, "False"); !strings.Contains(c.GetMessage(), "PII_RETENTION_OVER_3D") {
		t.Fatalf("flagged for %q, want PII_RETENTION_OVER_3D", c.GetMessage())
	}

	create := func(rule string, until time.Time, reason string) *lgv1.CreateWaiverRequest {
		return &lgv1.CreateWaiverRequest{Parent: name, Waiver: &lgv1.Waiver{Rule: rule, Until: timestamppb.New(until), Reason: reason}}
	}

	// Refusals: a team member; a rule the bundle never waives; bad input.
	if _, err := waivers.CreateWaiver(growth, create("PII_RETENTION_OVER_3D", time.Now().Add(time.Hour), "migration")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a team member granting a waiver: %v, want PERMISSION_DENIED", err)
	}
	if _, err := waivers.CreateWaiver(reviewer, create("PII_RESIDENCY", time.Now().Add(time.Hour), "please")); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "UNWAIVABLE_RULE" {
		t.Errorf("waiving PII_RESIDENCY: %v, want FAILED_PRECONDITION UNWAIVABLE_RULE", err)
	}
	_, err = waivers.CreateWaiver(reviewer, create("pii retention", time.Now().Add(200*24*time.Hour), ""))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument {
		t.Errorf("a malformed waiver: %v, want INVALID_ARGUMENT", err)
	} else if fv := fieldViolations(st); fv["waiver.rule"] == "" || fv["waiver.until"] == "" || fv["waiver.reason"] == "" {
		t.Errorf("a malformed waiver: field violations %v, want waiver.rule, waiver.until and waiver.reason", fv)
	}
	if _, err := waivers.CreateWaiver(reviewer, &lgv1.CreateWaiverRequest{Parent: "teams/growth/loops/nope",
		Waiver: &lgv1.Waiver{Rule: "PII_RETENTION_OVER_3D", Until: timestamppb.New(time.Now().Add(time.Hour)), Reason: "x"}}); status.Code(err) != codes.NotFound {
		t.Errorf("a waiver for a loop that does not exist: %v, want NOT_FOUND", err)
	}

	// A waiver makes the loop compliant at once, named in a warning.
	w, err := waivers.CreateWaiver(reviewer, create("PII_RETENTION_OVER_3D", time.Now().Add(time.Hour), "migration to the 3-day pipeline by Q3"))
	if err != nil {
		t.Fatal(err)
	}
	if w.GetState() != lgv1.Waiver_ACTIVE || w.GetGrantedBy() != "security-reviewer@loopgate.local" || !strings.HasPrefix(w.GetName(), name+"/waivers/") {
		t.Errorf("granted waiver = %v", w)
	}
	if c := compliance(t, growth, loops, name); c.GetStatus() != "True" || !strings.Contains(c.GetMessage(), "warning") {
		t.Errorf("with the waiver: %v, want compliant with a warning", c)
	}
	cur, err := loops.GetLoop(growth, &lgv1.GetLoopRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := loops.PlanLoop(growth, &lgv1.PlanLoopRequest{Loop: cur})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.GetVerdict().GetAllowed() || !slices.ContainsFunc(plan.GetVerdict().GetWarn(), func(v *lgv1.Violation) bool {
		return v.GetId() == "PII_RETENTION_OVER_3D" && strings.Contains(v.GetMsg(), "migration to the 3-day pipeline")
	}) {
		t.Errorf("plan with the waiver: %v, want allowed with a warning naming the waiver", plan.GetVerdict())
	}

	// Listing: the team sees its waivers, another team does not.
	list, err := waivers.ListWaivers(growth, &lgv1.ListWaiversRequest{Parent: "teams/growth/loops/-"})
	if err != nil || len(list.GetWaivers()) != 1 || list.GetWaivers()[0].GetName() != w.GetName() {
		t.Errorf("growth listing its waivers: %v %v", list, err)
	}
	if _, err := waivers.ListWaivers(risk, &lgv1.ListWaiversRequest{Parent: name}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another team listing growth's waivers: %v, want PERMISSION_DENIED", err)
	}
	if list, err := waivers.ListWaivers(risk, &lgv1.ListWaiversRequest{Parent: "teams/-/loops/-"}); err != nil || len(list.GetWaivers()) != 0 {
		t.Errorf("another team listing every waiver it may see: %v %v, want none", list, err)
	}

	// Revoking flags the loop again at once.
	if _, err := waivers.RevokeWaiver(reviewer2, &lgv1.RevokeWaiverRequest{Name: w.GetName()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("revoking without a reason: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := waivers.RevokeWaiver(growth, &lgv1.RevokeWaiverRequest{Name: w.GetName(), Reason: "done"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a team member revoking: %v, want PERMISSION_DENIED", err)
	}
	revoked, err := waivers.RevokeWaiver(reviewer2, &lgv1.RevokeWaiverRequest{Name: w.GetName(), Reason: "the migration was cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	if revoked.GetState() != lgv1.Waiver_REVOKED || revoked.GetRevokedBy() != "second-reviewer@loopgate.local" {
		t.Errorf("revoked waiver = %v", revoked)
	}
	if c := compliance(t, growth, loops, name); c.GetStatus() != "False" {
		t.Errorf("after revocation: %v, want flagged", c)
	}
	if _, err := waivers.RevokeWaiver(reviewer2, &lgv1.RevokeWaiverRequest{Name: w.GetName(), Reason: "again"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("revoking twice: %v, want FAILED_PRECONDITION", err)
	}

	// A short waiver: compliant, then flagged again when it expires,
	// without anyone acting.
	short, err := waivers.CreateWaiver(reviewer, create("PII_RETENTION_OVER_3D", time.Now().Add(2*time.Second), "hotfix window"))
	if err != nil {
		t.Fatal(err)
	}
	if c := compliance(t, growth, loops, name); c.GetStatus() != "True" {
		t.Errorf("with the short waiver: %v, want compliant", c)
	}
	c := waitCompliance(t, growth, loops, name, "False")
	if at := time.Now(); at.Before(short.GetUntil().AsTime()) {
		t.Errorf("flagged at %v, before the waiver expired at %v", at, short.GetUntil().AsTime())
	}
	if !strings.Contains(c.GetMessage(), "PII_RETENTION_OVER_3D") {
		t.Errorf("after expiry: %v, want PII_RETENTION_OVER_3D", c)
	}
	all, err := waivers.ListWaivers(reviewer, &lgv1.ListWaiversRequest{Parent: name, IncludeExpired: true})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, w := range all.GetWaivers() {
		states = append(states, w.GetState().String())
	}
	slices.Sort(states)
	if !slices.Equal(states, []string{"EXPIRED", "REVOKED"}) {
		t.Errorf("every waiver of the loop: states %v, want EXPIRED and REVOKED", states)
	}
	if active, err := waivers.ListWaivers(reviewer, &lgv1.ListWaiversRequest{Parent: name}); err != nil || len(active.GetWaivers()) != 0 {
		t.Errorf("active waivers after expiry: %v %v, want none", active, err)
	}

	// Every step is in the audit trail.
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, ev := range events.GetEvents() {
		if strings.HasPrefix(ev.GetAction(), "waiver.") || (ev.GetAction() == "loop.reevaluate" && ev.GetResource() == name) {
			seen = append(seen, ev.GetAction()+":"+ev.GetOutcome())
		}
	}
	for _, want := range []string{"waiver.create:FORBIDDEN", "waiver.create:DENIED", "waiver.create:INVALID", "waiver.create:OK",
		"waiver.list:FORBIDDEN", "waiver.revoke:INVALID", "waiver.revoke:FORBIDDEN", "waiver.revoke:OK", "loop.reevaluate:OK", "loop.reevaluate:DENIED"} {
		if !slices.Contains(seen, want) {
			t.Errorf("audit trail lacks %s; has %v", want, seen)
		}
	}
	var flips int
	for _, s := range seen {
		if strings.HasPrefix(s, "loop.reevaluate:") {
			flips++
		}
	}
	// Flagged by the bundle, compliant (waiver), flagged (revoked),
	// compliant (short waiver), flagged (expired).
	if flips != 5 {
		t.Errorf("the loop's compliance flipped %d times in the audit trail, want 5: %v", flips, seen)
	}
}

// auditedOutcomes returns action:outcome:reason of the audit events of
// action, oldest first.
func auditedOutcomes(t *testing.T, r *running, action string) []string {
	t.Helper()
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: action, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events.GetEvents() {
		reason, _ := ev.GetDetails().AsMap()["reason"].(string)
		out = append(out, ev.GetAction()+":"+ev.GetOutcome()+":"+reason)
	}
	return out
}

// Waiver listings page by keyset: a waiver that expires between two pages
// (the last one of the first page, here) neither breaks the token nor
// skips or repeats the others. A bad page token or page size is refused
// naming the field, and audited.
func TestWaiverListingPagesAcrossExpiry(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	waivers := lgv1.NewWaiverServiceClient(r.conn)
	growth, reviewer := asDemo(t, "growth"), asDemo(t, "reviewer")
	l := batchLoop("paged", "paged-")
	l.Name = ""
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "paged", Loop: l}); err != nil {
		t.Fatal(err)
	}
	name := "teams/growth/loops/paged"
	grant := func(rule string, until time.Time) *lgv1.Waiver {
		t.Helper()
		w, err := waivers.CreateWaiver(reviewer, &lgv1.CreateWaiverRequest{Parent: name,
			Waiver: &lgv1.Waiver{Rule: rule, Until: timestamppb.New(until), Reason: "paging"}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	for _, rule := range []string{"PAGE_A", "PAGE_C", "PAGE_D", "PAGE_E"} {
		grant(rule, time.Now().Add(time.Hour))
	}
	short := grant("PAGE_B", time.Now().Add(3*time.Second))

	rules := func(resp *lgv1.ListWaiversResponse) (out []string) {
		for _, w := range resp.GetWaivers() {
			out = append(out, w.GetRule())
		}
		return out
	}
	first, err := waivers.ListWaivers(growth, &lgv1.ListWaiversRequest{Parent: name, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := rules(first); !slices.Equal(got, []string{"PAGE_A", "PAGE_B"}) || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, token %q; want PAGE_A, PAGE_B and a token", got, first.GetNextPageToken())
	}
	time.Sleep(time.Until(short.GetUntil().AsTime()) + 100*time.Millisecond) // PAGE_B expires
	var rest []string
	token := first.GetNextPageToken()
	for pages := 0; token != ""; pages++ {
		page, err := waivers.ListWaivers(growth, &lgv1.ListWaiversRequest{Parent: name, PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatalf("page after %v: %v", rest, err)
		}
		if pages > 3 {
			t.Fatalf("paging does not end: %v", rest)
		}
		rest = append(rest, rules(page)...)
		token = page.GetNextPageToken()
	}
	if want := []string{"PAGE_C", "PAGE_D", "PAGE_E"}; !slices.Equal(rest, want) {
		t.Errorf("pages after PAGE_B expired: %v, want %v", rest, want)
	}

	for field, req := range map[string]*lgv1.ListWaiversRequest{
		"page_token": {Parent: name, PageToken: "not-a-token"},
		"page_size":  {Parent: name, PageSize: 1001},
	} {
		_, err := waivers.ListWaivers(growth, req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || fieldViolations(st)[field] == "" {
			t.Errorf("bad %s: %v, want INVALID_ARGUMENT naming %s", field, err, field)
		}
	}
	// Another listing's token (include_expired differs).
	if _, err := waivers.ListWaivers(growth, &lgv1.ListWaiversRequest{Parent: name, PageSize: 2, PageToken: first.GetNextPageToken(), IncludeExpired: true}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a token of another listing: %v, want INVALID_ARGUMENT", err)
	}
	// Audited (identical refusals in a short window are one event).
	if got := auditedOutcomes(t, r, "waiver.list"); !slices.Contains(got, "waiver.list:INVALID:INVALID_ARGUMENT") {
		t.Errorf("the refused listings are not audited: %v", got)
	}
}

// A loop has at most admission.MaxActiveWaiversPerLoop active waivers: the
// next grant is refused naming the limit, and audited; revoking one makes
// room again.
func TestActiveWaiversPerLoopAreBounded(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	waivers := lgv1.NewWaiverServiceClient(r.conn)
	growth, reviewer := asDemo(t, "growth"), asDemo(t, "reviewer")
	l := batchLoop("capped", "capped-")
	l.Name = ""
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "capped", Loop: l}); err != nil {
		t.Fatal(err)
	}
	name := "teams/growth/loops/capped"
	create := func(rule string) (*lgv1.Waiver, error) {
		return waivers.CreateWaiver(reviewer, &lgv1.CreateWaiverRequest{Parent: name,
			Waiver: &lgv1.Waiver{Rule: rule, Until: timestamppb.New(time.Now().Add(time.Hour)), Reason: "bounded"}})
	}
	var first *lgv1.Waiver
	for i := range admission.MaxActiveWaiversPerLoop {
		w, err := create(fmt.Sprintf("CAP_%02d", i))
		if err != nil {
			t.Fatalf("waiver %d of %d: %v", i+1, admission.MaxActiveWaiversPerLoop, err)
		}
		if first == nil {
			first = w
		}
	}
	_, err := create("CAP_OVER")
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || reasonOf(err) != "TOO_MANY_WAIVERS" || !strings.Contains(st.Message(), fmt.Sprint(admission.MaxActiveWaiversPerLoop)) {
		t.Fatalf("waiver %d: %v, want FAILED_PRECONDITION TOO_MANY_WAIVERS naming the limit", admission.MaxActiveWaiversPerLoop+1, err)
	}
	if list, err := waivers.ListWaivers(reviewer, &lgv1.ListWaiversRequest{Parent: name, PageSize: 1000}); err != nil || len(list.GetWaivers()) != admission.MaxActiveWaiversPerLoop {
		t.Errorf("active waivers after the refusal: %d, %v; want %d", len(list.GetWaivers()), err, admission.MaxActiveWaiversPerLoop)
	}
	if !slices.Contains(auditedOutcomes(t, r, "waiver.create"), "waiver.create:DENIED:TOO_MANY_WAIVERS") {
		t.Errorf("the refusal is not audited: %v", auditedOutcomes(t, r, "waiver.create"))
	}
	// Revoking one makes room again.
	if _, err := waivers.RevokeWaiver(reviewer, &lgv1.RevokeWaiverRequest{Name: first.GetName(), Reason: "fixed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := create("CAP_OVER"); err != nil {
		t.Errorf("a grant after a revocation: %v", err)
	}
}
