package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// Compile-time checks that the services implement the generated interfaces.
var (
	_ lgv1.LoopServiceServer     = (*loopService)(nil)
	_ lgv1.AuditServiceServer    = (*auditService)(nil)
	_ lgv1.ClusterServiceServer  = (*clusterService)(nil)
	_ lgv1.IdentityServiceServer = identityService{}
)

type loopService struct {
	lgv1.UnimplementedLoopServiceServer
	core *admission.Core
}

func caller(ctx context.Context) Identity {
	id, _ := identityFrom(ctx) // the interceptor guarantees one
	return id
}

func invalidField(resource, field, msg string) error {
	return &admission.InvalidError{Resource: resource, Problems: loop.FieldErrors{{Field: field, Message: msg}}}
}

func requestID(ctx context.Context, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	return admission.CallFrom(ctx).RequestID
}

func (s *loopService) GetLoop(ctx context.Context, req *lgv1.GetLoopRequest) (*lgv1.Loop, error) {
	team, name, ok := admission.ParseLoopName(req.GetName())
	if !ok {
		return nil, invalidField(req.GetName(), "name", fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", req.GetName()))
	}
	l, err := s.core.Get(ctx, caller(ctx), team, name)
	if err != nil {
		return nil, err
	}
	out := loopProto(s.core, l)
	withObservation(ctx, s.core.Store, s.core.Logger(), l, out)
	return out, nil
}

// parseParent accepts "teams/{team}" and "teams/-" (all teams).
func parseParent(parent string) (string, bool) {
	team, ok := strings.CutPrefix(parent, "teams/")
	if !ok || team == "" || strings.Contains(team, "/") {
		return "", false
	}
	if team == "-" {
		return "", true
	}
	return team, true
}

func (s *loopService) ListLoops(ctx context.Context, req *lgv1.ListLoopsRequest) (*lgv1.ListLoopsResponse, error) {
	team, ok := parseParent(req.GetParent())
	if !ok {
		return nil, invalidField(req.GetParent(), "parent", "want teams/{team}, or teams/- for every team you may see")
	}
	if req.GetPageSize() < 0 {
		return nil, invalidField(req.GetParent(), "page_size", "must not be negative")
	}
	var stateFilter loop.State
	if f := strings.TrimSpace(req.GetFilter()); f != "" {
		v, ok := strings.CutPrefix(f, "state=")
		if !ok {
			return nil, invalidField(req.GetParent(), "filter", fmt.Sprintf("unsupported filter %q: only state=STATE is supported", f))
		}
		stateFilter = loop.State(strings.TrimSpace(v))
		if _, known := stateToProto[stateFilter]; !known {
			return nil, invalidField(req.GetParent(), "filter", fmt.Sprintf("unknown state %q", v))
		}
	}
	loops, next, err := s.core.List(ctx, caller(ctx), store.ListOptions{Team: team, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListLoopsResponse{NextPageToken: next}
	if len(loops) > 0 && stateFilter == "" {
		out.Loops = make([]*lgv1.Loop, 0, len(loops))
	}
	basic := false
	switch req.GetView() {
	case lgv1.LoopView_LOOP_VIEW_UNSPECIFIED, lgv1.LoopView_LOOP_VIEW_FULL:
	case lgv1.LoopView_LOOP_VIEW_BASIC:
		basic = true
	default:
		return nil, invalidField(req.GetParent(), "view", fmt.Sprintf("unknown view %d: want LOOP_VIEW_BASIC or LOOP_VIEW_FULL", req.GetView()))
	}
	listed := loops
	if stateFilter != "" {
		listed = make([]*loop.Loop, 0, len(loops))
	}
	for _, l := range loops {
		if stateFilter != "" && l.Status.State != stateFilter {
			continue
		}
		if stateFilter != "" {
			listed = append(listed, l)
		}
		if basic {
			out.Loops = append(out.Loops, basicLoopProto(s.core, l))
		} else {
			out.Loops = append(out.Loops, loopProto(s.core, l))
		}
	}
	// The SLO state, lag and their conditions, in summary (GetLoop has the
	// daily latencies and per-partition lag).
	withObservations(ctx, s.core.Store, s.core.Logger(), listed, out.Loops)
	if basic {
		for _, p := range out.Loops {
			if slo := p.GetStatus().GetSlo(); slo != nil {
				slo.Windows = nil
			}
		}
	}
	return out, nil
}

func (s *loopService) CreateLoop(ctx context.Context, req *lgv1.CreateLoopRequest) (*lgv1.Loop, error) {
	team, ok := parseParent(req.GetParent())
	if !ok || team == "" {
		return nil, invalidField(req.GetParent(), "parent", "want teams/{team}")
	}
	p := proto.Clone(req.GetLoop()).(*lgv1.Loop)
	if p == nil {
		return nil, invalidField(req.GetParent(), "loop", "required")
	}
	if req.GetLoopId() == "" {
		return nil, invalidField(req.GetParent(), "loop_id", "required: the loop's name within the team")
	}
	want := req.GetParent() + "/loops/" + req.GetLoopId()
	if p.GetName() != "" && p.GetName() != want {
		return nil, invalidField(want, "loop.name", fmt.Sprintf("%q does not match parent and loop_id (%s); leave it empty", p.GetName(), want))
	}
	p.Name = want
	l, err := loopFromProto(p)
	if err != nil {
		return nil, err
	}
	created, err := s.core.Create(ctx, caller(ctx), l, admission.WriteOptions{ValidateOnly: req.GetValidateOnly(), RequestID: requestID(ctx, req.GetRequestId())})
	if err != nil {
		return nil, err
	}
	return loopProto(s.core, created), nil
}

// updatablePaths are the update_mask paths UpdateLoop accepts.
func checkMaskPath(path string) error {
	if path == "labels" || path == "spec" {
		return nil
	}
	field, ok := strings.CutPrefix(path, "spec.")
	if !ok {
		return fmt.Errorf("%q cannot be updated: only labels, spec and spec.<field> can", path)
	}
	if (&lgv1.LoopSpec{}).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field)) == nil {
		return fmt.Errorf("%q: LoopSpec has no field %q", path, field)
	}
	return nil
}

// applyMask copies the masked fields of src into dst (both loops).
func applyMask(dst, src *lgv1.Loop, paths []string) {
	for _, path := range paths {
		switch {
		case path == "labels":
			dst.Labels = src.GetLabels()
		case path == "spec":
			dst.Spec = src.GetSpec()
		default:
			field := strings.TrimPrefix(path, "spec.")
			if dst.Spec == nil {
				dst.Spec = &lgv1.LoopSpec{}
			}
			fd := dst.Spec.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field))
			srcSpec := src.GetSpec().ProtoReflect()
			if src.GetSpec() != nil && srcSpec.Has(fd) {
				dst.Spec.ProtoReflect().Set(fd, srcSpec.Get(fd))
			} else {
				dst.Spec.ProtoReflect().Clear(fd)
			}
		}
	}
}

func (s *loopService) UpdateLoop(ctx context.Context, req *lgv1.UpdateLoopRequest) (*lgv1.Loop, error) {
	in := req.GetLoop()
	team, name, ok := admission.ParseLoopName(in.GetName())
	if !ok {
		return nil, invalidField(in.GetName(), "loop.name", fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", in.GetName()))
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 || (len(paths) == 1 && paths[0] == "*") {
		paths = []string{"labels", "spec"}
	}
	var problems loop.FieldErrors
	for _, p := range paths {
		if err := checkMaskPath(p); err != nil {
			problems = append(problems, loop.FieldError{Field: "update_mask", Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		return nil, &admission.InvalidError{Resource: in.GetName(), Problems: problems}
	}
	id := caller(ctx) // authorized by the interceptor before anything else
	cur, err := s.core.Get(ctx, id, team, name)
	if err != nil {
		return nil, err
	}
	merged := loopToProto(cur)
	applyMask(merged, in, paths)
	l, err := loopFromProto(merged)
	if err != nil {
		return nil, err
	}
	updated, err := s.core.Update(ctx, id, l, in.GetEtag(), admission.WriteOptions{ValidateOnly: req.GetValidateOnly(), RequestID: requestID(ctx, req.GetRequestId())})
	if err != nil {
		return nil, err
	}
	return loopProto(s.core, updated), nil
}

func (s *loopService) DeleteLoop(ctx context.Context, req *lgv1.DeleteLoopRequest) (*lgv1.Loop, error) {
	team, name, ok := admission.ParseLoopName(req.GetName())
	if !ok {
		return nil, invalidField(req.GetName(), "name", fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", req.GetName()))
	}
	l, err := s.core.Delete(ctx, caller(ctx), team, name, req.GetEtag(), admission.WriteOptions{ValidateOnly: req.GetValidateOnly(), RequestID: requestID(ctx, req.GetRequestId())})
	if err != nil {
		return nil, err
	}
	return loopProto(s.core, l), nil
}

func (s *loopService) PlanLoop(ctx context.Context, req *lgv1.PlanLoopRequest) (*lgv1.PlanLoopResponse, error) {
	l, err := loopFromProto(req.GetLoop())
	if err != nil {
		return nil, err
	}
	res, err := s.core.Plan(ctx, caller(ctx), l)
	if err != nil {
		return nil, err
	}
	return planToProto(res), nil
}

func (s *loopService) ApproveLoop(ctx context.Context, req *lgv1.ApproveLoopRequest) (*lgv1.Loop, error) {
	return s.review(ctx, req.GetName(), req.GetEtag(), req.GetComment(), req.GetRequestId(), s.core.Approve)
}

func (s *loopService) RejectLoop(ctx context.Context, req *lgv1.RejectLoopRequest) (*lgv1.Loop, error) {
	return s.review(ctx, req.GetName(), req.GetEtag(), req.GetComment(), req.GetRequestId(), s.core.Reject)
}

func (s *loopService) review(ctx context.Context, name, etag, comment, reqID string,
	do func(context.Context, admission.Identity, admission.ReviewRequest) (*loop.Loop, error)) (*lgv1.Loop, error) {
	team, loopName, ok := admission.ParseLoopName(name)
	if !ok {
		return nil, invalidField(name, "name", fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", name))
	}
	l, err := do(ctx, caller(ctx), admission.ReviewRequest{
		Team: team, Name: loopName, Etag: etag, Comment: comment, RequestID: requestID(ctx, reqID),
	})
	if err != nil {
		return nil, err
	}
	return loopProto(s.core, l), nil
}

func (s *loopService) ListApprovals(ctx context.Context, req *lgv1.ListApprovalsRequest) (*lgv1.ListApprovalsResponse, error) {
	team, ok := parseParent(req.GetParent())
	if !ok {
		return nil, invalidField(req.GetParent(), "parent", "want teams/{team}, or teams/- for every team")
	}
	if req.GetPageSize() < 0 {
		return nil, invalidField(req.GetParent(), "page_size", "must not be negative")
	}
	loops, next, err := s.core.ListApprovals(ctx, caller(ctx), store.ListOptions{Team: team, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListApprovalsResponse{NextPageToken: next}
	for _, l := range loops {
		out.Loops = append(out.Loops, loopProto(s.core, l))
	}
	return out, nil
}

type auditService struct {
	lgv1.UnimplementedAuditServiceServer
	core *admission.Core
}

func (s *auditService) ListAuditEvents(ctx context.Context, req *lgv1.ListAuditEventsRequest) (*lgv1.ListAuditEventsResponse, error) {
	// Authorized by the interceptor: team members for their teams'
	// resources (the resource filter is required), readers for all.
	f := store.AuditFilter{Resource: req.GetResource(), Actor: req.GetActor(), Action: req.GetAction(), PageSize: int(req.GetPageSize())}
	if p := req.GetParent(); p != "" {
		team, ok := parseParent(p)
		if !ok || team == "" {
			return nil, invalidField("auditEvents", "parent", fmt.Sprintf("%q is not a team: want teams/{team}", clipTo(p, 256)))
		}
		if r := f.Resource; len(r) > maxResourceName || r != "" && r != p && !strings.HasPrefix(r, p+"/") {
			return nil, invalidField("auditEvents", "resource", fmt.Sprintf("%q is not a resource of %s", clipTo(r, 256), p))
		}
		f.Team = team
	}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalidField("auditEvents", "start_time", err.Error())
		}
		f.Since = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalidField("auditEvents", "end_time", err.Error())
		}
		f.Until = t.AsTime()
		if !f.Since.IsZero() && !f.Until.After(f.Since) {
			return nil, invalidField("auditEvents", "end_time", fmt.Sprintf("%s is not after start_time %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339)))
		}
	}
	switch strings.Join(strings.Fields(strings.ToLower(req.GetOrderBy())), " ") {
	case "", "seq", "seq asc":
	case "seq desc":
		f.Newest = true
	default:
		return nil, invalidField("auditEvents", "order_by", fmt.Sprintf("%q: use \"seq\" (oldest first) or \"seq desc\" (newest first)", req.GetOrderBy()))
	}
	if t := req.GetPageToken(); t != "" {
		var seq int64
		if _, err := fmt.Sscanf(t, "seq-%d", &seq); err != nil {
			return nil, invalidField("auditEvents", "page_token", "not a token this server returned")
		}
		if f.Newest {
			f.BeforeSeq = seq
		} else {
			f.AfterSeq = seq
		}
	}
	// The store's default and cap (100, 1000), applied here too so that a
	// full page is recognised as one.
	f.PageSize = store.AuditPageSize(f.PageSize)
	events, err := s.core.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, err
	}
	// At most auditPageBytes: the page may end early (with a token), and
	// an event too large for any page is listed as its summary.
	return auditPage(events, len(events) == f.PageSize), nil
}

func (s *auditService) VerifyAuditChain(ctx context.Context, _ *lgv1.VerifyAuditChainRequest) (*lgv1.VerifyAuditChainResponse, error) {
	res, err := s.core.Store.VerifyAudit(ctx)
	if err != nil {
		return nil, err
	}
	out := &lgv1.VerifyAuditChainResponse{Ok: res.OK, EventsChecked: res.Events}
	if b := res.FirstBroken; b != nil {
		out.FirstBroken = &lgv1.BrokenLink{Seq: b.Seq, Id: b.ID, Reason: b.Reason}
	}
	return out, nil
}

type clusterService struct {
	lgv1.UnimplementedClusterServiceServer
	core *admission.Core
}

func (s *clusterService) ListClusters(ctx context.Context, _ *lgv1.ListClustersRequest) (*lgv1.ListClustersResponse, error) {
	out := &lgv1.ListClustersResponse{}
	for _, c := range s.core.Clusters(caller(ctx)) {
		out.Clusters = append(out.Clusters, clusterViewToProto(c))
	}
	return out, nil
}

type teamService struct {
	lgv1.UnimplementedTeamServiceServer
	core *admission.Core
}

func (s *teamService) GetTeam(ctx context.Context, req *lgv1.GetTeamRequest) (*lgv1.Team, error) {
	// Authorized by the interceptor on the team the name names.
	team, ok := parseParent(req.GetName()) // "teams/{team}", as a parent is
	if !ok || team == "" {
		return nil, invalidField("teams", "name", fmt.Sprintf("%q is not a team name: want teams/{team}", clipTo(req.GetName(), 256)))
	}
	r, err := s.core.Team(ctx, team)
	if err != nil {
		return nil, err
	}
	return teamToProto(r), nil
}

type identityService struct {
	lgv1.UnimplementedIdentityServiceServer
}

func (identityService) GetCaller(ctx context.Context, _ *lgv1.GetCallerRequest) (*lgv1.Caller, error) {
	id := caller(ctx)
	out := &lgv1.Caller{Subject: id.Subject, Teams: id.Teams, Roles: id.Roles, Method: id.Method, Issuer: id.Issuer}
	if !id.Expiry.IsZero() {
		out.ExpireTime = ts(id.Expiry)
	}
	return out, nil
}

// Register registers every loopgate service on srv.
func Register(srv *grpc.Server, core *admission.Core) {
	lgv1.RegisterLoopServiceServer(srv, &loopService{core: core})
	lgv1.RegisterAuditServiceServer(srv, &auditService{core: core})
	lgv1.RegisterClusterServiceServer(srv, &clusterService{core: core})
	lgv1.RegisterTeamServiceServer(srv, &teamService{core: core})
	lgv1.RegisterPrincipalServiceServer(srv, &principalService{core: core})
	lgv1.RegisterIdentityServiceServer(srv, identityService{})
	lgv1.RegisterPolicyServiceServer(srv, &policyService{core: core})
	lgv1.RegisterWaiverServiceServer(srv, &waiverService{core: core})
}

// MaxBatchResponseBytes is the largest response the REST gateway takes from
// the gRPC service, above gRPC's default of 4 MiB for batch responses: a
// result per item, each with its loop's status, may outgrow the 4 MiB
// request that carried the items.
const MaxBatchResponseBytes = 64 << 20

// largeResponses lets a gateway registration receive batch responses.
func largeResponses(register func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error) func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error {
	return func(ctx context.Context, mux *runtime.ServeMux, endpoint string, opts []grpc.DialOption) error {
		opts = append(slices.Clip(opts), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxBatchResponseBytes)))
		return register(ctx, mux, endpoint, opts)
	}
}

// GatewayHandlers are the REST handlers of every service, for grpc-gateway.
var GatewayHandlers = []func(context.Context, *runtime.ServeMux, string, []grpc.DialOption) error{
	largeResponses(lgv1.RegisterLoopServiceHandlerFromEndpoint),
	lgv1.RegisterAuditServiceHandlerFromEndpoint,
	lgv1.RegisterClusterServiceHandlerFromEndpoint,
	lgv1.RegisterTeamServiceHandlerFromEndpoint,
	lgv1.RegisterPrincipalServiceHandlerFromEndpoint,
	lgv1.RegisterIdentityServiceHandlerFromEndpoint,
	lgv1.RegisterPolicyServiceHandlerFromEndpoint,
	lgv1.RegisterWaiverServiceHandlerFromEndpoint,
}
