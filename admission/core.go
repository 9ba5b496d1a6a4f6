package admission

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/schemas"
	"github.com/loopgate/loopgate/store"
)

// Core is the governed loop lifecycle, free of any wire format: the gRPC
// (and, through grpc-gateway, REST) services map to and from it.
//
// Request path (see the package doc): authorize → validate → derive → decide →
// persist desired state + decision + audit event in one transaction →
// notify the reconciler. Denied, invalid and forbidden requests are audited
// too, and change nothing else.
type Core struct {
	Store   store.Store
	Policy  *policy.Engine
	Catalog *catalog.Catalog
	// PlanAdmins are read-only admin clients by cluster name: `:plan` cannot
	// write to a cluster even by mistake.
	PlanAdmins map[string]provisioning.Admin
	// Credentials are read-write admins by cluster name for principals'
	// credentials, ACLs and quotas (issue, rotate, delete).
	Credentials map[string]provisioning.Credentials
	// Notify is called with "team/name" after every committed change.
	Notify func(key string)
	// Peers tells `:plan` what the other loops of a cluster share with the
	// planned one: the process's peer index (reconciler.PeerIndex, the one
	// the reconciler reads, so a plan shows what apply does). Nil means a
	// scan of the store per plan (reconciler.StorePeers), for tests and
	// tools without an index.
	Peers reconciler.Peers
	// Drift returns the reconciler's last drift pass per cluster (nil: this
	// process keeps none).
	Drift func() []reconciler.DriftReport
	Log   *slog.Logger
	Now   func() time.Time
	// Authz decides who may do what; nil means DefaultRules.
	Authz *Authorizer
	// Governance is the state of policy governance (policygov.go); nil
	// means an empty one: only the engine's bundle, no signature keys.
	Governance     *PolicyGovernance
	governanceOnce sync.Once
	// ObserveDecision, when set, is told of every policy evaluation: its
	// kind (DecisionRequest, DecisionPlan, DecisionReevaluation,
	// DecisionImpact), how long it took and whether it failed (metrics).
	ObserveDecision func(kind string, took time.Duration, failed bool)

	commitOnce   sync.Once
	commits      *groupCommit
	refusalsOnce sync.Once
	planLogOnce  sync.Once
	planLog      *planLog
	refusals     *refusalLog
}

// write runs an admission's transaction through the group commit, so that
// concurrent requests share one store transaction.
func (c *Core) write(ctx context.Context, fn func(tx store.Tx) error) error {
	c.commitOnce.Do(func() { c.commits = newGroupCommit(c.Store) })
	return c.commits.Update(ctx, fn)
}

// WriteOptions are the common options of mutating calls.
type WriteOptions struct {
	ValidateOnly bool
	RequestID    string
}

func (c *Core) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// audit appends one event in its own transaction (for requests that change
// nothing else: denials, invalid input, forbidden attempts).
func (c *Core) audit(ctx context.Context, ev audit.Event) error {
	return c.Store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
}

func eventFor(id Identity, action, resource, requestID, outcome string, details map[string]any) audit.Event {
	var raw json.RawMessage
	if details != nil {
		raw, _ = json.Marshal(details)
	}
	return audit.Event{
		ID: audit.NewID(), Actor: id.Subject, Action: action, Resource: resource,
		RequestID: requestID, Outcome: outcome, Details: raw,
	}
}

// AuditRejected records an authentication failure (called by the API's
// interceptor); floods are collapsed like every refusal.
func (c *Core) AuditRejected(ctx context.Context, method string, err error) {
	kind := err.Error()
	var unauth *identity.UnauthenticatedError
	if errors.As(err, &unauth) && unauth.Kind != "" {
		kind = unauth.Kind
	}
	c.refuseAs(ctx, Identity{Subject: "anonymous"}, "auth.reject", method, audit.OutcomeUnauthenticated, "UNAUTHENTICATED", err.Error(), kind)
}

// Logger is the logger Core writes to (slog's default when Log is nil).
func (c *Core) Logger() *slog.Logger { return c.logger() }

func (c *Core) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Authorize is the one authorization point: every RPC calls it (through
// the API's interceptor) before anything else. A refusal is audited (see
// refusalLog for how floods are collapsed) and returned as *ForbiddenError.
func (c *Core) Authorize(ctx context.Context, id Identity, action string, res Resource) error {
	d := c.authz().Authorize(id, action, res)
	if d == nil {
		return nil
	}
	err := &ForbiddenError{Reason: d.Reason, Message: d.Message}
	c.refuse(ctx, id, action, res.Name, audit.OutcomeForbidden, d.Reason, d.Message)
	return err
}

func (c *Core) authz() *Authorizer {
	if c.Authz != nil {
		return c.Authz
	}
	return defaultAuthorizer
}

var defaultAuthorizer = NewAuthorizer(DefaultRules)

// refuse audits a refused request that changed nothing, through the refusal
// log so that identical refusals in a short window become one event.
func (c *Core) refuse(ctx context.Context, id Identity, action, resource, outcome, reason, msg string) {
	c.refuseAs(ctx, id, action, resource, outcome, reason, msg, reason)
}

// refuseAs is refuse with the kind identical refusals are grouped by.
func (c *Core) refuseAs(ctx context.Context, id Identity, action, resource, outcome, reason, msg, kind string) {
	call := CallFrom(ctx)
	ev := eventFor(id, action, resource, call.RequestID, outcome, map[string]any{"reason": reason, "error": msg})
	if call.Method != "" {
		ev.Details, _ = json.Marshal(map[string]any{"reason": reason, "error": msg, "method": call.Method, "source": call.Source})
	}
	c.refusalsOnce.Do(func() { c.refusals = newRefusalLog(c.audit, c.now) })
	if c.refusals == nil { // closed before any refusal: write it as it is
		if err := c.audit(ctx, ev); err != nil {
			c.logger().Error("auditing a refused request failed", "action", action, "err", err)
		}
		return
	}
	method := call.Method
	if method == "" {
		method = action
	}
	if err := c.refusals.record(ctx, refusalKey{source: call.Source, actor: id.Subject, method: method, reason: kind}, ev); err != nil {
		c.logger().Error("auditing a refused request failed", "action", action, "err", err)
	}
}

// AuditSystem records something loopgate did by itself, outside any
// request (actor e.g. loopgate/observer), in its own transaction.
func (c *Core) AuditSystem(ctx context.Context, actor, action, resource, outcome string, details map[string]any) error {
	return c.audit(ctx, eventFor(Identity{Subject: actor}, action, resource, "", outcome, details))
}

// AuditForbidden records a request refused outside the API's
// authorization (e.g. a portal form that fails its CSRF or origin check);
// floods are collapsed like every refusal.
func (c *Core) AuditForbidden(ctx context.Context, id Identity, action, resource, reason, msg string) {
	if id.Subject == "" {
		id.Subject = "anonymous"
	}
	c.refuse(ctx, id, action, resource, audit.OutcomeForbidden, reason, msg)
}

// AuditRateLimited records a request refused by the API's rate limits
// (floods are collapsed like every refusal).
func (c *Core) AuditRateLimited(ctx context.Context, id Identity, action, resource, msg string) {
	if id.Subject == "" {
		id.Subject = "anonymous"
	}
	c.refuse(ctx, id, action, resource, audit.OutcomeRateLimited, "RATE_LIMITED", msg)
}

// AuditInvalid records a request refused as invalid before it reached the
// admission path (a malformed resource name, a missing field), like every
// refusal: floods of identical ones are collapsed. Every problem is named,
// each clipped; audit.Bound keeps the event small.
func (c *Core) AuditInvalid(ctx context.Context, id Identity, action string, err *InvalidError) {
	msgs := make([]string, 0, min(len(err.Problems), 20))
	for i, p := range err.Problems {
		if i == 20 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(err.Problems)-i))
			break
		}
		msgs = append(msgs, p.Field+": "+p.Message)
	}
	c.refuse(ctx, id, action, err.Resource, audit.OutcomeInvalid, "INVALID_ARGUMENT", strings.Join(msgs, "; "))
	err.Recorded = true
}

// Close writes the refusal counts still being collected.
func (c *Core) Close() {
	c.refusalsOnce.Do(func() {})
	if c.refusals != nil {
		c.refusals.close()
	}
	c.planLogOnce.Do(func() {})
	if c.planLog != nil {
		c.planLog.close()
	}
}

// rejectInvalid audits bad input and returns the error.
func (c *Core) rejectInvalid(ctx context.Context, id Identity, action, resource string, opts WriteOptions, problems loop.FieldErrors) error {
	err := &InvalidError{Resource: resource, Problems: problems, Recorded: true}
	if opts.ValidateOnly {
		return err // a dry run has no side effects, not even an audit event
	}
	requestID := opts.RequestID
	list := make([]map[string]string, len(problems))
	for i, p := range problems {
		list[i] = map[string]string{"field": p.Field, "msg": p.Message}
	}
	if aerr := c.audit(ctx, eventFor(id, action, resource, requestID, audit.OutcomeInvalid,
		map[string]any{"problems": list})); aerr != nil {
		return fmt.Errorf("auditing an invalid request: %w", aerr)
	}
	return err
}

// prepared is a validated, derived and decided request.
type prepared struct {
	cluster  catalog.Cluster
	derived  provisioning.Resources
	cost     *cost.Estimate // the loop's cost forecast on cluster
	decision policy.Decision
	// input is the policy input evaluated, as JSON, and took how long the
	// evaluation took: both go into the decision log.
	input []byte
	took  time.Duration
	// claims are the free principals and groups admitting the loop claims
	// for its team.
	claims []claim
}

// prepare validates l, derives its resources and asks policy. Invalid input
// returns *InvalidError (not yet audited); a denial is a Decision with Deny.
func (c *Core) prepare(ctx context.Context, id Identity, op string, l, previous *loop.Loop) (*prepared, error) {
	return c.prepareIn(ctx, id, op, l, previous, 0)
}

// prepareIn is prepare with pending more partitions counted as used by the
// loop's team: those an atomic batch admits with it (batch.go).
func (c *Core) prepareIn(ctx context.Context, id Identity, op string, l, previous *loop.Loop, pending int64) (*prepared, error) {
	loop.Default(l)
	problems := loop.ValidateWithLimits(l, c.Catalog.Limits) // bounds first: nothing below sees an oversized loop
	team, ok := c.Catalog.Team(l.Metadata.Team)
	if !ok && l.Metadata.Team != "" {
		names := make([]string, 0, len(c.Catalog.Teams))
		for n := range c.Catalog.Teams {
			names = append(names, n)
		}
		sort.Strings(names)
		problems = append(problems, loop.FieldError{Field: "metadata.team",
			Message: fmt.Sprintf("unknown team %q (teams in the catalog: %s)", l.Metadata.Team, strings.Join(names, ", "))})
	}
	cl, err := c.Catalog.ClusterFor(l.Spec.Residency)
	if err != nil {
		// Policy names the unknown region (REGION_UNKNOWN); derive on a
		// placeholder so every other rule is still evaluated.
		cl = catalog.Cluster{Region: l.Spec.Residency, ReplicationFactor: 1}
	}
	var derived provisioning.Resources
	if len(problems) == 0 {
		derived = provisioning.Derive(l, cl)
		for i, t := range derived.Topics {
			if err := provisioning.ValidateTopicName(t.Name); err != nil {
				problems = append(problems, loop.FieldError{Field: fmt.Sprintf("spec.streams[%d].name", i), Message: err.Error()})
			}
			if err := provisioning.ValidateTopicConfigs(t.Configs); err != nil {
				problems = append(problems, loop.FieldError{Field: "spec", Message: fmt.Sprintf("topic %s: %v", t.Name, err)})
			}
		}
	}
	if len(problems) == 0 && previous != nil && op == "UPDATE" {
		problems = append(problems, schemaEvolution(l, previous, c.Catalog.Limits)...)
		if l.Spec.Residency != previous.Spec.Residency {
			// The loop's data stays on the cluster it was provisioned on;
			// admitting a new region would let the spec (and policy) claim a
			// residency the data does not have.
			problems = append(problems, loop.FieldError{Field: "spec.residency", Message: fmt.Sprintf(
				"cannot change from %q to %q: the loop's topics live on cluster %s; create a new loop in region %s and delete this one",
				previous.Spec.Residency, l.Spec.Residency, previous.Status.Cluster, l.Spec.Residency)})
		}
	}
	if len(problems) > 0 {
		return nil, &InvalidError{Resource: l.Metadata.ResourceName(), Problems: problems}
	}
	team.UsedPartitions, err = c.usedPartitions(ctx, l)
	if err != nil {
		return nil, err
	}
	team.UsedPartitions = int32(max(min(int64(team.UsedPartitions)+pending, math.MaxInt32), 0))
	waivers, err := c.activeWaivers(ctx, l, previous)
	if err != nil {
		return nil, err
	}
	in := policy.Input{
		Operation: op, Loop: l, Previous: previous, Derived: derived, Cost: forecast(l, cl, derived.Partitions()),
		Team: team, Cluster: cl, Regions: c.Catalog.Regions(), Actor: actor(id),
		Waivers: waivers,
	}
	began := time.Now()
	d, raw, err := c.Policy.EvaluateInput(ctx, in) // raw is nil if it cannot be encoded: the decision is logged without it
	took := time.Since(began)
	c.observeDecision(ctx, took, err)
	if err != nil {
		// Fail closed: Evaluate returned a denying decision; log the cause.
		c.logger().Error("policy evaluation failed; request denied", "loop", l.Metadata.Key(), "err", err)
	}
	p := &prepared{cluster: cl, derived: derived, cost: in.Cost, decision: d, took: took, input: raw}
	if op != policy.OpDelete {
		deny, claims, err := c.ownership(ctx, c.Store, l)
		if err != nil {
			return nil, err
		}
		p.decision.AddDeny(deny...)
		p.claims = claims
	}
	return p, nil
}

// schemaEvolution checks every stream whose schema changed against its
// previous definition under the stream's compatibility mode. loopgate keeps
// the current definition only, so the _TRANSITIVE modes are checked against
// the previous version (the only one on record).
func schemaEvolution(l, previous *loop.Loop, lim catalog.Limits) loop.FieldErrors {
	old := map[string]string{}
	for _, st := range previous.Spec.Streams {
		old[st.Name] = st.Schema.Definition
	}
	oldMode := map[string]string{}
	for _, st := range previous.Spec.Streams {
		oldMode[st.Name] = st.Schema.Compatibility
	}
	var problems loop.FieldErrors
	for i, st := range l.Spec.Streams {
		prev, ok := old[st.Name]
		if !ok || prev == st.Schema.Definition {
			continue
		}
		// A change is checked under the mode in force before it too, so
		// loosening the mode to NONE cannot carry a breaking change in the
		// same update (loosen first, then change the schema).
		if m := oldMode[st.Name]; m != st.Schema.Compatibility && m != "" {
			if err := schemas.CheckCompatibilityWithLimits(m, st.Schema.Definition, []string{prev}, lim); err != nil {
				problems = append(problems, loop.FieldError{
					Field: fmt.Sprintf("spec.streams[%d].schema.definition", i),
					Message: fmt.Sprintf("stream %q: the new schema breaks the current %s compatibility (changing the mode and the schema in one update is checked under both): %v",
						st.Name, m, err),
				})
				continue
			}
		}
		if err := schemas.CheckCompatibilityWithLimits(st.Schema.Compatibility, st.Schema.Definition, []string{prev}, lim); err != nil {
			problems = append(problems, loop.FieldError{
				Field:   fmt.Sprintf("spec.streams[%d].schema.definition", i),
				Message: fmt.Sprintf("stream %q: the new schema breaks %s compatibility with the current one: %v", st.Name, st.Schema.Compatibility, err),
			})
		}
	}
	return problems
}

// usedPartitions sums the partitions of the team's other live loops. In a
// batch plan (withPartitionTotals) each team's total is read once and the
// loop's own stored partitions are taken off it, instead of one sum over
// the team's loops per plan.
func (c *Core) usedPartitions(ctx context.Context, l *loop.Loop) (int32, error) {
	var sum int64
	if pt, ok := ctx.Value(partitionTotalsKey{}).(*partitionTotals); ok {
		total, err := pt.total(ctx, c.Store, l.Metadata.Team)
		if err != nil {
			return 0, err
		}
		sum = total
		if l.Metadata.Generation > 0 && l.Metadata.DeleteTime.IsZero() {
			sum -= int64(l.Status.Partitions) // a stored live loop: its own row is in the total
		}
	} else {
		var err error
		if sum, err = c.Store.TeamPartitions(ctx, l.Metadata.Team, l.Metadata.Name); err != nil {
			return 0, err
		}
	}
	return int32(max(min(sum, math.MaxInt32), 0)), nil
}

// partitionTotals caches each team's partition total for one batch plan.
type partitionTotals struct {
	mu     sync.Mutex
	byTeam map[string]int64
}

type partitionTotalsKey struct{}

// withPartitionTotals makes the plans under ctx read each team's partition
// total once (see usedPartitions). Plans only: an admission must count
// what was committed a moment before it.
func withPartitionTotals(ctx context.Context) context.Context {
	return context.WithValue(ctx, partitionTotalsKey{}, &partitionTotals{byTeam: map[string]int64{}})
}

func (pt *partitionTotals) total(ctx context.Context, st store.Reader, team string) (int64, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if v, ok := pt.byTeam[team]; ok {
		return v, nil
	}
	v, err := st.TeamPartitions(ctx, team, "")
	if err != nil {
		return 0, err
	}
	pt.byTeam[team] = v
	return v, nil
}

func violations(vs []policy.Violation) []loop.Violation {
	out := make([]loop.Violation, len(vs))
	for i, v := range vs {
		out[i] = loop.Violation{ID: v.ID, Msg: v.Msg, Field: v.Field, Role: v.Role, Approvals: v.Approvals}
	}
	return out
}

// Decision kinds of the decision log (store.Decision.Kind).
const (
	DecisionRequest      = "request"
	DecisionReevaluation = "reevaluation"
)

// decisionRecord is the decision log's record of p's decision.
func decisionRecord(p *prepared, kind, resource, op string, now time.Time) store.Decision {
	d := p.decision
	result, _ := json.Marshal(map[string]any{"deny": d.Deny, "warn": d.Warn, "approval": d.Approval})
	rec := store.Decision{ID: d.ID, Time: now, Resource: resource, Operation: op, BundleRevision: d.BundleRevision, Result: result,
		Duration: p.took, Kind: kind}
	if len(p.input) > 0 {
		sum := sha256.Sum256(p.input)
		rec.InputDigest = hex.EncodeToString(sum[:])
		if len(p.input) <= store.MaxDecisionInputBytes {
			rec.Input = p.input
		}
	}
	return rec
}

// deny records a denied decision with its audit event and returns the error
// (a validate_only request records nothing).
func (c *Core) deny(ctx context.Context, id Identity, action, op string, opts WriteOptions, l *loop.Loop, p *prepared) error {
	d := p.decision
	resource := l.Metadata.ResourceName()
	if opts.ValidateOnly {
		return &DeniedError{Resource: resource, Decision: d}
	}
	requestID := opts.RequestID
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutDecision(ctx, decisionRecord(p, DecisionRequest, resource, op, c.now())); err != nil {
			return err
		}
		ev := eventFor(id, action, resource, requestID, audit.OutcomeDenied, map[string]any{
			"operation": op, "bundleRevision": d.BundleRevision,
			"deny": d.Deny, "warn": d.Warn, "approval": d.Approval,
		})
		ev.DecisionID = d.ID
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording a denied decision: %w", err)
	}
	return &DeniedError{Resource: resource, Decision: d}
}

// admitStatus is the status of a freshly admitted generation.
func admitStatus(prev loop.Status, l *loop.Loop, p *prepared, id Identity, now time.Time) loop.Status {
	st := prev
	gen := l.Metadata.Generation
	d := p.decision
	st.DecisionID = d.ID
	st.BundleRevision = d.BundleRevision
	st.Warnings = violations(d.Warn)
	st.ApprovalReasons = violations(d.Approval)
	st.NeedsApproval = d.NeedsApproval()
	st.Reviews = nil // reviews are of one generation
	st.RequestedBy = id.Subject
	if st.Cluster == "" {
		st.Cluster = p.cluster.Name
	}
	st.Partitions = p.derived.Partitions()
	msg := "allowed by policy"
	if n := len(d.Warn); n > 0 {
		msg = fmt.Sprintf("allowed by policy with %d warning(s)", n)
	}
	st.SetCondition(loop.Condition{Type: loop.CondPolicyCompliant, Status: loop.True, Reason: "Allowed", Message: msg, ObservedGeneration: gen}, now)
	if st.NeedsApproval {
		st.State = loop.StatePendingApproval
		st.SetCondition(loop.Condition{Type: loop.CondApproved, Status: loop.False, Reason: "AwaitingApproval",
			Message: outstandingText(Progress(&st)), ObservedGeneration: gen}, now)
	} else {
		st.State = loop.StateProvisioning
		st.SetCondition(loop.Condition{Type: loop.CondApproved, Status: loop.True, Reason: "NotRequired",
			Message: "policy requires no approval", ObservedGeneration: gen}, now)
	}
	if st.Condition(loop.CondProvisioned) == nil {
		st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.Unknown, Reason: "Pending", ObservedGeneration: gen}, now)
	}
	st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.False, Reason: "SpecChanged",
		Message: fmt.Sprintf("generation %d not yet applied", gen), ObservedGeneration: gen}, now)
	return st
}

// maxRequestIDBytes bounds a client's request id.
const maxRequestIDBytes = 128

// requestHash is the hex SHA-256 of a request's canonical JSON: what a retry
// must repeat exactly.
func requestHash(v any) string {
	raw, _ := json.Marshal(v) // maps marshal with sorted keys
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// replay implements request ids (AIP-155). A request id is bound to who
// sent which request: the subject, the action, the resource and the hash of
// the request. A retry of the same request returns the loop as it is now
// (what the first call produced, plus whatever happened since); the same id
// with anything else is refused with REQUEST_ID_REUSED, audited, and tells
// nothing about what the id was first used for.
func (c *Core) replay(ctx context.Context, id Identity, action, resource, hash, requestID string) (*loop.Loop, bool, error) {
	if requestID == "" {
		return nil, false, nil
	}
	if len(requestID) > maxRequestIDBytes {
		return nil, false, &InvalidError{Resource: resource, Problems: loop.FieldErrors{{Field: "request_id",
			Message: fmt.Sprintf("%d bytes: at most %d", len(requestID), maxRequestIDBytes)}}}
	}
	r, found, err := c.Store.GetRequest(ctx, requestID)
	if err != nil || !found {
		return nil, false, err
	}
	if r.Subject != id.Subject || r.Method != action || r.Resource != resource || r.Hash != hash {
		msg := requestIDReused(requestID)
		c.auditRefusal(ctx, id, action, resource, requestID, audit.OutcomeForbidden, "REQUEST_ID_REUSED", msg)
		return nil, false, &PreconditionError{Reason: "REQUEST_ID_REUSED", Message: msg}
	}
	team, name, ok := ParseLoopName(r.Resource)
	if !ok {
		return nil, false, fmt.Errorf("request id %q is bound to %q, which is not a loop", requestID, r.Resource)
	}
	l, err := c.Store.GetLoop(ctx, team, name)
	if err != nil {
		return nil, false, err
	}
	return l, true, nil
}

// requestIDReused is the refusal of a request id used before for another
// request; it tells nothing about what that was.
func requestIDReused(requestID string) string {
	return fmt.Sprintf("request id %q was already used for a different request; use a new request id for a new request (a retry must repeat the original request exactly, as the same caller)", requestID)
}

// ParseLoopName splits "teams/{team}/loops/{loop}".
func ParseLoopName(name string) (team, loopName string, ok bool) {
	return OwnedName(name, "loops")
}

// Create admits a new loop.
func (c *Core) Create(ctx context.Context, id Identity, l *loop.Loop, opts WriteOptions) (*loop.Loop, error) {
	resource := l.Metadata.ResourceName()
	hash := createHash(l, opts.ValidateOnly)
	if prev, ok, err := c.replay(ctx, id, "loop.create", resource, hash, opts.RequestID); err != nil || ok {
		return prev, err
	}
	l.Status = loop.Status{}
	p, err := c.prepare(ctx, id, "CREATE", l, nil)
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return nil, c.rejectInvalid(ctx, id, "loop.create", resource, opts, invalid.Problems)
	}
	if err != nil {
		return nil, err
	}
	if !p.decision.Allowed() {
		return nil, c.deny(ctx, id, "loop.create", "CREATE", opts, l, p)
	}
	admitNew(l, p, id, c.now())
	if opts.ValidateOnly {
		return l, nil
	}
	err = c.write(ctx, func(tx store.Tx) error {
		return c.writeCreate(ctx, tx, id, l, p, store.Request{ID: opts.RequestID, Hash: hash})
	})
	if err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("loop %s: %w (use update, or loopctl apply)", l.Metadata.Key(), err)
		}
		return nil, err
	}
	c.notify(l)
	return l, nil
}

// createHash is what a create's request id is bound to (see replay).
func createHash(l *loop.Loop, validateOnly bool) string {
	return requestHash(map[string]any{"labels": l.Metadata.Labels, "spec": l.Spec, "validateOnly": validateOnly})
}

// updateHash is what an update's request id is bound to (see replay).
func updateHash(desired *loop.Loop, etag string, validateOnly bool) string {
	return requestHash(map[string]any{"labels": desired.Metadata.Labels, "spec": desired.Spec, "etag": etag, "validateOnly": validateOnly})
}

// admitNew sets what admitting l as a new loop sets: its uid, generation 1,
// times and the admission status.
func admitNew(l *loop.Loop, p *prepared, id Identity, now time.Time) {
	l.Metadata.UID = newID("")
	l.Metadata.Generation = 1
	l.Metadata.CreateTime, l.Metadata.UpdateTime = now, now
	l.Status = admitStatus(loop.Status{}, l, p, id, now)
}

// writeCreate persists an admitted new loop inside tx: the loop, the names
// it claims, the decision, the audit event and the request id.
func (c *Core) writeCreate(ctx context.Context, tx store.Tx, id Identity, l *loop.Loop, p *prepared, req store.Request) error {
	if err := tx.CreateLoop(ctx, l); err != nil {
		return err
	}
	if err := c.claimNames(ctx, tx, id, l, p.claims, req.ID); err != nil {
		return err
	}
	return c.recordAdmission(ctx, tx, id, "loop.create", "CREATE", req, l, p)
}

// desiredNext is cur with desired's labels and spec (defaulted), and
// whether the spec or anything at all changes.
func desiredNext(cur, desired *loop.Loop) (next loop.Loop, specChanged, changed bool) {
	next = *cur
	next.Metadata.Labels = desired.Metadata.Labels
	next.Spec = desired.Spec
	loop.Default(&next)
	specChanged = !reflect.DeepEqual(next.Spec, cur.Spec)
	return next, specChanged, specChanged || !labelsEqual(next.Metadata.Labels, cur.Metadata.Labels)
}

// admitChange sets what admitting next as a change of cur sets: the update
// time and, when the spec changed, a new generation with its admission
// status.
func admitChange(next, cur *loop.Loop, specChanged bool, p *prepared, id Identity, now time.Time) {
	next.Metadata.UpdateTime = now
	if specChanged {
		next.Metadata.Generation++
		next.Status = admitStatus(cur.Status, next, p, id, now)
	}
}

// writeUpdate persists an admitted change of cur inside tx: the loop
// (guarded by cur's etag), the names it claims, the decision, the audit
// event and the request id.
func (c *Core) writeUpdate(ctx context.Context, tx store.Tx, id Identity, next, cur *loop.Loop, specChanged bool, p *prepared, req store.Request) error {
	if err := keepReconcilerState(ctx, tx, next, !specChanged); err != nil {
		return err
	}
	if err := tx.UpdateLoop(ctx, next, cur.Metadata.Etag); err != nil {
		return err
	}
	if err := c.claimNames(ctx, tx, id, next, p.claims, req.ID); err != nil {
		return err
	}
	return c.recordAdmission(ctx, tx, id, "loop.update", "UPDATE", req, next, p)
}

// recordAdmission writes the decision, the audit event and the request id.
func (c *Core) recordAdmission(ctx context.Context, tx store.Tx, id Identity, action, op string, req store.Request, l *loop.Loop, p *prepared) error {
	resource := l.Metadata.ResourceName()
	requestID := req.ID
	if err := tx.PutDecision(ctx, decisionRecord(p, DecisionRequest, resource, op, c.now())); err != nil {
		return err
	}
	ev := eventFor(id, action, resource, requestID, audit.OutcomeOK, map[string]any{
		"generation": l.Metadata.Generation, "bundleRevision": p.decision.BundleRevision,
		"warn": p.decision.Warn, "approval": p.decision.Approval, "cluster": p.cluster.Name,
		"state": l.Status.State,
	})
	ev.DecisionID = p.decision.ID
	if _, err := tx.AppendAudit(ctx, ev); err != nil {
		return err
	}
	if requestID != "" {
		req.Subject, req.Method, req.Resource = id.Subject, action, resource
		return tx.PutRequest(ctx, req)
	}
	return nil
}

func (c *Core) notify(l *loop.Loop) {
	if c.Notify != nil {
		c.Notify(l.Metadata.Key())
	}
}

// Update replaces the desired state (labels and spec) of a loop. An etag, when
// given, must match the stored one (else store.ErrEtagMismatch). An update
// that changes nothing is a no-op: no new generation, no audit event.
func (c *Core) Update(ctx context.Context, id Identity, desired *loop.Loop, etag string, opts WriteOptions) (*loop.Loop, error) {
	resource := desired.Metadata.ResourceName()
	hash := updateHash(desired, etag, opts.ValidateOnly)
	if prev, ok, err := c.replay(ctx, id, "loop.update", resource, hash, opts.RequestID); err != nil || ok {
		return prev, err
	}
	cur, err := c.Store.GetLoop(ctx, desired.Metadata.Team, desired.Metadata.Name)
	if err != nil {
		return nil, fmt.Errorf("loop %s: %w", desired.Metadata.Key(), err)
	}
	if etag != "" && etag != cur.Metadata.Etag {
		return nil, fmt.Errorf("loop %s: %w", desired.Metadata.Key(), store.ErrEtagMismatch)
	}
	if !cur.Metadata.DeleteTime.IsZero() {
		return nil, &PreconditionError{Reason: "LOOP_DELETING", Message: fmt.Sprintf("loop %s is being deleted", desired.Metadata.Key())}
	}
	next, specChanged, changed := desiredNext(cur, desired)
	if !changed {
		return cur, nil
	}
	p, err := c.prepare(ctx, id, "UPDATE", &next, cur)
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return nil, c.rejectInvalid(ctx, id, "loop.update", resource, opts, invalid.Problems)
	}
	if err != nil {
		return nil, err
	}
	if !p.decision.Allowed() {
		return nil, c.deny(ctx, id, "loop.update", "UPDATE", opts, &next, p)
	}
	admitChange(&next, cur, specChanged, p, id, c.now())
	if opts.ValidateOnly {
		return &next, nil
	}
	err = c.write(ctx, func(tx store.Tx) error {
		return c.writeUpdate(ctx, tx, id, &next, cur, specChanged, p, store.Request{ID: opts.RequestID, Hash: hash})
	})
	if err != nil {
		return nil, fmt.Errorf("loop %s: %w", next.Metadata.Key(), err)
	}
	c.notify(&next)
	return &next, nil
}

// keepReconcilerState brings into next, inside the write transaction, what
// the reconciler wrote since the API read the loop. The etag covers the
// desired state only, so a status write does not fail the API's CAS; writing
// the stale copy back would forget topics the reconciler claimed (which it
// would then refuse as foreign, or fail to delete). With wholeStatus (the
// spec is unchanged) next takes the fresh status as it is; otherwise the new
// generation's admission status keeps the fresh inventory and cluster.
func keepReconcilerState(ctx context.Context, tx store.Tx, next *loop.Loop, wholeStatus bool) error {
	fresh, err := tx.GetLoop(ctx, next.Metadata.Team, next.Metadata.Name)
	if err != nil {
		return err
	}
	if wholeStatus {
		next.Status = fresh.Status
		return nil
	}
	next.Status.Inventory = fresh.Status.Inventory
	if fresh.Status.Cluster != "" {
		next.Status.Cluster = fresh.Status.Cluster
	}
	return nil
}

// markDeleting is the status of a loop whose deletion was just requested.
func markDeleting(st *loop.Status, id Identity, gen int64, now time.Time) {
	st.State = loop.StateDeleting
	st.RequestedBy = id.Subject
	st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.False, Reason: "Deleting",
		Message: "removing topics, ACLs and quotas", ObservedGeneration: gen}, now)
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Delete marks a loop for deletion; the reconciler removes its topics, ACLs
// and quotas, then the loop itself. Topics are only ever deleted this way.
func (c *Core) Delete(ctx context.Context, id Identity, team, name, etag string, opts WriteOptions) (*loop.Loop, error) {
	resource := loop.Metadata{Team: team, Name: name}.ResourceName()
	cur, err := c.Store.GetLoop(ctx, team, name)
	if err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	if etag != "" && etag != cur.Metadata.Etag {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, store.ErrEtagMismatch)
	}
	if !cur.Metadata.DeleteTime.IsZero() {
		return cur, nil // already being deleted: idempotent
	}
	p, err := c.prepare(ctx, id, "DELETE", cloneLoop(cur), cur)
	if err != nil {
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			return nil, err
		}
		// A stored loop that no longer validates (e.g. its team left the
		// catalog) can still be deleted.
		p = nil
	}
	if p != nil && !p.decision.Allowed() {
		return nil, c.deny(ctx, id, "loop.delete", "DELETE", opts, cur, p)
	}
	next := cloneLoop(cur)
	now := c.now()
	next.Metadata.DeleteTime = now
	next.Metadata.UpdateTime = now
	markDeleting(&next.Status, id, next.Metadata.Generation, now)
	if opts.ValidateOnly {
		return next, nil
	}
	err = c.write(ctx, func(tx store.Tx) error {
		// Mark the freshest status: the reconciler may have written it since.
		if err := keepReconcilerState(ctx, tx, next, true); err != nil {
			return err
		}
		markDeleting(&next.Status, id, next.Metadata.Generation, now)
		if err := tx.UpdateLoop(ctx, next, cur.Metadata.Etag); err != nil {
			return err
		}
		ev := eventFor(id, "loop.delete", resource, opts.RequestID, audit.OutcomeOK, map[string]any{"generation": next.Metadata.Generation})
		if p != nil {
			if err := tx.PutDecision(ctx, decisionRecord(p, DecisionRequest, resource, "DELETE", now)); err != nil {
				return err
			}
			ev.DecisionID = p.decision.ID
		}
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	c.notify(next)
	return next, nil
}

func cloneLoop(l *loop.Loop) *loop.Loop {
	raw, _ := json.Marshal(l)
	var out loop.Loop
	_ = json.Unmarshal(raw, &out)
	return &out
}

// Get returns a loop the identity may see.
func (c *Core) Get(ctx context.Context, id Identity, team, name string) (*loop.Loop, error) {
	l, err := c.Store.GetLoop(ctx, team, name)
	if err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	return l, nil
}

// List returns a page of the loops the identity may see; team "" = all.
func (c *Core) List(ctx context.Context, id Identity, opts store.ListOptions) ([]*loop.Loop, string, error) {
	all, teams := c.authz().Visible(id, "loop.list")
	if opts.Team == "" && !all && len(teams) == 1 {
		opts.Team = teams[0]
	}
	loops, next, err := c.Store.ListLoops(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	if !all {
		// The caller was authorized for the listing; it sees its teams only.
		loops = slices.DeleteFunc(loops, func(l *loop.Loop) bool { return !slices.Contains(teams, l.Metadata.Team) })
	}
	return loops, next, nil
}

// PlanResult is what `:plan` shows: the verdict and the exact changes.
type PlanResult struct {
	Operation string // CREATE | UPDATE | NOOP
	Decision  policy.Decision
	Cluster   catalog.Cluster
	Derived   provisioning.Resources
	// Cost is what the loop would cost per month once applied;
	// CurrentCost what the stored loop costs now (nil for a CREATE).
	Cost, CurrentCost *cost.Estimate
	Actions           []provisioning.Action
	Problems          []provisioning.Problem
}

// Plan evaluates l as create or update would and computes the changes apply
// would make, through the same code path with a read-only admin client.
// Nothing is persisted and nothing is written to any cluster.
func (c *Core) Plan(ctx context.Context, id Identity, l *loop.Loop) (*PlanResult, error) {
	pp, err := c.preparePlan(ctx, id, l)
	if err != nil || pp.admin == nil {
		return pp.res, err
	}
	computed, err := reconciler.Compute(ctx, c.peers(), pp.admin, pp.next, pp.res.Cluster)
	if err != nil {
		return nil, err
	}
	pp.finish(computed)
	c.logPlans(ctx, []plannedLoop{pp})
	return pp.res, nil
}

// DecisionPlan is the decision-log kind of a plan's evaluation.
const DecisionPlan = "plan"

// logPlans records the policy decisions of plans in the decision log. A
// plan changes nothing, so its answer does not wait for the record: the
// decisions are written by one background writer, a batch's in one
// transaction (Close writes what is queued). Should the queue be full or
// the write fail, the loss is logged; the plan's answer stands.
func (c *Core) logPlans(ctx context.Context, plans []plannedLoop) {
	now := c.now()
	var recs []store.Decision
	for _, pp := range plans {
		if pp.p != nil {
			recs = append(recs, decisionRecord(pp.p, DecisionPlan, pp.next.Metadata.ResourceName(), pp.op, now))
		}
	}
	if len(recs) == 0 {
		return
	}
	c.planLogOnce.Do(func() { c.planLog = newPlanLog(c.Store, c.logger()) })
	if c.planLog == nil {
		return // closed
	}
	c.planLog.add(recs)
}

// planLog writes plan decisions in the background.
type planLog struct {
	store store.Store
	log   *slog.Logger
	mu    sync.Mutex
	ch    chan []store.Decision
	done  chan struct{}
	shut  bool
}

// planLogQueue bounds the batches of plan decisions waiting to be written.
const planLogQueue = 64

func newPlanLog(st store.Store, log *slog.Logger) *planLog {
	l := &planLog{store: st, log: log, ch: make(chan []store.Decision, planLogQueue), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *planLog) add(recs []store.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut {
		return
	}
	select {
	case l.ch <- recs:
	default:
		l.log.Warn("decision log queue full; plan decisions not recorded", "decisions", len(recs))
	}
}

func (l *planLog) run() {
	defer close(l.done)
	for recs := range l.ch {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.store.Update(ctx, func(tx store.Tx) error {
			for _, r := range recs {
				if err := tx.PutDecision(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			l.log.Warn("recording plan decisions in the decision log failed", "decisions", len(recs), "err", err)
		}
	}
}

// close writes what is queued and stops the writer (at most 10 s).
func (l *planLog) close() {
	l.mu.Lock()
	if !l.shut {
		l.shut = true
		close(l.ch)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		l.log.Warn("plan decisions still being written at shutdown")
	}
}

// plannedLoop is a plan before its cluster is observed.
type plannedLoop struct {
	res   *PlanResult
	next  *loop.Loop         // the loop as applying would leave it
	admin provisioning.Admin // read-only; nil: no cluster to observe
	p     *prepared          // the evaluation, for the decision log
	op    string             // CREATE or UPDATE, as policy saw it
}

// preparePlan is Plan up to observing the cluster: the loop as applying
// would leave it, its verdict and derived resources.
func (c *Core) preparePlan(ctx context.Context, id Identity, l *loop.Loop) (plannedLoop, error) {
	ctx = withDecisionKind(ctx, DecisionPlan)
	cur, err := c.Store.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return plannedLoop{}, err
	}
	op := "CREATE"
	next := cloneLoop(l)
	if cur != nil {
		op = "UPDATE"
		n := cloneLoop(cur)
		n.Metadata.Labels = l.Metadata.Labels
		n.Spec = l.Spec
		next = n
	}
	p, err := c.prepare(ctx, id, op, next, cur)
	if err != nil {
		return plannedLoop{}, err
	}
	res := &PlanResult{Operation: op, Decision: p.decision, Cluster: p.cluster, Derived: p.derived, Cost: p.cost}
	if cur != nil {
		res.CurrentCost = c.CostOf(cur)
	}
	if cur != nil && reflect.DeepEqual(next.Spec, cur.Spec) {
		res.Operation = "NOOP"
	}
	// An unknown region has no admin: policy already says so.
	return plannedLoop{res: res, next: next, admin: c.PlanAdmins[p.cluster.Name], p: p, op: op}, nil
}

// finish completes the plan with what Compute found.
func (pp plannedLoop) finish(computed reconciler.Computed) {
	pp.res.Actions = computed.Plan.Actions
	pp.res.Problems = computed.Plan.Problems
	if pp.res.Operation == "NOOP" && len(pp.res.Actions) > 0 {
		pp.res.Operation = "UPDATE" // the spec is unchanged but the cluster drifted
	}
}

// peers is what `:plan` reads other loops' shares from (see Core.Peers).
func (c *Core) peers() reconciler.Peers {
	if c.Peers != nil {
		return c.Peers
	}
	return reconciler.StorePeers{Store: c.Store, Catalog: c.Catalog}
}
