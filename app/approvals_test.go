package app_test

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// An approval is for what the reviewer read: an approval sent with the
// etag of an earlier generation is refused and audited; a review needs the
// etag; the reviewer's role must match the reason's.
func TestApprovalIsBoundToWhatWasReviewed(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth, admin, reviewer := asDemo(t, "growth"), asDemo(t, "admin"), asDemo(t, "reviewer")

	fast := typicalLoop("fast")
	fast.Spec.Slo = &lgv1.Slo{LatencyP99Ms: 100, FreshnessMs: 50}
	gen1, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "fast", Loop: fast})
	if err != nil {
		t.Fatal(err)
	}
	st := gen1.GetStatus()
	if st.GetState() != lgv1.Loop_PENDING_APPROVAL || len(st.GetApprovals()) != 1 || st.GetApprovals()[0].GetRole() != "admin" ||
		st.GetApprovals()[0].GetRequired() != 1 || st.GetRequestedBy() != "growth-dev@example.com" {
		t.Fatalf("pending loop status: %v", st)
	}
	// The reason is routed to platform admins: a security reviewer may not.
	if _, err := loops.ApproveLoop(reviewer, &lgv1.ApproveLoopRequest{Name: fast.Name, Etag: gen1.GetEtag()}); reasonOf(err) != "APPROVER_ROLE_REQUIRED" {
		t.Errorf("security reviewer approving an admin reason: %v", err)
	}
	if _, err := loops.ApproveLoop(admin, &lgv1.ApproveLoopRequest{Name: fast.Name}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("approval without an etag: %v, want INVALID_ARGUMENT", err)
	}
	// The team changes the spec after the admin read it.
	changed := proto.Clone(fast).(*lgv1.Loop)
	changed.Spec.Description = "now with more data"
	gen2, err := loops.UpdateLoop(growth, &lgv1.UpdateLoopRequest{Loop: changed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loops.ApproveLoop(admin, &lgv1.ApproveLoopRequest{Name: fast.Name, Etag: gen1.GetEtag(), Comment: "looked fine"}); status.Code(err) != codes.Aborted {
		t.Fatalf("approval of generation 1 after the spec changed: %v, want ABORTED", err)
	}
	if l, _ := loops.GetLoop(admin, &lgv1.GetLoopRequest{Name: fast.Name}); l.GetStatus().GetState() != lgv1.Loop_PENDING_APPROVAL || len(l.GetStatus().GetReviews()) != 0 {
		t.Fatalf("a refused approval changed the loop: %v", l.GetStatus())
	}
	approved, err := loops.ApproveLoop(admin, &lgv1.ApproveLoopRequest{Name: fast.Name, Etag: gen2.GetEtag(), Comment: "capacity reserved"})
	if err != nil || approved.GetStatus().GetApprovedGeneration() != gen2.GetGeneration() {
		t.Fatalf("approval of what was read: %v, %v", approved.GetStatus(), err)
	}
	if rv := approved.GetStatus().GetReviews(); len(rv) != 1 || rv[0].GetReviewer() != "dev-admin@loopgate.local" || rv[0].GetComment() != "capacity reserved" || rv[0].GetVerdict() != "APPROVED" {
		t.Errorf("reviews = %v", rv)
	}
	// The stale attempt is in the audit trail with its comment.
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Resource: fast.Name, Action: "loop.approve", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var stale bool
	for _, ev := range events.GetEvents() {
		if d := ev.GetDetails().String(); ev.GetOutcome() == "DENIED" && strings.Contains(d, "ETAG_MISMATCH") && strings.Contains(d, "looked fine") {
			stale = true
		}
	}
	if !stale {
		t.Errorf("the stale approval is not audited: %v", events.GetEvents())
	}
}
