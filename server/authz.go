package server

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// MethodActions maps every RPC to the action the authorizer decides on.
// The resource is read from the request's resource name field (name,
// parent, loop.name or resource), so that the decision is made from the
// request alone, before the handler runs. An RPC missing here is refused.
var MethodActions = map[string]string{
	lgv1.LoopService_GetLoop_FullMethodName:                        "loop.get",
	lgv1.LoopService_ListLoops_FullMethodName:                      "loop.list",
	lgv1.LoopService_CreateLoop_FullMethodName:                     "loop.create",
	lgv1.LoopService_UpdateLoop_FullMethodName:                     "loop.update",
	lgv1.LoopService_DeleteLoop_FullMethodName:                     "loop.delete",
	lgv1.LoopService_PlanLoop_FullMethodName:                       "loop.plan",
	lgv1.LoopService_ApproveLoop_FullMethodName:                    "loop.approve",
	lgv1.LoopService_RejectLoop_FullMethodName:                     "loop.reject",
	lgv1.LoopService_ListApprovals_FullMethodName:                  "loop.listApprovals",
	lgv1.LoopService_GetLoopContract_FullMethodName:                "loop.contract",
	lgv1.LoopService_BatchPlanLoops_FullMethodName:                 "loop.plan",
	lgv1.LoopService_BatchApplyLoops_FullMethodName:                "loop.create",
	lgv1.PrincipalService_GetPrincipal_FullMethodName:              "principal.get",
	lgv1.PrincipalService_ListPrincipals_FullMethodName:            "principal.list",
	lgv1.PrincipalService_CreatePrincipal_FullMethodName:           "principal.create",
	lgv1.PrincipalService_DeletePrincipal_FullMethodName:           "principal.delete",
	lgv1.PrincipalService_IssuePrincipalCredentials_FullMethodName: "principal.credentials",
	lgv1.PrincipalService_ListConsumerGroups_FullMethodName:        "group.list",
	lgv1.PrincipalService_ListOwnershipConflicts_FullMethodName:    "principal.listConflicts",
	lgv1.AuditService_ListAuditEvents_FullMethodName:               "audit.list",
	lgv1.AuditService_VerifyAuditChain_FullMethodName:              "audit.verify",
	lgv1.ClusterService_ListClusters_FullMethodName:                "cluster.list",
	lgv1.TeamService_GetTeam_FullMethodName:                        "team.get",
	lgv1.IdentityService_GetCaller_FullMethodName:                  "identity.get",
	lgv1.PolicyService_PushPolicyBundle_FullMethodName:             "policy.push",
	lgv1.PolicyService_ListPolicyBundles_FullMethodName:            "policy.list",
	lgv1.PolicyService_GetPolicyBundle_FullMethodName:              "policy.get",
	lgv1.PolicyService_ApprovePolicyBundle_FullMethodName:          "policy.approve",
	lgv1.PolicyService_ActivatePolicyBundle_FullMethodName:         "policy.activate",
	lgv1.PolicyService_RollbackPolicy_FullMethodName:               "policy.rollback",
	lgv1.PolicyService_ListPolicyActivations_FullMethodName:        "policy.list",
	lgv1.WaiverService_CreateWaiver_FullMethodName:                 "waiver.create",
	lgv1.WaiverService_ListWaivers_FullMethodName:                  "waiver.list",
	lgv1.WaiverService_RevokeWaiver_FullMethodName:                 "waiver.revoke",
	lgv1.PolicyService_GetPolicyImpact_FullMethodName:              "policy.impact",
	lgv1.PolicyService_ListPolicyDecisions_FullMethodName:          "policy.decisions",
	lgv1.PolicyService_ExplainPolicyDecision_FullMethodName:        "policy.decisions",
}

// batchMethod is an RPC whose request carries many loops (batchItemsField):
// every item's loop is authorized for each of actions, the actions of the
// item's single RPC (an apply item may create or update its loop; the
// first action is the method's MethodActions entry). resource names the
// request as a whole in errors and the audit trail.
type batchMethod struct {
	actions  []string
	resource string
}

var batchMethods = map[string]batchMethod{
	lgv1.LoopService_BatchPlanLoops_FullMethodName:  {[]string{"loop.plan"}, "loops:batchPlan"},
	lgv1.LoopService_BatchApplyLoops_FullMethodName: {[]string{"loop.create", "loop.update"}, "loops:batchApply"},
}

// batchItemsField is the repeated Loop field of a batch request.
const batchItemsField = "loops"

// batchResourcesOf reads what every item of a batch request is about: the
// loop each names, "teams/{team}/loops/{loop}" (a team, never "-"). More
// items than admission.MaxBatchItems, or a malformed name, is an invalid
// request (field "loops", "loops[i].name"), refused before any item is
// authorized.
func batchResourcesOf(req any, resource string) ([]admission.Resource, error) {
	m, ok := req.(proto.Message)
	if !ok {
		return nil, nil
	}
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(batchItemsField)
	if fd == nil || !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
		return nil, fmt.Errorf("%s has no repeated message field %q", r.Descriptor().FullName(), batchItemsField)
	}
	list := r.Get(fd).List()
	if list.Len() > admission.MaxBatchItems {
		return nil, admission.CheckBatchSize(resource, list.Len())
	}
	out := make([]admission.Resource, list.Len())
	var problems loop.FieldErrors
	for i := range list.Len() {
		item := list.Get(i).Message()
		var name string
		if nf := item.Descriptor().Fields().ByName("name"); nf != nil && nf.Kind() == protoreflect.StringKind {
			name = item.Get(nf).String()
		}
		team, _, ok := admission.ParseLoopName(name)
		if ok && team != admission.AnyTeam && len(name) <= maxResourceName {
			out[i] = admission.Resource{Team: team, Name: name}
			continue
		}
		if len(problems) == maxViolations {
			problems = append(problems, loop.FieldError{Field: batchItemsField, Message: "more items have names that are not loop names"})
			break
		}
		if len(name) > maxResourceName {
			name = clipTo(name, maxResourceName) + "…"
		}
		problems = append(problems, loop.FieldError{Field: fmt.Sprintf("%s[%d].name", batchItemsField, i),
			Message: fmt.Sprintf("%q is not a loop name: want teams/{team}/loops/{loop}", name)})
	}
	if len(problems) > 0 {
		return nil, &admission.InvalidError{Resource: resource, Problems: problems}
	}
	return out, nil
}

// maxResourceName bounds a resource name in a request (longer is invalid).
const maxResourceName = 512

// resourceFields are the request fields that name the resource, in the
// order they are looked for. "resource" is the audit filter.
var resourceFields = []string{"name", "parent", "resource"}

// resourceOf reads what req is about from its resource name: the owning
// team of "teams/{team}/..." (AnyTeam for "teams/-"), or no team when the
// request names none. A malformed name is an invalid request.
func resourceOf(req any) (admission.Resource, error) {
	m, ok := req.(proto.Message)
	if !ok {
		return admission.Resource{}, nil
	}
	r := m.ProtoReflect()
	name, field := "", ""
	for _, f := range resourceFields {
		if fd := r.Descriptor().Fields().ByName(protoreflect.Name(f)); fd != nil && fd.Kind() == protoreflect.StringKind {
			if v := r.Get(fd).String(); v != "" {
				name, field = v, f
				break
			}
		}
	}
	if name == "" {
		// UpdateLoop and PlanLoop name the loop inside the message.
		if fd := r.Descriptor().Fields().ByName("loop"); fd != nil && fd.Kind() == protoreflect.MessageKind && r.Has(fd) {
			if inner := r.Get(fd).Message(); inner.IsValid() {
				if nf := inner.Descriptor().Fields().ByName("name"); nf != nil {
					name, field = inner.Get(nf).String(), "loop.name"
				}
			}
		}
	}
	if name == "" {
		return admission.Resource{}, nil
	}
	if strings.HasPrefix(name, "policy/decisions/") && len(name) <= maxResourceName {
		// A decision is about a loop of some team, known once it is read:
		// authorized as a listing across teams, scoped by the handler.
		return admission.Resource{Name: name, Team: admission.AnyTeam}, nil
	}
	if strings.HasPrefix(name, "policy/") && len(name) <= maxResourceName {
		return admission.Resource{Name: name}, nil // not a team's: the rule's roles decide
	}
	rest, ok := strings.CutPrefix(name, "teams/")
	team, _, _ := strings.Cut(rest, "/")
	if !ok && field == "resource" {
		// The audit filter may name any resource (a method, a cluster);
		// only team resources are visible to team members.
		return admission.Resource{Name: name}, nil
	}
	if !ok || team == "" || len(name) > maxResourceName {
		if len(name) > maxResourceName {
			name = clipTo(name, maxResourceName) + "…"
		}
		return admission.Resource{}, &admission.InvalidError{Resource: name, Problems: loop.FieldErrors{{
			Field: field, Message: fmt.Sprintf("%q is not a resource name: want teams/{team}/...", name)}}}
	}
	if team == "-" {
		team = admission.AnyTeam
	}
	return admission.Resource{Team: team, Name: name}, nil
}
