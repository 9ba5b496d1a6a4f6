package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/loopgate/loopgate/store"
)

const ownedColumns = `kind, name, team, etag, create_time, doc`

func (s *Store) GetOwned(ctx context.Context, kind, name string) (*store.Owned, error) {
	return getOwned(ctx, s.reader, kind, name)
}

func (t *tx) GetOwned(ctx context.Context, kind, name string) (*store.Owned, error) {
	return getOwned(ctx, t.q, kind, name)
}

func (s *Store) ListOwned(ctx context.Context, f store.OwnedFilter) ([]*store.Owned, string, error) {
	return listOwned(ctx, s.reader, f)
}

func (t *tx) ListOwned(ctx context.Context, f store.OwnedFilter) ([]*store.Owned, string, error) {
	return listOwned(ctx, t.q, f)
}

func getOwned(ctx context.Context, q querier, kind, name string) (*store.Owned, error) {
	o, err := scanOwned(q.QueryRowContext(ctx, `SELECT `+ownedColumns+` FROM owned WHERE kind = ? AND name = ?`, kind, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", kind, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return o, nil
}

func listOwned(ctx context.Context, q querier, f store.OwnedFilter) ([]*store.Owned, string, error) {
	size := store.OwnedPageSize(f.PageSize)
	query := `SELECT ` + ownedColumns + ` FROM owned WHERE kind = ?`
	args := []any{f.Kind}
	if f.Team != "" {
		query += ` AND team = ?`
		args = append(args, f.Team)
	}
	if f.PageToken != "" {
		after, err := store.DecodeOwnedPageToken(f)
		if err != nil {
			return nil, "", fmt.Errorf("list %ss: %w", f.Kind, err)
		}
		query += ` AND name > ?`
		args = append(args, after)
	}
	query += ` ORDER BY name LIMIT ?`
	args = append(args, size+1)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list %ss: %w", f.Kind, err)
	}
	defer rows.Close()
	all, err := store.ScanAll(rows, func(r store.Rows) (*store.Owned, error) { return scanOwned(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list %ss: %w", f.Kind, err)
	}
	page, next := store.OwnedPage(all, size, f)
	return page, next, nil
}

func scanOwned(row interface{ Scan(dest ...any) error }) (*store.Owned, error) {
	var kind, name, team, etag, created string
	var doc []byte
	if err := row.Scan(&kind, &name, &team, &etag, &created, &doc); err != nil {
		return nil, err
	}
	t, err := parseTime(created)
	if err != nil {
		return nil, err
	}
	return store.DecodeOwned(kind, name, team, etag, t, doc)
}

func (t *tx) CreateOwned(ctx context.Context, o *store.Owned) error {
	if o.CreateTime.IsZero() {
		o.CreateTime = t.s.now()
	}
	o.CreateTime = store.Timestamp(o.CreateTime)
	doc, err := store.EncodeOwned(o)
	if err != nil {
		return err
	}
	etag := store.NewEtag()
	_, err = t.q.ExecContext(ctx, `INSERT INTO owned (`+ownedColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		o.Kind, o.Name, o.Team, etag, formatTime(o.CreateTime), doc)
	if isDuplicate(err) {
		return fmt.Errorf("%s %s: %w", o.Kind, o.Name, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.Kind, o.Name, err)
	}
	o.Etag = etag
	return nil
}

func (t *tx) UpdateOwned(ctx context.Context, o *store.Owned, expectedEtag string) error {
	doc, err := store.EncodeOwned(o)
	if err != nil {
		return err
	}
	etag := store.NewEtag()
	res, err := t.q.ExecContext(ctx, `UPDATE owned SET etag = ?, doc = ? WHERE kind = ? AND name = ? AND etag = ?`,
		etag, doc, o.Kind, o.Name, expectedEtag)
	if err := t.ownedChanged(ctx, res, err, o.Kind, o.Name, expectedEtag); err != nil {
		return err
	}
	o.Etag = etag
	return nil
}

func (t *tx) DeleteOwned(ctx context.Context, kind, name, expectedEtag string) error {
	res, err := t.q.ExecContext(ctx, `DELETE FROM owned WHERE kind = ? AND name = ? AND (? = '' OR etag = ?)`,
		kind, name, expectedEtag, expectedEtag)
	return t.ownedChanged(ctx, res, err, kind, name, expectedEtag)
}

// ownedChanged tells a missing record from a stale etag when a
// compare-and-swap changed no row.
func (t *tx) ownedChanged(ctx context.Context, res sql.Result, err error, kind, name, expectedEtag string) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	} else if n == 1 {
		return nil
	}
	if _, err := getOwned(ctx, t.q, kind, name); err != nil {
		return err
	}
	return fmt.Errorf("%s %s: %w: it changed since etag %q was read; get it again and retry", kind, name, store.ErrEtagMismatch, expectedEtag)
}
