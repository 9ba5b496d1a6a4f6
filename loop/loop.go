// Package loop holds the domain model of loopgate: a Loop is a resource with
// a desired Spec (what a product team asked for) and an observed Status (what
// loopgate has made true on a Kafka cluster).
//
// Start with Loop and Spec. Parse turns YAML loop documents (docs/loop-spec.md) into
// Loops with canonical units (decode.go, units.go); Validate reports every
// problem with its field path (validate.go), and ValidateWithLimits does so
// against the catalog's limits (catalog.Limits: how much one loop may hold,
// checked first); Load does both; Format writes a Loop back as YAML
// (format.go). Problems are FieldErrors, at most MaxReportedProblems of
// them, quoting at most 200 bytes of any input. Parse reads at most
// MaxFileBytes and bounds YAML alias expansion. Nothing here talks to
// Kafka, OPA or a database.
//
// Canonical units: durations are milliseconds and sizes are bytes. The JSON
// encoding of these types (the tags below) is the canonical form that the
// policy engine sees as input.loop and that the store persists.
package loop

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// APIVersion and Kind are the only accepted header values of a loop document.
const (
	APIVersion = "loopgate.dev/v1"
	Kind       = "Loop"
)

// Classification is the data classification of everything a loop carries.
type Classification string

// The data classifications, from least to most sensitive.
const (
	Public       Classification = "public"
	Internal     Classification = "internal"
	Confidential Classification = "confidential"
	PII          Classification = "pii"
)

// Classifications lists the valid classifications in order of sensitivity.
var Classifications = []Classification{Public, Internal, Confidential, PII}

// Compatibility modes for a stream's schema evolution (as in Confluent's
// schema registry). The empty value means BACKWARD.
var Compatibilities = []string{
	"NONE", "BACKWARD", "FORWARD", "FULL",
	"BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE", "FULL_TRANSITIVE",
}

// Loop is one governed analytics loop: the resource teams/{team}/loops/{name}.
type Loop struct {
	Metadata Metadata `json:"metadata"`
	Spec     Spec     `json:"spec"`
	Status   Status   `json:"status"`
}

// Metadata identifies a loop. Fields after Labels are set by loopgate and are
// output only.
type Metadata struct {
	Name   string            `json:"name"`
	Team   string            `json:"team"`
	Labels map[string]string `json:"labels,omitempty"`

	UID        string    `json:"uid,omitempty"`
	Generation int64     `json:"generation,omitempty"` // bumped on every spec change
	Etag       string    `json:"etag,omitempty"`       // changes on every write
	CreateTime time.Time `json:"createTime,omitzero"`
	UpdateTime time.Time `json:"updateTime,omitzero"`
	// DeleteTime is set when deletion was requested; the loop disappears
	// once the reconciler removed its resources from the cluster.
	DeleteTime time.Time `json:"deleteTime,omitzero"`
}

// Key returns "team/name", the short form used by loopctl and the reconciler.
func (m Metadata) Key() string { return m.Team + "/" + m.Name }

// ResourceName returns the API resource name "teams/{team}/loops/{name}".
func (m Metadata) ResourceName() string {
	return fmt.Sprintf("teams/%s/loops/%s", m.Team, m.Name)
}

// Spec is the desired state of a loop, in canonical units.
type Spec struct {
	Description    string         `json:"description,omitempty"`
	Owners         []string       `json:"owners"`
	Classification Classification `json:"classification"`
	Residency      string         `json:"residency"`
	RetentionMs    int64          `json:"retentionMs"`
	SLO            SLO            `json:"slo"`
	Throughput     Throughput     `json:"throughput"`
	Streams        []Stream       `json:"streams"`
	Producers      []Producer     `json:"producers,omitempty"`
	Consumers      []Consumer     `json:"consumers,omitempty"`
	Action         *Action        `json:"action,omitempty"`
}

// SLO is the loop's latency objective: event produced to action taken.
type SLO struct {
	LatencyP99Ms int64 `json:"latencyP99Ms"`
	FreshnessMs  int64 `json:"freshnessMs,omitempty"` // max consumer lag; 0 = not set
}

// Throughput is the declared steady ingress of the loop.
type Throughput struct {
	BytesPerSecond int64   `json:"bytesPerSecond"`
	PeakFactor     float64 `json:"peakFactor"`
	RecordBytes    int64   `json:"recordBytes,omitempty"`
}

// Stream is one Kafka topic of the loop.
type Stream struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions,omitempty"` // 0 = derive from throughput and SLO
	Schema     Schema `json:"schema"`
	// External marks a stream written by something outside the loop (e.g.
	// CDC): no producer of the loop has to write it.
	External bool `json:"external,omitempty"`
}

// Schema is a stream's record schema. Definition is kept as written (the
// Avro canonical form drops docs and defaults).
type Schema struct {
	Format        string `json:"format"`
	Compatibility string `json:"compatibility,omitempty"`
	Definition    string `json:"definition"`
}

// Producer is a principal allowed to write to some of the loop's streams.
type Producer struct {
	Principal string   `json:"principal"`
	Streams   []string `json:"streams"`
}

// Consumer is a principal allowed to read some streams with one group.
// An omitted Group defaults to DefaultGroup(team, loop, principal).
type Consumer struct {
	Principal string   `json:"principal"`
	Group     string   `json:"group"`
	Streams   []string `json:"streams"`
}

// Action names the stream where the loop closes.
type Action struct {
	Stream string `json:"stream"`
}

// State is the coarse, output-only lifecycle state of a loop.
type State string

// Loop states. A loop moves PENDING_APPROVAL -> PROVISIONING -> READY, or
// to FAILED when the cluster refuses; DELETING until its resources are gone.
// A reviewer's rejection moves PENDING_APPROVAL to REJECTED, where it stays
// (nothing of that generation is provisioned) until the spec changes.
const (
	StatePendingApproval State = "PENDING_APPROVAL"
	StateProvisioning    State = "PROVISIONING"
	StateReady           State = "READY"
	StateFailed          State = "FAILED"
	StateDeleting        State = "DELETING"
	StateRejected        State = "REJECTED"
)

// Condition types, Kubernetes style.
const (
	CondPolicyCompliant = "PolicyCompliant"
	CondApproved        = "Approved"
	CondProvisioned     = "Provisioned"
	CondInSync          = "InSync"
)

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// Condition status values.
const (
	True    ConditionStatus = "True"
	False   ConditionStatus = "False"
	Unknown ConditionStatus = "Unknown"
)

// Condition is one observed aspect of a loop.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason"` // CamelCase
	Message            string          `json:"message,omitempty"`
	ObservedGeneration int64           `json:"observedGeneration"`
	LastTransitionTime time.Time       `json:"lastTransitionTime"`
}

// Status is the observed state of a loop; output only.
type Status struct {
	State              State       `json:"state,omitempty"`
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
	// DecisionID is the policy decision that admitted the current generation.
	DecisionID string `json:"decisionId,omitempty"`
	// ApprovedGeneration is the generation an approver approved (0 = none).
	ApprovedGeneration int64  `json:"approvedGeneration,omitempty"`
	ApprovedBy         string `json:"approvedBy,omitempty"`
	// NeedsApproval is true when the policy decision for the current
	// generation listed approval reasons.
	NeedsApproval bool `json:"needsApproval,omitempty"`
	// RequestedBy is the subject that made the last spec change (create,
	// update or delete); a reviewer may not approve their own request.
	RequestedBy string `json:"requestedBy,omitempty"`
	// Cluster is the name of the cluster the loop is provisioned on.
	Cluster string `json:"cluster,omitempty"`
	// Partitions is the total partition count of the loop's topics as
	// admitted (explicit or derived); it counts against the team's budget.
	Partitions int32 `json:"partitions,omitempty"`
	// Inventory names what loopgate provisioned for the loop, so that a
	// later reconcile also finds what the current spec no longer mentions
	// (a removed consumer's group ACL, a removed principal's quota).
	Inventory Inventory `json:"inventory,omitzero"`
	// Warnings are the policy warnings of the current generation.
	Warnings []Violation `json:"warnings,omitempty"`
	// ApprovalReasons are the policy approval reasons of the current generation.
	ApprovalReasons []Violation `json:"approvalReasons,omitempty"`
	// BundleRevision is the policy bundle revision that decided DecisionID.
	BundleRevision string `json:"bundleRevision,omitempty"`
	// Reviews are the approvals and rejections of the current generation,
	// oldest first; a new generation starts with none.
	Reviews []Review `json:"reviews,omitempty"`
}

// Violation is one policy finding, as recorded on a loop's status.
type Violation struct {
	ID    string `json:"id"`
	Msg   string `json:"msg"`
	Field string `json:"field"`
	// Role and Approvals are set on approval reasons: the role that may
	// approve and how many distinct approvers are needed.
	Role      string `json:"role,omitempty"`
	Approvals int    `json:"approvals,omitempty"`
}

// Review verdicts.
const (
	VerdictApproved = "APPROVED"
	VerdictRejected = "REJECTED"
)

// Review is one approval or rejection of a generation.
type Review struct {
	Reviewer   string    `json:"reviewer"`
	Verdict    string    `json:"verdict"` // VerdictApproved | VerdictRejected
	Comment    string    `json:"comment,omitempty"`
	Generation int64     `json:"generation"`
	Reasons    []string  `json:"reasons,omitempty"` // approval reason ids it counted for
	Time       time.Time `json:"time"`
}

// Inventory lists the names of resources provisioned for a loop.
type Inventory struct {
	Topics     []string `json:"topics,omitempty"`
	Groups     []string `json:"groups,omitempty"`
	Principals []string `json:"principals,omitempty"`
}

// Condition returns the condition of the given type, or nil.
func (s *Status) Condition(t string) *Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// SetCondition sets or replaces a condition; LastTransitionTime only moves
// when the status value changes.
func (s *Status) SetCondition(c Condition, now time.Time) {
	if old := s.Condition(c.Type); old != nil {
		if old.Status == c.Status && !old.LastTransitionTime.IsZero() {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		*old = c
		return
	}
	c.LastTransitionTime = now
	s.Conditions = append(s.Conditions, c)
}

// PrincipalName returns the name of a "User:{name}" principal: the
// principal resource teams/{team}/principals/{name} and the SCRAM user name.
// Anything else is returned unchanged.
func PrincipalName(principal string) string {
	if n, ok := strings.CutPrefix(principal, "User:"); ok {
		return n
	}
	return principal
}

// DefaultGroup is the consumer group id of a consumer that names none:
// "{team}.{loop}.{principal name}", inside the team's namespace and
// deterministic, so re-applying the same spec gives the same group.
func DefaultGroup(team, loopName, principal string) string {
	return team + "." + loopName + "." + PrincipalName(principal)
}

// Principals returns the distinct principals the loop names (producers and
// consumers), sorted.
func (s *Spec) Principals() []string {
	var out []string
	for _, p := range s.Producers {
		out = append(out, p.Principal)
	}
	for _, c := range s.Consumers {
		out = append(out, c.Principal)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Groups returns the distinct consumer groups the loop names, sorted.
func (s *Spec) Groups() []string {
	var out []string
	for _, c := range s.Consumers {
		if c.Group != "" {
			out = append(out, c.Group)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// StreamNames returns the names of the loop's streams in spec order.
func (s *Spec) StreamNames() []string {
	out := make([]string, len(s.Streams))
	for i, st := range s.Streams {
		out[i] = st.Name
	}
	return out
}
