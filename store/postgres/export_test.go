package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateBefore brings the database at dsn up to the migration before the
// one named next only, as the loopgate before next left it, and returns
// that schema version. For upgrade tests.
func MigrateBefore(ctx context.Context, dsn, next string) (int, error) {
	migrations, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	n := -1
	for i, m := range migrations {
		if m.Name == next {
			n = i
		}
	}
	if n < 0 {
		return 0, fmt.Errorf("no migration %s", next)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	s := &Store{pool: pool, writers: make(chan struct{}, 1), now: time.Now, where: "upgrade test"}
	if err := s.applyMigrations(ctx, migrations[:n]); err != nil {
		return 0, err
	}
	return n, nil
}
