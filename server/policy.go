package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// policyService adapts admission's policy governance to the API.
type policyService struct {
	lgv1.UnimplementedPolicyServiceServer
	core *admission.Core
}

// bundleRevision reads the revision of `policy/bundles/{revision}`.
func bundleRevision(name, field string) (string, error) {
	rev, ok := strings.CutPrefix(name, "policy/bundles/")
	if !ok || rev == "" || strings.Contains(rev, "/") {
		return "", &admission.InvalidError{Resource: name, Problems: loop.FieldErrors{{Field: field,
			Message: fmt.Sprintf("%q is not a policy bundle: want policy/bundles/{revision} (policy/bundles/builtin for the built-in one)", clipTo(name, maxDetailText))}}}
	}
	return rev, nil
}

func (s *policyService) PushPolicyBundle(ctx context.Context, req *lgv1.PushPolicyBundleRequest) (*lgv1.PolicyBundle, error) {
	v, err := s.core.PushPolicyBundle(ctx, caller(ctx), req.GetArchive())
	if err != nil {
		return nil, err
	}
	return bundleToProto(v), nil
}

func (s *policyService) ListPolicyBundles(ctx context.Context, _ *lgv1.ListPolicyBundlesRequest) (*lgv1.ListPolicyBundlesResponse, error) {
	list, active, err := s.core.ListPolicyBundles(ctx, caller(ctx))
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListPolicyBundlesResponse{Active: active}
	for i := range list {
		out.Bundles = append(out.Bundles, bundleToProto(&list[i]))
	}
	return out, nil
}

func (s *policyService) GetPolicyBundle(ctx context.Context, req *lgv1.GetPolicyBundleRequest) (*lgv1.PolicyBundle, error) {
	rev, err := bundleRevision(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	v, err := s.core.GetPolicyBundle(ctx, caller(ctx), rev, req.GetView() == lgv1.GetPolicyBundleRequest_FULL)
	if err != nil {
		return nil, err
	}
	return bundleToProto(v), nil
}

func (s *policyService) ApprovePolicyBundle(ctx context.Context, req *lgv1.ApprovePolicyBundleRequest) (*lgv1.PolicyBundle, error) {
	rev, err := bundleRevision(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	v, err := s.core.ApprovePolicyBundle(ctx, caller(ctx), rev, req.GetDigest(), req.GetComment())
	if err != nil {
		return nil, err
	}
	return bundleToProto(v), nil
}

func (s *policyService) ActivatePolicyBundle(ctx context.Context, req *lgv1.ActivatePolicyBundleRequest) (*lgv1.PolicyActivation, error) {
	rev, err := bundleRevision(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	a, err := s.core.ActivatePolicyBundle(ctx, caller(ctx), rev, req.GetComment())
	if err != nil {
		return nil, err
	}
	return activationToProto(*a), nil
}

func (s *policyService) RollbackPolicy(ctx context.Context, req *lgv1.RollbackPolicyRequest) (*lgv1.PolicyActivation, error) {
	rev := ""
	if req.GetBundle() != "" {
		var err error
		if rev, err = bundleRevision(req.GetBundle(), "bundle"); err != nil {
			return nil, err
		}
	}
	a, err := s.core.RollbackPolicy(ctx, caller(ctx), rev, req.GetComment())
	if err != nil {
		return nil, err
	}
	return activationToProto(*a), nil
}

func (s *policyService) ListPolicyActivations(ctx context.Context, req *lgv1.ListPolicyActivationsRequest) (*lgv1.ListPolicyActivationsResponse, error) {
	// Core checks page_size and the token (audited when refused); the
	// token is the last listed activation's seq: the next page is older.
	var before int64
	if t := req.GetPageToken(); t != "" {
		if _, err := fmt.Sscanf(t, "seq-%d", &before); err != nil || before <= 0 || t != fmt.Sprintf("seq-%d", before) {
			before = -1
		}
	}
	list, next, err := s.core.ListPolicyActivations(ctx, caller(ctx), int(req.GetPageSize()), before)
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListPolicyActivationsResponse{}
	if next > 0 {
		out.NextPageToken = fmt.Sprintf("seq-%d", next)
	}
	for _, a := range list {
		out.Activations = append(out.Activations, activationToProto(a))
	}
	return out, nil
}

func bundleToProto(v *admission.PolicyBundleView) *lgv1.PolicyBundle {
	out := &lgv1.PolicyBundle{
		Name: "policy/bundles/" + v.Revision, Revision: v.Revision, Digest: v.Digest, Files: v.Files,
		SignedBy: v.Signed, PushedBy: v.PushedBy, RequiredApprovals: int32(v.RequiredApprovals), Archive: v.Archive,
		State: lgv1.PolicyBundle_State(lgv1.PolicyBundle_State_value[v.State]),
	}
	if !v.PushTime.IsZero() {
		out.PushTime = ts(v.PushTime)
	}
	if len(v.Manifest) > 0 {
		var m map[string]any
		if json.Unmarshal(v.Manifest, &m) == nil {
			out.Manifest, _ = structpb.NewStruct(m)
		}
	}
	for _, t := range v.Tests {
		r := &lgv1.PolicyTestResult{Name: strings.TrimPrefix(t.Package, "data.") + "." + t.Name, Result: "PASS", Duration: durationpb.New(t.Duration)}
		switch {
		case t.Error != "":
			r.Result, r.Message = "ERROR", t.Error
		case t.Skip:
			r.Result = "SKIP"
		case !t.Pass:
			r.Result = "FAIL"
		}
		out.Tests = append(out.Tests, r)
	}
	for _, a := range v.Approvals {
		out.Approvals = append(out.Approvals, &lgv1.PolicyApproval{Reviewer: a.Reviewer, Time: ts(a.Time), Comment: a.Comment})
	}
	return out
}

func activationToProto(a store.PolicyActivation) *lgv1.PolicyActivation {
	rev := a.Revision
	if rev == "" {
		rev = admission.BuiltinRevision
	}
	return &lgv1.PolicyActivation{Seq: a.Seq, Bundle: "policy/bundles/" + rev, Action: strings.ToUpper(a.Action), Actor: a.Actor, Time: ts(a.Time), Comment: a.Comment}
}

func (s *policyService) GetPolicyImpact(ctx context.Context, req *lgv1.GetPolicyImpactRequest) (*lgv1.PolicyImpact, error) {
	rev, err := bundleRevision(req.GetName(), "name")
	if err != nil {
		return nil, err
	}
	var since time.Time
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	im, err := s.core.PolicyImpact(ctx, caller(ctx), rev, int(req.GetRecentDecisions()), since)
	if err != nil {
		return nil, err
	}
	out := &lgv1.PolicyImpact{
		Bundle: bundleNameOf(im.Bundle), Active: bundleNameOf(im.Active), LoopsEvaluated: int32(im.LoopsEvaluated),
		DecisionsReplayed: int32(im.DecisionsReplayed), Duration: durationpb.New(im.Took),
	}
	for _, l := range im.Loops {
		out.Loops = append(out.Loops, &lgv1.LoopImpact{Loop: l.Loop, VerdictBefore: l.Delta.Before, VerdictAfter: l.Delta.After, Changes: findingChanges(l.Delta),
			CandidateDecision: decisionName(l.CandidateDecision)})
	}
	for _, f := range im.Flips {
		out.Flips = append(out.Flips, &lgv1.DecisionFlip{
			Decision: decisionName(f.Decision.ID), Resource: f.Decision.Resource, Operation: f.Decision.Operation,
			Time: ts(f.Decision.Time), VerdictBefore: f.Delta.Before, VerdictAfter: f.Delta.After, Changes: findingChanges(f.Delta),
			CandidateDecision: decisionName(f.CandidateDecision),
		})
	}
	return out, nil
}

// decisionName is a decision's resource name; "" stays "".
func decisionName(id string) string {
	if id == "" {
		return ""
	}
	return "policy/decisions/" + id
}

func bundleNameOf(rev string) string {
	if rev == "" {
		rev = admission.BuiltinRevision
	}
	return "policy/bundles/" + rev
}

func findingChanges(d policy.Delta) []*lgv1.FindingChange {
	var out []*lgv1.FindingChange
	for _, k := range []struct {
		kind string
		set  policy.KindDelta
	}{{"deny", d.Deny}, {"warn", d.Warn}, {"approval", d.Approval}} {
		for _, v := range k.set.New {
			out = append(out, &lgv1.FindingChange{Kind: k.kind, Change: "NEW", Violation: violationToProto(v)})
		}
		for _, v := range k.set.Resolved {
			out = append(out, &lgv1.FindingChange{Kind: k.kind, Change: "RESOLVED", Violation: violationToProto(v)})
		}
	}
	return out
}

func violationToProto(v policy.Violation) *lgv1.Violation {
	return &lgv1.Violation{Id: v.ID, Msg: v.Msg, Field: v.Field, Role: v.Role, Approvals: int32(v.Approvals)}
}

func (s *policyService) ListPolicyDecisions(ctx context.Context, req *lgv1.ListPolicyDecisionsRequest) (*lgv1.ListPolicyDecisionsResponse, error) {
	f := store.DecisionFilter{Resource: req.GetResource(), Rule: req.GetRule(), Limit: int(req.GetPageSize()), Before: req.GetPageToken()}
	if req.GetSince() != nil {
		f.Since = req.GetSince().AsTime()
	}
	list, next, err := s.core.ListDecisions(ctx, caller(ctx), f)
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListPolicyDecisionsResponse{NextPageToken: next}
	for _, d := range list {
		out.Decisions = append(out.Decisions, decisionToProto(d))
	}
	return out, nil
}

func decisionToProto(d admission.DecisionView) *lgv1.PolicyDecision {
	return &lgv1.PolicyDecision{
		Name: decisionName(d.ID), Resource: d.Resource, Operation: d.Operation, Kind: d.Kind,
		BundleRevision: d.BundleRevision, Time: ts(d.Time), Duration: durationpb.New(d.Duration),
		InputDigest: d.InputDigest, InputKept: d.InputKept,
		Verdict: d.Verdict, Deny: violationsToProto(d.Deny), Warn: violationsToProto(d.Warn), Approval: violationsToProto(d.Approval),
	}
}

func (s *policyService) ExplainPolicyDecision(ctx context.Context, req *lgv1.ExplainPolicyDecisionRequest) (*lgv1.PolicyExplanation, error) {
	id, ok := strings.CutPrefix(req.GetName(), "policy/decisions/")
	if !ok || id == "" || strings.Contains(id, "/") || len(id) > 128 {
		return nil, &admission.InvalidError{Resource: clipTo(req.GetName(), maxDetailText), Problems: loop.FieldErrors{{Field: "name",
			Message: fmt.Sprintf("%q is not a decision: want policy/decisions/{id}", clipTo(req.GetName(), maxDetailText))}}}
	}
	ex, err := s.core.ExplainDecision(ctx, caller(ctx), id)
	if err != nil {
		return nil, err
	}
	out := &lgv1.PolicyExplanation{Decision: decisionToProto(ex.Decision), Reproduced: ex.Reproduced, Trace: ex.Trace}
	for _, r := range ex.Rules {
		out.Rules = append(out.Rules, &lgv1.FiredRule{Kind: r.Kind, Violation: &lgv1.Violation{Id: r.ID, Msg: r.Msg, Field: r.Field}, Rule: r.Rule, Location: r.Location})
	}
	return out, nil
}
