package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loopgate/loopgate/store"
)

const ownedColumns = `kind, name, team, etag, create_time, doc`

func (s *Store) GetOwned(ctx context.Context, kind, name string) (*store.Owned, error) {
	return getOwned(ctx, s.pool, kind, name)
}

func (t *tx) GetOwned(ctx context.Context, kind, name string) (*store.Owned, error) {
	return getOwned(ctx, t.q, kind, name)
}

func (s *Store) ListOwned(ctx context.Context, f store.OwnedFilter) ([]*store.Owned, string, error) {
	return listOwned(ctx, s.pool, f)
}

func (t *tx) ListOwned(ctx context.Context, f store.OwnedFilter) ([]*store.Owned, string, error) {
	return listOwned(ctx, t.q, f)
}

func getOwned(ctx context.Context, q querier, kind, name string) (*store.Owned, error) {
	o, err := scanOwned(q.QueryRow(ctx, `SELECT `+ownedColumns+` FROM owned WHERE kind = $1 AND name = $2`, kind, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", kind, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return o, nil
}

func listOwned(ctx context.Context, q querier, f store.OwnedFilter) ([]*store.Owned, string, error) {
	size := store.OwnedPageSize(f.PageSize)
	query := `SELECT ` + ownedColumns + ` FROM owned WHERE kind = $1`
	args := []any{f.Kind}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Team != "" {
		query += ` AND team = ` + arg(f.Team)
	}
	if f.PageToken != "" {
		after, err := store.DecodeOwnedPageToken(f)
		if err != nil {
			return nil, "", fmt.Errorf("list %ss: %w", f.Kind, err)
		}
		query += ` AND name > ` + arg(after)
	}
	query += ` ORDER BY name LIMIT ` + arg(size+1)
	rows, err := q.Query(ctx, query, args...)
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
	var kind, name, team, etag string
	var created time.Time
	var doc []byte
	if err := row.Scan(&kind, &name, &team, &etag, &created, &doc); err != nil {
		return nil, err
	}
	return store.DecodeOwned(kind, name, team, etag, created, doc)
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
	// ON CONFLICT, not a caught 23505: a failed statement would abort the
	// whole transaction.
	tag, err := t.q.Exec(ctx, `INSERT INTO owned (`+ownedColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (kind, name) DO NOTHING`, o.Kind, o.Name, o.Team, etag, o.CreateTime, doc)
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.Kind, o.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s: %w", o.Kind, o.Name, store.ErrAlreadyExists)
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
	tag, err := t.q.Exec(ctx, `UPDATE owned SET etag = $1, doc = $2 WHERE kind = $3 AND name = $4 AND etag = $5`,
		etag, doc, o.Kind, o.Name, expectedEtag)
	if err := t.ownedChanged(ctx, tag, err, o.Kind, o.Name, expectedEtag); err != nil {
		return err
	}
	o.Etag = etag
	return nil
}

func (t *tx) DeleteOwned(ctx context.Context, kind, name, expectedEtag string) error {
	tag, err := t.q.Exec(ctx, `DELETE FROM owned WHERE kind = $1 AND name = $2 AND ($3 = '' OR etag = $3)`,
		kind, name, expectedEtag)
	return t.ownedChanged(ctx, tag, err, kind, name, expectedEtag)
}

// ownedChanged tells a missing record from a stale etag when a
// compare-and-swap changed no row.
func (t *tx) ownedChanged(ctx context.Context, tag pgconn.CommandTag, err error, kind, name, expectedEtag string) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := getOwned(ctx, t.q, kind, name); err != nil {
		return err
	}
	return fmt.Errorf("%s %s: %w: it changed since etag %q was read; get it again and retry", kind, name, store.ErrEtagMismatch, expectedEtag)
}
