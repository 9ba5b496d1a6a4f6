package reconciler

import (
	"time"

	"github.com/loopgate/loopgate/provisioning"
)

// Hooks let a caller observe the reconciler (loopgate's metrics) without
// the reconciler depending on a metrics library. Every field is optional.
// Hooks are called synchronously from the reconciler's goroutines, so they
// must be cheap and safe for concurrent use.
type Hooks struct {
	// Pass is called after every reconcile pass: a worker's batch of
	// queued loops, or a drift pass over one cluster.
	Pass func(PassStats)
	// Action is called once per admin operation a batch executed.
	Action func(kind provisioning.ActionKind, failed bool)
}

// Kinds of PassStats.
const (
	PassBatch = "batch"
	PassDrift = "drift"
)

// PassStats describes one reconcile pass.
type PassStats struct {
	Kind     string // PassBatch or PassDrift
	Cluster  string // the drift pass's cluster; "" for a batch
	Loops    int    // loops the pass handled (drift: compared with the cluster)
	Terminal int    // loops that failed with a terminal error (parked)
	// Retriable is how many loops failed with a retriable error (retried
	// with backoff); for a drift pass, 1 when the cluster could not be
	// observed.
	Retriable int
	Duration  time.Duration
}

// QueueStats is the reconciler's work at one instant.
type QueueStats struct {
	Queued         int // waiting in the queue
	InFlight       int // being reconciled
	RetriesPending int // waiting for a backoff retry
	Parked         int // parked by a terminal error
}

// Queue returns the reconciler's queue at this instant (cheap: a lock and
// four lengths).
func (r *Reconciler) Queue() QueueStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return QueueStats{Queued: len(r.queued), InFlight: len(r.inflight), RetriesPending: len(r.retryAt), Parked: len(r.parked)}
}

// observeBatch reports a worker's batch to the Pass hook.
func (r *Reconciler) observeBatch(keys []string, res batchResult, took time.Duration) {
	h := r.opts.Hooks.Pass
	if h == nil {
		return
	}
	ps := PassStats{Kind: PassBatch, Loops: len(keys), Duration: took}
	for _, err := range res.errs {
		if IsTerminal(err) {
			ps.Terminal++
		} else {
			ps.Retriable++
		}
	}
	h(ps)
}

// observeDrift reports a drift pass to the Pass hook.
func (r *Reconciler) observeDrift(rep DriftReport) {
	h := r.opts.Hooks.Pass
	if h == nil {
		return
	}
	ps := PassStats{Kind: PassDrift, Cluster: rep.Cluster, Loops: rep.Loops, Duration: rep.Duration}
	if rep.Err != "" {
		ps.Retriable = 1
	}
	h(ps)
}

// observeActions reports the results of an Execute to the Action hook; an
// action without a result failed with the whole Execute.
func (r *Reconciler) observeActions(actions []provisioning.Action, results []provisioning.OpResult, execErr error) {
	h := r.opts.Hooks.Action
	if h == nil {
		return
	}
	for i, a := range actions {
		failed := execErr != nil
		if i < len(results) {
			failed = results[i].Err != ""
		}
		h(a.Kind, failed)
	}
}

// CountByState counts the loops of the index by state (loops being deleted
// count as DELETING whatever their last state): a walk of the in-memory
// index, never the store.
func (x *PeerIndex) CountByState() map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[string]int{}
	for _, e := range x.byKey {
		if e.loop == nil {
			continue
		}
		state := string(e.loop.Status.State)
		if deleting(e.loop) {
			state = "DELETING"
		}
		out[state]++
	}
	return out
}
