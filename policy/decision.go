package policy

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// Operations a policy decides on (input.operation).
const (
	OpCreate = "CREATE"
	OpUpdate = "UPDATE"
	OpDelete = "DELETE"
)

// Input is what the policy sees (documented in bundles/default/loop/loop.rego). Loop and Previous are sent as
// their metadata and spec in canonical JSON (status is not policy input).
type Input struct {
	Operation string     // OpCreate, OpUpdate or OpDelete
	Loop      *loop.Loop // the requested loop (the current one on DELETE)
	Previous  *loop.Loop // the current loop on UPDATE and DELETE; nil on CREATE
	// Derived is what provisioning would create for Loop.
	Derived provisioning.Resources
	// Cost is Loop's monthly cost forecast on Cluster (input.derived.cost,
	// beside the resources); nil leaves it out.
	Cost *cost.Estimate
	// Team is the owning team's catalog entry, with UsedPartitions filled in.
	Team catalog.Team
	// Cluster is the cluster serving Loop's residency.
	Cluster catalog.Cluster
	// Regions lists every region key of the catalog (catalog.Catalog.Regions).
	Regions []string
	Actor   Actor
	// Waivers are the waivers of Loop that are active at evaluation time:
	// the caller leaves out expired and revoked ones (the policy does not
	// look at the clock). How they apply is the bundle's decision; the
	// default bundle turns a waived deny or approval into a warning (see
	// bundles/default/loop/waivers.rego).
	Waivers []Waiver
}

// Waiver is a time-limited exception to one policy rule for one loop, as the
// policy sees it (input.waivers).
type Waiver struct {
	Rule   string    `json:"rule"`   // the rule id it lifts, e.g. OWNERS_REQUIRED
	Until  time.Time `json:"until"`  // when it stops applying (RFC 3339 in the input)
	Reason string    `json:"reason"` // why it was granted
}

// Actor is the caller a decision is made for.
type Actor struct {
	Subject string   `json:"subject"`
	Teams   []string `json:"teams"`
	Roles   []string `json:"roles"`
}

// Violation is one element of a policy's deny, warn or approval set.
//
// Role and Approvals are set on approval elements only: Evaluate always fills
// them in there (a bundle that omits them gets RoleSecurityReviewer and 1)
// and leaves them zero on deny and warn elements.
type Violation struct {
	ID    string `json:"id"`    // UPPER_SNAKE rule id, e.g. OWNERS_REQUIRED
	Msg   string `json:"msg"`   // what is wrong and what to do
	Field string `json:"field"` // field path, e.g. spec.streams[0].schema; may be empty
	// Role may approve this reason: RoleTeamAdmin, RoleSecurityReviewer or
	// RolePlatformAdmin.
	Role string `json:"role,omitempty"`
	// Approvals is how many distinct approvers this reason needs
	// (MinApprovals to MaxApprovals).
	Approvals int `json:"approvals,omitempty"`
}

// Roles an approval element may name (its "role"). What each role may
// approve beyond its own reasons (e.g. whether a platform admin may approve
// any) is decided by the server, not by the policy.
const (
	// RoleTeamAdmin is an admin of the loop's own team.
	RoleTeamAdmin = "team-admin"
	// RoleSecurityReviewer is a security reviewer; the default when an
	// approval element names no role.
	RoleSecurityReviewer = "security-reviewer"
	// RolePlatformAdmin is a platform admin.
	RolePlatformAdmin = "admin"
)

// Bounds of an approval element's "approvals" (distinct approvers needed);
// an element without it needs MinApprovals.
const (
	MinApprovals = 1
	MaxApprovals = 5
)

// ApproverRoles returns the roles an approval element may name, from the
// narrowest to the widest: team-admin, security-reviewer, admin. The slice is
// new on every call.
func ApproverRoles() []string {
	return []string{RoleTeamAdmin, RoleSecurityReviewer, RolePlatformAdmin}
}

// PolicyEvaluationFailed is the id of the deny a fail-closed decision carries.
const PolicyEvaluationFailed = "POLICY_EVALUATION_FAILED"

// Decision is the verdict of one evaluation. Every list is sorted by field,
// then id, then message, then role, then approvals, so equal verdicts
// compare and print equally.
type Decision struct {
	// ID identifies the decision; audit events and loop status link to it.
	ID string `json:"id"`
	// BundleRevision is the .manifest revision of the bundle that decided.
	BundleRevision string      `json:"bundleRevision"`
	Deny           []Violation `json:"deny"`
	Warn           []Violation `json:"warn"`
	Approval       []Violation `json:"approval"`
}

// Allowed reports whether the request may proceed: nothing was denied.
func (d Decision) Allowed() bool { return len(d.Deny) == 0 }

// NeedsApproval reports whether an allowed request must wait for a reviewer.
func (d Decision) NeedsApproval() bool { return d.Allowed() && len(d.Approval) > 0 }

// Verdicts of a decision (Decision.Verdict).
const (
	VerdictAllowed       = "allowed"
	VerdictNeedsApproval = "needs-approval"
	VerdictDenied        = "denied"
)

// Verdict returns VerdictDenied, VerdictNeedsApproval or VerdictAllowed.
func (d Decision) Verdict() string {
	switch {
	case !d.Allowed():
		return VerdictDenied
	case d.NeedsApproval():
		return VerdictNeedsApproval
	default:
		return VerdictAllowed
	}
}

// AddDeny adds denials that loopgate decides itself, whatever the bundle
// says (team ownership of principals and groups), keeping Deny sorted. A
// bundle can add rules but cannot loosen these.
func (d *Decision) AddDeny(vs ...Violation) {
	if len(vs) == 0 {
		return
	}
	d.Deny = append(d.Deny, vs...)
	sortViolations(d.Deny)
}

func sortViolations(vs []Violation) {
	slices.SortFunc(vs, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Msg, b.Msg),
			cmp.Compare(a.Role, b.Role), cmp.Compare(a.Approvals, b.Approvals))
	})
}

// newDecisionID returns "dec_" and a ULID-like 26-character id: 48 bits of
// milliseconds then 80 random bits, in Crockford base32, so ids sort by time.
func newDecisionID() string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(raw[6:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	hi := binary.BigEndian.Uint64(raw[:8])
	lo := binary.BigEndian.Uint64(raw[8:])
	out := make([]byte, 4+26)
	copy(out, "dec_")
	// 128 bits as 26 base32 digits (the top 2 bits of the first digit are 0).
	for i := 29; i >= 4; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}
