package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// The batch RPCs (AIP-233/235 style). The interceptor has authorized every
// item (batchMethods) and bounded their number before a handler runs; each
// item's failure is the status its single RPC would return, from the one
// error mapping (toStatus).

var applyOperationToProto = map[admission.Operation]lgv1.BatchApplyLoopResult_Operation{
	admission.OpCreated:   lgv1.BatchApplyLoopResult_CREATED,
	admission.OpUpdated:   lgv1.BatchApplyLoopResult_UPDATED,
	admission.OpUnchanged: lgv1.BatchApplyLoopResult_UNCHANGED,
}

// batchLoops maps the loops of a batch request to the domain; a malformed
// one makes the request invalid, naming its index.
func batchLoops(resource string, in []*lgv1.Loop) ([]*loop.Loop, error) {
	if err := admission.CheckBatchSize(resource, len(in)); err != nil {
		return nil, err
	}
	out := make([]*loop.Loop, len(in))
	var problems loop.FieldErrors
	for i, p := range in {
		l, err := loopFromProto(p)
		if err != nil {
			problems = append(problems, loop.FieldError{Field: fmt.Sprintf("%s[%d].name", batchItemsField, i),
				Message: fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", clipTo(p.GetName(), maxDetailText))})
			continue
		}
		out[i] = l
	}
	if len(problems) > 0 {
		return nil, &admission.InvalidError{Resource: resource, Problems: problems}
	}
	return out, nil
}

func (s *loopService) BatchPlanLoops(ctx context.Context, req *lgv1.BatchPlanLoopsRequest) (*lgv1.BatchPlanLoopsResponse, error) {
	loops, err := batchLoops(batchMethods[lgv1.LoopService_BatchPlanLoops_FullMethodName].resource, req.GetLoops())
	if err != nil {
		return nil, err
	}
	results, err := s.core.BatchPlan(ctx, caller(ctx), loops)
	if err != nil {
		return nil, err
	}
	out := &lgv1.BatchPlanLoopsResponse{Results: make([]*lgv1.BatchPlanLoopResult, len(results))}
	for i, r := range results {
		res := &lgv1.BatchPlanLoopResult{Name: req.GetLoops()[i].GetName()}
		if r.Err != nil {
			res.Error = itemStatus(r.Err)
		} else {
			res.Plan = planToProto(r.Plan)
		}
		out.Results[i] = res
	}
	return out, nil
}

func (s *loopService) BatchApplyLoops(ctx context.Context, req *lgv1.BatchApplyLoopsRequest) (*lgv1.BatchApplyLoopsResponse, error) {
	loops, err := batchLoops(batchMethods[lgv1.LoopService_BatchApplyLoops_FullMethodName].resource, req.GetLoops())
	if err != nil {
		return nil, err
	}
	items := make([]admission.BatchItem, len(loops))
	for i, l := range loops {
		items[i] = admission.BatchItem{Loop: l, Etag: req.GetLoops()[i].GetEtag()}
	}
	results, err := s.core.BatchApply(ctx, caller(ctx), items, admission.BatchOptions{
		ValidateOnly: req.GetValidateOnly(), Atomic: req.GetAtomic(), RequestID: requestID(ctx, req.GetRequestId()),
	})
	if err != nil {
		return nil, err
	}
	out := &lgv1.BatchApplyLoopsResponse{Results: make([]*lgv1.BatchApplyLoopResult, len(results))}
	for i, r := range results {
		res := &lgv1.BatchApplyLoopResult{Name: req.GetLoops()[i].GetName()}
		if r.Err != nil {
			res.Error = itemStatus(r.Err)
		} else {
			res.Loop, res.Operation = loopProto(s.core, r.Loop), applyOperationToProto[r.Operation]
		}
		out.Results[i] = res
	}
	return out, nil
}

// itemStatus is the status an item's single RPC would have failed with.
func itemStatus(err error) *spb.Status {
	return status.Convert(toStatus(err)).Proto()
}

// atomicStatus maps a refused atomic batch to one status: the code of the
// first failing item, reason ATOMIC_BATCH_REFUSED, and each failing item's
// details with its field paths under loops[i] (an item without field
// details is one violation on loops[i] with its message and reason), as
// many as fit the bounds of an error.
func atomicStatus(e *admission.AtomicError) error {
	if len(e.Failed) == 0 {
		return withDetails(codes.Aborted, e.Error(), "ATOMIC_BATCH_REFUSED", nil)
	}
	first := status.Convert(toStatus(e.Failed[0].Err))
	br := &errdetails.BadRequest{}
	pf := &errdetails.PreconditionFailure{}
	under := func(prefix, field string) string {
		if field == "" {
			return prefix
		}
		return prefix + "." + field
	}
	failed := make([]string, len(e.Failed))
	dropped := 0
	for k, f := range e.Failed {
		failed[k] = strconv.Itoa(f.Index)
		prefix := fmt.Sprintf("%s[%d]", batchItemsField, f.Index)
		st := status.Convert(toStatus(f.Err))
		reason, fields := "", false
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				reason = d.GetReason()
			case *errdetails.BadRequest:
				fields = true
				for _, v := range d.GetFieldViolations() {
					if len(br.FieldViolations) == maxViolations {
						dropped++
						continue
					}
					br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
						Field: clipTo(under(prefix, v.GetField()), maxDetailText), Description: v.GetDescription(), Reason: v.GetReason()})
				}
			case *errdetails.PreconditionFailure:
				for _, v := range d.GetViolations() {
					if len(pf.Violations) == maxViolations {
						continue // each is in the field violations too
					}
					pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
						Type: v.GetType(), Subject: clipTo(under(prefix, v.GetSubject()), maxDetailText), Description: v.GetDescription()})
				}
			}
		}
		if fields {
			continue
		}
		if len(br.FieldViolations) == maxViolations {
			dropped++
			continue
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: prefix, Description: clipTo(st.Message(), maxDetailText), Reason: reason})
	}
	if dropped > 0 {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Description: fmt.Sprintf("… and %d more problems", dropped)})
	}
	meta := map[string]string{
		"items":        strconv.Itoa(e.Items),
		"failed_items": strings.Join(failed, ","),
	}
	extra := []protoadapt.MessageV1{br}
	if len(pf.Violations) > 0 {
		extra = append(extra, pf)
	}
	return withDetails(first.Code(), e.Error(), "ATOMIC_BATCH_REFUSED", meta, extra...)
}

// changedItems counts the loops a batch apply created or updated.
func changedItems(r *lgv1.BatchApplyLoopsResponse) int {
	n := 0
	for _, res := range r.GetResults() {
		if res.GetError() == nil && (res.GetOperation() == lgv1.BatchApplyLoopResult_CREATED || res.GetOperation() == lgv1.BatchApplyLoopResult_UPDATED) {
			n++
		}
	}
	return n
}
