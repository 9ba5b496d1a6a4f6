package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// A refused atomic batch is one status: the first failing item's code,
// reason ATOMIC_BATCH_REFUSED, every item's details under loops[i] (an item
// without field details as one violation on loops[i]), within the bounds
// of an error's details.
func TestAtomicStatus(t *testing.T) {
	denied := &admission.DeniedError{Resource: "teams/g/loops/b", Decision: policy.Decision{ID: "dec_1",
		Deny: []policy.Violation{{ID: "PII_RESIDENCY", Msg: "not in us", Field: "spec.residency"}}}}
	err := toStatus(&admission.AtomicError{Items: 5, Failed: []*admission.ItemError{
		{Index: 1, Name: "teams/g/loops/b", Err: denied},
		{Index: 3, Name: "teams/g/loops/d", Err: &admission.InvalidError{Problems: loop.FieldErrors{{Field: "spec.owners", Message: "at least one"}}}},
		{Index: 4, Name: "teams/g/loops/e", Err: fmt.Errorf("loop g/e: %w", store.ErrEtagMismatch)},
	}})
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "loops[1] (teams/g/loops/b)") || !strings.Contains(st.Message(), "3 of 5") {
		t.Fatalf("status: %v %q", st.Code(), st.Message())
	}
	fields := map[string]string{}
	subjects := map[string]string{}
	var meta map[string]string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			meta = d.GetMetadata()
			if d.GetReason() != "ATOMIC_BATCH_REFUSED" {
				t.Errorf("reason %q", d.GetReason())
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields[v.GetField()] = v.GetReason() + " " + v.GetDescription()
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				subjects[v.GetSubject()] = v.GetType()
			}
		}
	}
	if !strings.HasPrefix(fields["loops[1].spec.residency"], "PII_RESIDENCY") || !strings.Contains(fields["loops[3].spec.owners"], "at least one") ||
		!strings.HasPrefix(fields["loops[4]"], "ETAG_MISMATCH") || subjects["loops[1].spec.residency"] != "PII_RESIDENCY" {
		t.Errorf("details: field violations %v, precondition violations %v", fields, subjects)
	}
	if meta["failed_items"] != "1,3,4" || meta["items"] != "5" {
		t.Errorf("metadata %v", meta)
	}

	// Many failing items: at most maxViolations field violations, then a count.
	var many []*admission.ItemError
	for i := range 50 {
		many = append(many, &admission.ItemError{Index: i, Name: fmt.Sprintf("teams/g/loops/l%d", i),
			Err: &admission.InvalidError{Problems: loop.FieldErrors{{Field: "spec.owners", Message: "at least one"}}}})
	}
	st = status.Convert(toStatus(&admission.AtomicError{Items: 50, Failed: many}))
	if st.Code() != codes.InvalidArgument {
		t.Errorf("code %v", st.Code())
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			n := len(br.GetFieldViolations())
			if n != maxViolations+1 || !strings.Contains(br.GetFieldViolations()[n-1].GetDescription(), "30 more") {
				t.Errorf("%d field violations, last %v; want %d and a count of the rest", n, br.GetFieldViolations()[n-1], maxViolations)
			}
		}
	}
	if len(st.Message()) > maxMessageText+100 {
		t.Errorf("message of %d bytes", len(st.Message()))
	}
}

// Batch items are read from the request alone: a malformed name or one of
// team "-" is refused naming its index, and more than MaxBatchItems items
// is refused before any is read.
func TestBatchResourcesOf(t *testing.T) {
	req := &lgv1.BatchApplyLoopsRequest{Loops: []*lgv1.Loop{
		{Name: "teams/growth/loops/a"}, {Name: "teams/-/loops/b"}, {Name: "growth/c"}, {Name: "teams/risk/loops/d"},
	}}
	_, err := batchResourcesOf(req, "loops:batchApply")
	fields := map[string]bool{}
	if invalid, ok := err.(*admission.InvalidError); ok {
		for _, p := range invalid.Problems {
			fields[p.Field] = true
		}
	}
	if len(fields) != 2 || !fields["loops[1].name"] || !fields["loops[2].name"] {
		t.Errorf("malformed names: %v (%v)", fields, err)
	}
	req.Loops = []*lgv1.Loop{{Name: "teams/growth/loops/a"}, {Name: "teams/risk/loops/d"}}
	res, err := batchResourcesOf(req, "loops:batchApply")
	if err != nil || len(res) != 2 || res[0].Team != "growth" || res[1].Team != "risk" || res[1].Name != "teams/risk/loops/d" {
		t.Errorf("resources %v, %v", res, err)
	}
	req.Loops = make([]*lgv1.Loop, admission.MaxBatchItems+1)
	for i := range req.Loops {
		req.Loops[i] = &lgv1.Loop{Name: "not a name"}
	}
	_, err = batchResourcesOf(req, "loops:batchApply")
	if invalid, ok := err.(*admission.InvalidError); !ok || len(invalid.Problems) != 1 || invalid.Problems[0].Field != "loops" {
		t.Errorf("over the cap: %v", err)
	}
}
