package server

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// Every domain error maps to one gRPC code with an UPPER_SNAKE ErrorInfo
// reason, and field-level details where there are fields to name.
func TestToStatusMapping(t *testing.T) {
	denied := &admission.DeniedError{Resource: "teams/g/loops/l", Decision: policy.Decision{ID: "dec_1", BundleRevision: "r1",
		Deny: []policy.Violation{{ID: "PII_RESIDENCY", Msg: "m1", Field: "spec.residency"}, {ID: "OWNERS_REQUIRED", Msg: "m2", Field: "spec.owners"}}}}
	cases := []struct {
		err        error
		code       codes.Code
		reason     string
		violations int
	}{
		{&admission.InvalidError{Problems: loop.FieldErrors{{Field: "metadata.name", Message: "bad"}, {Field: "spec.owners", Message: "empty"}}}, codes.InvalidArgument, "INVALID_ARGUMENT", 2},
		{denied, codes.FailedPrecondition, "POLICY_DENIED", 2},
		{&admission.ForbiddenError{Reason: "TEAM_SCOPE", Message: "no"}, codes.PermissionDenied, "TEAM_SCOPE", 0},
		{&UnauthenticatedError{Message: "no token"}, codes.Unauthenticated, "UNAUTHENTICATED", 0},
		{fmt.Errorf("loop g/l: %w", store.ErrNotFound), codes.NotFound, "LOOP_NOT_FOUND", 0},
		{fmt.Errorf("loop g/l: %w", store.ErrAlreadyExists), codes.AlreadyExists, "LOOP_ALREADY_EXISTS", 0},
		{fmt.Errorf("loop g/l: %w", store.ErrEtagMismatch), codes.Aborted, "ETAG_MISMATCH", 0},
		{fmt.Errorf("listing: %w", store.ErrInvalidPageToken), codes.InvalidArgument, "INVALID_PAGE_TOKEN", 1},
		{errors.New("boom"), codes.Internal, "INTERNAL", 0},
	}
	for _, c := range cases {
		st, _ := status.FromError(toStatus(c.err))
		if st.Code() != c.code {
			t.Errorf("%v: code %s, want %s", c.err, st.Code(), c.code)
		}
		var reason string
		violations := 0
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				reason = d.Reason
				if d.Domain != errorDomain {
					t.Errorf("%v: ErrorInfo domain %q", c.err, d.Domain)
				}
			case *errdetails.BadRequest:
				violations = len(d.FieldViolations)
			}
		}
		if reason != c.reason || violations != c.violations {
			t.Errorf("%v: reason %q with %d field violations, want %q with %d", c.err, reason, violations, c.reason, c.violations)
		}
	}
	// The denial carries the decision and every rule id in PreconditionFailure.
	st, _ := status.FromError(toStatus(denied))
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.Metadata["decision_id"] != "dec_1" || d.Metadata["bundle_revision"] != "r1" {
				t.Errorf("denial metadata = %v", d.Metadata)
			}
		case *errdetails.PreconditionFailure:
			if len(d.Violations) != 2 || d.Violations[0].Type != "PII_RESIDENCY" || d.Violations[0].Subject != "spec.residency" {
				t.Errorf("precondition violations = %v", d.Violations)
			}
		}
	}
}
