package testpg_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Each call must hand out its own empty database, so tests never see each
// other's rows.
func TestDSNGivesFreshEmptyDatabasePerCall(t *testing.T) {
	ctx := context.Background()
	a, b := testpg.DSN(t), testpg.DSN(t)
	if dbName(t, a) == dbName(t, b) {
		t.Fatalf("two DSN calls returned the same database %q", dbName(t, a))
	}
	for _, dsn := range []string{a, b} {
		if !strings.HasPrefix(dbName(t, dsn), "lg_") {
			t.Errorf("database %q: want the lg_ prefix", dbName(t, dsn))
		}
		conn := connect(t, dsn)
		var tables int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database %s has %d tables, want 0", dbName(t, dsn), tables)
		}
	}
	connA := connect(t, a)
	if _, err := connA.Exec(ctx, `CREATE TABLE marker (id int)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connect(t, b).QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'marker'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("a table created in one test database is visible in another")
	}
	if testpg.Version() == "" {
		t.Error("Version() is empty after the server started")
	}
	t.Logf("PostgreSQL %s", testpg.Version())
}

// Databases are dropped when their test ends, even with a session still
// open, so a long test run does not pile up databases.
func TestDatabaseIsDroppedWhenTestEnds(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := testpg.DSN(t)
		name = dbName(t, dsn)
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn // deliberately left open: the drop must force it closed
	})
	if t.Failed() {
		return
	}
	var exists bool
	err := connect(t, testpg.DSN(t)).QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists)
	if err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}
