// Package postgres is the production store.Store: PostgreSQL through
// pgx/v5 (pgxpool). Several loopgate processes may share one database.
//
// Start with Open and Store.Update. How writers stay race free across
// processes:
//
//   - Every Update transaction first takes a transaction-scoped advisory
//     lock (pg_advisory_xact_lock(WriterLockKey)), so write transactions —
//     from this process or any other — run one at a time, as they do in
//     SQLite. Within a process a Go semaphore queues writers before they
//     take a pooled connection, so waiting writers never starve readers of
//     connections (nor a writer whose fn reads through the Store).
//   - UpdateLoop is still a compare-and-swap
//     (UPDATE ... WHERE team AND name AND etag = expected), and AppendAudit
//     still locks the one-row audit_head table (SELECT ... FOR UPDATE) and
//     links to it: each guard holds on its own, even against a writer that
//     bypassed the advisory lock.
//   - Because writers are serialised, a transaction never meets a
//     serialization failure (40001) or deadlock (40P01) with another
//     loopgate writer. Update therefore does NOT retry: fn runs exactly once
//     per call, and any database error is returned (wrapped) to the caller,
//     whose request-level retry (request_id) is the safe place to retry.
//   - Duplicate keys: CreateLoop uses ON CONFLICT DO NOTHING, so "already
//     exists" does not abort the transaction (fn may still audit the refusal);
//     other unique violations (SQLSTATE 23505) map to store.ErrAlreadyExists,
//     after which the transaction is aborted and Update returns the error.
//
// The schema is created and upgraded by the numbered files in migrations/,
// recorded in schema_migrations and applied under a session advisory lock
// (MigrationLockKey), so processes starting at once migrate exactly once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopgate/loopgate/store"
)

// Advisory lock keys used by the store. Other packages taking advisory
// locks on the same database (e.g. reconciler leader election) must use
// different keys.
const (
	// WriterLockKey serialises Update transactions across processes
	// (ASCII "lgwriter").
	WriterLockKey int64 = 0x6c67_7772_6974_6572
	// MigrationLockKey serialises schema migrations (ASCII "lgmigrat").
	MigrationLockKey int64 = 0x6c67_6d69_6772_6174
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use; open one per process and share it.
type Store struct {
	pool    *pgxpool.Pool
	writers chan struct{} // one slot: in-process queue in front of the writer lock
	now     func() time.Time
	where   string // host:port/database, for error messages (never the password)
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string; pgxpool options such as pool_max_conns are accepted)
// and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: do not wrap it.
		return nil, errors.New("open postgres store: invalid DSN: want postgres://user:password@host:port/database?sslmode=... or key=value pairs")
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	s := &Store{pool: pool, writers: make(chan struct{}, 1), now: time.Now, where: where}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: is the server up and the DSN right? %w", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	return s, nil
}

// Close closes every connection. It waits for connections in use.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Update runs fn in one transaction and commits it if fn returns nil. An
// error from fn (returned as is) or a panic rolls everything back.
//
// Writers are serialised across processes (see the package doc), so fn
// sees the latest committed state and no other writer commits until it
// returns: keep fn short, and never call Update from inside fn (it would
// wait for itself). Reading through the Store inside fn works but sees only
// committed data; read through tx to see fn's own writes. fn runs exactly
// once; Update never retries.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	select {
	case s.writers <- struct{}{}:
		defer func() { <-s.writers }()
	case <-ctx.Done():
		return fmt.Errorf("postgres store: waiting for another write transaction: %w", ctx.Err())
	}
	pgTx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres store %s: begin transaction: %w", s.where, err)
	}
	// Rollback after Commit is a no-op; it also runs when fn panics.
	defer func() { _ = pgTx.Rollback(context.WithoutCancel(ctx)) }()

	if _, err := pgTx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, WriterLockKey); err != nil {
		return fmt.Errorf("postgres store %s: take the writer lock: %w", s.where, err)
	}
	if err := fn(&tx{q: pgTx, s: s}); err != nil {
		return err
	}
	if err := pgTx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres store %s: commit: %w", s.where, err)
	}
	return nil
}

// migrate applies the embedded migrations newer than the database's
// version, each in its own transaction, holding MigrationLockKey.
func (s *Store) migrate(ctx context.Context) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	return s.applyMigrations(ctx, migrations)
}

// loadMigrations returns the embedded migrations in version order.
func loadMigrations() ([]store.Migration, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	migrations, err := store.LoadMigrations(sub)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return migrations, nil
}

// applyMigrations brings the database up to the last of migrations (all
// the versions this loopgate knows, in order from version 1).
func (s *Store) applyMigrations(ctx context.Context, migrations []store.Migration) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, MigrationLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, MigrationLockKey); err != nil {
			// A session lock we cannot release would block every later
			// migration: drop the connection so the server frees it.
			conn.Hijack().Close(context.Background())
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("migrate: the database schema is at version %d but this loopgate knows only up to %d: run a newer loopgate", current, len(migrations))
	}
	for _, m := range migrations[current:] {
		err := pgx.BeginFunc(ctx, conn, func(t pgx.Tx) error {
			if _, err := t.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := t.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres store %s: schema version: %w", s.where, err)
	}
	return v, nil
}

// tx is the store.Tx of one Update call.
type tx struct {
	q pgx.Tx
	s *Store
}

// querier is what the shared read and write code needs: the pool or a tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// isUniqueViolation reports whether err is a primary key or unique
// constraint violation (SQLSTATE 23505).
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
