package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

const loopColumns = `team, name, uid, generation, etag, metadata, spec, status, create_time, update_time, delete_time`

func getLoop(ctx context.Context, q querier, team, name string) (*loop.Loop, error) {
	row := q.QueryRowContext(ctx, `SELECT `+loopColumns+` FROM loops WHERE team = ? AND name = ?`, team, name)
	l, err := scanLoop(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	return l, nil
}

func teamPartitions(ctx context.Context, q querier, team, except string) (int64, error) {
	var sum int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(partitions), 0) FROM loops
		WHERE team = ? AND name <> ? AND delete_time IS NULL`, team, except).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("partitions of team %s: %w", team, err)
	}
	return sum, nil
}

func listLoops(ctx context.Context, q querier, opts store.ListOptions) ([]*loop.Loop, string, error) {
	size := store.LoopPageSize(opts.PageSize)
	var where []string
	var args []any
	if opts.Team != "" {
		where = append(where, "team = ?")
		args = append(args, opts.Team)
	}
	if opts.PageToken != "" {
		team, name, err := store.DecodePageToken(opts.Team, opts.PageToken)
		if err != nil {
			return nil, "", fmt.Errorf("list loops: %w", err)
		}
		where = append(where, "(team > ? OR (team = ? AND name > ?))")
		args = append(args, team, team, name)
	}
	query := `SELECT ` + loopColumns + ` FROM loops`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY team, name LIMIT ?`
	args = append(args, size+1) // one more tells whether a next page exists

	rows, err := q.QueryContext(ctx, query, args...)
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
func scanLoop(row interface{ Scan(dest ...any) error }) (*loop.Loop, error) {
	var (
		team, name, uid, etag  string
		generation             int64
		metadata, spec, status []byte
		createTime, updateTime string
		deleteTime             sql.NullString
	)
	dest := []any{&team, &name, &uid, &generation, &etag, &metadata, &spec, &status, &createTime, &updateTime, &deleteTime}
	// A listing (*sql.Rows, unlike *sql.Row) may scan the documents as
	// RawBytes, saving database/sql a copy of each: they are decoded
	// (nothing keeps them) before the next row is read.
	var rawMetadata, rawSpec, rawStatus sql.RawBytes
	if _, ok := row.(*sql.Rows); ok {
		dest[5], dest[6], dest[7] = &rawMetadata, &rawSpec, &rawStatus
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if dest[5] == &rawMetadata {
		metadata, spec, status = rawMetadata, rawSpec, rawStatus
	}
	l, err := store.DecodeLoop(team, name, metadata, spec, status)
	if err != nil {
		return nil, err
	}
	m := &l.Metadata
	m.Team, m.Name, m.UID, m.Generation, m.Etag = team, name, uid, generation, etag
	if m.CreateTime, err = parseTime(createTime); err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	if m.UpdateTime, err = parseTime(updateTime); err != nil {
		return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
	}
	m.DeleteTime = time.Time{}
	if deleteTime.Valid {
		if m.DeleteTime, err = parseTime(deleteTime.String); err != nil {
			return nil, fmt.Errorf("loop %s/%s: %w", team, name, err)
		}
	}
	return l, nil
}

func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

// CreateLoop inserts l. It assigns a UID (if empty), Generation 1 (if 0),
// CreateTime (now, if zero), UpdateTime (now) and a fresh Etag, and
// writes them back into l on success.
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
	_, err = t.q.ExecContext(ctx, `INSERT INTO loops (`+loopColumns+`, partitions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Team, m.Name, m.UID, m.Generation, m.Etag, metadata, spec, status,
		formatTime(m.CreateTime), formatTime(m.UpdateTime), nullTime(m.DeleteTime), l.Status.Partitions)
	if isDuplicate(err) {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
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
	var createTime string
	err := t.q.QueryRowContext(ctx, `SELECT uid, create_time FROM loops WHERE team = ? AND name = ?`, m.Team, m.Name).
		Scan(&m.UID, &createTime)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	if m.CreateTime, err = parseTime(createTime); err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	m.UpdateTime = now
	m.DeleteTime = store.Timestamp(m.DeleteTime)
	m.Etag = store.NewEtag()

	stored := *l
	stored.Metadata = m
	metadata, spec, status, err := store.EncodeLoop(&stored)
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	// The etag condition is in the UPDATE itself, so the check holds even
	// without the writer serialisation.
	res, err := t.q.ExecContext(ctx, `UPDATE loops SET generation = ?, etag = ?, metadata = ?, spec = ?, status = ?,
		partitions = ?, update_time = ?, delete_time = ? WHERE team = ? AND name = ? AND etag = ?`,
		m.Generation, m.Etag, metadata, spec, status, l.Status.Partitions, formatTime(m.UpdateTime), nullTime(m.DeleteTime),
		m.Team, m.Name, expectedEtag)
	if err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("loop %s/%s: %w", m.Team, m.Name, err)
	} else if n == 0 {
		return fmt.Errorf("loop %s/%s: %w: it changed since etag %q was read; get it again and retry", m.Team, m.Name, store.ErrEtagMismatch, expectedEtag)
	}
	l.Metadata = m
	return nil
}

// UpdateStatus replaces the status only: etag, generation and update time
// stay as they are (they describe the desired state).
func (t *tx) UpdateStatus(ctx context.Context, team, name string, status loop.Status) error {
	b, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("loop %s/%s: encode status: %w", team, name, err)
	}
	res, err := t.q.ExecContext(ctx, `UPDATE loops SET status = ?, partitions = ? WHERE team = ? AND name = ?`, b, status.Partitions, team, name)
	return affectedOne(res, err, "loop %s/%s", team, name)
}

func (t *tx) DeleteLoop(ctx context.Context, team, name string) error {
	res, err := t.q.ExecContext(ctx, `DELETE FROM loops WHERE team = ? AND name = ?`, team, name)
	return affectedOne(res, err, "loop %s/%s", team, name)
}

// affectedOne turns "no row affected" into store.ErrNotFound.
func affectedOne(res sql.Result, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
