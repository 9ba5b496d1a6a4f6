package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/internal/utf8clip"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// PolicyActor is the audit actor of re-evaluations.
const PolicyActor = "loopgate/policy"

// ActionReevaluated is the audit action recorded when every loop has been
// re-evaluated against a bundle (resource policy/bundles/{revision}).
const ActionReevaluated = "policy.reevaluated"

// maxComplianceMessage bounds the PolicyCompliant condition's message.
const maxComplianceMessage = 2048

// ReevaluateResult counts what a re-evaluation of every loop found.
type ReevaluateResult struct {
	Loops         int // loops evaluated (not being deleted)
	NonCompliant  int // of which the active bundle would deny now
	Changed       int // whose PolicyCompliant condition changed
	BundleVersion string
}

// ReevaluateAll judges every loop, as it is, by the active bundle — as if
// its current spec were submitted again now (operation UPDATE, the loop as
// its own previous version, so approval reasons about changes do not
// fire) — and records the verdict in its PolicyCompliant condition: True,
// or False naming every failing rule id with its message. Nothing changes
// on a cluster: a loop that no longer complies is flagged, never changed
// or deleted. A loop whose compliance flips gets an audit event.
func (c *Core) ReevaluateAll(ctx context.Context) (ReevaluateResult, error) {
	res := ReevaluateResult{BundleVersion: c.Policy.Revision()}
	id := Identity{Subject: PolicyActor, Roles: []string{RoleAdmin}}
	// One partition sum per team and one read of the active waivers for
	// the pass, not one of each per loop.
	ctx, err := c.withWaiverSnapshot(withPartitionTotals(ctx))
	if err != nil {
		return res, err
	}
	// The activation this pass follows (recorded with it: NeedsReevaluation
	// compares sequence numbers, not two clocks).
	activationSeq, err := c.latestActivationSeq(ctx)
	if err != nil {
		return res, err
	}
	token := ""
	for {
		page, next, err := c.Store.ListLoops(ctx, store.ListOptions{PageSize: store.MaxPageSize, PageToken: token})
		if err != nil {
			return res, fmt.Errorf("listing loops: %w", err)
		}
		for _, l := range page {
			if !l.Metadata.DeleteTime.IsZero() {
				continue
			}
			res.Loops++
			cond, p, err := c.compliance(ctx, id, l)
			if err != nil {
				return res, err
			}
			if cond.Status == loop.False {
				res.NonCompliant++
			}
			changed, err := c.recordCompliance(ctx, l, cond, p)
			if err != nil {
				return res, err
			}
			if changed {
				res.Changed++
			}
		}
		if next == "" {
			// Recorded last: a pass cut short (a crash, an error) leaves no
			// event, so NeedsReevaluation asks for it again at start-up.
			ev := eventFor(id, ActionReevaluated, "policy/bundles/"+res.BundleVersion, "", audit.OutcomeOK,
				map[string]any{"loops": res.Loops, "nonCompliant": res.NonCompliant, "changed": res.Changed, "activationSeq": activationSeq})
			if err := c.audit(ctx, ev); err != nil {
				return res, fmt.Errorf("recording the re-evaluation: %w", err)
			}
			return res, nil
		}
		token = next
	}
}

// NeedsReevaluation reports whether the loops are owed a re-evaluation
// against the active bundle: none completed for its revision (a new
// built-in bundle after an upgrade, or a pass a crash cut short), or a
// bundle was activated after the activation the last pass followed.
func (c *Core) NeedsReevaluation(ctx context.Context) (bool, error) {
	evs, err := c.Store.ListAudit(ctx, store.AuditFilter{Action: ActionReevaluated, Actor: PolicyActor, Newest: true, PageSize: 1})
	if err != nil {
		return false, err
	}
	if len(evs) == 0 || evs[0].Resource != "policy/bundles/"+c.Policy.Revision() {
		return true, nil
	}
	var last struct {
		ActivationSeq *int64 `json:"activationSeq"`
	}
	if json.Unmarshal(evs[0].Details, &last) != nil || last.ActivationSeq == nil {
		return true, nil // recorded without it: owed, to be sure
	}
	seq, err := c.latestActivationSeq(ctx)
	if err != nil {
		return false, err
	}
	return seq > *last.ActivationSeq, nil
}

// latestActivationSeq is the sequence number of the latest bundle
// activation or rollback (0 when there was none).
func (c *Core) latestActivationSeq(ctx context.Context) (int64, error) {
	acts, err := c.Store.ListPolicyActivations(ctx, store.ActivationFilter{Limit: 1})
	if err != nil || len(acts) == 0 {
		return 0, err
	}
	return acts[0].Seq, nil
}

// compliance is l's PolicyCompliant condition under the active bundle, and
// the evaluation it comes from (nil when the spec no longer validates).
func (c *Core) compliance(ctx context.Context, id Identity, l *loop.Loop) (loop.Condition, *prepared, error) {
	ctx = withDecisionKind(ctx, DecisionReevaluation)
	gen := l.Metadata.Generation
	p, err := c.prepare(ctx, id, "UPDATE", cloneLoop(l), l)
	var invalid *InvalidError
	switch {
	case errors.As(err, &invalid):
		return loop.Condition{Type: loop.CondPolicyCompliant, Status: loop.False, Reason: "NoLongerValid",
			Message: clipMessage("the spec no longer validates: " + invalid.Problems.Error()), ObservedGeneration: gen}, nil, nil
	case err != nil:
		return loop.Condition{}, nil, fmt.Errorf("re-evaluating %s: %w", l.Metadata.Key(), err)
	}
	d := p.decision
	if d.Allowed() {
		msg := fmt.Sprintf("allowed by policy bundle %s", d.BundleRevision)
		if n := len(d.Warn); n > 0 {
			msg += fmt.Sprintf(" with %d warning(s)", n)
		}
		return loop.Condition{Type: loop.CondPolicyCompliant, Status: loop.True, Reason: "Allowed", Message: msg, ObservedGeneration: gen}, p, nil
	}
	parts := make([]string, len(d.Deny))
	for i, v := range d.Deny {
		parts[i] = v.ID + ": " + v.Msg
	}
	msg := fmt.Sprintf("policy bundle %s would deny it now (decision %s): %s; the loop is unchanged and stays provisioned — change its spec, or ask a security reviewer for a waiver",
		d.BundleRevision, d.ID, strings.Join(parts, "; "))
	return loop.Condition{Type: loop.CondPolicyCompliant, Status: loop.False, Reason: "NoLongerCompliant",
		Message: clipMessage(msg), ObservedGeneration: gen}, p, nil
}

func clipMessage(s string) string { return utf8clip.WithEllipsis(s, maxComplianceMessage, "...") }

// recordCompliance writes cond into l's status unless it says the same
// already (or l changed meanwhile: its own admission judged it), with the
// decision (p, if any) and an audit event linking it when compliance flips.
func (c *Core) recordCompliance(ctx context.Context, l *loop.Loop, cond loop.Condition, p *prepared) (changed bool, err error) {
	if cur := l.Status.Condition(loop.CondPolicyCompliant); cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason && cur.Message == cond.Message {
		return false, nil
	}
	err = c.Store.Update(ctx, func(tx store.Tx) error {
		changed = false
		cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Metadata.Generation != l.Metadata.Generation || !cur.Metadata.DeleteTime.IsZero() {
			return nil
		}
		st := cur.Status
		prev := st.Condition(loop.CondPolicyCompliant)
		flipped := prev == nil || prev.Status != cond.Status
		st.SetCondition(cond, c.now())
		if err := tx.UpdateStatus(ctx, cur.Metadata.Team, cur.Metadata.Name, st); err != nil {
			return err
		}
		changed = true
		if !flipped {
			return nil
		}
		outcome := audit.OutcomeOK
		if cond.Status == loop.False {
			outcome = audit.OutcomeDenied
		}
		ev := eventFor(Identity{Subject: PolicyActor}, "loop.reevaluate", cur.Metadata.ResourceName(), "", outcome,
			map[string]any{"generation": cur.Metadata.Generation, "compliant": cond.Status, "reason": cond.Reason, "message": cond.Message, "bundle": c.Policy.Revision()})
		if p != nil {
			if err := tx.PutDecision(ctx, decisionRecord(p, DecisionReevaluation, cur.Metadata.ResourceName(), "UPDATE", c.now())); err != nil {
				return err
			}
			ev.DecisionID = p.decision.ID
		}
		_, err = tx.AppendAudit(ctx, ev)
		return err
	})
	return changed, err
}
