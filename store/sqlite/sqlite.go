// Package sqlite is the embedded store.Store: one SQLite database file,
// through the pure-Go modernc.org/sqlite driver (no cgo).
//
// Start with Open and Store.Update. Writes go through a single connection
// whose transactions begin with BEGIN IMMEDIATE, so writers are serialised
// (within this process by the one connection, across processes by SQLite's
// write lock): an etag check and the write it guards, or an audit append
// and the chain head it reads, can never interleave with another writer.
// Reads use a separate pool of read-only connections and, thanks to WAL
// mode, never wait for writers.
//
// The schema is created and upgraded by the numbered files in migrations/,
// recorded in the schema_migrations table (see migrate.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// MemoryPath opens a private in-memory database, for tests and demos. It
// lives as long as the Store; reads and writes then share one connection,
// so inside Update read through the Tx, not the Store (that would wait for
// the transaction to end: a deadlock).
const MemoryPath = ":memory:"

// busyTimeout is how long a writer waits for another process's write lock
// before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	path   string
	writer *sql.DB // exactly one connection: all write transactions
	reader *sql.DB // read-only pool; the writer itself for MemoryPath
	now    func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and brings its
// schema up to date. path is a file name (its directory is created) or
// MemoryPath. The database runs in WAL mode with synchronous=FULL: a
// committed transaction survives a crash or power loss.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path; give a database file name or " + MemoryPath)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store %q: the path must not contain '?' or '#'", path)
	}
	s := &Store{path: path, now: time.Now}
	params := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1", busyTimeout.Milliseconds())
	if path == MemoryPath {
		db, err := sql.Open("sqlite", path+"?"+params+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0) // closing the only connection would drop the database
		s.writer, s.reader = db, db
	} else {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("open sqlite store %s: create directory: %w", path, err)
			}
		}
		w, err := sql.Open("sqlite", path+"?"+params+"&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		w.SetMaxOpenConns(1)
		w.SetConnMaxIdleTime(0)
		// Connect the writer first: it switches the file to WAL mode.
		if err := w.PingContext(ctx); err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		r, err := sql.Open("sqlite", path+"?"+params+"&_query_only=1")
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		s.writer, s.reader = w, r
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database. Transactions in progress fail.
func (s *Store) Close() error {
	err := s.writer.Close()
	if s.reader != s.writer {
		err = errors.Join(err, s.reader.Close())
	}
	return err
}

// Update runs fn in one write transaction and commits it if fn returns
// nil. An error (returned as is) or a panic in fn rolls everything back.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite store: begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(&tx{q: sqlTx, s: s}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite store: commit: %w", err)
	}
	committed = true
	return nil
}

// GetLoop returns the loop team/name as last committed.
func (s *Store) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	return getLoop(ctx, s.reader, team, name)
}

// ListLoops returns a page of loops ordered by (team, name).
func (s *Store) ListLoops(ctx context.Context, opts store.ListOptions) ([]*loop.Loop, string, error) {
	return listLoops(ctx, s.reader, opts)
}

// GetDecision returns a recorded policy decision.
func (s *Store) GetDecision(ctx context.Context, id string) (*store.Decision, error) {
	return getDecision(ctx, s.reader, id)
}

// tx is the store.Tx of one Update call.
type tx struct {
	q *sql.Tx
	s *Store
}

func (s *Store) TeamPartitions(ctx context.Context, team, except string) (int64, error) {
	return teamPartitions(ctx, s.reader, team, except)
}

func (t *tx) TeamPartitions(ctx context.Context, team, except string) (int64, error) {
	return teamPartitions(ctx, t.q, team, except)
}

func (t *tx) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	return getLoop(ctx, t.q, team, name)
}

func (t *tx) ListLoops(ctx context.Context, opts store.ListOptions) ([]*loop.Loop, string, error) {
	return listLoops(ctx, t.q, opts)
}

// PutDecision records d (see store.PrepareDecision) and indexes the rule
// ids its result names; store.ErrAlreadyExists if its id is taken.
func (t *tx) PutDecision(ctx context.Context, d store.Decision) error {
	d, err := store.PrepareDecision(d, t.s.now())
	if err != nil {
		return err
	}
	return putDecision(ctx, t.q, d)
}

// GetRequest returns what requestID was first used for, if it was recorded.
func (s *Store) GetRequest(ctx context.Context, requestID string) (store.Request, bool, error) {
	return getRequest(ctx, s.reader, requestID)
}

func (t *tx) GetRequest(ctx context.Context, requestID string) (store.Request, bool, error) {
	return getRequest(ctx, t.q, requestID)
}

func getRequest(ctx context.Context, q querier, requestID string) (store.Request, bool, error) {
	r := store.Request{ID: requestID}
	var created string
	err := q.QueryRowContext(ctx,
		`SELECT subject, method, resource, hash, create_time FROM requests WHERE request_id = ?`, requestID).
		Scan(&r.Subject, &r.Method, &r.Resource, &r.Hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Request{}, false, nil
	}
	if err != nil {
		return store.Request{}, false, fmt.Errorf("request %s: %w", requestID, err)
	}
	if r.Time, err = parseTime(created); err != nil {
		return store.Request{}, false, fmt.Errorf("request %s: %w", requestID, err)
	}
	return r, true, nil
}

// PutRequest records what r.ID is used for; store.ErrAlreadyExists if the
// id is recorded (the first record stays, and so does the transaction).
func (t *tx) PutRequest(ctx context.Context, r store.Request) error {
	if r.ID == "" {
		return errors.New("put request: empty request id")
	}
	if r.Time.IsZero() {
		r.Time = t.s.now()
	}
	_, err := t.q.ExecContext(ctx,
		`INSERT INTO requests (request_id, subject, method, resource, hash, create_time) VALUES (?, ?, ?, ?, ?, ?)`,
		r.ID, r.Subject, r.Method, r.Resource, r.Hash, formatTime(r.Time))
	if isDuplicate(err) {
		return fmt.Errorf("request %s: %w", r.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("request %s: %w", r.ID, err)
	}
	return nil
}

// querier is what reads need: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// isDuplicate reports whether err is a primary key or unique violation.
func isDuplicate(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// timeLayout is RFC 3339 with a fixed nine fractional digits, so that the
// text order of stored times is their time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return store.Timestamp(t).Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}
