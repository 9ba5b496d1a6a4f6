package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/internal/testpg"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
	"github.com/loopgate/loopgate/store/storetest"
)

// TestContract runs the shared store contract suite against PostgreSQL,
// each subtest on a fresh database.
func TestContract(t *testing.T) {
	var dsns sync.Map // *postgres.Store -> DSN, for the tamper hook
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn := testpg.DSN(t)
		s := open(t, dsn)
		dsns.Store(s, dsn)
		return s
	}, storetest.Options{Tamper: func(t *testing.T, s store.Store, seq int64, how storetest.Tampering) {
		t.Helper()
		dsn, ok := dsns.Load(s.(*postgres.Store))
		if !ok {
			t.Fatal("tamper: store not opened by this test")
		}
		var sql string
		switch how {
		case storetest.ChangeActor:
			sql = `UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = $1`
		case storetest.ChangeDetails:
			sql = `UPDATE audit_events SET details = '{"tampered":true}' WHERE seq = $1`
		case storetest.DeleteEvent:
			sql = `DELETE FROM audit_events WHERE seq = $1`
		default:
			t.Fatalf("tamper: unsupported %v", how)
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn.(string))
		if err != nil {
			t.Fatalf("tamper: %v", err)
		}
		defer conn.Close(ctx)
		tag, err := conn.Exec(ctx, sql, seq)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("tamper %v on event %d: %v (%d rows)", how, seq, err, tag.RowsAffected())
		}
	}})
}
