package reconciler

import (
	"math/rand/v2"
	"time"

	"github.com/loopgate/loopgate/loop"
)

// backoff is the delay before retrying after the n-th consecutive
// retriable failure (n ≥ 1): exponential with full jitter, uniformly random
// in [0, min(maxDelay, base·2^(n-1))). Full jitter spreads the retries of
// many loops that failed together (a cluster that went down) instead of
// sending them back in lockstep.
func backoff(n int, base, maxDelay time.Duration) time.Duration {
	ceiling := maxDelay
	if shift := n - 1; shift < 62 {
		if c := base << max(shift, 0); c > 0 && c < maxDelay {
			ceiling = c
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// retryAfter schedules key to be enqueued after d, by the running Run.
func (r *Reconciler) retryAfter(key string, d time.Duration) {
	r.mu.Lock()
	r.retryAt[key] = time.Now().Add(d)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // Run is already told
	}
}

// retryPending reports whether key waits for a scheduled retry.
func (r *Reconciler) retryPending(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.retryAt[key]
	return ok
}

// retryDue enqueues every key whose retry is due.
func (r *Reconciler) retryDue() {
	now := time.Now()
	var due []string
	r.mu.Lock()
	for key, at := range r.retryAt {
		if !at.After(now) {
			due = append(due, key)
			delete(r.retryAt, key)
		}
	}
	r.mu.Unlock()
	for _, key := range due {
		r.Enqueue(key)
	}
}

// armRetry sets t to fire at the earliest scheduled retry (or stops it).
func (r *Reconciler) armRetry(t *time.Timer) {
	r.mu.Lock()
	var next time.Time
	for _, at := range r.retryAt {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	r.mu.Unlock()
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(next), 0))
}

// park is a loop parked by a terminal error: which desired state failed,
// and when to try it again anyway.
type park struct {
	uid        string
	generation int64
	deleting   bool
	until      time.Time
}

// park parks key: until l changes (or the recheck time), the worker loop
// and resyncs leave it alone.
func (r *Reconciler) park(key string, l *loop.Loop) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parked[key] = park{
		uid: l.Metadata.UID, generation: l.Metadata.Generation, deleting: deleting(l),
		until: time.Now().Add(r.opts.ParkedRecheck),
	}
}

func (r *Reconciler) unpark(key string) {
	r.mu.Lock()
	delete(r.parked, key)
	r.mu.Unlock()
}

// parkHolds reports whether key is parked and l is still the desired state
// that failed, within the recheck time.
func (r *Reconciler) parkHolds(key string, l *loop.Loop) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.parked[key]
	if !ok {
		return false
	}
	if p.uid != l.Metadata.UID || p.generation != l.Metadata.Generation || p.deleting != deleting(l) || !time.Now().Before(p.until) {
		delete(r.parked, key)
		return false
	}
	return true
}

// Retry is the explicit retry signal: it unparks key (a loop parked by a
// terminal error, e.g. after an operator fixed the cluster's ACLs) and
// enqueues it.
func (r *Reconciler) Retry(key string) {
	r.unpark(key)
	r.Enqueue(key)
}

// Parked reports whether key is parked by a terminal error.
func (r *Reconciler) Parked(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.parked[key]
	return ok
}
