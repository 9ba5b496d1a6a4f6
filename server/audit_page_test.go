package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/audit"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// auditEnv is a real gRPC server (default limits: a client receives at
// most 4 MiB a message) serving AuditService from a SQLite file.
type auditEnv struct {
	store  *sqlite.Store
	path   string
	client lgv1.AuditServiceClient
}

func startAudit(t *testing.T) *auditEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loopgate.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	lgv1.RegisterAuditServiceServer(srv, &auditService{core: &admission.Core{Store: st}})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &auditEnv{store: st, path: path, client: lgv1.NewAuditServiceClient(conn)}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// appendEvents appends events through the store (bounded by AppendAudit).
func (e *auditEnv) appendEvents(t *testing.T, evs ...audit.Event) {
	t.Helper()
	ctx := testCtx(t)
	err := e.store.Update(ctx, func(tx store.Tx) error {
		for _, ev := range evs {
			if _, err := tx.AppendAudit(ctx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append %d events: %v", len(evs), err)
	}
}

// writeLegacy stores ev the way a loopgate from before the audit size
// limits did: sealed onto the chain (no audit.Bound), through its own
// connection to the database file, moving the chain head with it.
func (e *auditEnv) writeLegacy(t *testing.T, ev audit.Event) audit.Event {
	t.Helper()
	ctx := testCtx(t)
	db, err := sql.Open("sqlite", e.path+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	var seq int64
	var prev string
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &prev); err != nil {
		t.Fatal(err)
	}
	sealed, err := audit.Seal(ev, seq+1, prev, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events
		(seq, id, time, actor, action, resource, request_id, decision_id, outcome, details, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sealed.Seq, sealed.ID, sealed.Time.Format("2006-01-02T15:04:05.000000000Z07:00"), sealed.Actor, sealed.Action,
		sealed.Resource, sealed.RequestID, sealed.DecisionID, sealed.Outcome, string(sealed.Details), sealed.PrevHash, sealed.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ?`, sealed.Seq, sealed.Hash); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return sealed
}

// listAll pages through ListAuditEvents, checking that every response
// fits the byte budget, and returns the events and the page lengths.
func (e *auditEnv) listAll(t *testing.T, pageSize int32, order string) ([]*lgv1.AuditEvent, []int) {
	t.Helper()
	var all []*lgv1.AuditEvent
	var pages []int
	req := &lgv1.ListAuditEventsRequest{PageSize: pageSize, OrderBy: order}
	for range 10_000 {
		resp, err := e.client.ListAuditEvents(testCtx(t), req)
		if err != nil {
			t.Fatalf("ListAuditEvents(page size %d, order %q, token %q) after %d events: %v", pageSize, order, req.PageToken, len(all), err)
		}
		if n := proto.Size(resp); n > auditPageBytes {
			t.Errorf("a response of %d bytes: over the %d-byte budget", n, auditPageBytes)
		}
		all = append(all, resp.GetEvents()...)
		pages = append(pages, len(resp.GetEvents()))
		if resp.GetNextPageToken() == "" {
			return all, pages
		}
		req.PageToken = resp.GetNextPageToken()
	}
	t.Fatal("ListAuditEvents never reached the last page")
	return nil, nil
}

func wantSeqs(t *testing.T, what string, got []*lgv1.AuditEvent, n int, desc bool) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: listed %d events, want %d", what, len(got), n)
	}
	for i, ev := range got {
		want := int64(i + 1)
		if desc {
			want = int64(n - i)
		}
		if ev.GetSeq() != want {
			t.Fatalf("%s: event %d has seq %d, want %d (every event once, in order)", what, i, ev.GetSeq(), want)
		}
	}
}

func small(n int) audit.Event {
	return audit.Event{Actor: "ana@example.com", Action: "loop.update", Resource: "teams/growth/loops/checkout-nudge",
		Outcome: audit.OutcomeOK, Details: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
}

// aclDetails mimics the reconciler's loop.provision details for a loop
// with n ACLs: {"generation", "cluster", "operations": [{"op", "result"}]}.
func aclDetails(n int) json.RawMessage {
	ops := make([]map[string]string, n)
	for i := range ops {
		ops[i] = map[string]string{
			"op":     fmt.Sprintf("CreateACLs principal=User:producer-%05d host=* resource=TOPIC:growth.checkout-nudge.events pattern=LITERAL operation=WRITE permission=ALLOW", i%10_000),
			"result": "OK",
		}
	}
	b, _ := json.Marshal(map[string]any{"generation": 2, "cluster": "eu-central-1", "operations": ops})
	return b
}

func provisionEvent(details json.RawMessage) audit.Event {
	return audit.Event{Actor: "loopgate/reconciler", Action: "loop.provision", Resource: "teams/growth/loops/checkout-nudge",
		Outcome: audit.OutcomeOK, Details: details}
}

// A database written before the size limits holds events of up to 12 MB;
// ListAuditEvents must still answer every page, summarising an event that
// alone exceeds the budget (and the chain must still verify).
func TestListAuditEventsSurvivesLegacyOversizedEvents(t *testing.T) {
	e := startAudit(t)
	e.appendEvents(t, small(1), small(2), small(3))
	huge := e.writeLegacy(t, provisionEvent(aclDetails(65_000))) // seq 4: 10 MB
	e.appendEvents(t, small(5), small(6), small(7))
	longActor := provisionEvent(aclDetails(30_000)) // seq 8: 5 MB, and a 1 MB actor
	longActor.Actor = strings.Repeat("a", 1<<20)
	huge2 := e.writeLegacy(t, longActor)
	e.appendEvents(t, small(9), small(10), small(11))
	// seq 12: 2.5 MiB, under the budget: listed whole, on a page of its own.
	big := e.writeLegacy(t, provisionEvent(json.RawMessage(`{"blob":"`+strings.Repeat("b", 5<<19)+`"}`)))
	e.appendEvents(t, small(13), small(14))
	const n = 14
	if len(huge.Details) < 10_000_000 {
		t.Fatalf("legacy event only %d bytes", len(huge.Details))
	}

	res, err := e.client.VerifyAuditChain(testCtx(t), &lgv1.VerifyAuditChainRequest{})
	if err != nil || !res.GetOk() || res.GetEventsChecked() != n {
		t.Fatalf("VerifyAuditChain = %v, %v: want OK with %d events (verified on the stored bytes)", res, err, n)
	}

	for _, tc := range []struct {
		pageSize int32
		order    string
	}{{10, ""}, {10, "seq desc"}, {1, ""}, {1000, "seq desc"}} {
		what := fmt.Sprintf("page size %d, order %q", tc.pageSize, tc.order)
		got, pages := e.listAll(t, tc.pageSize, tc.order)
		wantSeqs(t, what, got, n, tc.order != "")
		bySeq := map[int64]*lgv1.AuditEvent{}
		for _, ev := range got {
			bySeq[ev.GetSeq()] = ev
		}
		for _, legacy := range []audit.Event{huge, huge2} {
			ev := bySeq[legacy.Seq]
			d := ev.GetDetails().AsMap()
			digest := sha256.Sum256(legacy.Details) // the stored details are canonical
			if d["truncated"] != true || d["originalSha256"] != hex.EncodeToString(digest[:]) ||
				d["originalBytes"] != float64(len(legacy.Details)) || d["cluster"] != "eu-central-1" {
				t.Errorf("%s: legacy event %d listed with details %v, want a truncation summary of the stored details", what, legacy.Seq, d)
			}
			if ev.GetHash() != legacy.Hash || ev.GetPrevHash() != legacy.PrevHash || len(ev.GetActor()) > audit.MaxFieldBytes {
				t.Errorf("%s: legacy event %d listed with hash %s prevHash %s and a %d-byte actor, want the stored hashes and a clipped actor",
					what, legacy.Seq, ev.GetHash(), ev.GetPrevHash(), len(ev.GetActor()))
			}
		}
		if d := bySeq[big.Seq].GetDetails().AsMap(); d["truncated"] != nil || len(fmt.Sprint(d["blob"])) != 5<<19 {
			t.Errorf("%s: the 2.5 MiB event (under the budget) was cut; want it whole", what)
		}
		if tc.pageSize == 10 && len(pages) < 2 {
			t.Errorf("%s: pages %v", what, pages)
		}
	}
	if res, err := e.store.VerifyAudit(testCtx(t)); err != nil || !res.OK {
		t.Errorf("VerifyAudit after listing = %+v, %v", res, err)
	}
}

// Normally sized events fill a page up to the byte budget, not beyond it:
// the page ends early with a token that continues where it stopped.
func TestListAuditEventsStopsPagesAtTheByteBudget(t *testing.T) {
	e := startAudit(t)
	const n = 120
	blob := strings.Repeat("x", 60_000) // each event ~60 kB: within audit.MaxDetailsBytes, kept whole
	var evs []audit.Event
	for i := 1; i <= n; i++ {
		ev := small(i)
		ev.Details = json.RawMessage(fmt.Sprintf(`{"n":%d,"blob":%q}`, i, blob))
		evs = append(evs, ev)
	}
	e.appendEvents(t, evs...)

	resp, err := e.client.ListAuditEvents(testCtx(t), &lgv1.ListAuditEventsRequest{PageSize: 100})
	if err != nil {
		t.Fatalf("ListAuditEvents(page size 100) of 6 MB: %v", err)
	}
	k := len(resp.GetEvents())
	if k == 0 || k >= 100 || resp.GetNextPageToken() != fmt.Sprintf("seq-%d", k) {
		t.Fatalf("first page: %d events, next token %q; want fewer than 100, ending at the byte budget, with token seq-%d", k, resp.GetNextPageToken(), k)
	}
	if size := proto.Size(resp); size > auditPageBytes || size < auditPageBytes-100_000 {
		t.Errorf("first page is %d bytes, want just under the %d-byte budget", size, auditPageBytes)
	}
	for _, order := range []string{"seq", "seq desc"} {
		got, pages := e.listAll(t, 100, order)
		wantSeqs(t, "order "+order, got, n, order == "seq desc")
		for _, ev := range got {
			if d := ev.GetDetails().AsMap(); d["truncated"] != nil || d["blob"] != blob {
				t.Fatalf("event %d was cut; it fits a page and must be listed whole", ev.GetSeq())
			}
		}
		if len(pages) < 3 {
			t.Errorf("order %s: pages %v, want the 100-event pages split by the byte budget", order, pages)
		}
	}
}

// Regression: the reconciler's event for a loop with 20,000 ACLs (3 MB of
// details) is bounded when appended, lists over gRPC, and verifies.
func TestLoopSizedAuditEventIsBoundedAndListed(t *testing.T) {
	e := startAudit(t)
	details := aclDetails(20_000)
	e.appendEvents(t, small(1), provisionEvent(details), small(3))
	stored, err := e.store.ListAudit(testCtx(t), store.AuditFilter{})
	if err != nil || len(stored) != 3 {
		t.Fatalf("ListAudit: %d events, %v", len(stored), err)
	}
	if n := len(stored[1].Details); n > audit.MaxDetailsBytes || !audit.DetailsTruncated(stored[1].Details) {
		t.Fatalf("stored loop-sized event has %d bytes of details, want a truncation summary of at most %d", n, audit.MaxDetailsBytes)
	}
	got, _ := e.listAll(t, 10, "")
	wantSeqs(t, "page size 10", got, 3, false)
	d := got[1].GetDetails().AsMap()
	canon, _ := audit.CanonicalDetails(details)
	if d["truncated"] != true || d["originalBytes"] != float64(len(canon)) || d["generation"] != float64(2) {
		t.Errorf("listed details %v, want the summary of %d bytes", d, len(canon))
	}
	if got[1].GetHash() != stored[1].Hash {
		t.Error("listed hash differs from the stored one")
	}
	if res, err := e.store.VerifyAudit(testCtx(t)); err != nil || !res.OK || res.Events != 3 {
		t.Errorf("VerifyAudit = %+v, %v", res, err)
	}
}

// A page size above the cap (1000) is served as 1000 and, when the page is
// full, with a token: the caller must not mistake it for the last page.
func TestListAuditEventsPageSizeAboveTheCapKeepsPaging(t *testing.T) {
	e := startAudit(t)
	const n = store.MaxPageSize + 1
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = small(i + 1)
	}
	e.appendEvents(t, evs...)
	resp, err := e.client.ListAuditEvents(testCtx(t), &lgv1.ListAuditEventsRequest{PageSize: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != store.MaxPageSize || resp.GetNextPageToken() != fmt.Sprintf("seq-%d", store.MaxPageSize) {
		t.Errorf("page size 5000: %d events, token %q; want %d and a token for the rest", len(resp.GetEvents()), resp.GetNextPageToken(), store.MaxPageSize)
	}
	got, _ := e.listAll(t, 5000, "")
	wantSeqs(t, "page size 5000", got, n, false)
}

// Strings a database may hold but protobuf cannot marshal (invalid UTF-8)
// must not fail the page they are on.
func TestAuditPageRepairsInvalidUTF8(t *testing.T) {
	resp := auditPage([]audit.Event{
		{Seq: 1, Actor: "mallory\xff@example.com", Action: "loop.create", Resource: "teams/g/loops/\xc3", Details: json.RawMessage(`{"a":1}`)},
		{Seq: 2, Actor: "ana@example.com", Action: "loop.update"},
	}, false)
	if _, err := proto.Marshal(resp); err != nil {
		t.Fatalf("the page does not marshal: %v", err)
	}
	if got := resp.GetEvents()[0].GetActor(); got != "mallory\uFFFD@example.com" || len(resp.GetEvents()) != 2 || resp.GetNextPageToken() != "" {
		t.Errorf("page = %v", resp)
	}
}
