package store

import "github.com/loopgate/loopgate/loop"

// Rows is the part of a query result that database/sql (*sql.Rows) and pgx
// (pgx.Rows) have in common, so that the backends share their scan loops.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanAll reads every row with scan.
func ScanAll[T any](rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// PageOf cuts the result of a list query that asked for size+1 loops into
// the page of size loops and the token of the next page ("" when the extra
// loop is absent: this was the last page).
func PageOf(loops []*loop.Loop, size int, filterTeam string) ([]*loop.Loop, string) {
	if len(loops) <= size {
		return loops, ""
	}
	page := loops[:size]
	last := page[size-1].Metadata
	return page, EncodePageToken(filterTeam, last.Team, last.Name)
}
