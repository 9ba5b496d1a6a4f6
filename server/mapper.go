package server

// mapper.go maps between the generated API types (gen/loopgate/v1) and the
// domain (loop, policy, provisioning, audit). A loop's name, labels and spec
// are mapped by package apimap, shared with loopctl; this file adds what
// only the server knows (output-only metadata, status, connection info).

import (
	"encoding/json"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/apimap"
	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/cost"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// loopFromProto maps an API loop to the domain. The name must be
// "teams/{team}/loops/{loop}"; output-only fields are ignored.
func loopFromProto(p *lgv1.Loop) (*loop.Loop, error) {
	if p == nil {
		return nil, &admission.InvalidError{Problems: loop.FieldErrors{{Field: "loop", Message: "required"}}}
	}
	l, err := apimap.LoopFromProto(p)
	if err != nil {
		return nil, &admission.InvalidError{Resource: p.GetName(), Problems: loop.FieldErrors{{Field: "loop.name", Message: err.Error()}}}
	}
	return l, nil
}

var stateToProto = map[loop.State]lgv1.Loop_State{
	loop.StatePendingApproval: lgv1.Loop_PENDING_APPROVAL,
	loop.StateProvisioning:    lgv1.Loop_PROVISIONING,
	loop.StateReady:           lgv1.Loop_READY,
	loop.StateFailed:          lgv1.Loop_FAILED,
	loop.StateDeleting:        lgv1.Loop_DELETING,
	loop.StateRejected:        lgv1.Loop_REJECTED,
}

func loopToProto(l *loop.Loop) *lgv1.Loop {
	m := l.Metadata
	st := l.Status
	out := apimap.LoopToProto(l)
	out.Uid, out.Generation, out.Etag = m.UID, m.Generation, m.Etag
	out.CreateTime, out.UpdateTime, out.DeleteTime = ts(m.CreateTime), ts(m.UpdateTime), ts(m.DeleteTime)
	out.Status = &lgv1.LoopStatus{
		State: stateToProto[st.State], ObservedGeneration: st.ObservedGeneration,
		DecisionId: st.DecisionID, Cluster: st.Cluster, NeedsApproval: st.NeedsApproval, Partitions: st.Partitions,
		ApprovedGeneration: st.ApprovedGeneration, ApprovedBy: st.ApprovedBy, RequestedBy: st.RequestedBy,
		Policy: &lgv1.PolicyVerdict{
			DecisionId: st.DecisionID, BundleRevision: st.BundleRevision, Allowed: st.DecisionID != "",
			Warn: loopViolationsToProto(st.Warnings), Approval: loopViolationsToProto(st.ApprovalReasons),
		},
	}
	for _, p := range admission.Progress(&l.Status) {
		out.Status.Approvals = append(out.Status.Approvals, &lgv1.ApprovalProgress{
			Id: p.ID, Msg: p.Msg, Field: p.Field, Role: p.Role, Required: int32(p.Required), ApprovedBy: p.ApprovedBy,
		})
	}
	for _, r := range st.Reviews {
		out.Status.Reviews = append(out.Status.Reviews, &lgv1.Review{
			Reviewer: r.Reviewer, Verdict: r.Verdict, Comment: r.Comment, Generation: r.Generation, Reasons: r.Reasons, Time: ts(r.Time),
		})
	}
	for _, c := range st.Conditions {
		out.Status.Conditions = append(out.Status.Conditions, &lgv1.Condition{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			ObservedGeneration: c.ObservedGeneration, LastTransitionTime: ts(c.LastTransitionTime),
		})
	}
	return out
}

// loopProto is loopToProto with the loop's connection info (where its
// streams live, what its principals may do) filled into the status.
func loopProto(c *admission.Core, l *loop.Loop) *lgv1.Loop {
	out := loopToProto(l)
	out.Status.Cost = costToProto(c.CostOf(l))
	conn := c.ConnectionOf(l)
	if n := len(conn.Streams); n > 0 {
		out.Status.Streams = make([]*lgv1.StreamEndpoint, 0, n)
	}
	if n := len(conn.Principals); n > 0 {
		out.Status.Principals = make([]*lgv1.PrincipalGrants, 0, n)
	}
	for _, st := range conn.Streams {
		out.Status.Streams = append(out.Status.Streams, &lgv1.StreamEndpoint{
			Stream: st.Stream, Topic: st.Topic, Cluster: st.Cluster, Region: st.Region,
			BootstrapServers: st.BootstrapServers, External: st.External,
		})
	}
	for _, g := range conn.Principals {
		pg := &lgv1.PrincipalGrants{
			Principal: g.Principal, Resource: g.Resource, ProduceTopics: g.ProduceTopics,
			ConsumeTopics: g.ConsumeTopics, Groups: g.Groups,
		}
		if q := g.Quota; q != nil {
			pg.Quota = &lgv1.Quota{Principal: q.Principal, ProducerByteRate: q.ProducerByteRate, ConsumerByteRate: q.ConsumerByteRate}
		}
		out.Status.Principals = append(out.Status.Principals, pg)
	}
	return out
}

// basicLoopProto is l in LOOP_VIEW_BASIC: without the streams' schema
// definitions, the connection info, the reviews and the cost forecast's
// items (ListLoopsRequest.view).
func basicLoopProto(c *admission.Core, l *loop.Loop) *lgv1.Loop {
	out := loopToProto(l)
	for _, st := range out.GetSpec().GetStreams() {
		if sc := st.GetSchema(); sc != nil {
			sc.Definition = ""
		}
	}
	out.Status.Reviews = nil
	if cf := costToProto(c.CostOf(l)); cf != nil {
		cf.Items, cf.Basis = nil, ""
		out.Status.Cost = cf
	}
	return out
}

func principalToProto(p *admission.Principal) *lgv1.Principal {
	out := &lgv1.Principal{
		Name: p.ResourceName(), KafkaPrincipal: "User:" + p.Name, Team: p.Team, Etag: p.Etag,
		CreateTime: ts(p.CreateTime), CreatedBy: p.CreatedBy, Origin: p.Origin, ClaimedBy: p.ClaimedBy, Loops: p.Loops,
	}
	if c := p.Credential; c != nil {
		out.Credential = &lgv1.CredentialInfo{
			Mechanism: c.Mechanism, Clusters: c.Clusters, IssueTime: ts(c.IssueTime), IssuedBy: c.IssuedBy,
			RotateTime: ts(c.RotateTime), RotatedBy: c.RotatedBy, Rotations: int32(min(c.Rotations, math.MaxInt32)),
		}
	}
	return out
}

func groupToProto(o *store.Owned) *lgv1.ConsumerGroup {
	return &lgv1.ConsumerGroup{
		Name: admission.OwnedResource(store.KindGroup, o.Team, o.Name), GroupId: o.Name, Team: o.Team,
		CreateTime: ts(o.CreateTime), CreatedBy: o.CreatedBy, Origin: o.Origin, ClaimedBy: o.ClaimedBy,
	}
}

func contractToProto(l string, c *admission.LoopContract) *lgv1.LoopContract {
	out := &lgv1.LoopContract{
		Loop: l, Principal: c.Principal, Username: c.Username, Cluster: c.Cluster.Name, Region: c.Cluster.Region,
		BootstrapServers: c.Bootstrap, SecurityProtocol: c.SecurityProtocol, SaslMechanism: c.Mechanism,
		CredentialsManaged: c.CredentialsManaged, ProduceTopics: c.Produce, ConsumeTopics: c.Consume, Group: c.Group,
		Basis: c.Basis,
	}
	for _, s := range c.Producer {
		out.ProducerSettings = append(out.ProducerSettings, &lgv1.ClientSetting{Key: s.Key, Value: s.Value, Reason: s.Reason})
	}
	for _, s := range c.Consumer {
		out.ConsumerSettings = append(out.ConsumerSettings, &lgv1.ClientSetting{Key: s.Key, Value: s.Value, Reason: s.Reason})
	}
	if h := c.OriginHeader; h != nil {
		out.OriginHeader = &lgv1.OriginHeader{Key: h.Key, Value: h.Value, Topic: h.Topic}
	}
	return out
}

func loopViolationsToProto(vs []loop.Violation) []*lgv1.Violation {
	out := make([]*lgv1.Violation, len(vs))
	for i, v := range vs {
		out[i] = &lgv1.Violation{Id: v.ID, Msg: v.Msg, Field: v.Field, Role: v.Role, Approvals: int32(v.Approvals)}
	}
	return out
}

func violationsToProto(vs []policy.Violation) []*lgv1.Violation {
	out := make([]*lgv1.Violation, len(vs))
	for i, v := range vs {
		out[i] = violationToProto(v)
	}
	return out
}

func verdictToProto(d policy.Decision) *lgv1.PolicyVerdict {
	return &lgv1.PolicyVerdict{
		DecisionId: d.ID, BundleRevision: d.BundleRevision, Allowed: d.Allowed(),
		Deny: violationsToProto(d.Deny), Warn: violationsToProto(d.Warn), Approval: violationsToProto(d.Approval),
	}
}

func derivedToProto(r provisioning.Resources) *lgv1.DerivedResources {
	out := &lgv1.DerivedResources{}
	for _, t := range r.Topics {
		out.Topics = append(out.Topics, &lgv1.Topic{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: int32(t.ReplicationFactor), Configs: t.Configs})
	}
	for _, a := range r.ACLs {
		out.Acls = append(out.Acls, &lgv1.Acl{Principal: a.Principal, Host: a.Host, ResourceType: a.ResourceType,
			ResourceName: a.ResourceName, PatternType: a.PatternType, Operation: a.Operation, Permission: a.Permission})
	}
	for _, q := range r.Quotas {
		out.Quotas = append(out.Quotas, &lgv1.Quota{Principal: q.Principal, ProducerByteRate: q.ProducerByteRate, ConsumerByteRate: q.ConsumerByteRate})
	}
	return out
}

var operationToProto = map[string]lgv1.PlanLoopResponse_Operation{
	"CREATE": lgv1.PlanLoopResponse_CREATE,
	"UPDATE": lgv1.PlanLoopResponse_UPDATE,
	"NOOP":   lgv1.PlanLoopResponse_NOOP,
}

// costToProto maps a cost forecast; nil is unset.
func costToProto(e *cost.Estimate) *lgv1.CostForecast {
	if e == nil {
		return nil
	}
	out := &lgv1.CostForecast{
		StorageModel: e.Model, Currency: e.Currency, MonthlyTotal: e.MonthlyTotal,
		Basis: e.Basis, ReplayPerDay: e.ReplayPerDay, PriceList: e.PriceList,
	}
	for _, it := range e.Items {
		out.Items = append(out.Items, &lgv1.CostItem{Component: it.Component, Detail: it.Detail, Monthly: it.Monthly})
	}
	return out
}

func planToProto(p *admission.PlanResult) *lgv1.PlanLoopResponse {
	out := &lgv1.PlanLoopResponse{
		Operation: operationToProto[p.Operation], Verdict: verdictToProto(p.Decision),
		Derived: derivedToProto(p.Derived), Cluster: p.Cluster.Name,
		Cost: costToProto(p.Cost), CurrentCost: costToProto(p.CurrentCost),
	}
	for _, a := range p.Actions {
		out.Changes = append(out.Changes, &lgv1.PlannedChange{Kind: string(a.Kind), Resource: a.Resource, Current: a.Current, Desired: a.Desired})
	}
	for _, pr := range p.Problems {
		out.Changes = append(out.Changes, &lgv1.PlannedChange{Kind: "Refused", Resource: pr.Resource, Desired: pr.Message})
	}
	return out
}

func auditToProto(e audit.Event) *lgv1.AuditEvent {
	out := &lgv1.AuditEvent{
		Seq: e.Seq, Id: e.ID, Time: ts(e.Time), Actor: e.Actor, Action: e.Action, Resource: e.Resource,
		RequestId: e.RequestID, DecisionId: e.DecisionID, Outcome: e.Outcome, PrevHash: e.PrevHash, Hash: e.Hash,
	}
	if len(e.Details) > 0 {
		var m map[string]any
		if json.Unmarshal(e.Details, &m) == nil {
			if s, err := structpb.NewStruct(m); err == nil {
				out.Details = s
			}
		}
	}
	return out
}

func clusterViewToProto(v admission.ClusterView) *lgv1.Cluster {
	c := v.Cluster
	out := &lgv1.Cluster{Name: c.Name, Region: c.Region, Zones: c.Zones, BootstrapServers: c.BootstrapServers, ReplicationFactor: int32(c.ReplicationFactor)}
	if d := v.Drift; d != nil {
		out.LastDriftPass = &lgv1.DriftPass{
			StartTime: ts(d.Start), Duration: durationpb.New(d.Duration), ObserveDuration: durationpb.New(d.Observe),
			Loops: int32(d.Loops), Drifted: int32(d.Drifted), DriftedLoops: d.Names, Unsettled: int32(d.Unsettled),
			Error: d.Err, LastDriftedLoops: d.LastDrifted,
		}
		if !d.LastDriftAt.IsZero() {
			out.LastDriftPass.LastDriftTime = ts(d.LastDriftAt)
		}
	}
	return out
}

func teamToProto(r *admission.TeamReport) *lgv1.Team {
	t := r.Team
	out := &lgv1.Team{
		Name: "teams/" + t.Name, AllowedRegions: t.AllowedRegions,
		Limits: &lgv1.TeamLimits{MaxPartitionsPerLoop: t.MaxPartitionsPerLoop, MaxPartitions: t.MaxPartitions,
			MaxBytesPerSecond: t.MaxBytesPerSecond, CostApprovalThreshold: t.CostApprovalThreshold},
		Usage: &lgv1.TeamUsage{Loops: int32(r.Loops), Partitions: r.Partitions,
			LargestLoopPartitions: r.LargestPartitions, LargestLoop: r.LargestLoop,
			HighestBytesPerSecond: r.HighestBytesPerSecond, HighestThroughputLoop: r.HighestThroughputLoop,
			LoopsAboveCostThreshold: int32(r.AboveCostThreshold)},
	}
	for _, m := range r.MonthlyCost {
		out.Usage.MonthlyCost = append(out.Usage.MonthlyCost, &lgv1.MonthlyCost{Currency: m.Currency, Amount: m.Amount})
	}
	return out
}
