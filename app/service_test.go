package app_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// validate_only runs every check a real request would and changes nothing:
// no loop, no decision, no audit event, nothing on the cluster.
func TestValidateOnlyChangesNothing(t *testing.T) {
	conn, ctx := startEmbeddedConn(t)
	cl := lgv1.NewLoopServiceClient(conn)
	l := typicalLoop("dry-run")
	got, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "dry-run", Loop: l, ValidateOnly: true})
	if err != nil {
		t.Fatalf("validate_only create of an allowed loop: %v", err)
	}
	if got.GetStatus().GetState() != lgv1.Loop_PROVISIONING || got.GetStatus().GetPolicy().GetDecisionId() == "" {
		t.Errorf("validate_only response lacks the would-be status: %v", got.GetStatus())
	}
	if _, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: l.Name}); status.Code(err) != codes.NotFound {
		t.Errorf("validate_only persisted the loop: %v", err)
	}

	denied := proto.Clone(l).(*lgv1.Loop)
	denied.Spec.Residency = "us" // PII outside the PII-safe regions
	_, err = cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "dry-run", Loop: denied, ValidateOnly: true})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("validate_only of a denied loop: %v, want FAILED_PRECONDITION", err)
	}
	invalid := proto.Clone(l).(*lgv1.Loop)
	invalid.Spec.Owners = nil
	_, err = cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "dry-run", Loop: invalid, ValidateOnly: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("validate_only of an invalid loop: %v, want INVALID_ARGUMENT", err)
	}
	events, err := lgv1.NewAuditServiceClient(conn).ListAuditEvents(ctx, &lgv1.ListAuditEventsRequest{Resource: l.Name})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(events.GetEvents()); n != 0 {
		t.Errorf("validate_only requests wrote %d audit events", n)
	}
}

// update_mask: only the named fields change; an unknown path is refused
// with a field violation and changes nothing.
func TestUpdateMask(t *testing.T) {
	cl, ctx := startEmbedded(t)
	l := typicalLoop("masked")
	created, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "masked", Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{
		Loop:       &lgv1.Loop{Name: l.Name, Etag: created.Etag, Spec: &lgv1.LoopSpec{Description: "x"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"spec.nonsense", "metadata.uid"}},
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown mask paths: %v, want INVALID_ARGUMENT", err)
	}
	updated, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{
		Loop:       &lgv1.Loop{Name: l.Name, Etag: created.Etag, Spec: &lgv1.LoopSpec{Description: "changed"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"spec.description"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetSpec().GetDescription() != "changed" || len(updated.GetSpec().GetStreams()) != 2 || updated.GetGeneration() != 2 {
		t.Errorf("masked update: description %q, %d streams, generation %d", updated.GetSpec().GetDescription(), len(updated.GetSpec().GetStreams()), updated.GetGeneration())
	}
	if updated.Etag == created.Etag {
		t.Error("etag did not change on update")
	}
}

// A schema change is checked against the stream's compatibility mode: adding
// a field with a default is BACKWARD compatible, adding one without is not.
func TestSchemaEvolutionFollowsCompatibility(t *testing.T) {
	cl, ctx := startEmbedded(t)
	l := typicalLoop("evolving")
	if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "evolving", Loop: l}); err != nil {
		t.Fatal(err)
	}
	update := func(def string) error {
		next := proto.Clone(l).(*lgv1.Loop)
		next.Spec.Streams[0].Schema.Definition = def
		_, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: next})
		return err
	}
	breaking := `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"},{"name":"coupon","type":"string"}]}`
	err := update(breaking)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("incompatible schema change: %v, want INVALID_ARGUMENT", err)
	}
	var field string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 {
			field = br.FieldViolations[0].Field
			if !strings.Contains(br.FieldViolations[0].Description, "BACKWARD") {
				t.Errorf("violation does not name the mode: %s", br.FieldViolations[0].Description)
			}
		}
	}
	if field != "spec.streams[0].schema.definition" {
		t.Errorf("violation field = %q, want spec.streams[0].schema.definition", field)
	}
	compatible := `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"},{"name":"coupon","type":["null","string"],"default":null}]}`
	if err := update(compatible); err != nil {
		t.Fatalf("compatible schema change refused: %v", err)
	}

	// Loosening the mode in the same update does not let a breaking change
	// through; loosening first, then changing, does.
	withMode := func(mode, def string) error {
		next := proto.Clone(l).(*lgv1.Loop)
		next.Spec.Streams[0].Schema.Compatibility = mode
		next.Spec.Streams[0].Schema.Definition = def
		_, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: next})
		return err
	}
	if err := withMode("NONE", breaking); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "current BACKWARD") {
		t.Errorf("NONE and a breaking schema in one update: %v, want INVALID_ARGUMENT naming the current mode", err)
	}
	if err := withMode("NONE", compatible); err != nil {
		t.Fatalf("loosening the mode alone: %v", err)
	}
	if err := withMode("NONE", breaking); err != nil {
		t.Errorf("a breaking change under NONE: %v", err)
	}
}

// A loop's residency cannot change: its topics stay on the cluster of its
// first region, so admitting another region would misstate where the data
// lives (and let policy judge the wrong cluster).
func TestResidencyCannotChange(t *testing.T) {
	cl, ctx := startEmbedded(t)
	l := typicalLoop("resident")
	l.Spec.Classification = "internal"
	if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "resident", Loop: l}); err != nil {
		t.Fatal(err)
	}
	moved := proto.Clone(l).(*lgv1.Loop)
	moved.Spec.Residency = "us"
	_, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: moved})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "spec.residency") {
		t.Fatalf("moving a loop to another region: %v, want INVALID_ARGUMENT on spec.residency", err)
	}
	got, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: l.Name})
	if err != nil || got.GetSpec().GetResidency() != "eu" || got.GetGeneration() != 1 {
		t.Errorf("after the refused move: %v, %v", got.GetSpec().GetResidency(), err)
	}
}
