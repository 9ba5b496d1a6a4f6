package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/internal/testpg"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
	"github.com/loopgate/loopgate/store/storetest"
)

// TestContract runs the shared store contract suite against PostgreSQL,
// each subtest on a fresh database.
func TestContract(t *testing.T) {
	var dsns sync.Map // *postgres.Store -> DSN, for the tamper hook
	dsnOf := func(t *testing.T, s store.Store) string {
		t.Helper()
		dsn, ok := dsns.Load(s.(*postgres.Store))
		if !ok {
			t.Fatal("store not opened by this test")
		}
		return dsn.(string)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn := testpg.DSN(t)
		s := open(t, dsn)
		dsns.Store(s, dsn)
		return s
	}, storetest.Options{WriteLegacyAudit: func(t *testing.T, s store.Store, ev audit.Event) {
		// Insert the sealed event and move the head, bypassing AppendAudit
		// (and audit.Bound), as a loopgate from before the size limits did.
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsnOf(t, s))
		if err != nil {
			t.Fatalf("write legacy audit event: %v", err)
		}
		defer conn.Close(ctx)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_events
				(seq, id, time, actor, action, resource, request_id, decision_id, outcome, details, prev_hash, hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				ev.Seq, ev.ID, ev.Time, ev.Actor, ev.Action, ev.Resource, ev.RequestID, ev.DecisionID,
				ev.Outcome, string(ev.Details), ev.PrevHash, ev.Hash); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2`, ev.Seq, ev.Hash)
			return err
		})
		if err != nil {
			t.Fatalf("write legacy audit event %d: %v", ev.Seq, err)
		}
	}, Tamper: func(t *testing.T, s store.Store, seq int64, how storetest.Tampering) {
		t.Helper()
		dsn := dsnOf(t, s)
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
		conn, err := pgx.Connect(ctx, dsn)
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
