package app_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// A loop larger than the catalog's limits is refused naming the limit,
// before policy, and audited; the audit trail still lists for everyone.
func TestOversizedLoopsAreRefusedAndTheAuditTrailStillLists(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")

	many := typicalLoop("many-producers")
	for i := range 10000 {
		many.Spec.Producers = append(many.Spec.Producers, &lgv1.Producer{Principal: fmt.Sprintf("User:p%d", i), Streams: []string{"events"}})
	}
	_, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "many-producers", Loop: many})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "spec.producers") || !strings.Contains(err.Error(), "maxProducersPerLoop") {
		t.Fatalf("10,000 producers: %v, want INVALID_ARGUMENT naming the limit", err)
	}
	labels := typicalLoop("many-labels")
	labels.Labels = map[string]string{}
	for i := range 20000 {
		labels.Labels[fmt.Sprintf("k%d", i)] = "v"
	}
	_, err = loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "many-labels", Loop: labels})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "maxLabels") {
		t.Fatalf("20,000 labels: %v, want INVALID_ARGUMENT naming the limit", err)
	}
	for _, name := range []string{"many-producers", "many-labels"} {
		if _, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name}); status.Code(err) != codes.NotFound {
			t.Errorf("%s was stored: %v", name, err)
		}
	}
	// Audited, and every page of the trail lists (also the smallest).
	for _, size := range []int32{1, 10, 1000} {
		page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: size, OrderBy: "seq desc"})
		if err != nil {
			t.Fatalf("listing the audit trail with page size %d: %v", size, err)
		}
		if size == 1000 {
			invalid := 0
			for _, ev := range page.GetEvents() {
				if ev.GetOutcome() == "INVALID" {
					invalid++
				}
			}
			if invalid < 2 {
				t.Errorf("%d INVALID events, want the 2 refusals", invalid)
			}
		}
	}
}
