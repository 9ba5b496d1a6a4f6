package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/internal/testpg"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }

// open opens a Store on dsn, closed when the test ends.
func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sampleLoop(team, name string) *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: team, Name: name, Labels: map[string]string{"count": "0"}},
		Spec: loop.Spec{
			Owners:         []string{"ana@example.com"},
			Classification: loop.Internal,
			Residency:      "eu",
			RetentionMs:    72 * 3600 * 1000,
			SLO:            loop.SLO{LatencyP99Ms: 2000},
			Throughput:     loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3},
			Streams: []loop.Stream{{Name: "events", Schema: loop.Schema{Format: "avro",
				Definition: `{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}`}}},
		},
	}
}

func auditEvent(actor, action, resource string) audit.Event {
	return audit.Event{Actor: actor, Action: action, Resource: resource, Outcome: audit.OutcomeOK,
		Details: json.RawMessage(`{"by": "test"}`)}
}

// allAudit pages through the whole chain.
func allAudit(t *testing.T, s store.Store) []audit.Event {
	t.Helper()
	var out []audit.Event
	after := int64(0)
	for {
		page, err := s.ListAudit(context.Background(), store.AuditFilter{AfterSeq: after, PageSize: store.MaxPageSize})
		if err != nil {
			t.Fatalf("ListAudit: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

func assertChain(t *testing.T, s store.Store, want int) {
	t.Helper()
	events := allAudit(t, s)
	if len(events) != want {
		t.Errorf("audit chain has %d events, want %d", len(events), want)
	}
	for i, ev := range events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: seqs must be contiguous from 1", i, ev.Seq)
		}
	}
	res, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if !res.OK || res.Events != int64(want) {
		t.Errorf("VerifyAudit = %+v (first broken %+v), want OK over %d events", res, res.FirstBroken, want)
	}
}

// Two loopgate processes (two Stores, two connection pools) increment a
// counter label on the same loop, each in read-modify-write transactions
// that also append an audit event. Every increment must survive (no lost
// update), none may fail, and the audit chain must have exactly one event
// per write, contiguous and verifiable.
func TestTwoProcessesReadModifyWriteInsideUpdateLosesNothing(t *testing.T) {
	dsn := testpg.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := context.Background()
	if err := a.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, sampleLoop("growth", "counter")); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, auditEvent("test", "loop.create", "teams/growth/loops/counter"))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	const workersPerStore, perWorker = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*workersPerStore*perWorker)
	for _, s := range []*postgres.Store{a, b} {
		for w := range workersPerStore {
			wg.Go(func() {
				for i := range perWorker {
					errs <- s.Update(ctx, func(tx store.Tx) error {
						l, err := tx.GetLoop(ctx, "growth", "counter")
						if err != nil {
							return err
						}
						n, _ := strconv.Atoi(l.Metadata.Labels["count"])
						l.Metadata.Labels["count"] = strconv.Itoa(n + 1)
						if err := tx.UpdateLoop(ctx, l, l.Metadata.Etag); err != nil {
							return err
						}
						_, err = tx.AppendAudit(ctx, auditEvent(fmt.Sprintf("worker-%d", w), "loop.update",
							fmt.Sprintf("teams/growth/loops/counter#%d", i)))
						return err
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent update failed: %v", err)
		}
	}
	const total = 2 * workersPerStore * perWorker
	l, err := b.GetLoop(ctx, "growth", "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Metadata.Labels["count"]; got != strconv.Itoa(total) {
		t.Errorf("counter = %s after %d increments: updates were lost", got, total)
	}
	assertChain(t, a, total+1)
}

// Clients that read outside the transaction (as an API client does: GET,
// then PUT with the etag) race each other. The etag compare-and-swap must
// let exactly one writer win per version: the final counter equals the
// number of successful writes, and every loser gets ErrEtagMismatch.
func TestTwoProcessesEtagCASAdmitsOneWriterPerVersion(t *testing.T) {
	dsn := testpg.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := context.Background()
	if err := a.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, sampleLoop("growth", "cas")) }); err != nil {
		t.Fatal(err)
	}

	const workers, attempts = 6, 20
	var mu sync.Mutex
	wins, conflicts := 0, 0
	var wg sync.WaitGroup
	for w := range workers {
		s := []*postgres.Store{a, b}[w%2]
		wg.Go(func() {
			for range attempts {
				l, err := s.GetLoop(ctx, "growth", "cas") // outside the transaction: may be stale
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := strconv.Atoi(l.Metadata.Labels["count"])
				l.Metadata.Labels["count"] = strconv.Itoa(n + 1)
				err = s.Update(ctx, func(tx store.Tx) error {
					if err := tx.UpdateLoop(ctx, l, l.Metadata.Etag); err != nil {
						return err
					}
					_, err := tx.AppendAudit(ctx, auditEvent("cas", "loop.update", "teams/growth/loops/cas"))
					return err
				})
				mu.Lock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrEtagMismatch):
					conflicts++
				default:
					t.Errorf("update: want success or ErrEtagMismatch, got %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l, err := a.GetLoop(ctx, "growth", "cas")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Metadata.Labels["count"]; got != strconv.Itoa(wins) {
		t.Errorf("counter = %s but %d writes succeeded: a write based on a stale etag got through", got, wins)
	}
	if wins+conflicts != workers*attempts {
		t.Errorf("wins %d + conflicts %d != %d attempts", wins, conflicts, workers*attempts)
	}
	t.Logf("%d writes won, %d lost the race with ErrEtagMismatch", wins, conflicts)
	assertChain(t, b, wins) // a losing write's audit event rolled back with it
}

// Concurrent audit appends from two processes, some in transactions that
// roll back, must leave one linear chain: seqs 1..n with no gap left by a
// rollback and no two events claiming the same predecessor.
func TestConcurrentAuditAppendsNeverForkOrGap(t *testing.T) {
	dsn := testpg.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := context.Background()
	errRollback := errors.New("roll back on purpose")

	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	for w := range workers {
		s := []*postgres.Store{a, b}[w%2]
		wg.Go(func() {
			for i := range perWorker {
				rollback := i%5 == 4
				err := s.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.AppendAudit(ctx, auditEvent(fmt.Sprintf("w%d", w), "audit.test", "teams/x")); err != nil {
						return err
					}
					if rollback {
						return errRollback
					}
					return nil
				})
				switch {
				case rollback && !errors.Is(err, errRollback):
					t.Errorf("rolled-back append: got %v", err)
				case !rollback && err != nil:
					t.Errorf("append: %v", err)
				case !rollback:
					mu.Lock()
					committed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	events := allAudit(t, a)
	prevs := map[string]int64{}
	for _, ev := range events {
		if other, dup := prevs[ev.PrevHash]; dup {
			t.Errorf("events %d and %d both follow hash %s: the chain forked", other, ev.Seq, ev.PrevHash)
		}
		prevs[ev.PrevHash] = ev.Seq
	}
	assertChain(t, b, committed)
}

// Several processes starting at once against an empty database must
// migrate it exactly once and all come up.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testpg.DSN(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, maxVersion int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if rows != maxVersion || rows == 0 {
		t.Errorf("schema_migrations has %d rows up to version %d: each migration must be recorded once", rows, maxVersion)
	}
	v, err := stores[0].SchemaVersion(context.Background())
	if err != nil || v != maxVersion {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, maxVersion)
	}
}

// An older binary must refuse a database migrated by a newer one rather
// than write into a schema it does not know.
func TestOpenRefusesNewerSchema(t *testing.T) {
	dsn := testpg.DSN(t)
	open(t, dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(context.Background(), dsn)
	if err == nil || !strings.Contains(err.Error(), "version 999") || !strings.Contains(err.Error(), "newer loopgate") {
		t.Fatalf("Open on a newer schema: got %v, want an error naming version 999 and what to do", err)
	}
}

// Request records written before requests were bound to who sent what
// survive the upgrade as legacy records: same resource and time, with an
// empty (not NULL) subject, method and hash; their id stays taken.
func TestUpgradeKeepsRequestsAsLegacyRecords(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	if _, err := postgres.MigrateBefore(ctx, dsn, "0004_request_binding.sql"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// As the previous PutRequest wrote it.
	created := time.Date(2026, 10, 1, 9, 30, 0, 123456000, time.UTC)
	if _, err := conn.Exec(ctx, `INSERT INTO requests (request_id, resource, create_time) VALUES ($1, $2, $3)`,
		"req-legacy", "teams/growth/loops/checkout-nudge", created); err != nil {
		t.Fatal(err)
	}

	s := open(t, dsn)
	want := store.Request{ID: "req-legacy", Resource: "teams/growth/loops/checkout-nudge", Time: created}
	got, found, err := s.GetRequest(ctx, "req-legacy")
	if err != nil || !found || !got.Time.Equal(created) || got.Time.Location() != time.UTC {
		t.Fatalf("GetRequest of a legacy record = %+v found=%v err=%v, want %+v", got, found, err, want)
	}
	got.Time = created
	if got != want {
		t.Fatalf("GetRequest of a legacy record = %+v, want %+v", got, want)
	}
	var nulls int
	if err := conn.QueryRow(ctx,
		`SELECT count(*) FROM requests WHERE subject IS NULL OR method IS NULL OR hash IS NULL`).Scan(&nulls); err != nil || nulls != 0 {
		t.Errorf("%d request rows with NULL binding columns (err %v), want '' in all", nulls, err)
	}
	bound := store.Request{ID: "req-legacy", Subject: "ana@example.com", Method: "loop.create",
		Resource: "teams/growth/loops/checkout-nudge", Hash: "00ff"}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, bound) })
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("PutRequest over a legacy record: %v, want ErrAlreadyExists", err)
	}
	if got, _, _ := s.GetRequest(ctx, "req-legacy"); got.Subject != "" || got.Method != "" || got.Hash != "" {
		t.Errorf("legacy record after a refused put = %+v, want it unchanged", got)
	}
}

// Decisions recorded before the decision log kept inputs survive the
// upgrade with no input, digest, duration or kind, and the rule ids their
// results name are indexed, so that the rule filter finds them; results
// of any other shape name no rule (and do not break the migration).
func TestUpgradeIndexesTheRulesOfEarlierDecisions(t *testing.T) {
	ctx := context.Background()
	dsn := testpg.DSN(t)
	if _, err := postgres.MigrateBefore(ctx, dsn, "0005_policy_governance.sql"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	recorded := time.Date(2026, 10, 1, 9, 30, 0, 123456000, time.UTC)
	for i, result := range []string{
		// As admission records it.
		`{"approval":[{"id":"PII_REVIEW","msg":"m","field":""}],"deny":[{"id":"RETENTION_TOO_LONG","msg":"m","field":"spec.retention"}],"warn":[{"id":"RETENTION","msg":"m","field":""},{"id":"RETENTION","msg":"again","field":"x"}]}`,
		`null`, `{}`, `[1,2]`, `"text"`,
		`{"deny":"RETENTION","warn":[1,"RETENTION",{"id":7},{"id":""},{"rule":"RETENTION"}],"meta":{"id":"RETENTION"}}`,
	} {
		if _, err := conn.Exec(ctx, `INSERT INTO decisions (id, time, resource, operation, bundle_revision, result) VALUES ($1, $2, $3, $4, $5, $6)`,
			fmt.Sprintf("dec-%d", i), recorded.Add(time.Duration(i)*time.Second), "teams/growth/loops/x", "UPDATE", "", result); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, dsn)
	got, err := s.GetDecision(ctx, "dec-0")
	if err != nil || !got.Time.Equal(recorded) || got.Input != nil || got.InputDigest != "" || got.Duration != 0 || got.Kind != "" {
		t.Fatalf("GetDecision of an earlier decision = %+v, %v; want its time and no input, digest, duration or kind", got, err)
	}
	for rule, want := range map[string][]string{
		"RETENTION": {"dec-0"}, "RETENTION_TOO_LONG": {"dec-0"}, "PII_REVIEW": {"dec-0"}, "7": nil,
	} {
		list, err := s.ListDecisions(ctx, store.DecisionFilter{Rule: rule})
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("ListDecisions(rule %q) after the upgrade = %v, %v; want %v", rule, ids, err, want)
		}
	}
	var indexed int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM decision_rules`).Scan(&indexed); err != nil || indexed != 3 {
		t.Errorf("decision_rules has %d rows (err %v) after the upgrade, want 3", indexed, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		n, err := tx.PruneDecisions(ctx, recorded.Add(time.Hour), 0)
		if err == nil && n != 6 {
			err = fmt.Errorf("pruned %d, want 6", n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("PruneDecisions of earlier decisions: %v", err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM decision_rules`).Scan(&indexed); err != nil || indexed != 0 {
		t.Errorf("decision_rules has %d rows (err %v) after pruning every decision, want 0 (cascade)", indexed, err)
	}
}

// A duplicate create inside a transaction reports ErrAlreadyExists without
// aborting the PostgreSQL transaction, so the caller can still audit the
// refusal in the same transaction and commit it.
func TestDuplicateCreateLeavesTransactionUsable(t *testing.T) {
	s := open(t, testpg.DSN(t))
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, sampleLoop("growth", "dup")) }); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		err := tx.CreateLoop(ctx, sampleLoop("growth", "dup"))
		if !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("duplicate create: got %v, want ErrAlreadyExists", err)
		}
		req := store.Request{ID: "req-1", Subject: "ana", Method: "loop.create", Resource: "teams/growth/loops/dup", Hash: "00ff"}
		if err := tx.PutRequest(ctx, req); err != nil {
			return err
		}
		if err := tx.PutRequest(ctx, req); !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("duplicate request id: got %v, want ErrAlreadyExists", err)
		}
		ev := auditEvent("ana", "loop.create", "teams/growth/loops/dup")
		ev.Outcome = audit.OutcomeInvalid
		_, err = tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	assertChain(t, s, 1)
}

// Tampering with a stored event, or cutting events off the end of the
// chain (which leaves a chain whose hashes still verify), is reported.
func TestVerifyAuditReportsTamperingAndTruncation(t *testing.T) {
	dsn := testpg.DSN(t)
	s := open(t, dsn)
	ctx := context.Background()
	for i := range 5 {
		if err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.AppendAudit(ctx, auditEvent("ana", "loop.update", fmt.Sprintf("teams/t/loops/l%d", i)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	if _, err := conn.Exec(ctx, `DELETE FROM audit_events WHERE seq = 5`); err != nil {
		t.Fatal(err)
	}
	res, err := s.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.FirstBroken == nil || res.FirstBroken.Seq != 5 {
		t.Errorf("after removing the last event: VerifyAudit = %+v, want broken at seq 5", res)
	}

	if _, err := conn.Exec(ctx, `UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	res, err = s.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.FirstBroken == nil || res.FirstBroken.Seq != 2 || !strings.Contains(res.FirstBroken.Reason, "hash mismatch") {
		t.Errorf("after changing event 2: VerifyAudit = %+v, want a hash mismatch at seq 2", res)
	}
}

// Open names the server it could not reach and never echoes the password.
// (No server needed: this runs in every leg.)
func TestOpenUnreachableServerErrorNamesServerNotPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://u:s3cret@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1/nodb") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q: want the server named and the password absent", err)
	}
	_, err = postgres.Open(ctx, "postgres://u:s3cret@[::1/bad")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("invalid DSN: got %v, want an error without the password", err)
	}
}

// Regression guard for the in-process writer queue: with a small pool, if
// every connection were held by a writer waiting for the advisory lock, the
// lock holder could not get a connection for a read through the Store and
// all of them would wait forever. Writers queue before taking a connection.
func TestWritersDoNotStarvePoolForReadsInsideUpdate(t *testing.T) {
	dsn := testpg.DSN(t) + "&pool_max_conns=2"
	s := open(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, sampleLoop("growth", "busy")) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				err := s.Update(ctx, func(tx store.Tx) error {
					_, err := s.GetLoop(ctx, "growth", "busy") // a second connection while holding the writer lock
					return err
				})
				if err != nil {
					t.Errorf("Update reading through the Store: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}
