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

// A request id is bound to who sent which request (AIP-155): another team
// reusing it learns nothing and changes nothing, the attempt is audited,
// and a genuine retry still returns the original loop.
func TestRequestIDIsBoundToItsCaller(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth, risk := asDemo(t, "growth"), asDemo(t, "risk")

	mine := typicalLoop("rid-loop")
	first, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "rid-loop", Loop: mine, RequestId: "rid-1"})
	if err != nil {
		t.Fatal(err)
	}
	// A retry of the same request returns the loop it created.
	again, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "rid-loop", Loop: mine, RequestId: "rid-1"})
	if err != nil || again.GetUid() != first.GetUid() {
		t.Fatalf("retry: %v, uid %s want %s", err, again.GetUid(), first.GetUid())
	}

	// Team risk reusing growth's request id for its own loop.
	theirs := typicalLoop("sneaky")
	theirs.Name = "teams/risk/loops/sneaky"
	theirs.Spec.Residency = "eu"
	for _, p := range theirs.Spec.Producers {
		p.Principal = strings.Replace(p.Principal, "User:", "User:risk-", 1)
	}
	for _, c := range theirs.Spec.Consumers {
		c.Principal = strings.Replace(c.Principal, "User:", "User:risk-", 1)
		c.Group = "risk-" + c.Group
	}
	got, err := loops.CreateLoop(risk, &lgv1.CreateLoopRequest{Parent: "teams/risk", LoopId: "sneaky", Loop: theirs, RequestId: "rid-1"})
	if status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("risk reusing growth's request id: %v (%v), want REQUEST_ID_REUSED", got, err)
	}
	if got != nil || strings.Contains(err.Error(), "growth") || strings.Contains(err.Error(), "rid-loop") {
		t.Errorf("the refusal tells about growth's loop: %v %v", got, err)
	}
	if _, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: theirs.Name}); status.Code(err) != codes.NotFound {
		t.Errorf("the refused create was carried out: %v", err)
	}
	// Reusing it for a different request of the same caller, or as an update.
	changed := proto.Clone(mine).(*lgv1.Loop)
	changed.Spec.Description = "something else"
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "rid-loop", Loop: changed, RequestId: "rid-1"}); reasonOf(err) != "REQUEST_ID_REUSED" {
		t.Errorf("same id, different body: %v", err)
	}
	if _, err := loops.UpdateLoop(growth, &lgv1.UpdateLoopRequest{Loop: changed, RequestId: "rid-1"}); reasonOf(err) != "REQUEST_ID_REUSED" {
		t.Errorf("same id on another method: %v", err)
	}
	// Updates are bound the same way.
	upd, err := loops.UpdateLoop(growth, &lgv1.UpdateLoopRequest{Loop: changed, RequestId: "rid-2"})
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := loops.UpdateLoop(growth, &lgv1.UpdateLoopRequest{Loop: changed, RequestId: "rid-2"}); err != nil || retry.GetGeneration() != upd.GetGeneration() {
		t.Errorf("update retry: %v, generation %d want %d", err, retry.GetGeneration(), upd.GetGeneration())
	}

	// The attempt is in the audit trail, naming the actor and the reason.
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Actor: "risk-dev@example.com", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events.GetEvents() {
		if ev.GetAction() == "loop.create" && ev.GetOutcome() == "FORBIDDEN" && strings.Contains(ev.GetDetails().String(), "REQUEST_ID_REUSED") {
			found = true
		}
	}
	if !found {
		t.Errorf("the reused request id is not in the audit trail: %v", events.GetEvents())
	}
}
