package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Reasons the reconciler records on a loop's Provisioned condition, besides
// provisioning's terminal reasons (provisioning.TerminalReason).
const (
	// ReasonPlanRefused: the plan has problems loopgate refuses to fix by
	// itself (a partition count would shrink, a replication factor
	// change); terminal. When every problem is a foreign topic the reason
	// is ReasonTopicNotOwned instead.
	ReasonPlanRefused = "PlanRefused"
	// ReasonNoCluster: the loop's cluster is not in the catalog or has no
	// admin client; terminal.
	ReasonNoCluster = "NoCluster"
	// ReasonObserveFailed: reading the cluster failed; retriable unless
	// the cause is terminal.
	ReasonObserveFailed = "ObserveFailed"
	// ReasonKafkaError: an admin operation failed; retriable unless the
	// cause is terminal.
	ReasonKafkaError = "KafkaError"
	// ReasonClusterUnreachable: the cluster could not be reached at all
	// (connection refused, reset, name not resolved); retriable. The rest
	// of the batch is not attempted: every request would wait its retry
	// budget out the same way.
	ReasonClusterUnreachable = "ClusterUnreachable"
)

// unreachable is the error recorded for a loop whose cluster cannot be
// reached.
func unreachable(cluster string, cause error) error {
	return fmt.Errorf("cluster %s is unreachable; retrying with backoff: %w", cluster, cause)
}

// Failure is the error Reconcile and ReconcileBatch return for a loop whose
// reconcile failed. Its message is the cause's.
type Failure struct {
	// Reason is the reason recorded on the loop's Provisioned condition.
	Reason string
	// Terminal is true when waiting cannot heal the failure: the loop is
	// parked (see the package doc).
	Terminal bool
	Err      error
}

func (f *Failure) Error() string { return f.Err.Error() }

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// IsTerminal reports whether err, returned by Reconcile or ReconcileBatch,
// is terminal: retrying before something changes cannot succeed.
func IsTerminal(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.Terminal
}

// terminalError marks a cause the reconciler itself knows to be terminal
// (plan problems, an unknown cluster), with its reason.
type terminalError struct {
	reason string
	err    error
}

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// classify returns the condition reason of a failure and whether it is
// terminal; fallback is the reason of a retriable one.
func classify(cause error, fallback string) (string, bool) {
	var te *terminalError
	if errors.As(cause, &te) {
		return te.reason, true
	}
	if reason, ok := provisioning.TerminalReason(cause); ok {
		return reason, true
	}
	return fallback, false
}

// errSuperseded is recorded for a loop whose reconcile found the loop
// changed (another generation, deleted, recreated) between reading it and
// writing: nothing is recorded for the stale copy and the key is reconciled
// again from the fresh one. Neither a failure nor a success.
var errSuperseded = errors.New("the loop changed during the reconcile")

// claim runs inside a batch's intent transaction, for every loop of the
// batch that was live when read. It re-reads the loop and records in its
// inventory the groups and principals its spec named as read — the batch's
// plans may provision them for it, whatever happened to the loop since —
// and, when the loop is still the desired state that was planned, the
// topics its plan creates. With intent (the loop has actions) it then
// appends the intent event. cur is the loop as it is now (nil if gone); ok
// is false, and no intent is recorded, when it changed.
func (r *Reconciler) claim(ctx context.Context, tx store.Tx, it *item, intent bool) (cur *loop.Loop, ok bool, err error) {
	l := it.l
	cur, err = tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	ok = sameDesired(cur, l) && (deleting(cur) || !awaitingApproval(cur))
	if !deleting(l) && cur.Metadata.UID == l.Metadata.UID {
		st := cur.Status
		names := inventoryOf(provisioning.Derive(l, it.cl))
		var created []string
		if ok && intent {
			for _, a := range it.plan.Actions {
				if a.Kind == provisioning.CreateTopic && a.Topic != nil {
					created = append(created, a.Topic.Name)
				}
			}
		}
		st.Inventory = loop.Inventory{
			Topics:     union(st.Inventory.Topics, created),
			Groups:     union(st.Inventory.Groups, names.Groups),
			Principals: union(st.Inventory.Principals, names.Principals),
		}
		if ok && st.Cluster == "" {
			st.Cluster = it.cl.Name
		}
		if !sameInventory(st.Inventory, cur.Status.Inventory) || st.Cluster != cur.Status.Cluster {
			if err := tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st); err != nil {
				return nil, false, err
			}
			cur.Status = st
		}
	}
	if ok && intent {
		if _, err := tx.AppendAudit(ctx, r.intentEvent(l, it.cl, it.plan.Actions)); err != nil {
			return nil, false, err
		}
	}
	return cur, ok, nil
}

// intentEvent is the audit event listing the operations about to run on
// l's behalf; it is committed before any of them runs.
func (r *Reconciler) intentEvent(l *loop.Loop, cl catalog.Cluster, actions []provisioning.Action) audit.Event {
	ops := make([]string, len(actions))
	for i, a := range actions {
		ops[i] = describeAction(a)
	}
	action := "loop.provision.start"
	if deleting(l) {
		action = "loop.deprovision.start"
	}
	details := map[string]any{"generation": l.Metadata.Generation, "cluster": cl.Name, "planned": ops}
	return r.event(l, action, audit.OutcomeOK, details)
}

func (r *Reconciler) event(l *loop.Loop, action, outcome string, details map[string]any) audit.Event {
	raw, _ := json.Marshal(details)
	return audit.Event{
		ID: audit.NewID(), Actor: Actor, Action: action, Resource: l.Metadata.ResourceName(),
		DecisionID: l.Status.DecisionID, Outcome: outcome, Details: raw,
	}
}

func opsOf(results []provisioning.OpResult) []map[string]string {
	out := make([]map[string]string, len(results))
	for i, res := range results {
		m := map[string]string{"op": res.Op, "result": "OK"}
		if res.Err != "" {
			m["result"] = res.Err
		}
		out[i] = m
	}
	return out
}

// finishApply records success, inside tx: an audit event with every admin
// operation and its result (when anything was done), then, if the loop is
// still the desired state that was applied, status READY with the
// inventory pruned to what this generation needs: the plan just removed
// everything else in the loop's scope. superseded is true when the loop
// changed meanwhile; its inventory, claimed before the operations ran,
// then stays as it is for the next reconcile (or the deletion) to use.
func (r *Reconciler) finishApply(ctx context.Context, tx store.Tx, l *loop.Loop, cl catalog.Cluster, results []provisioning.OpResult) (superseded bool, err error) {
	now := r.now()
	gen := l.Metadata.Generation
	if len(results) > 0 {
		ev := r.event(l, "loop.provision", audit.OutcomeOK, map[string]any{
			"generation": gen, "cluster": cl.Name, "operations": opsOf(results),
		})
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return false, err
		}
	}
	cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !sameDesired(cur, l) {
		return true, nil // a newer write happened; its own reconcile sets status
	}
	st := cur.Status
	inv := inventoryOf(provisioning.Derive(l, cl))
	if st.State == loop.StateReady && st.ObservedGeneration == gen && len(results) == 0 && st.Cluster == cl.Name &&
		sameInventory(st.Inventory, inv) {
		return false, nil // converged and already said so: no write
	}
	st.State = loop.StateReady
	st.ObservedGeneration = gen
	st.Cluster = cl.Name
	st.Inventory = inv
	msg := "all topics, ACLs and quotas exist as approved"
	reason := "Provisioned"
	if len(results) > 0 && cur.Status.State == loop.StateReady && cur.Status.ObservedGeneration == gen {
		reason, msg = "DriftCorrected", fmt.Sprintf("corrected drift with %d admin operations", len(results))
	}
	st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.True, Reason: "Provisioned", Message: msg, ObservedGeneration: gen}, now)
	st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.True, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
	return false, tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st)
}

// finishDelete removes the loop for good once its resources are gone,
// inside tx.
func (r *Reconciler) finishDelete(ctx context.Context, tx store.Tx, l *loop.Loop, cl catalog.Cluster, results []provisioning.OpResult) (superseded bool, err error) {
	cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !sameDesired(cur, l) {
		return true, nil
	}
	ev := r.event(l, "loop.deprovision", audit.OutcomeOK, map[string]any{
		"generation": l.Metadata.Generation, "cluster": cl.Name, "operations": opsOf(results),
	})
	if _, err := tx.AppendAudit(ctx, ev); err != nil {
		return false, err
	}
	return false, tx.DeleteLoop(ctx, l.Metadata.Team, l.Metadata.Name)
}

// fail records a failed reconcile of l on the audit trail (when operations
// were attempted, or the failure is terminal and new) and on the loop's
// status, and returns it as a *Failure: terminal or not as classify says,
// with reason as the reason of a retriable one. unclaim lists topics whose
// create met a foreign topic: they leave the inventory. If the loop changed
// since l was read, only the attempted operations and the inventory are
// recorded, and errSuperseded is returned.
func (r *Reconciler) fail(ctx context.Context, l *loop.Loop, reason string, cause error, results []provisioning.OpResult, unclaim []string) error {
	reason, terminal := classify(cause, reason)
	now := r.now()
	gen := l.Metadata.Generation
	superseded := false
	werr := r.store.Update(ctx, func(tx store.Tx) error {
		superseded = false
		cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
		if errors.Is(err, store.ErrNotFound) {
			superseded = true
			return nil
		}
		if err != nil {
			return err
		}
		superseded = !sameDesired(cur, l)
		prev := cur.Status.Condition(loop.CondProvisioned)
		// Only audit a repeated failure when something was attempted or
		// the failure is new, so a retry loop does not flood the trail.
		if len(results) > 0 || terminal && !superseded && (prev == nil || prev.Reason != reason || prev.Message != cause.Error()) {
			details := map[string]any{"generation": gen, "error": cause.Error(), "reason": reason, "terminal": terminal}
			if len(results) > 0 {
				details["operations"] = opsOf(results)
			}
			action := "loop.provision"
			if deleting(l) {
				action = "loop.deprovision"
			}
			if _, err := tx.AppendAudit(ctx, r.event(l, action, audit.OutcomeFailed, details)); err != nil {
				return err
			}
		}
		st := cur.Status
		st.Inventory.Topics = slices.DeleteFunc(slices.Clone(st.Inventory.Topics), func(t string) bool { return slices.Contains(unclaim, t) })
		if superseded {
			if len(st.Inventory.Topics) == len(cur.Status.Inventory.Topics) {
				return nil
			}
			return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st) // only the inventory changes
		}
		if !deleting(l) {
			st.State = loop.StateFailed
		}
		st.ObservedGeneration = gen
		msg := cause.Error()
		st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.False, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
		st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.False, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
		return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st)
	})
	switch {
	case werr != nil:
		// The status does not say so: retry, whatever the cause.
		return &Failure{Reason: reason, Err: errors.Join(cause, fmt.Errorf("recording the failure: %w", werr))}
	case superseded:
		return errSuperseded
	}
	return &Failure{Reason: reason, Terminal: terminal, Err: cause}
}

// planRefusal is the terminal error of a plan with problems.
func planRefusal(problems []provisioning.Problem) error {
	msgs := make([]string, len(problems))
	reason := ReasonTopicNotOwned
	for i, p := range problems {
		msgs[i] = p.String()
		if p.Reason != ReasonTopicNotOwned {
			reason = ReasonPlanRefused
		}
	}
	return &terminalError{reason: reason, err: fmt.Errorf("the plan has problems and nothing was applied: %s", strings.Join(msgs, "; "))}
}

// describeAction is the audit form of a planned action.
func describeAction(a provisioning.Action) string {
	s := string(a.Kind) + " " + a.Resource
	if a.Current != "" {
		s += " from " + a.Current
	}
	if a.Desired != "" {
		s += " to " + a.Desired
	}
	return s
}
