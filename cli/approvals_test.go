package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// pendingLoop is generation 3 of growth/checkout-nudge waiting for two
// reasons: one team-admin approval and two security-reviewer approvals.
func pendingLoop(t *testing.T) *loopgatev1.Loop {
	l := readyLoop(t)
	l.Generation = 3
	l.Etag = "etag-3"
	l.UpdateTime = timestamppb.New(testNow.Add(-10 * time.Minute))
	l.Status.State = loopgatev1.Loop_PENDING_APPROVAL
	l.Status.NeedsApproval = true
	l.Status.Approvals = []*loopgatev1.ApprovalProgress{
		{Id: "RETENTION_REDUCED", Msg: "retention shrinks from 7d to 3d", Field: "spec.retention", Role: "team-admin", Required: 1},
		{Id: "PII_EXPORT", Msg: "pii leaves the region", Field: "spec.consumers", Role: "security-reviewer", Required: 2},
	}
	return l
}

func TestApprovalsCommandPagesThroughEveryTeam(t *testing.T) {
	second := pendingLoop(t)
	second.Name = "teams/risk/loops/fraud-signals"
	second.Generation = 1
	second.Status.Approvals[1].ApprovedBy = []string{"sec-bob"}
	second.Status.RequestedBy = "risk-dev@example.com"
	f := &fakeServer{approvalPages: []*loopgatev1.ListApprovalsResponse{
		{Loops: []*loopgatev1.Loop{pendingLoop(t)}, NextPageToken: "p2"},
		{Loops: []*loopgatev1.Loop{second}},
	}}
	f.start(t)

	code, stdout, stderr := run(t, "approvals")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := sent[*loopgatev1.ListApprovalsRequest](f)
	if len(reqs) != 2 || reqs[0].GetParent() != "teams/-" || reqs[0].GetPageSize() != listPageSize ||
		reqs[1].GetPageToken() != "p2" || reqs[1].GetParent() != "teams/-" {
		t.Errorf("requests = %v", reqs)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", stdout)
	}
	for i, want := range []string{
		"NAME GENERATION REQUESTED BY UPDATED APPROVALS",
		"growth/checkout-nudge 3 - RETENTION_REDUCED team-admin 0/1; PII_EXPORT security-reviewer 0/2",
		"risk/fraud-signals 1 risk-dev@example.com RETENTION_REDUCED team-admin 0/1; PII_EXPORT security-reviewer 1/2",
	} {
		// UPDATED is relative to the real clock; leave it out.
		got := strings.Fields(lines[i])
		if i > 0 {
			got = append(got[:3:3], got[4:]...)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("line %d = %q\nwant      %q", i, strings.Join(got, " "), want)
		}
	}

	f.approvalPages = append(f.approvalPages, &loopgatev1.ListApprovalsResponse{Loops: []*loopgatev1.Loop{second}})
	code, stdout, _ = run(t, "approvals", "--team", "risk", "-o", "json")
	if got := sent[*loopgatev1.ListApprovalsRequest](f)[2].GetParent(); got != "teams/risk" {
		t.Errorf("parent = %q, want teams/risk", got)
	}
	var resp loopgatev1.ListApprovalsResponse
	if err := protojson.Unmarshal([]byte(stdout), &resp); code != 0 || err != nil || len(resp.GetLoops()) != 1 {
		t.Errorf("-o json: exit %d, %v:\n%s", code, err, stdout)
	}
}

func TestApprovalsCommandWhenNothingAwaits(t *testing.T) {
	f := &fakeServer{approvalPages: []*loopgatev1.ListApprovalsResponse{{}}}
	f.start(t)
	code, stdout, stderr := run(t, "approvals")
	if code != 0 || stdout != "" || stderr != "no loops await your approval\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestRejectRequiresACommentBeforeAnyRPC(t *testing.T) {
	f := &fakeServer{loop: pendingLoop(t)}
	f.start(t)
	for _, args := range [][]string{
		{"reject", "growth/checkout-nudge"},
		{"reject", "growth/checkout-nudge", "--comment", "  "},
	} {
		code, _, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "--comment is required") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("RPCs sent: %v", f.requests)
	}
}

func TestRejectSendsTheEtagAndComment(t *testing.T) {
	rejected := pendingLoop(t)
	rejected.Status.State = loopgatev1.Loop_REJECTED
	f := &fakeServer{loop: pendingLoop(t), rejected: rejected}
	f.start(t)

	code, stdout, stderr := run(t, "reject", "growth/checkout-nudge", "--comment", "pii must stay in the region", "--as", "growth")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := sent[*loopgatev1.RejectLoopRequest](f)
	if len(reqs) != 1 {
		t.Fatalf("RejectLoop requests = %v", reqs)
	}
	r := reqs[0]
	if r.GetName() != "teams/growth/loops/checkout-nudge" || r.GetEtag() != "etag-3" ||
		r.GetComment() != "pii must stay in the region" || r.GetRequestId() == "" {
		t.Errorf("request = %v", r)
	}
	if f.tokens[1] != "Bearer growth-token" {
		t.Errorf("token = %q", f.tokens[1])
	}
	if !strings.HasPrefix(stdout, "teams/growth/loops/checkout-nudge rejected (generation 3): nothing of it will be provisioned\n") {
		t.Errorf("stdout = %q", stdout)
	}
}

func TestApprovePrintsWhatItCountedForAndWhatIsOutstanding(t *testing.T) {
	after := pendingLoop(t)
	after.Status.Approvals[0].ApprovedBy = []string{"ana"}
	after.Status.Reviews = []*loopgatev1.Review{{Reviewer: "ana", Verdict: "APPROVED", Generation: 3, Reasons: []string{"RETENTION_REDUCED"}}}
	f := &fakeServer{loop: pendingLoop(t), approved: after}
	f.start(t)

	code, stdout, stderr := run(t, "approve", "growth/checkout-nudge", "--comment", "fine")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	req := sent[*loopgatev1.ApproveLoopRequest](f)[0]
	if req.GetEtag() != "etag-3" || req.GetComment() != "fine" {
		t.Errorf("request = %v", req)
	}
	want := "teams/growth/loops/checkout-nudge: approval recorded (generation 3), state PENDING_APPROVAL\n" +
		"  your approval counted for: RETENTION_REDUCED\n" +
		"  still outstanding:\n" +
		"    REASON       ROLE                APPROVED   MISSING\n" +
		"    PII_EXPORT   security-reviewer   0/2        2\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}

	// The last approval: nothing outstanding.
	f.loop = proto.Clone(after).(*loopgatev1.Loop)
	done := proto.Clone(after).(*loopgatev1.Loop)
	done.Status.State = loopgatev1.Loop_PROVISIONING
	done.Status.Approvals[1].ApprovedBy = []string{"sec-bob", "sec-cy"}
	f.approved = done
	code, stdout, stderr = run(t, "approve", "growth/checkout-nudge")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want = "teams/growth/loops/checkout-nudge approved (generation 3), state PROVISIONING\n" +
		"  your approval counted for: PII_EXPORT\n" + // no new review: from the approvers that grew
		"  nothing outstanding: every approval reason has its approvers\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestPrintLoopDetailsShowsApprovalsAndReviews(t *testing.T) {
	l := pendingLoop(t)
	l.Status.Approvals[0].ApprovedBy = []string{"ana"}
	l.Status.Reviews = []*loopgatev1.Review{
		{Reviewer: "ana", Verdict: "APPROVED", Generation: 3, Reasons: []string{"RETENTION_REDUCED"}, Comment: "ok\x1b[2J",
			Time: timestamppb.New(testNow.Add(-5 * time.Minute))},
	}
	l.Status.Approvals[1].Msg = "pii\u202e leaves"
	var buf bytes.Buffer
	if err := printLoopDetails(&buf, l, testNow); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Approval:        needed: 1 of 2 reason(s) outstanding (see Approvals); a reviewer runs `loopctl approve growth/checkout-nudge`",
		"\nApprovals:\n" +
			"  REASON              ROLE                APPROVED   APPROVED BY   FIELD            MESSAGE\n" +
			"  RETENTION_REDUCED   team-admin          1/1        ana           spec.retention   retention shrinks from 7d to 3d\n" +
			`  PII_EXPORT          security-reviewer   0/2        -             spec.consumers   pii\u202e leaves` + "\n",
		"\nReviews:\n" +
			"  TIME               REVIEWER   VERDICT    GENERATION   REASONS             COMMENT\n" +
			`  2026-11-26 11:55   ana        APPROVED   3            RETENTION_REDUCED   ok\x1b[2J` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Errorf("raw control characters reached the terminal:\n%q", out)
	}
	if i, j, k := strings.Index(out, "\nPolicy:"), strings.Index(out, "\nApprovals:"), strings.Index(out, "\nConditions:"); !(i < j && j < k) {
		t.Errorf("sections out of order:\n%s", out)
	}

	l.Status.State = loopgatev1.Loop_REJECTED
	if got := approvalString(l); !strings.HasPrefix(got, "rejected") {
		t.Errorf("approvalString of a REJECTED loop = %q", got)
	}
}
