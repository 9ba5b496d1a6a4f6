package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// Impact analysis, the decision log and explanations (issue 10, items 2
// and 4): what a candidate bundle would change, and why a decision was
// made.

// Bounds of impact analysis and decision listings.
const (
	DefaultImpactReplay = 100
	MaxImpactReplay     = 1000
	MaxDecisionPage     = 1000
	// impactConcurrency is how many loops an impact analysis evaluates at
	// once.
	impactConcurrency = 4
)

// LoopImpact is how one loop's verdict would change under a candidate.
type LoopImpact struct {
	Loop  string // resource name
	Delta policy.Delta
	// CandidateDecision is the id of the candidate's decision, recorded in
	// the decision log with kind DecisionImpact.
	CandidateDecision string
}

// DecisionFlip is a recorded decision a candidate would decide otherwise.
type DecisionFlip struct {
	Decision          store.Decision
	Delta             policy.Delta
	CandidateDecision string // as LoopImpact's
}

// PolicyImpact is what activating a candidate would change.
type PolicyImpact struct {
	Bundle, Active    string // revisions ("" = built-in)
	LoopsEvaluated    int
	Loops             []LoopImpact
	DecisionsReplayed int
	Flips             []DecisionFlip
	Took              time.Duration
}

// bundleOf returns the parsed bundle of revision ("" or BuiltinRevision =
// the built-in one).
func (c *Core) bundleOf(ctx context.Context, revision string) (*bundle.Bundle, error) {
	if revision == "" || revision == BuiltinRevision {
		b := c.governance().Builtin
		if b == nil {
			return nil, errors.New("the built-in bundle is not known to this process")
		}
		cp := b.Copy()
		return &cp, nil
	}
	sb, err := c.Store.GetPolicyBundle(ctx, revision)
	if err != nil {
		return nil, &KindError{Kind: KindPolicyBundle, Err: fmt.Errorf("policy bundle %s: %w", revision, err)}
	}
	return policy.ReadArchive(sb.Archive, nil)
}

// PolicyImpact evaluates every live loop with the candidate and with the
// active bundle, from the same input, and replays the inputs of the most
// recent decisions (at most replay, made at or after since). The
// candidate's decisions go to the decision log (kind impact), and an audit
// event says who asked; nothing else changes.
func (c *Core) PolicyImpact(ctx context.Context, id Identity, revision string, replay int, since time.Time) (*PolicyImpact, error) {
	const action = "policy.impact"
	resource := bundleName(revision)
	if replay < 0 || replay > MaxImpactReplay {
		return nil, c.rejectInvalid(ctx, id, action, resource, WriteOptions{}, loop.FieldErrors{{Field: "recent_decisions",
			Message: fmt.Sprintf("%d: want 0 (%d) to %d", replay, DefaultImpactReplay, MaxImpactReplay)}})
	}
	if replay == 0 {
		replay = DefaultImpactReplay
	}
	start := time.Now()
	cb, err := c.bundleOf(ctx, revision)
	if err != nil {
		return nil, err
	}
	candidate, err := policy.NewEngine(ctx, cb)
	if err != nil {
		return nil, fmt.Errorf("preparing policy bundle %s: %w", revision, err)
	}
	out := &PolicyImpact{Bundle: revision, Active: c.ActiveRevision()}
	if out.Bundle == BuiltinRevision {
		out.Bundle = ""
	}
	sys := Identity{Subject: PolicyActor, Roles: []string{RoleAdmin}}
	// One partition sum per team and one read of the active waivers, not
	// one of each per loop.
	ectx, err := c.withWaiverSnapshot(withDecisionKind(withPartitionTotals(ctx), DecisionImpact))
	if err != nil {
		return nil, err
	}
	var live []*loop.Loop
	token := ""
	for {
		page, next, err := c.Store.ListLoops(ctx, store.ListOptions{PageSize: store.MaxPageSize, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing loops: %w", err)
		}
		for _, l := range page {
			if l.Metadata.DeleteTime.IsZero() {
				live = append(live, l)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	out.LoopsEvaluated = len(live)
	// Each loop is evaluated by both bundles from one input; loops are
	// independent, so they are evaluated side by side. Every candidate
	// evaluation goes to the decision log (kind impact) with its input
	// digest; its input is kept when the candidate changes something, so
	// that the decisions a reviewer will look at can be explained.
	impacts := make([]*LoopImpact, len(live))
	logged := make([]*store.Decision, len(live))
	errs := make([]error, len(live))
	forEach(len(live), impactConcurrency, func(i int) {
		l := live[i]
		p, err := c.prepare(ectx, sys, "UPDATE", cloneLoop(l), l)
		var invalid *InvalidError
		switch {
		case errors.As(err, &invalid):
			return // invalid under either bundle alike: not the bundle's impact
		case err != nil:
			errs[i] = fmt.Errorf("evaluating %s: %w", l.Metadata.Key(), err)
			return
		}
		t0 := time.Now()
		after, err := c.evaluateCandidate(ctx, candidate, p.input)
		took := time.Since(t0)
		if err != nil {
			c.logger().Warn("the candidate bundle failed to evaluate a loop; counted as denying it", "loop", l.Metadata.Key(), "err", err)
		}
		d := policy.Compare(p.decision, after)
		affected := d.Changed() || d.Flips()
		rec := impactRecord(after, l.Metadata.ResourceName(), "UPDATE", p.input, took, affected, c.now())
		logged[i] = &rec
		if affected {
			impacts[i] = &LoopImpact{Loop: l.Metadata.ResourceName(), Delta: d, CandidateDecision: after.ID}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, im := range impacts {
		if im != nil {
			out.Loops = append(out.Loops, *im)
		}
	}
	// Requests only: plans, re-evaluations and earlier impact runs are not
	// what the active bundle decided for someone.
	decisions, err := c.Store.ListDecisions(ctx, store.DecisionFilter{Since: since, Limit: replay, Kind: DecisionRequest})
	if err != nil {
		return nil, err
	}
	// Replays are independent too.
	flips := make([]*DecisionFlip, len(decisions))
	replayed := make([]*store.Decision, len(decisions))
	forEach(len(decisions), impactConcurrency, func(i int) {
		rec := decisions[i]
		if len(rec.Input) == 0 {
			return
		}
		before, err := recordedDecision(rec)
		if err != nil {
			return
		}
		t0 := time.Now()
		after, _ := c.evaluateCandidate(ctx, candidate, rec.Input)
		took := time.Since(t0)
		d := policy.Compare(before, after)
		r := impactRecord(after, rec.Resource, rec.Operation, rec.Input, took, d.Flips(), c.now())
		replayed[i] = &r
		if d.Flips() {
			rec.Input = nil
			flips[i] = &DecisionFlip{Decision: rec, Delta: d, CandidateDecision: after.ID}
		}
	})
	for i, f := range flips {
		if replayed[i] != nil {
			out.DecisionsReplayed++
		}
		if f != nil {
			out.Flips = append(out.Flips, *f)
		}
	}
	if err := c.logImpact(ctx, append(logged, replayed...)); err != nil {
		return nil, err
	}
	out.Took = time.Since(start)
	_ = c.audit(ctx, eventFor(id, action, resource, "", audit.OutcomeOK, map[string]any{
		"loops": out.LoopsEvaluated, "affected": len(out.Loops), "replayed": out.DecisionsReplayed, "flips": len(out.Flips),
	}))
	return out, nil
}

// DecisionImpact is the decision-log kind of a candidate bundle's
// evaluation during an impact analysis.
const DecisionImpact = "impact"

// impactRecord is the decision log's record of a candidate's decision. The
// input is kept when keepInput (the candidate changes something): an
// unchanged loop's input is the same as its last decision's, and 10,000
// copies of it per run would crowd request decisions out of the log.
func impactRecord(d policy.Decision, resource, op string, input []byte, took time.Duration, keepInput bool, now time.Time) store.Decision {
	p := &prepared{decision: d, took: took}
	if keepInput {
		p.input = input
	}
	rec := decisionRecord(p, DecisionImpact, resource, op, now)
	if !keepInput && len(input) > 0 {
		sum := sha256.Sum256(input)
		rec.InputDigest = hex.EncodeToString(sum[:])
	}
	return rec
}

// impactLogBatch is how many impact decisions one transaction writes.
const impactLogBatch = 500

// logImpact writes the candidate's decisions of an impact run (nil entries
// are skipped) before the run's answer is given, a batch per transaction.
func (c *Core) logImpact(ctx context.Context, recs []*store.Decision) error {
	var batch []store.Decision
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Store.Update(ctx, func(tx store.Tx) error {
			for _, r := range batch {
				if err := tx.PutDecision(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("recording the impact run's decisions: %w", err)
		}
		return nil
	}
	for _, r := range recs {
		if r == nil {
			continue
		}
		batch = append(batch, *r)
		if len(batch) == impactLogBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// recordedDecision reads a decision log record back as a policy.Decision.
func recordedDecision(rec store.Decision) (policy.Decision, error) {
	d := policy.Decision{ID: rec.ID, BundleRevision: rec.BundleRevision}
	if len(rec.Result) == 0 {
		return d, errors.New("no result")
	}
	var res struct {
		Deny, Warn, Approval []policy.Violation
	}
	if err := json.Unmarshal(rec.Result, &res); err != nil {
		return d, err
	}
	d.Deny, d.Warn, d.Approval = res.Deny, res.Warn, res.Approval
	return d, nil
}

// DecisionView is a recorded decision as the API shows it.
type DecisionView struct {
	store.Decision
	InputKept            bool // the input is in the log (Decision.Input is left out of views)
	Verdict              string
	Deny, Warn, Approval []policy.Violation
}

func decisionView(rec store.Decision) DecisionView {
	d, _ := recordedDecision(rec)
	kept := len(rec.Input) > 0
	rec.Input = nil
	return DecisionView{Decision: rec, InputKept: kept, Verdict: d.Verdict(), Deny: d.Deny, Warn: d.Warn, Approval: d.Approval}
}

// ListDecisions lists recorded decisions, newest first; team members see
// the decisions about their teams' loops only (a resource of another team
// is refused, a listing of all is cut to theirs).
func (c *Core) ListDecisions(ctx context.Context, id Identity, f store.DecisionFilter) ([]DecisionView, string, error) {
	const action = "policy.decisions"
	if f.Limit < 0 || f.Limit > MaxDecisionPage {
		return nil, "", c.rejectInvalid(ctx, id, action, "policy/decisions", WriteOptions{}, loop.FieldErrors{{Field: "page_size",
			Message: fmt.Sprintf("%d: want 0 (100) to %d", f.Limit, MaxDecisionPage)}})
	}
	if f.Rule != "" && (len(f.Rule) > MaxRuleIDBytes || !ruleIDPattern.MatchString(f.Rule)) {
		return nil, "", c.rejectInvalid(ctx, id, action, "policy/decisions", WriteOptions{}, loop.FieldErrors{{Field: "rule",
			Message: fmt.Sprintf("%q is not a rule id: want UPPER_SNAKE, at most %d bytes (e.g. PII_RESIDENCY)", clip(f.Rule, MaxRuleIDBytes), MaxRuleIDBytes)}})
	}
	if len(f.Before) > 128 {
		return nil, "", c.rejectInvalid(ctx, id, action, "policy/decisions", WriteOptions{}, loop.FieldErrors{{Field: "page_token",
			Message: "not a token this server returned: list again without it"}})
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	all, teams := c.authz().Visible(id, action)
	visible := func(resource string) bool {
		if all {
			return true
		}
		team, _, ok := ParseLoopName(resource)
		return ok && slices.Contains(teams, team)
	}
	if f.Resource != "" && !visible(f.Resource) {
		msg := fmt.Sprintf("%s may not read the decisions about %s: only those of %s", id.Subject, f.Resource, teamsText(teams))
		c.refuse(ctx, id, action, f.Resource, audit.OutcomeForbidden, "TEAM_SCOPE", msg)
		return nil, "", &ForbiddenError{Reason: "TEAM_SCOPE", Message: msg}
	}
	// Cut to the visible teams page by page: a team member's page may take
	// several store pages (bounded).
	var out []DecisionView
	next := ""
	for range 20 {
		page, err := c.Store.ListDecisions(ctx, f)
		if err != nil {
			return nil, "", err
		}
		for _, rec := range page {
			if visible(rec.Resource) {
				out = append(out, decisionView(rec))
			}
		}
		if len(page) < f.Limit {
			next = ""
			break
		}
		f.Before = page[len(page)-1].ID
		next = f.Before
		if len(out) >= f.Limit {
			break
		}
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// Explanation is a recorded decision evaluated again with the bundle that
// made it.
type Explanation struct {
	Decision   DecisionView
	Reproduced bool
	Rules      []policy.FiredRule
	Trace      []string
}

// ExplainDecision evaluates the recorded input of decision id again with
// the bundle that made it and names the rules that fired.
func (c *Core) ExplainDecision(ctx context.Context, id Identity, decisionID string) (*Explanation, error) {
	const action = "policy.decisions" // the action ExplainPolicyDecision is authorized as
	resource := "policy/decisions/" + decisionID
	rec, err := c.Store.GetDecision(ctx, decisionID)
	if err != nil {
		return nil, &KindError{Kind: KindDecision, Err: fmt.Errorf("decision %s: %w", decisionID, err)}
	}
	all, teams := c.authz().Visible(id, "policy.decisions")
	if team, _, ok := ParseLoopName(rec.Resource); !all && (!ok || !slices.Contains(teams, team)) {
		msg := fmt.Sprintf("%s may not read decision %s: it is about %s", id.Subject, decisionID, rec.Resource)
		c.refuse(ctx, id, action, resource, audit.OutcomeForbidden, "TEAM_SCOPE", msg)
		return nil, &ForbiddenError{Reason: "TEAM_SCOPE", Message: msg}
	}
	if len(rec.Input) == 0 {
		return nil, &PreconditionError{Reason: "INPUT_NOT_KEPT", Message: fmt.Sprintf(
			"decision %s was recorded without its input (before inputs were kept, or larger than %d KiB): it cannot be evaluated again", decisionID, store.MaxDecisionInputBytes>>10)}
	}
	b, err := c.bundleByManifestRevision(ctx, rec.BundleRevision)
	if err != nil {
		return nil, err
	}
	ex, err := policy.Explain(ctx, b, rec.Input)
	if err != nil && !errors.Is(err, policy.ErrEvaluationFailed) {
		return nil, err
	}
	before, _ := recordedDecision(*rec)
	d := policy.Compare(before, ex.Decision)
	return &Explanation{Decision: decisionView(*rec), Reproduced: !d.Changed() && !d.Flips(), Rules: ex.Rules, Trace: ex.Trace}, nil
}

// bundleByManifestRevision finds the bundle a decision names: the built-in
// one (by its manifest revision) or a stored one.
func (c *Core) bundleByManifestRevision(ctx context.Context, rev string) (*bundle.Bundle, error) {
	if b := c.governance().Builtin; b != nil && b.Manifest.Revision == rev {
		cp := b.Copy()
		return &cp, nil
	}
	b, err := c.bundleOf(ctx, rev)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &PreconditionError{Reason: "BUNDLE_UNKNOWN", Message: fmt.Sprintf(
				"the decision was made by bundle %s, which this server does not have (an earlier built-in bundle): it cannot be evaluated again", rev)}
		}
		return nil, err
	}
	return b, nil
}
