package app_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Requests refused as invalid before they reach the admission path (a
// malformed resource name, a missing field) are audited like every other
// refusal.
func TestInvalidRequestsAreAudited(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	if _, err := loops.GetLoop(growth, &lgv1.GetLoopRequest{Name: "no-such-shape"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed name: %v", err)
	}
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", Loop: typicalLoop("x")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("missing loop_id: %v", err)
	}
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Actor: "growth-dev@example.com", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, ev := range events.GetEvents() {
		if ev.GetOutcome() == "INVALID" {
			got[ev.GetAction()] = true
		}
	}
	if !got["loop.get"] || !got["loop.create"] {
		t.Errorf("audited INVALID actions = %v, want loop.get and loop.create", got)
	}
}
