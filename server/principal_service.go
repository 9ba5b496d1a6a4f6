package server

import (
	"context"
	"fmt"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/store"
)

var _ lgv1.PrincipalServiceServer = (*principalService)(nil)

// principalService is the gRPC (and REST) face of team-owned principals
// and consumer groups; the rules live in Core.
type principalService struct {
	lgv1.UnimplementedPrincipalServiceServer
	core *admission.Core
}

// maxNameBytes bounds resource names and ids taken from requests before
// they reach any message or audit event (a principal name is at most 128
// characters, a team 40).
const maxNameBytes = 256

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + fmt.Sprintf("…(%d bytes)", len(s))
}

func parsePrincipalName(name string) (team, principal string, err error) {
	if len(name) > maxNameBytes {
		return "", "", invalidField(clip(name), "name", fmt.Sprintf("%d bytes is too long for a principal name (teams/{team}/principals/{name})", len(name)))
	}
	team, principal, ok := admission.OwnedName(name, "principals")
	if !ok {
		return "", "", invalidField(name, "name", fmt.Sprintf("%q is not a principal name: want teams/{team}/principals/{name}", name))
	}
	return team, principal, nil
}

func (s *principalService) GetPrincipal(ctx context.Context, req *lgv1.GetPrincipalRequest) (*lgv1.Principal, error) {
	team, name, err := parsePrincipalName(req.GetName())
	if err != nil {
		return nil, err
	}
	p, err := s.core.GetPrincipal(ctx, caller(ctx), team, name)
	if err != nil {
		return nil, err
	}
	return principalToProto(p), nil
}

func ownedFilter(kind, parent string, pageSize int32, token string) (store.OwnedFilter, error) {
	team, ok := parseParent(parent)
	if !ok {
		return store.OwnedFilter{}, invalidField(parent, "parent", "want teams/{team}, or teams/- for every team you may see")
	}
	if pageSize < 0 {
		return store.OwnedFilter{}, invalidField(parent, "page_size", "must not be negative")
	}
	return store.OwnedFilter{Kind: kind, Team: team, PageSize: int(pageSize), PageToken: token}, nil
}

func (s *principalService) ListPrincipals(ctx context.Context, req *lgv1.ListPrincipalsRequest) (*lgv1.ListPrincipalsResponse, error) {
	f, err := ownedFilter(store.KindPrincipal, req.GetParent(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	page, next, err := s.core.ListPrincipals(ctx, caller(ctx), f)
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListPrincipalsResponse{NextPageToken: next}
	for _, p := range page {
		out.Principals = append(out.Principals, principalToProto(p))
	}
	return out, nil
}

func (s *principalService) CreatePrincipal(ctx context.Context, req *lgv1.CreatePrincipalRequest) (*lgv1.Principal, error) {
	team, ok := parseParent(req.GetParent())
	if !ok || team == "" || len(req.GetParent()) > maxNameBytes {
		return nil, invalidField(clip(req.GetParent()), "parent", "want teams/{team}")
	}
	if id := req.GetPrincipalId(); len(id) > maxNameBytes {
		return nil, invalidField(req.GetParent(), "principal_id", fmt.Sprintf("%q is %d bytes: a principal name is at most 128 characters", clip(id), len(id)))
	}
	p, err := s.core.CreatePrincipal(ctx, caller(ctx), team, req.GetPrincipalId(), admission.CallFrom(ctx).RequestID)
	if err != nil {
		return nil, err
	}
	return principalToProto(p), nil
}

func (s *principalService) DeletePrincipal(ctx context.Context, req *lgv1.DeletePrincipalRequest) (*lgv1.DeletePrincipalResponse, error) {
	team, name, err := parsePrincipalName(req.GetName())
	if err != nil {
		return nil, err
	}
	p, clusters, err := s.core.DeletePrincipal(ctx, caller(ctx), team, name, req.GetEtag(), admission.CallFrom(ctx).RequestID)
	if err != nil {
		return nil, err
	}
	return &lgv1.DeletePrincipalResponse{Principal: principalToProto(p), Clusters: clusters}, nil
}

func (s *principalService) IssuePrincipalCredentials(ctx context.Context, req *lgv1.IssuePrincipalCredentialsRequest) (*lgv1.IssuePrincipalCredentialsResponse, error) {
	team, name, err := parsePrincipalName(req.GetName())
	if err != nil {
		return nil, err
	}
	issued, err := s.core.IssueCredentials(ctx, caller(ctx), team, name, req.GetRotate(), admission.CallFrom(ctx).RequestID)
	if err != nil {
		return nil, err
	}
	out := &lgv1.IssuePrincipalCredentialsResponse{
		Principal: principalToProto(issued.Principal), Username: issued.Username, Password: issued.Password, Skipped: issued.Skipped,
	}
	for _, ep := range issued.Endpoints {
		out.Endpoints = append(out.Endpoints, &lgv1.CredentialEndpoint{
			Cluster: ep.Cluster.Name, Region: ep.Cluster.Region, BootstrapServers: ep.Cluster.BootstrapServers,
			Mechanism: ep.Mechanism, SecurityProtocol: ep.SecurityProtocol,
		})
	}
	return out, nil
}

func (s *principalService) ListConsumerGroups(ctx context.Context, req *lgv1.ListConsumerGroupsRequest) (*lgv1.ListConsumerGroupsResponse, error) {
	f, err := ownedFilter(store.KindGroup, req.GetParent(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	page, next, err := s.core.ListOwned(ctx, caller(ctx), f)
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListConsumerGroupsResponse{NextPageToken: next}
	for _, o := range page {
		out.Groups = append(out.Groups, groupToProto(o))
	}
	return out, nil
}

func (s *principalService) ListOwnershipConflicts(ctx context.Context, _ *lgv1.ListOwnershipConflictsRequest) (*lgv1.ListOwnershipConflictsResponse, error) {
	cfs, err := s.core.Conflicts(ctx, caller(ctx))
	if err != nil {
		return nil, err
	}
	out := &lgv1.ListOwnershipConflictsResponse{}
	for _, c := range cfs {
		out.Conflicts = append(out.Conflicts, &lgv1.OwnershipConflict{Kind: c.Kind, Id: c.Name, Owner: c.Owner, Loops: c.Loops})
	}
	return out, nil
}

func (s *loopService) GetLoopContract(ctx context.Context, req *lgv1.GetLoopContractRequest) (*lgv1.LoopContract, error) {
	team, name, ok := admission.ParseLoopName(req.GetName())
	if !ok || len(req.GetName()) > maxNameBytes {
		return nil, invalidField(clip(req.GetName()), "name", fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", clip(req.GetName())))
	}
	if p := req.GetPrincipal(); len(p) > maxNameBytes {
		return nil, invalidField(req.GetName(), "principal", fmt.Sprintf("%q is %d bytes: a principal is User: and at most 128 characters", clip(p), len(p)))
	}
	c, err := s.core.Contract(ctx, caller(ctx), team, name, req.GetPrincipal())
	if err != nil {
		return nil, err
	}
	return contractToProto(req.GetName(), c), nil
}
