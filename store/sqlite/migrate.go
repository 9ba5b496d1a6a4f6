package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/loopgate/loopgate/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies the embedded migrations newer than the database's schema
// version, each in its own write transaction together with its row in
// schema_migrations. A database migrated by a newer loopgate is refused
// rather than misread.
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
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := s.applyMigration(ctx, m, len(migrations)); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies m unless the database already has it. The
// version is read inside the (immediate, hence exclusive) transaction, so
// two processes opening the same new file cannot both apply m.
func (s *Store) applyMigration(ctx context.Context, m store.Migration, known int) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate to version %d: %w", m.Version, err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if current > known {
		return fmt.Errorf("migrate: database schema version %d is newer than this loopgate knows (%d): run a newer loopgate", current, known)
	}
	if current >= m.Version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate: apply %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, formatTime(s.now())); err != nil {
		return fmt.Errorf("migrate: record %s: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit %s: %w", m.Name, err)
	}
	return nil
}
