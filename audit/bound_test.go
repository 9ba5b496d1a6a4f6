package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/loopgate/loopgate/audit"
)

// aclOps returns details shaped like the reconciler's loop.provision event
// for a loop with n ACLs to create: {"generation", "cluster", "operations":
// [{"op": "CreateACLs principal=... ", "result": "OK"}, ...]}.
func aclOps(n int) json.RawMessage {
	ops := make([]map[string]string, n)
	for i := range ops {
		ops[i] = map[string]string{
			"op":     fmt.Sprintf("CreateACLs principal=User:producer-%05d host=* resource=TOPIC:growth.checkout-nudge.events pattern=LITERAL operation=WRITE permission=ALLOW", i),
			"result": "OK",
		}
	}
	b, _ := json.Marshal(map[string]any{"generation": 3, "cluster": "eu-central-1", "operations": ops})
	return b
}

// hugeDetails returns about 10 MB of details with every kind of top-level
// value a summary has to deal with.
func hugeDetails(t *testing.T) json.RawMessage {
	t.Helper()
	quotas := map[string]any{}
	for i := range 20_000 {
		quotas[fmt.Sprintf("User:producer-%05d", i)] = map[string]int{"producer_byte_rate": 1 << 20, "consumer_byte_rate": 2 << 20}
	}
	ops := make([]map[string]string, 55_000)
	for i := range ops {
		ops[i] = map[string]string{"op": fmt.Sprintf("CreateACLs principal=User:producer-%05d host=* resource=TOPIC:growth.checkout-nudge.events pattern=LITERAL operation=WRITE permission=ALLOW", i), "result": "OK"}
	}
	b, err := json.Marshal(map[string]any{
		"generation": 7,
		"cluster":    "eu-central-1",
		"dryRun":     false,
		"error":      strings.Repeat("broker said no; ", 20_000), // a 320 kB string
		"operations": ops,
		"quotas":     quotas, // a large object: omitted
		"truncated":  "a key that collides with the summary's own",
		"small":      map[string]int{"a": 1},
		"empty":      []int{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10<<20 {
		t.Fatalf("test details are %d bytes, want at least 10 MiB", len(b))
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBoundLeavesEventsWithinTheLimitsUnchanged(t *testing.T) {
	atLimit := `{"x":"` + strings.Repeat("y", audit.MaxDetailsBytes-8) + `"}` // exactly MaxDetailsBytes
	if len(atLimit) != audit.MaxDetailsBytes {
		t.Fatalf("fixture is %d bytes", len(atLimit))
	}
	// Longer than the limit as written, but not once canonical: the
	// store would store the canonical form, which fits.
	spaced := `{"x": ` + strings.Repeat(" ", audit.MaxDetailsBytes) + `1}`
	for name, ev := range map[string]audit.Event{
		"zero":          {},
		"typical":       {ID: audit.NewID(), Actor: "ana@example.com", Action: "loop.create", Resource: "teams/growth/loops/checkout-nudge", RequestID: "req-1", DecisionID: "dec-1", Outcome: audit.OutcomeOK, Details: json.RawMessage(`{"b": [1, 2], "a": {"y": 1}}`), Time: time.Now()},
		"null details":  {Action: "x", Details: json.RawMessage(`null`)},
		"at the limits": {Actor: strings.Repeat("a", audit.MaxFieldBytes), Resource: strings.Repeat("é", audit.MaxFieldBytes/2), Details: json.RawMessage(atLimit)},
		"whitespace":    {Action: "x", Details: json.RawMessage(spaced)},
	} {
		got := audit.Bound(ev)
		if !reflect.DeepEqual(got, ev) || !bytes.Equal(got.Details, ev.Details) {
			t.Errorf("%s: Bound changed an event within the limits:\n got %+v\nwant %+v", name, got, ev)
		}
	}
}

func TestBoundSummarizesOversizedDetails(t *testing.T) {
	details := hugeDetails(t)
	canon, err := audit.CanonicalDetails(details)
	if err != nil {
		t.Fatal(err)
	}
	ev := audit.Bound(audit.Event{Action: "loop.provision", Resource: "teams/growth/loops/checkout-nudge", Details: details})
	if len(ev.Details) > audit.MaxDetailsBytes {
		t.Fatalf("bounded details are %d bytes, want at most %d", len(ev.Details), audit.MaxDetailsBytes)
	}
	if c, err := audit.CanonicalDetails(ev.Details); err != nil || !bytes.Equal(c, ev.Details) {
		t.Errorf("the summary is not canonical JSON (err %v)", err)
	}
	if !audit.DetailsTruncated(ev.Details) || audit.DetailsTruncated(details) {
		t.Error("DetailsTruncated does not tell the summary from the original")
	}
	var sum struct {
		Truncated      bool                      `json:"truncated"`
		OriginalBytes  int                       `json:"originalBytes"`
		OriginalSha256 string                    `json:"originalSha256"`
		Omitted        []string                  `json:"omitted"`
		OmittedCount   int                       `json:"omittedCount"`
		Shortened      map[string]map[string]int `json:"shortened"`
		Generation     json.Number               `json:"generation"`
		Cluster        string                    `json:"cluster"`
		DryRun         *bool                     `json:"dryRun"`
		Error          string                    `json:"error"`
		Operations     []map[string]string       `json:"operations"`
		Small          map[string]int            `json:"small"`
		Empty          []int                     `json:"empty"`
		Quotas         any                       `json:"quotas"`
	}
	if err := json.Unmarshal(ev.Details, &sum); err != nil {
		t.Fatalf("summary %s: %v", ev.Details, err)
	}
	if !sum.Truncated || sum.OriginalBytes != len(canon) || sum.OriginalSha256 != sha(canon) {
		t.Errorf("summary says truncated=%v originalBytes=%d originalSha256=%s, want true, %d, %s",
			sum.Truncated, sum.OriginalBytes, sum.OriginalSha256, len(canon), sha(canon))
	}
	if want := []string{"quotas", "truncated"}; !reflect.DeepEqual(sum.Omitted, want) || sum.OmittedCount != 2 {
		t.Errorf("omitted = %q (count %d), want %q (2)", sum.Omitted, sum.OmittedCount, want)
	}
	if sum.Quotas != nil {
		t.Error("the large quotas object was kept")
	}
	if sum.Generation != "7" || sum.Cluster != "eu-central-1" || sum.DryRun == nil || *sum.DryRun ||
		!reflect.DeepEqual(sum.Small, map[string]int{"a": 1}) || sum.Empty == nil {
		t.Errorf("small fields not kept as they were: %s", ev.Details)
	}
	var orig struct {
		Operations []map[string]string `json:"operations"`
		Error      string              `json:"error"`
	}
	_ = json.Unmarshal(details, &orig)
	n := len(sum.Operations)
	if n == 0 || !reflect.DeepEqual(sum.Operations, orig.Operations[:n]) {
		t.Errorf("operations: kept %d items, want the first few of the original", n)
	}
	if got, want := sum.Shortened["operations"], map[string]int{"items": 55_000, "kept": n}; !reflect.DeepEqual(got, want) {
		t.Errorf("shortened.operations = %v, want %v", got, want)
	}
	note := sum.Shortened["error"]
	if note["bytes"] != len(orig.Error) || note["kept"] == 0 ||
		sum.Error != orig.Error[:note["kept"]]+fmt.Sprintf("…(%d bytes)", len(orig.Error)) {
		t.Errorf("error string: shortened note %v, kept %d bytes %q…", note, len(sum.Error), sum.Error[:40])
	}
	if len(sum.Shortened) != 2 {
		t.Errorf("shortened = %v, want notes for operations and error only", sum.Shortened)
	}
}

// TestBoundLoopSizedReconcilerEvent is the regression: the reconciler's
// provision event of a loop with 20,000 ACLs (about 3 MB of details).
func TestBoundLoopSizedReconcilerEvent(t *testing.T) {
	details := aclOps(20_000)
	if len(details) < 2<<20 {
		t.Fatalf("fixture only %d bytes", len(details))
	}
	ev := audit.Bound(audit.Event{Actor: "loopgate/reconciler", Action: "loop.provision", Resource: "teams/growth/loops/checkout-nudge", Outcome: audit.OutcomeOK, Details: details})
	if len(ev.Details) > audit.MaxDetailsBytes || !audit.DetailsTruncated(ev.Details) {
		t.Fatalf("bounded to %d bytes (truncated=%v), want at most %d and marked truncated", len(ev.Details), audit.DetailsTruncated(ev.Details), audit.MaxDetailsBytes)
	}
	var sum struct {
		Generation int                       `json:"generation"`
		Cluster    string                    `json:"cluster"`
		Shortened  map[string]map[string]int `json:"shortened"`
	}
	_ = json.Unmarshal(ev.Details, &sum)
	if sum.Generation != 3 || sum.Cluster != "eu-central-1" || sum.Shortened["operations"]["items"] != 20_000 {
		t.Errorf("summary lost the generation, cluster or operation count: %s", ev.Details)
	}
	sealed, err := audit.Seal(ev, 1, audit.GenesisHash, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed.Details, ev.Details) {
		t.Error("Seal changed the bounded details: the hash would not cover what Bound returned")
	}
	if res := audit.Verify([]audit.Event{sealed}); !res.OK {
		t.Errorf("bounded, sealed event does not verify: %+v", res)
	}
}

func TestBoundClipsLongStrings(t *testing.T) {
	long := strings.Repeat("ü", 600_000) // 1.2 MB, two bytes a character
	ev := audit.Bound(audit.Event{
		ID: strings.Repeat("i", 10_000), Actor: long, Action: strings.Repeat("a", audit.MaxFieldBytes+1),
		Resource: "teams/growth/loops/" + long, RequestID: long, DecisionID: long, Outcome: long,
	})
	for name, f := range map[string]struct{ got, orig string }{
		"id": {ev.ID, strings.Repeat("i", 10_000)}, "actor": {ev.Actor, long}, "action": {ev.Action, strings.Repeat("a", audit.MaxFieldBytes+1)},
		"resource": {ev.Resource, "teams/growth/loops/" + long}, "requestId": {ev.RequestID, long},
		"decisionId": {ev.DecisionID, long}, "outcome": {ev.Outcome, long},
	} {
		marker := fmt.Sprintf("…(%d bytes)", len(f.orig))
		prefix, ok := strings.CutSuffix(f.got, marker)
		if len(f.got) > audit.MaxFieldBytes || !ok || !strings.HasPrefix(f.orig, prefix) || len(prefix) < audit.MaxFieldBytes-len(marker)-3 || !utf8.ValidString(f.got) {
			t.Errorf("%s clipped to %d bytes %q, want at most %d: a UTF-8 prefix of the original, then %q", name, len(f.got), f.got, audit.MaxFieldBytes, marker)
		}
	}
	if got := audit.ClipString("héllo", 3); got != "" && len(got) > 3 {
		t.Errorf("ClipString below the marker length = %q", got)
	}
}

func TestBoundIsDeterministicAndIdempotent(t *testing.T) {
	// Many keys, some long, some colliding, more than fit: what is kept
	// and omitted must not depend on map iteration order.
	m := map[string]any{}
	for i := range 5_000 {
		m[fmt.Sprintf("k%05d", i)] = strings.Repeat("v", 900)
	}
	m[strings.Repeat("K", 100_000)] = 1 // a key too long to keep, or list in full
	m["omitted"] = "collides"
	raw, _ := json.Marshal(m)
	ev := audit.Event{Actor: strings.Repeat("x", 5000), Details: raw}
	first := audit.Bound(ev)
	for range 5 {
		if again := audit.Bound(ev); !reflect.DeepEqual(again, first) {
			t.Fatal("Bound gave different results for the same event")
		}
	}
	if twice := audit.Bound(first); !reflect.DeepEqual(twice, first) {
		t.Error("Bound(Bound(ev)) != Bound(ev)")
	}
	if len(first.Details) > audit.MaxDetailsBytes {
		t.Errorf("details %d bytes, want at most %d", len(first.Details), audit.MaxDetailsBytes)
	}
	var sum struct {
		Omitted      []string `json:"omitted"`
		OmittedCount int      `json:"omittedCount"`
		K00000       string   `json:"k00000"`
	}
	_ = json.Unmarshal(first.Details, &sum)
	if sum.K00000 == "" || sum.OmittedCount < 4_900 || len(sum.Omitted) == 0 || len(sum.Omitted) >= sum.OmittedCount {
		t.Errorf("kept k00000=%v, omitted %d listed of %d: want the first keys kept and the list capped", sum.K00000 != "", len(sum.Omitted), sum.OmittedCount)
	}
	for _, k := range sum.Omitted {
		if len(k) > 128 {
			t.Errorf("omitted key listed with %d bytes, want it clipped", len(k))
		}
	}
}

// Details short as written can grow past the limit once canonical
// (encoding/json writes '<' as \u003c): the limit is on what is stored.
func TestBoundMeasuresCanonicalDetails(t *testing.T) {
	raw := json.RawMessage(`{"html":"` + strings.Repeat("<", 20_000) + `","n":1}`)
	canon, _ := audit.CanonicalDetails(raw)
	if len(raw) > audit.MaxDetailsBytes || len(canon) <= audit.MaxDetailsBytes {
		t.Fatalf("fixture: %d bytes as written, %d canonical", len(raw), len(canon))
	}
	sealed, err := audit.Seal(audit.Bound(audit.Event{Action: "x", Details: raw}), 1, audit.GenesisHash, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed.Details) > audit.MaxDetailsBytes || !audit.DetailsTruncated(sealed.Details) {
		t.Errorf("stored details are %d bytes (truncated=%v), want a summary of at most %d", len(sealed.Details), audit.DetailsTruncated(sealed.Details), audit.MaxDetailsBytes)
	}
}

func TestBoundLeavesInvalidDetailsForSealToRefuse(t *testing.T) {
	arr := json.RawMessage("[" + strings.Repeat("1,", audit.MaxDetailsBytes) + "1]")
	ev := audit.Bound(audit.Event{Action: "x", Details: arr})
	if !bytes.Equal(ev.Details, arr) {
		t.Fatal("Bound replaced details that are not an object")
	}
	if _, err := audit.Seal(ev, 1, audit.GenesisHash, time.Now()); !errors.Is(err, audit.ErrInvalidDetails) {
		t.Errorf("Seal = %v, want ErrInvalidDetails", err)
	}
}
