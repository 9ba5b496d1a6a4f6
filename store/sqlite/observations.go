package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/store"
)

var _ store.Observations = (*Store)(nil)

const dayLayout = "2006-01-02"

// GetObservation returns the observation of team/name.
func (s *Store) GetObservation(ctx context.Context, team, name string) (*store.Observation, error) {
	var updated, doc string
	err := s.reader.QueryRowContext(ctx, `SELECT update_time, doc FROM loop_observations WHERE team = ? AND name = ?`, team, name).Scan(&updated, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
	}
	return decodeObservation(team, name, updated, doc)
}

func decodeObservation(team, name, updated, doc string) (*store.Observation, error) {
	o, err := store.DecodeObservation([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
	}
	o.Team, o.Name = team, name
	t, err := parseTime(updated)
	if err != nil {
		return nil, fmt.Errorf("observation of %s/%s: %w", team, name, err)
	}
	o.UpdateTime = t
	return o, nil
}

// ListObservations returns the observations of the loops in r, ordered by
// (team, name).
func (s *Store) ListObservations(ctx context.Context, r store.KeyRange) ([]*store.Observation, error) {
	where, args := "", []any{}
	if r.From != (store.LoopKey{}) {
		where += " AND (team > ? OR (team = ? AND name >= ?))"
		args = append(args, r.From.Team, r.From.Team, r.From.Name)
	}
	if r.To != (store.LoopKey{}) {
		where += " AND (team < ? OR (team = ? AND name <= ?))"
		args = append(args, r.To.Team, r.To.Team, r.To.Name)
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT team, name, update_time, doc FROM loop_observations WHERE 1 = 1`+where+` ORDER BY team, name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list observations: %w", err)
	}
	defer rows.Close()
	var out []*store.Observation
	for rows.Next() {
		var team, name, updated, doc string
		if err := rows.Scan(&team, &name, &updated, &doc); err != nil {
			return nil, fmt.Errorf("list observations: %w", err)
		}
		o, err := decodeObservation(team, name, updated, doc)
		if err != nil {
			return nil, err
		}
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
				updated = s.now()
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO loop_observations (team, name, update_time, doc)
				SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM loops WHERE team = ? AND name = ?)
				ON CONFLICT (team, name) DO UPDATE SET update_time = excluded.update_time, doc = excluded.doc`,
				o.Team, o.Name, formatTime(updated), string(doc), o.Team, o.Name); err != nil {
				return fmt.Errorf("observation of %s/%s: %w", o.Team, o.Name, err)
			}
		}
		for _, d := range days {
			if _, err := q.ExecContext(ctx, `INSERT INTO loop_latency_days (team, name, day, sketch, records, records_without_header, records_over_target)
				SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM loops WHERE team = ? AND name = ?)
				ON CONFLICT (team, name, day) DO UPDATE SET sketch = excluded.sketch, records = excluded.records,
					records_without_header = excluded.records_without_header, records_over_target = excluded.records_over_target`,
				d.Team, d.Name, d.Day.UTC().Format(dayLayout), d.Sketch, d.Records, d.RecordsWithoutHeader, d.RecordsOverTarget, d.Team, d.Name); err != nil {
				return fmt.Errorf("latency sketch of %s/%s day %s: %w", d.Team, d.Name, d.Day.UTC().Format(dayLayout), err)
			}
		}
		if !pruneBefore.IsZero() {
			if _, err := q.ExecContext(ctx, `DELETE FROM loop_latency_days WHERE day < ?`, pruneBefore.UTC().Format(dayLayout)); err != nil {
				return fmt.Errorf("pruning latency sketches: %w", err)
			}
		}
		return nil
	})
}

// ListDailySketches returns the daily sketches of days at or after since.
func (s *Store) ListDailySketches(ctx context.Context, since time.Time) ([]store.DailySketch, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT team, name, day, sketch, records, records_without_header, records_over_target
		FROM loop_latency_days WHERE day >= ? ORDER BY team, name, day`, since.UTC().Format(dayLayout))
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
		if d.Day, err = time.Parse(dayLayout, day); err != nil {
			return nil, fmt.Errorf("list latency sketches: day %q: %w", day, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
