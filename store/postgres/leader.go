package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/store"
)

// ReconcilerLockKey is the session advisory lock that makes exactly one
// loopgate process the reconciler (ASCII "lgrecncl").
const ReconcilerLockKey int64 = 0x6c67_7265_636e_636c

var _ store.Elector = (*Store)(nil)

// Lead blocks until this process holds the reconciler lease: a session-level
// pg_advisory_lock held on one dedicated pooled connection. The returned
// context is cancelled when the lease is lost (the connection fails a
// health check) or ctx ends; the lock is released with the connection.
func (s *Store) Lead(ctx context.Context) (context.Context, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconciler lease: acquiring a connection: %w", err)
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, ReconcilerLockKey).Scan(&got); err != nil {
			conn.Release()
			return nil, fmt.Errorf("reconciler lease: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	leaseCtx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-leaseCtx.Done():
				// Unlock explicitly, then return the connection to the pool.
				unlockCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
				_, _ = conn.Exec(unlockCtx, `SELECT pg_advisory_unlock($1)`, ReconcilerLockKey)
				done()
				conn.Release()
				return
			case <-tick.C:
				pingCtx, done := context.WithTimeout(leaseCtx, 2*time.Second)
				err := conn.Ping(pingCtx)
				done()
				if err != nil && leaseCtx.Err() == nil {
					// The session (and with it the lock) may be gone.
					conn.Hijack().Close(context.Background())
					cancel()
					<-leaseCtx.Done()
					return
				}
			}
		}
	}()
	return leaseCtx, nil
}
