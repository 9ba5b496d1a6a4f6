package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/storetest"
)

func openT(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tamper edits audit rows directly, as someone with write access to the
// database file would.
func tamper(t *testing.T, st store.Store, seq int64, how storetest.Tampering) {
	t.Helper()
	var query string
	switch how {
	case storetest.ChangeActor:
		query = `UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = ?`
	case storetest.ChangeDetails:
		query = `UPDATE audit_events SET details = '{"tampered":true}' WHERE seq = ?`
	case storetest.DeleteEvent:
		query = `DELETE FROM audit_events WHERE seq = ?`
	default:
		t.Fatalf("unknown tampering %v", how)
	}
	res, err := st.(*Store).writer.ExecContext(context.Background(), query, seq)
	if err != nil {
		t.Fatalf("tamper (%s) with event %d: %v", how, seq, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper (%s) with event %d changed %d rows, want 1", how, seq, n)
	}
}

// writeLegacyAudit inserts a sealed event and moves the chain head to it,
// bypassing AppendAudit (and so audit.Bound), as a loopgate from before
// the audit size limits stored its events.
func writeLegacyAudit(t *testing.T, st store.Store, ev audit.Event) {
	t.Helper()
	s := st.(*Store)
	ctx := context.Background()
	err := s.Update(ctx, func(stx store.Tx) error {
		q := stx.(*tx).q
		if _, err := q.ExecContext(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.Seq, ev.ID, formatTime(ev.Time), ev.Actor, ev.Action, ev.Resource, ev.RequestID, ev.DecisionID,
			ev.Outcome, string(ev.Details), ev.PrevHash, ev.Hash); err != nil {
			return err
		}
		_, err := q.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ?`, ev.Seq, ev.Hash)
		return err
	})
	if err != nil {
		t.Fatalf("write legacy audit event %d: %v", ev.Seq, err)
	}
}

func TestContractFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openT(t, filepath.Join(t.TempDir(), "loopgate.db"))
	}, storetest.Options{Tamper: tamper, WriteLegacyAudit: writeLegacyAudit})
}

func TestContractMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openT(t, MemoryPath)
	}, storetest.Options{Tamper: tamper, WriteLegacyAudit: writeLegacyAudit})
}

func TestReopenKeepsLoopsAndAuditChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "loopgate.db") // directory created by Open
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l := &loop.Loop{Metadata: loop.Metadata{Team: "growth", Name: "checkout-nudge"},
		Spec: loop.Spec{Owners: []string{"ana@example.com"}, Residency: "eu"}}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, l); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Event{Actor: "ana@example.com", Action: "loop.create",
			Resource: l.Metadata.ResourceName(), Outcome: audit.OutcomeOK})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openT(t, path)
	got, err := s.GetLoop(ctx, "growth", "checkout-nudge")
	if err != nil {
		t.Fatalf("GetLoop after reopen: %v", err)
	}
	if got.Metadata.Etag != l.Metadata.Etag || got.Metadata.UID != l.Metadata.UID || got.Spec.Residency != "eu" {
		t.Errorf("after reopen loop = %+v, want %+v", got.Metadata, l.Metadata)
	}
	if res, err := s.VerifyAudit(ctx); err != nil || !res.OK || res.Events != 1 {
		t.Errorf("VerifyAudit after reopen = %+v, %v; want 1 intact event", res, err)
	}
	var versions int
	files, _ := migrationFiles.ReadDir("migrations")
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != len(files) {
		t.Errorf("schema_migrations has %d rows (err %v) after two opens, want each migration recorded once", versions, err)
	}
}

// openAtMigration creates the database at path with the migrations before
// the one named next only, as the loopgate before next left it, and
// returns its writer connection (closed when the test ends).
func openAtMigration(t *testing.T, path, next string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	migrations, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	n := slices.IndexFunc(migrations, func(m store.Migration) bool { return m.Name == next })
	if n < 0 {
		t.Fatalf("no migration %s", next)
	}
	db, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	old := &Store{path: path, writer: db, reader: db, now: time.Now}
	if err := old.applyMigrations(ctx, migrations[:n]); err != nil {
		t.Fatalf("migrate to the version before %s: %v", next, err)
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != n {
		t.Fatalf("schema version %d (err %v), want %d", v, err, n)
	}
	return db
}

// Request records written before requests were bound to who sent what
// survive the upgrade as legacy records: same resource and time, with an
// empty (not NULL) subject, method and hash; their id stays taken.
func TestUpgradeKeepsRequestsAsLegacyRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loopgate.db")
	db := openAtMigration(t, path, "0005_request_binding.sql")
	// As the previous PutRequest wrote it.
	created := time.Date(2026, 10, 1, 9, 30, 0, 123456000, time.UTC)
	if _, err := db.ExecContext(ctx, `INSERT INTO requests (request_id, resource, create_time) VALUES (?, ?, ?)`,
		"req-legacy", "teams/growth/loops/checkout-nudge", formatTime(created)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openT(t, path)
	want := store.Request{ID: "req-legacy", Resource: "teams/growth/loops/checkout-nudge", Time: created}
	got, found, err := s.GetRequest(ctx, "req-legacy")
	if err != nil || !found || got != want {
		t.Fatalf("GetRequest of a legacy record = %+v found=%v err=%v, want %+v", got, found, err, want)
	}
	var nulls int
	if err := s.reader.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM requests WHERE subject IS NULL OR method IS NULL OR hash IS NULL`).Scan(&nulls); err != nil || nulls != 0 {
		t.Errorf("%d request rows with NULL binding columns (err %v), want '' in all", nulls, err)
	}
	bound := store.Request{ID: "req-legacy", Subject: "ana@example.com", Method: "loop.create",
		Resource: "teams/growth/loops/checkout-nudge", Hash: "00ff"}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, bound) })
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("PutRequest over a legacy record: %v, want ErrAlreadyExists", err)
	}
	if got, _, _ := s.GetRequest(ctx, "req-legacy"); got != want {
		t.Errorf("legacy record after a refused put = %+v, want it unchanged %+v", got, want)
	}
	bound.ID = "req-new"
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, bound) }); err != nil {
		t.Fatalf("PutRequest after the upgrade: %v", err)
	}
	if got, found, err := s.GetRequest(ctx, "req-new"); err != nil || !found || got.Subject != bound.Subject || got.Method != bound.Method || got.Hash != bound.Hash {
		t.Errorf("GetRequest(req-new) after the upgrade = %+v found=%v err=%v, want %+v", got, found, err, bound)
	}
}

// Decisions recorded before the decision log kept inputs survive the
// upgrade with no input, digest, duration or kind, and the rule ids their
// results name are indexed, so that the rule filter finds them; results
// of any other shape (even text that is not JSON) name no rule.
func TestUpgradeIndexesTheRulesOfEarlierDecisions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loopgate.db")
	db := openAtMigration(t, path, "0006_policy_governance.sql")
	recorded := time.Date(2026, 10, 1, 9, 30, 0, 123456000, time.UTC)
	for i, result := range []string{
		// As admission records it.
		`{"approval":[{"id":"PII_REVIEW","msg":"m","field":""}],"deny":[{"id":"RETENTION_TOO_LONG","msg":"m","field":"spec.retention"}],"warn":[{"id":"RETENTION","msg":"m","field":""},{"id":"RETENTION","msg":"again","field":"x"}]}`,
		`null`, `{}`, `[1,2]`, `"text"`, `not json`,
		`{"deny":"RETENTION","warn":[1,"RETENTION",{"id":7},{"id":""},{"rule":"RETENTION"}],"meta":{"id":"RETENTION"}}`,
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO decisions (id, time, resource, operation, bundle_revision, result) VALUES (?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("dec-%d", i), formatTime(recorded.Add(time.Duration(i)*time.Second)), "teams/growth/loops/x", "UPDATE", "", result); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openT(t, path)
	got, err := s.GetDecision(ctx, "dec-0")
	if err != nil || !got.Time.Equal(recorded) || got.Input != nil || got.InputDigest != "" || got.Duration != 0 || got.Kind != "" {
		t.Fatalf("GetDecision of an earlier decision = %+v, %v; want its time and no input, digest, duration or kind", got, err)
	}
	for rule, want := range map[string][]string{
		"RETENTION": {"dec-0"}, "RETENTION_TOO_LONG": {"dec-0"}, "PII_REVIEW": {"dec-0"}, "7": nil, "": nil,
	} {
		list, err := s.ListDecisions(ctx, store.DecisionFilter{Rule: rule})
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if err != nil || (rule != "" && !slices.Equal(ids, want)) || (rule == "" && len(ids) != 7) {
			t.Errorf("ListDecisions(rule %q) after the upgrade = %v, %v; want %v", rule, ids, err, want)
		}
	}
	var indexed int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM decision_rules`).Scan(&indexed); err != nil || indexed != 3 {
		t.Errorf("decision_rules has %d rows (err %v) after the upgrade, want 3", indexed, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		n, err := tx.PruneDecisions(ctx, recorded.Add(time.Hour), 0)
		if err == nil && n != 7 {
			err = fmt.Errorf("pruned %d, want 7", n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("PruneDecisions of earlier decisions: %v", err)
	}
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM decision_rules`).Scan(&indexed); err != nil || indexed != 0 {
		t.Errorf("decision_rules has %d rows (err %v) after pruning every decision, want 0", indexed, err)
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loopgate.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a database from a newer loopgate: %v, want a 'newer' error naming the file", err)
	}
}

func TestOpenRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "db?mode=ro"} {
		if _, err := Open(context.Background(), p); err == nil {
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

// TestTwoStoresOnOneFileSerialiseWriters opens the same file twice, as two
// loopgate processes would: BEGIN IMMEDIATE and the busy timeout must keep
// their audit appends from forking the chain.
func TestTwoStoresOnOneFileSerialiseWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loopgate.db")
	stores := []*Store{openT(t, path), openT(t, path)}
	const each = 40
	var wg sync.WaitGroup
	for i, s := range stores {
		for g := range 2 {
			wg.Go(func() {
				ctx := context.Background()
				for n := range each {
					err := s.Update(ctx, func(tx store.Tx) error {
						_, err := tx.AppendAudit(ctx, audit.Event{Actor: fmt.Sprintf("process-%d-%d", i, g),
							Action: "loop.update", Resource: "teams/growth/loops/x", RequestID: fmt.Sprint(n)})
						return err
					})
					if err != nil {
						t.Errorf("store %d goroutine %d append %d: %v", i, g, n, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	res, err := stores[0].VerifyAudit(context.Background())
	if err != nil || !res.OK || res.Events != 4*each {
		t.Fatalf("VerifyAudit = %+v, %v; want an intact chain of %d events", res, err, 4*each)
	}
}

func TestUpdateOnClosedStoreFails(t *testing.T) {
	s, err := Open(context.Background(), MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	err = s.Update(context.Background(), func(tx store.Tx) error { return nil })
	if !errors.Is(err, sql.ErrConnDone) && (err == nil || !strings.Contains(err.Error(), "closed")) {
		t.Fatalf("Update on a closed store: %v, want a 'database is closed' error", err)
	}
}
