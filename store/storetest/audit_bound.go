package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

// oversizedDetails returns about 10 MB of details shaped like the
// reconciler's loop.provision event for a loop with 10,000 producers:
// every admin operation, plus every quota.
func oversizedDetails(t *testing.T) json.RawMessage {
	t.Helper()
	ops := make([]map[string]string, 0, 60_000)
	for i := range 60_000 {
		ops = append(ops, map[string]string{
			"op":     fmt.Sprintf("CreateACLs principal=User:producer-%05d host=* resource=TOPIC:growth.checkout-nudge.events pattern=LITERAL operation=WRITE permission=ALLOW", i%10_000),
			"result": "OK",
		})
	}
	quotas := map[string]any{}
	for i := range 10_000 {
		quotas[fmt.Sprintf("User:producer-%05d", i)] = map[string]int{"producer_byte_rate": 1 << 20}
	}
	b, err := json.Marshal(map[string]any{"generation": 4, "cluster": "eu-central-1", "operations": ops, "quotas": quotas})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10_000_000 {
		t.Fatalf("oversized details fixture is only %d bytes", len(b))
	}
	return b
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sameDetails compares details as the store may return them: equal once
// canonical (PostgreSQL keeps the text as written; so does SQLite).
func sameDetails(a, b json.RawMessage) bool {
	ca, errA := audit.CanonicalDetails(a)
	cb, errB := audit.CanonicalDetails(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// testAuditAppendBounds: AppendAudit applies audit.Bound before sealing,
// so no stored event exceeds the size limits, and the chain covers the
// bounded event exactly as stored.
func testAuditAppendBounds(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	details := oversizedDetails(t)
	canon, err := audit.CanonicalDetails(details)
	if err != nil {
		t.Fatal(err)
	}
	ev := audit.Event{
		Actor: "loopgate/reconciler", Action: "loop.provision", Resource: "teams/growth/loops/checkout-nudge",
		RequestID: strings.Repeat("r", 4096), Outcome: audit.OutcomeOK, Details: details,
	}
	appendEvent(t, s, event("ana@example.com", "loop.create", "teams/growth/loops/checkout-nudge", 1))
	stored := appendEvent(t, s, ev)
	want := audit.Bound(ev)
	if len(stored.Details) > audit.MaxDetailsBytes || !bytes.Equal(stored.Details, want.Details) {
		t.Fatalf("AppendAudit stored %d bytes of details, want audit.Bound's summary (%d bytes, at most %d)",
			len(stored.Details), len(want.Details), audit.MaxDetailsBytes)
	}
	if len(stored.RequestID) > audit.MaxFieldBytes || stored.RequestID != want.RequestID {
		t.Errorf("AppendAudit stored a %d-byte request id, want it clipped to %d", len(stored.RequestID), audit.MaxFieldBytes)
	}
	var sum struct {
		Truncated      bool     `json:"truncated"`
		OriginalBytes  int      `json:"originalBytes"`
		OriginalSha256 string   `json:"originalSha256"`
		Omitted        []string `json:"omitted"`
		Generation     int      `json:"generation"`
	}
	if err := json.Unmarshal(stored.Details, &sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Truncated || sum.OriginalBytes != len(canon) || sum.OriginalSha256 != hexSHA256(canon) ||
		fmt.Sprint(sum.Omitted) != "[quotas]" || sum.Generation != 4 {
		t.Errorf("stored summary %+v does not describe the original (%d bytes, sha256 %s)", sum, len(canon), hexSHA256(canon))
	}
	if stored.Hash != stored.ComputeHash() {
		t.Error("the returned event's hash does not cover its (bounded) content")
	}

	listed, err := s.ListAudit(ctx, store.AuditFilter{AfterSeq: 1})
	if err != nil || len(listed) != 1 {
		t.Fatalf("ListAudit: %d events, %v", len(listed), err)
	}
	if got := listed[0]; got.Hash != stored.Hash || got.RequestID != stored.RequestID || !sameDetails(got.Details, stored.Details) {
		t.Errorf("listed event differs from the stored one: %d bytes of details, hash %s (want %s)", len(got.Details), got.Hash, stored.Hash)
	}
	after := appendEvent(t, s, event("ana@example.com", "loop.update", "teams/growth/loops/checkout-nudge", 3))
	if after.PrevHash != stored.Hash {
		t.Errorf("the next event links to %s, want the bounded event's hash %s", after.PrevHash, stored.Hash)
	}
	if res := mustVerify(t, s); !res.OK || res.Events != 3 {
		t.Errorf("VerifyAudit = %+v, want OK with 3 events", res)
	}
}

// testLegacyOversizedAudit: an oversized event stored before the limits
// existed is read back as stored, and the chain through it verifies.
func testLegacyOversizedAudit(t *testing.T, s store.Store, write func(*testing.T, store.Store, audit.Event)) {
	ctx := ctxFor(t)
	appendEvent(t, s, event("ana@example.com", "loop.create", "teams/growth/loops/checkout-nudge", 1))
	appendEvent(t, s, event("ana@example.com", "loop.approve", "teams/growth/loops/checkout-nudge", 2))
	last, err := s.ListAudit(ctx, store.AuditFilter{Newest: true, PageSize: 1})
	if err != nil || len(last) != 1 {
		t.Fatalf("ListAudit newest: %d events, %v", len(last), err)
	}
	legacy, err := audit.Seal(audit.Event{
		Actor: "loopgate/reconciler" + strings.Repeat("!", 2000), Action: "loop.provision",
		Resource: "teams/growth/loops/checkout-nudge", Outcome: audit.OutcomeOK, Details: oversizedDetails(t),
	}, last[0].Seq+1, last[0].Hash, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, legacy)
	if res := mustVerify(t, s); !res.OK || res.Events != 3 {
		t.Fatalf("VerifyAudit with a legacy oversized event = %+v, want OK with 3 events", res)
	}
	listed, err := s.ListAudit(ctx, store.AuditFilter{AfterSeq: 2})
	if err != nil || len(listed) != 1 {
		t.Fatalf("ListAudit: %d events, %v", len(listed), err)
	}
	got := listed[0]
	if got.Hash != legacy.Hash || got.Actor != legacy.Actor || !sameDetails(got.Details, legacy.Details) || got.ComputeHash() != got.Hash {
		t.Errorf("the legacy event reads back changed (%d bytes of details, want %d): the store must return what it stored",
			len(got.Details), len(legacy.Details))
	}
	next := appendEvent(t, s, event("ana@example.com", "loop.update", "teams/growth/loops/checkout-nudge", 4))
	if next.Seq != legacy.Seq+1 || next.PrevHash != legacy.Hash {
		t.Errorf("the event after the legacy one is seq %d linking to %s, want seq %d linking to %s", next.Seq, next.PrevHash, legacy.Seq+1, legacy.Hash)
	}
	if res := mustVerify(t, s); !res.OK || res.Events != 4 {
		t.Errorf("VerifyAudit = %+v, want OK with 4 events", res)
	}
}
