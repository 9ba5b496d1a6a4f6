package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

const loopColumns = `team, name, uid, generation, etag, metadata, spec, status, create_time, update_time, delete_time`

// GetLoop returns the loop team/name as last committed.
func (s *Store) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	return getLoop(ctx, s.pool, team, name)
}

// ListLoops returns a page of loops ordered by (team, name).
func (s *Store) ListLoops(ctx context.Context, opts store.ListOptions) ([]*loop.Loop, string, error) {
	return listLoops(ctx, s.pool, opts)
}

func (s *Store) TeamPartitions(ctx context.Context, team, except string) (int64, error) {
	return teamPartitions(ctx, s.pool, team, except)
}

func (t *tx) TeamPartitions(ctx context.Context, team, except string) (int64, error) {
	return teamPartitions(ctx, t.q, team, except)
}

func teamPartitions(ctx context.Context, q querier, team, except string) (int64, error) {
	var sum int64
	err := q.QueryRow(ctx, `SELECT COALESCE(SUM(partitions), 0) FROM loops
		WHERE team = $1 AND name <> $2 AND delete_time IS NULL`, team, except).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("partitions of team %s: %w", team, err)
	}
	return sum, nil
}

func (t *tx) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	return getLoop(ctx, t.q, team, name)
}

func (t *tx) ListLoops(ctx context.Context, opts store.ListOptions) ([]*loop.Loop, string, error) {
	return listLoops(ctx, t.q, opts)
}

func getLoop(ctx context.Context, q querier, team, name string) (*loop.Loop, error) {
	row := q.QueryRow(ctx, `SELECT `+loopColumns+` FROM loops WHERE team = $1 AND name = $2`, team, name)
	l, err := scanLoop(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	return l, nil
}

func listLoops(ctx context.Context, q querier, opts store.ListOptions) ([]*loop.Loop, string, error) {
	size := store.LoopPageSize(opts.PageSize)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if opts.Team != "" {
		where = append(where, "team = "+arg(opts.Team))
	}
	if opts.PageToken != "" {
		team, name, err := store.DecodePageToken(opts.Team, opts.PageToken)
		if err != nil {
			return nil, "", fmt.Errorf("list loops: %w", err)
		}
		// A row comparison uses the (team, name) primary key index.
		where = append(where, "(team, name) > ("+arg(team)+", "+arg(name)+")")
	}
	query := `SELECT ` + loopColumns + ` FROM loops`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY team, name LIMIT ` + arg(size+1) // one more tells whether a next page exists

	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list loops: %w", err)
	}
	defer rows.Close()
	loops, err := store.ScanAll(rows, func(r store.Rows) (*loop.Loop, error) { return scanLoop(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list loops: %w", err)
	}
	page, next := store.PageOf(loops, size, opts.Team)
	return page, next, nil
}

// scanLoop reads one row of loopColumns. The key and resource-version
// columns override whatever the metadata document says.
func scanLoop(row pgx.Row) (*loop.Loop, error) {
	var (
		team, name, uid, etag  string
		generation             int64
		metadata, spec, status []byte
		createTime, updateTime time.Time
		deleteTime             *time.Time
	)
	if err := row.Scan(&team, &name, &uid, &generation, &etag, &metadata, &spec, &status,
		&createTime, &updateTime, &deleteTime); err != nil {
		return nil, err
	}
	l, err := store.DecodeLoop(team, name, metadata, spec, status)
	if err != nil {
		return nil, err
	}
	m := &l.Metadata
	m.Team, m.Name, m.UID, m.Generation, m.Etag = team, name, uid, generation, etag
	m.CreateTime, m.UpdateTime = createTime.UTC(), updateTime.UTC()
	m.DeleteTime = time.Time{}
	if deleteTime != nil {
		m.DeleteTime = deleteTime.UTC()
	}
	return l, nil
}

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateLoop inserts l. It assigns a UID (if empty), Generation 1 (if 0),
// CreateTime (now, if zero), UpdateTime (now) and a fresh Etag, and
// writes them back into l on success. An existing team/name is
// store.ErrAlreadyExists and leaves the transaction usable.
func (t *tx) CreateLoop(ctx context.Context, l *loop.Loop) error {
	m, err := store.NewLoopMetadata(l.Metadata, t.s.now())
	if err != nil {
		return err
	}

	stored := *l
	stored.Metadata = m
	metadata, spec, status, err := store.EncodeLoop(&stored)
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	// ON CONFLICT on the key, not a caught 23505: a failed statement would
	// abort the whole transaction, and fn may want to go on (e.g. audit).
	tag, err := t.q.Exec(ctx, `INSERT INTO loops (`+loopColumns+`, partitions)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (team, name) DO NOTHING`,
		m.Team, m.Name, m.UID, m.Generation, m.Etag, metadata, spec, status,
		m.CreateTime, m.UpdateTime, nullTime(m.DeleteTime), l.Status.Partitions)
	if isUniqueViolation(err) { // the uid of another loop
		return fmt.Errorf("loop %s/%s: uid %s is taken by another loop: %w", m.Team, m.Name, m.UID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, store.ErrAlreadyExists)
	}
	l.Metadata = m
	return nil
}

// UpdateLoop replaces metadata, spec and status when the stored etag is
// expectedEtag. An empty expectedEtag never matches: callers that do not
// need a compare-and-swap pass the etag they just read in the same Tx.
// UID and CreateTime are kept from the stored loop; UpdateTime becomes now
// and a fresh Etag is assigned; Generation is the caller's. The stored
// values are written back into l on success.
func (t *tx) UpdateLoop(ctx context.Context, l *loop.Loop, expectedEtag string) error {
	m := l.Metadata
	now := store.Timestamp(t.s.now())
	m.UpdateTime = now
	m.DeleteTime = store.Timestamp(m.DeleteTime)
	m.Etag = store.NewEtag()

	stored := *l
	stored.Metadata = m
	metadata, spec, status, err := store.EncodeLoop(&stored)
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	// The compare-and-swap is in the UPDATE itself: under READ COMMITTED a
	// concurrent writer of the same row makes this statement wait, then
	// re-check the etag against the committed row. RETURNING gives back the
	// kept uid and create time (the metadata document is fixed up on read).
	var createTime time.Time
	err = t.q.QueryRow(ctx, `UPDATE loops SET generation = $1, etag = $2, metadata = $3, spec = $4, status = $5,
		update_time = $6, delete_time = $7, partitions = $11
		WHERE team = $8 AND name = $9 AND etag = $10
		RETURNING uid, create_time`,
		m.Generation, m.Etag, metadata, spec, status, m.UpdateTime, nullTime(m.DeleteTime),
		m.Team, m.Name, expectedEtag, l.Status.Partitions).Scan(&m.UID, &createTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return t.whyNotUpdated(ctx, m.Team, m.Name, expectedEtag)
	}
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	m.CreateTime = createTime.UTC()
	l.Metadata = m
	return nil
}

// whyNotUpdated tells a missing loop from a stale etag after a
// compare-and-swap changed no row.
func (t *tx) whyNotUpdated(ctx context.Context, team, name, expectedEtag string) error {
	var exists bool
	if err := t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM loops WHERE team = $1 AND name = $2)`, team, name).Scan(&exists); err != nil {
		return fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	if !exists {
		return fmt.Errorf("loop %s/%s: %w", team, name, store.ErrNotFound)
	}
	return fmt.Errorf("loop %s/%s: %w: it changed since etag %q was read; get it again and retry",
		team, name, store.ErrEtagMismatch, expectedEtag)
}

// UpdateStatus replaces the status only: etag, generation and update time
// stay as they are (they describe the desired state).
func (t *tx) UpdateStatus(ctx context.Context, team, name string, status loop.Status) error {
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("loop %s/%s: encode status: %w", team, name, err)
	}
	tag, err := t.q.Exec(ctx, `UPDATE loops SET status = $1, partitions = $4 WHERE team = $2 AND name = $3`, b, team, name, status.Partitions)
	return affectedOne(tag, err, "loop %s/%s", team, name)
}

// DeleteLoop removes the loop row; store.ErrNotFound if there is none.
func (t *tx) DeleteLoop(ctx context.Context, team, name string) error {
	tag, err := t.q.Exec(ctx, `DELETE FROM loops WHERE team = $1 AND name = $2`, team, name)
	return affectedOne(tag, err, "loop %s/%s", team, name)
}

// affectedOne turns "no row affected" into store.ErrNotFound.
func affectedOne(tag pgconn.CommandTag, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
