package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/store"
)

// notifyChannel is the LISTEN/NOTIFY channel that carries changed loop keys.
const notifyChannel = "loopgate_loops"

var _ store.Notifier = (*Store)(nil)

// Publish sends key on the notify channel to every listening process.
func (s *Store) Publish(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, key); err != nil {
		return fmt.Errorf("publishing change of %s: %w", key, err)
	}
	return nil
}

// Subscribe LISTENs on a dedicated connection and calls fn for every key,
// reconnecting after errors, until ctx ends. Keys published while the
// connection was down are not replayed: the reconciler's periodic resync
// covers them.
func (s *Store) Subscribe(ctx context.Context, fn func(key string)) error {
	for ctx.Err() == nil {
		err := s.listen(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		_ = err // the caller logs nothing here: retry quietly, resync covers gaps
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *Store) listen(ctx context.Context, fn func(key string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	defer func() {
		c, done := context.WithTimeout(context.Background(), time.Second)
		_, _ = conn.Exec(c, "UNLISTEN "+notifyChannel)
		done()
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
