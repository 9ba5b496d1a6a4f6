package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/store"
)

var _ store.Observations = (*Store)(nil)

// GetObservation returns the observation of team/name.
func (s *Store) GetObservation(ctx context.Context, team, name string) (*store.Observation, error) {
	var updated time.Time
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT update_time, doc FROM loop_observations WHERE team = $1 AND name = $2`, team, name).Scan(&updated, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
	}
	o, err := store.DecodeObservation(doc)
	if err != nil {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
	}
	o.Team, o.Name, o.UpdateTime = team, name, updated.UTC()
	return o, nil
}

// ListObservations returns the observations of the loops in r, ordered by
// (team, name) (COLLATE "C": the loops' order).
func (s *Store) ListObservations(ctx context.Context, r store.KeyRange) ([]*store.Observation, error) {
	where, args := "", []any{}
	if r.From != (store.LoopKey{}) {
		args = append(args, r.From.Team, r.From.Name)
		where += " AND (team, name) >= ($1, $2)"
	}
	if r.To != (store.LoopKey{}) {
		args = append(args, r.To.Team, r.To.Name)
		where += fmt.Sprintf(" AND (team, name) <= ($%d, $%d)", len(args)-1, len(args))
	}
	rows, err := s.pool.Query(ctx, `SELECT team, name, update_time, doc FROM loop_observations WHERE true`+where+` ORDER BY team, name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	defer rows.Close()
	var out []*store.Observation
	for rows.Next() {
		var team, name string
		var updated time.Time
		var doc []byte
		if err := rows.Scan(&team, &name, &updated, &doc); err != nil {
			return nil, fmt.Errorf("list observations: %w", err)
		}
		o, err := store.DecodeObservation(doc)
		if err != nil {
			return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
		}
		o.Team, o.Name, o.UpdateTime = team, name, updated.UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

// PutObservations writes observations and daily sketches in one write
// transaction; entries of loops that do not exist are skipped.
func (s *Store) PutObservations(ctx context.Context, obs []store.Observation, days []store.DailySketch, pruneBefore time.Time) error {
	return s.Update(ctx, func(t store.Tx) error {
		q := t.(*tx).q
		for _, o := range obs {
			doc, err := json.Marshal(o)
			if err != nil {
				return fmt.Errorf("observation of %s/%s: %w", o.Team, o.Name, err)
			}
			updated := o.UpdateTime
			if updated.IsZero() {
				updated = time.Now()
			}
			if _, err := q.Exec(ctx, `INSERT INTO loop_observations (team, name, update_time, doc)
				SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM loops WHERE team = $1 AND name = $2)
				ON CONFLICT (team, name) DO UPDATE SET update_time = excluded.update_time, doc = excluded.doc`,
				o.Team, o.Name, store.Timestamp(updated), doc); err != nil {
				return fmt.Errorf("observation of %s/%s: %w", o.Team, o.Name, err)
			}
		}
		for _, d := range days {
			day := d.Day.UTC().Truncate(24 * time.Hour)
			if _, err := q.Exec(ctx, `INSERT INTO loop_latency_days (team, name, day, sketch, records, records_without_header, records_over_target)
				SELECT $1, $2, $3::date, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM loops WHERE team = $1 AND name = $2)
				ON CONFLICT (team, name, day) DO UPDATE SET sketch = excluded.sketch, records = excluded.records,
					records_without_header = excluded.records_without_header, records_over_target = excluded.records_over_target`,
				d.Team, d.Name, day.Format("2006-01-02"), d.Sketch, d.Records, d.RecordsWithoutHeader, d.RecordsOverTarget); err != nil {
				return fmt.Errorf("latency sketch of %s/%s day %s: %w", d.Team, d.Name, day.Format("2006-01-02"), err)
			}
		}
		if !pruneBefore.IsZero() {
			if _, err := q.Exec(ctx, `DELETE FROM loop_latency_days WHERE day < $1::date`, pruneBefore.UTC().Format("2006-01-02")); err != nil {
				return fmt.Errorf("pruning latency sketches: %w", err)
			}
		}
		return nil
	})
}

// ListDailySketches returns the daily sketches of days at or after since.
func (s *Store) ListDailySketches(ctx context.Context, since time.Time) ([]store.DailySketch, error) {
	rows, err := s.pool.Query(ctx, `SELECT team, name, to_char(day, 'YYYY-MM-DD'), sketch, records, records_without_header, records_over_target
		FROM loop_latency_days WHERE day >= $1::date ORDER BY team, name, day`, since.UTC().Format("2006-01-02"))
	if err != nil {
		return nil, fmt.Errorf("list latency sketches: %w", err)
	}
	defer rows.Close()
	var out []store.DailySketch
	for rows.Next() {
		var d store.DailySketch
		var day string
		if err := rows.Scan(&d.Team, &d.Name, &day, &d.Sketch, &d.Records, &d.RecordsWithoutHeader, &d.RecordsOverTarget); err != nil {
			return nil, fmt.Errorf("list latency sketches: %w", err)
		}
		if d.Day, err = time.Parse("2006-01-02", day); err != nil {
			return nil, fmt.Errorf("list latency sketches: day %q: %w", day, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
