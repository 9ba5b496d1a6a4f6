package admission

import (
	"context"
	"sync"
	"time"

	"github.com/loopgate/loopgate/store"
)

// groupCommit runs the write transactions of concurrent API requests
// together: while one batch commits, the requests that arrive queue up and
// then commit as the next batch, in one store transaction (one fsync, one
// writer-lock round trip) instead of one each. Each request's function runs
// in arrival order and sees the writes of those before it, exactly as if
// the transactions had run one after another.
//
// If one request's function fails (an etag mismatch, a name taken), the
// shared transaction is rolled back and retried without it, and that
// request runs alone for its own outcome: one request's conflict never
// fails another. Functions must therefore be safe to run more than once,
// which store.Update functions are: they only act through the transaction.
type groupCommit struct {
	store store.Store
	// maxBatch bounds a batch, so a burst cannot grow one transaction
	// without limit.
	maxBatch int

	mu      sync.Mutex
	pending []*commitJob
	leading bool // a goroutine is committing batches
}

type commitJob struct {
	fn   func(tx store.Tx) error
	done chan error
}

// commitTimeout bounds one shared transaction. It does not depend on any
// single request's context, so one client going away cannot fail the
// requests it was batched with.
const commitTimeout = 30 * time.Second

func newGroupCommit(st store.Store) *groupCommit {
	return &groupCommit{store: st, maxBatch: 128}
}

// Update runs fn in a store transaction shared with other concurrent
// callers and returns fn's own outcome.
func (g *groupCommit) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	j := &commitJob{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, j)
	if !g.leading {
		// No batch is committing: start a committer that drains the queue
		// (on its own goroutine, so this request is not held up committing
		// later requests' batches).
		g.leading = true
		go g.lead()
	}
	g.mu.Unlock()
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The write may still commit with its batch; the caller learns
		// only that it stopped waiting, as with any cancelled request.
		return ctx.Err()
	}
}

func (g *groupCommit) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.maxBatch)
		if n == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		g.commit(batch)
	}
}

func (g *groupCommit) commit(batch []*commitJob) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	g.commitShared(ctx, batch)
}

// commitShared runs batch in one transaction. When a job fails, the
// transaction is rolled back and: the jobs before it run again together
// (they succeeded), the failing job runs alone (for its own outcome) and
// the jobs after it go on as the next shared transaction. When the commit
// itself fails, every job runs alone.
func (g *groupCommit) commitShared(ctx context.Context, batch []*commitJob) {
	for len(batch) > 0 {
		if len(batch) == 1 {
			batch[0].done <- g.store.Update(ctx, batch[0].fn)
			return
		}
		failed := -1
		err := g.store.Update(ctx, func(tx store.Tx) error {
			for i, j := range batch {
				if err := j.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		switch {
		case err == nil:
			for _, j := range batch {
				j.done <- nil
			}
			return
		case failed < 0:
			for _, j := range batch {
				j.done <- g.store.Update(ctx, j.fn)
			}
			return
		}
		g.commitShared(ctx, batch[:failed])
		batch[failed].done <- g.store.Update(ctx, batch[failed].fn)
		batch = batch[failed+1:]
	}
}
