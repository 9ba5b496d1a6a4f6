package audit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
)

// chain builds n sealed events the way a store appends them.
func chain(t *testing.T, n int) []audit.Event {
	t.Helper()
	base := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	prev := audit.GenesisHash
	out := make([]audit.Event, 0, n)
	for i := 1; i <= n; i++ {
		ev, err := audit.Seal(audit.Event{
			Actor:     fmt.Sprintf("user%d@example.com", i),
			Action:    "loop.update",
			Resource:  "teams/growth/loops/checkout-nudge",
			RequestID: fmt.Sprintf("req-%d", i),
			Outcome:   audit.OutcomeOK,
			Details:   json.RawMessage(fmt.Sprintf(`{"generation": %d, "b": [1, 2], "a": {"y": 1, "x": 2}}`, i)),
		}, int64(i), prev, base.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatalf("Seal event %d: %v", i, err)
		}
		prev = ev.Hash
		out = append(out, ev)
	}
	return out
}

func TestSealBuildsAVerifiableChain(t *testing.T) {
	evs := chain(t, 5)
	if evs[0].PrevHash != audit.GenesisHash {
		t.Errorf("first event PrevHash = %q, want the genesis hash", evs[0].PrevHash)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) || ev.ID == "" || ev.Hash == "" || len(ev.Hash) != 64 {
			t.Errorf("event %d badly sealed: seq=%d id=%q hash=%q", i, ev.Seq, ev.ID, ev.Hash)
		}
		if ev.Time.Location() != time.UTC || ev.Time.Nanosecond()%1000 != 0 {
			t.Errorf("event %d time %v: want UTC truncated to microseconds", i, ev.Time)
		}
		if i > 0 && ev.PrevHash != evs[i-1].Hash {
			t.Errorf("event %d does not link to event %d", ev.Seq, evs[i-1].Seq)
		}
	}
	if got := string(evs[0].Details); got != `{"a":{"x":2,"y":1},"b":[1,2],"generation":1}` {
		t.Errorf("details not canonicalised: %s", got)
	}
	res := audit.Verify(evs)
	if !res.OK || res.Events != 5 || res.FirstBroken != nil {
		t.Fatalf("Verify(intact chain) = %+v, want OK with 5 events", res)
	}
}

func TestSealRefusesDetailsThatAreNotAnObject(t *testing.T) {
	for _, d := range []string{`[1,2]`, `"text"`, `{"a":1`, `{"a":1} {"b":2}`} {
		_, err := audit.Seal(audit.Event{Action: "loop.create", Details: json.RawMessage(d)}, 1, audit.GenesisHash, time.Now())
		if !errors.Is(err, audit.ErrInvalidDetails) {
			t.Errorf("Seal(details %s) error = %v, want ErrInvalidDetails", d, err)
		}
	}
}

func TestHashIgnoresJSONFormattingOfDetailsAndTimeZone(t *testing.T) {
	ev := chain(t, 1)[0]
	same := ev
	same.Details = json.RawMessage(`{ "generation":1, "a":{"x":2,"y":1}, "b":[1,2] }`)
	same.Time = ev.Time.In(time.FixedZone("CET", 3600))
	if same.ComputeHash() != ev.Hash {
		t.Error("equal details with other key order/whitespace, or the same instant in another zone, hash differently")
	}
	noDetails := ev
	noDetails.Details = nil
	nullDetails := ev
	nullDetails.Details = json.RawMessage("null")
	if noDetails.ComputeHash() != nullDetails.ComputeHash() {
		t.Error("absent and null details hash differently")
	}
}

// TestVerifyNamesTheTamperedEvent changes one field of event 3 of 5, as
// someone editing the database would, and expects Verify to name event 3.
func TestVerifyNamesTheTamperedEvent(t *testing.T) {
	tampers := map[string]func(ev *audit.Event){
		"actor":    func(ev *audit.Event) { ev.Actor = "mallory@example.com" },
		"action":   func(ev *audit.Event) { ev.Action = "loop.delete" },
		"resource": func(ev *audit.Event) { ev.Resource = "teams/growth/loops/other" },
		"details":  func(ev *audit.Event) { ev.Details = json.RawMessage(`{"generation":99}`) },
		"time":     func(ev *audit.Event) { ev.Time = ev.Time.Add(time.Microsecond) },
		"outcome":  func(ev *audit.Event) { ev.Outcome = audit.OutcomeDenied },
		"request":  func(ev *audit.Event) { ev.RequestID = "req-forged" },
		"decision": func(ev *audit.Event) { ev.DecisionID = "dec-forged" },
		"id":       func(ev *audit.Event) { ev.ID = "forged" },
		"hash":     func(ev *audit.Event) { ev.Hash = strings.Repeat("a", 64) },
	}
	for field, tamper := range tampers {
		t.Run(field, func(t *testing.T) {
			evs := chain(t, 5)
			tamper(&evs[2])
			res := audit.Verify(evs)
			if res.OK || res.FirstBroken == nil {
				t.Fatalf("Verify after changing %s of event 3 = %+v, want broken", field, res)
			}
			if res.FirstBroken.Seq != 3 || res.FirstBroken.ID != evs[2].ID {
				t.Errorf("FirstBroken = %+v, want event 3 (%s)", res.FirstBroken, evs[2].ID)
			}
			if !strings.Contains(res.FirstBroken.Reason, "hash mismatch") {
				t.Errorf("Reason = %q, want a hash mismatch", res.FirstBroken.Reason)
			}
			if res.Events != 5 {
				t.Errorf("Events = %d, want all 5 checked", res.Events)
			}
		})
	}
}

// TestVerifyNamesARehashedForgery covers an attacker who edits event 3 and
// recomputes its hash: the next event's PrevHash no longer links.
func TestVerifyNamesARehashedForgery(t *testing.T) {
	evs := chain(t, 5)
	evs[2].Actor = "mallory@example.com"
	evs[2].Hash = evs[2].ComputeHash()
	res := audit.Verify(evs)
	if res.FirstBroken == nil || res.FirstBroken.Seq != 4 || !strings.Contains(res.FirstBroken.Reason, "event 3") {
		t.Fatalf("FirstBroken = %+v, want event 4 whose prevHash does not match event 3", res.FirstBroken)
	}
}

func TestVerifyNamesTheEventAfterADeletion(t *testing.T) {
	evs := chain(t, 5)
	evs = append(evs[:2:2], evs[3:]...) // delete event 3
	res := audit.Verify(evs)
	if res.FirstBroken == nil || res.FirstBroken.Seq != 4 {
		t.Fatalf("FirstBroken = %+v, want event 4 (follows the deleted event 3)", res.FirstBroken)
	}
	if !strings.Contains(res.FirstBroken.Reason, "gap") || !strings.Contains(res.FirstBroken.Reason, "3..3") {
		t.Errorf("Reason = %q, want a gap naming missing event 3", res.FirstBroken.Reason)
	}
}

func TestVerifyNamesAMissingStart(t *testing.T) {
	evs := chain(t, 3)[1:]
	res := audit.Verify(evs)
	if res.FirstBroken == nil || res.FirstBroken.Seq != 2 || !strings.Contains(res.FirstBroken.Reason, "1..1") {
		t.Fatalf("FirstBroken = %+v, want event 2 with events 1..1 missing", res.FirstBroken)
	}
}

func TestVerifyNamesReorderedEvents(t *testing.T) {
	t.Run("fed out of order", func(t *testing.T) {
		evs := chain(t, 5)
		evs[2], evs[3] = evs[3], evs[2]
		res := audit.Verify(evs)
		if res.FirstBroken == nil || res.FirstBroken.Seq != 4 {
			t.Fatalf("FirstBroken = %+v, want event 4 (appears where 3 belongs)", res.FirstBroken)
		}
	})
	t.Run("seq numbers swapped", func(t *testing.T) {
		// Rows 3 and 4 swap their contents but keep their positions.
		evs := chain(t, 5)
		evs[2], evs[3] = evs[3], evs[2]
		evs[2].Seq, evs[3].Seq = 3, 4
		res := audit.Verify(evs)
		if res.FirstBroken == nil || res.FirstBroken.Seq != 3 {
			t.Fatalf("FirstBroken = %+v, want event 3", res.FirstBroken)
		}
	})
}

func TestVerifierAddReportsEachBrokenEvent(t *testing.T) {
	evs := chain(t, 4)
	evs[1].Outcome = audit.OutcomeFailed
	evs[3].Outcome = audit.OutcomeFailed
	var v audit.Verifier
	var broken []int64
	for _, ev := range evs {
		if bl := v.Add(ev); bl != nil {
			broken = append(broken, bl.Seq)
		}
	}
	if fmt.Sprint(broken) != "[2 4]" {
		t.Errorf("Add reported broken events %v, want [2 4]", broken)
	}
	if res := v.Result(); res.FirstBroken == nil || res.FirstBroken.Seq != 2 || res.Events != 4 {
		t.Errorf("Result = %+v, want first broken event 2 of 4", res)
	}
}

func TestEmptyChainVerifies(t *testing.T) {
	var v audit.Verifier
	if res := v.Result(); !res.OK || res.Events != 0 {
		t.Errorf("empty Result = %+v, want OK with 0 events", res)
	}
}

func TestNewIDIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := audit.NewID()
		if len(id) != 32 || seen[id] {
			t.Fatalf("NewID returned %q (duplicate or wrong length)", id)
		}
		seen[id] = true
	}
}

func BenchmarkComputeHash(b *testing.B) {
	ev := audit.Event{Seq: 42, ID: audit.NewID(), Time: time.Now(), Actor: "ana@example.com",
		Action: "loop.provision", Resource: "teams/growth/loops/checkout-nudge", Outcome: audit.OutcomeOK,
		Details:  json.RawMessage(`{"ops":[{"op":"CreateTopics","topics":["growth.checkout-nudge.events"]}],"generation":3}`),
		PrevHash: audit.GenesisHash}
	for b.Loop() {
		_ = ev.ComputeHash()
	}
}
