package server

import (
	"context"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/store"
)

var _ lgv1.WaiverServiceServer = (*waiverService)(nil)

// waiverService adapts admission's waivers to the API.
type waiverService struct {
	lgv1.UnimplementedWaiverServiceServer
	core *admission.Core
}

func (s *waiverService) CreateWaiver(ctx context.Context, req *lgv1.CreateWaiverRequest) (*lgv1.Waiver, error) {
	team, name, ok := admission.ParseLoopName(req.GetParent())
	if !ok || team == "-" || name == "-" {
		return nil, invalidField(clipTo(req.GetParent(), maxDetailText), "parent", fmt.Sprintf("%q is not a loop: want teams/{team}/loops/{loop}", clipTo(req.GetParent(), maxDetailText)))
	}
	w := req.GetWaiver()
	if w == nil {
		return nil, invalidField(req.GetParent(), "waiver", "required: rule, until and reason")
	}
	var until time.Time
	if w.GetUntil() != nil {
		if err := w.GetUntil().CheckValid(); err != nil {
			return nil, invalidField(req.GetParent(), "waiver.until", err.Error())
		}
		until = w.GetUntil().AsTime()
	}
	out, err := s.core.CreateWaiver(ctx, caller(ctx), admission.WaiverRequest{Team: team, Loop: name, Rule: w.GetRule(), Until: until, Reason: w.GetReason()})
	if err != nil {
		return nil, err
	}
	return waiverToProto(*out, time.Now()), nil
}

func (s *waiverService) ListWaivers(ctx context.Context, req *lgv1.ListWaiversRequest) (*lgv1.ListWaiversResponse, error) {
	team, name, ok := admission.ParseLoopName(req.GetParent())
	if !ok || (team == "-" && name != "-") {
		return nil, invalidField(clipTo(req.GetParent(), maxDetailText), "parent",
			"want teams/{team}/loops/{loop}, teams/{team}/loops/- for every loop of a team, or teams/-/loops/- for every loop you may see")
	}
	if team == "-" {
		team = ""
	}
	if name == "-" {
		name = ""
	}
	// Core checks page_size and page_token (audited when refused) and
	// pages by keyset in the store.
	list, next, err := s.core.ListWaivers(ctx, caller(ctx), admission.WaiverQuery{
		Team: team, Loop: name, IncludeInactive: req.GetIncludeExpired(),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListWaiversResponse{NextPageToken: next}
	now := time.Now()
	for _, w := range list {
		out.Waivers = append(out.Waivers, waiverToProto(w, now))
	}
	return out, nil
}

func (s *waiverService) RevokeWaiver(ctx context.Context, req *lgv1.RevokeWaiverRequest) (*lgv1.Waiver, error) {
	team, name, id, ok := admission.ParseWaiverName(req.GetName())
	if !ok || team == "-" || name == "-" {
		return nil, invalidField(clipTo(req.GetName(), maxDetailText), "name", fmt.Sprintf("%q is not a waiver: want teams/{team}/loops/{loop}/waivers/{id}", clipTo(req.GetName(), maxDetailText)))
	}
	out, err := s.core.RevokeWaiver(ctx, caller(ctx), team, name, id, req.GetReason())
	if err != nil {
		return nil, err
	}
	return waiverToProto(*out, time.Now()), nil
}

func waiverToProto(w store.Waiver, now time.Time) *lgv1.Waiver {
	out := &lgv1.Waiver{
		Name: admission.WaiverName(w), Rule: w.Rule, Until: ts(w.Until), Reason: w.Reason,
		GrantedBy: w.GrantedBy, GrantTime: ts(w.GrantTime), RevokedBy: w.RevokedBy,
		State: lgv1.Waiver_State(lgv1.Waiver_State_value[admission.WaiverState(w, now)]),
	}
	if !w.RevokeTime.IsZero() {
		out.RevokeTime = ts(w.RevokeTime)
	}
	return out
}
