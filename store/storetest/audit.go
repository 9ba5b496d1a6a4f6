package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

var errBoom = errors.New("boom: policy engine unavailable")

// testRollback protects an invariant of the audit trail: a change without its audit event cannot
// exist. Everything written by a failing Update must disappear together.
func testRollback(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, newLoop("growth", "checkout-nudge")); err != nil {
			return err
		}
		if err := tx.PutDecision(ctx, store.Decision{ID: "dec-1", Resource: "teams/growth/loops/checkout-nudge", Operation: "CREATE", Result: json.RawMessage(`{}`)}); err != nil {
			return err
		}
		if err := tx.PutRequest(ctx, sampleRequest("req-1")); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, event("ana@example.com", "loop.create", "teams/growth/loops/checkout-nudge", 1)); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	assertNothingStored(t, s)

	// The audit event fails (details are not an object) after the loop was
	// written: the loop must go too.
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, newLoop("growth", "checkout-nudge")); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Event{Actor: "ana@example.com", Action: "loop.create", Details: json.RawMessage(`[1]`)})
		return err
	})
	wantErr(t, "Update whose audit append failed", err, audit.ErrInvalidDetails)
	assertNothingStored(t, s)

	// A rolled-back append leaves no gap: the next event is seq 1.
	if ev := appendEvent(t, s, event("ana@example.com", "loop.create", "teams/growth/loops/x", 1)); ev.Seq != 1 {
		t.Errorf("first event after rolled-back appends has seq %d, want 1", ev.Seq)
	}
}

func assertNothingStored(t *testing.T, s store.Store) {
	t.Helper()
	ctx := ctxFor(t)
	_, err := s.GetLoop(ctx, "growth", "checkout-nudge")
	wantErr(t, "loop written by a rolled-back Update", err, store.ErrNotFound)
	_, err = s.GetDecision(ctx, "dec-1")
	wantErr(t, "decision written by a rolled-back Update", err, store.ErrNotFound)
	if evs, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(evs) != 0 {
		t.Errorf("audit after rollback: %d events (err %v), want none", len(evs), err)
	}
	if res := mustVerify(t, s); !res.OK || res.Events != 0 {
		t.Errorf("VerifyAudit after rollback = %+v, want an empty intact chain", res)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		if _, found, err := tx.GetRequest(ctx, "req-1"); err != nil || found {
			return fmt.Errorf("request record after rollback: found=%v err=%v, want none", found, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testPanicRollback(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("Update swallowed fn's panic; want it to propagate after rolling back")
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			if err := tx.CreateLoop(ctx, newLoop("growth", "checkout-nudge")); err != nil {
				return err
			}
			panic("bug in the service")
		})
	}()
	_, err := s.GetLoop(ctx, "growth", "checkout-nudge")
	wantErr(t, "loop created before a panic", err, store.ErrNotFound)
	// The store is still usable: the transaction did not leak.
	create(t, s, newLoop("growth", "after-panic"))
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if res := mustVerify(t, s); !res.OK || res.Events != 0 {
		t.Errorf("VerifyAudit of an empty store = %+v, want OK with 0 events", res)
	}
	fixed := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	var stored []audit.Event
	for i := 1; i <= 10; i++ {
		ev := event("ana@example.com", "loop.update", "teams/growth/loops/checkout-nudge", i)
		if i == 5 {
			ev.Time = fixed
			ev.ID = "caller-chosen-id"
			ev.DecisionID = "dec-5"
		}
		stored = append(stored, appendEvent(t, s, ev))
	}
	for i, ev := range stored {
		wantPrev := audit.GenesisHash
		if i > 0 {
			wantPrev = stored[i-1].Hash
		}
		if ev.Seq != int64(i+1) || ev.PrevHash != wantPrev || ev.Hash != ev.ComputeHash() || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("appended event %d badly chained: %+v", i+1, ev)
		}
	}
	if ev := stored[4]; !ev.Time.Equal(fixed.Truncate(time.Microsecond)) || ev.ID != "caller-chosen-id" {
		t.Errorf("event 5 time %v id %q, want the caller's %v (to the microsecond) and id", ev.Time, ev.ID, fixed)
	}

	listed, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	if len(listed) != 10 {
		t.Fatalf("ListAudit returned %d events, want 10", len(listed))
	}
	for i := range listed {
		got, want := listed[i], stored[i]
		if !got.Time.Equal(want.Time) || got.Hash != want.Hash || got.PrevHash != want.PrevHash ||
			got.Actor != want.Actor || got.RequestID != want.RequestID || got.DecisionID != want.DecisionID {
			t.Errorf("listed event %d = %+v, want as appended %+v", i+1, got, want)
		}
		var a, b any
		if json.Unmarshal(got.Details, &a) != nil || json.Unmarshal(want.Details, &b) != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("event %d details read back as %s, appended %s", i+1, got.Details, want.Details)
		}
	}
	if res := mustVerify(t, s); !res.OK || res.Events != 10 || res.FirstBroken != nil {
		t.Errorf("VerifyAudit = %+v, want OK with 10 events", res)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := 1; i <= 12; i++ {
		actor := []string{"ana@example.com", "bo@example.com", "loopgate/reconciler"}[i%3]
		action := []string{"loop.create", "loop.update"}[i%2]
		resource := fmt.Sprintf("teams/growth/loops/loop-%d", i%4)
		appendEvent(t, s, event(actor, action, resource, i))
	}
	seqs := func(f store.AuditFilter) string {
		evs, err := s.ListAudit(ctx, f)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", f, err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, fmt.Sprint(ev.Seq))
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    store.AuditFilter
		want string
	}{
		{store.AuditFilter{Resource: "teams/growth/loops/loop-1"}, "1,5,9"},
		{store.AuditFilter{Actor: "loopgate/reconciler"}, "2,5,8,11"},
		{store.AuditFilter{Action: "loop.create"}, "2,4,6,8,10,12"},
		{store.AuditFilter{Actor: "loopgate/reconciler", Action: "loop.create"}, "2,8"},
		{store.AuditFilter{AfterSeq: 9}, "10,11,12"},
		{store.AuditFilter{PageSize: 3}, "1,2,3"},
		{store.AuditFilter{AfterSeq: 3, PageSize: 3}, "4,5,6"},
		{store.AuditFilter{Resource: "teams/growth/loops/none"}, ""},
		{store.AuditFilter{Newest: true, PageSize: 3}, "12,11,10"},
		{store.AuditFilter{Newest: true, BeforeSeq: 10, PageSize: 3}, "9,8,7"},
		{store.AuditFilter{Newest: true, Resource: "teams/growth/loops/loop-1"}, "9,5,1"},
	} {
		if got := seqs(tc.f); got != tc.want {
			t.Errorf("ListAudit(%+v) = seqs [%s], want [%s]", tc.f, got, tc.want)
		}
	}

	// Team: the team itself and what is under it, never a team whose name
	// merely starts the same ("growth-labs", "growth0") or another team.
	for i, resource := range []string{"teams/growth", "teams/growth-labs/loops/a", "teams/growth0", "teams/risk/loops/growth",
		"teams/growth/principals/nudge", "cluster/eu-1", "teams/growthx/loops/b"} {
		appendEvent(t, s, event("ana@example.com", "team.probe", resource, 100+i))
	}
	for _, tc := range []struct {
		f    store.AuditFilter
		want string
	}{
		{store.AuditFilter{Team: "growth", Action: "team.probe"}, "13,17"},
		{store.AuditFilter{Team: "growth-labs"}, "14"},
		{store.AuditFilter{Team: "growth", Newest: true, PageSize: 4}, "17,13,12,11"},
		{store.AuditFilter{Team: "growth", Resource: "teams/growth/loops/loop-2"}, "2,6,10"},
		{store.AuditFilter{Team: "payments"}, ""},
	} {
		if got := seqs(tc.f); got != tc.want {
			t.Errorf("ListAudit(%+v) = seqs [%s], want [%s]", tc.f, got, tc.want)
		}
	}

	// Since and Until select by the stored time: Since <= time < Until.
	all, err := s.ListAudit(ctx, store.AuditFilter{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	since, until := all[3].Time, all[8].Time // events 4 and 9
	var want []string
	for _, ev := range all {
		if !ev.Time.Before(since) && ev.Time.Before(until) {
			want = append(want, fmt.Sprint(ev.Seq))
		}
	}
	if len(want) == 0 || want[0] != "4" || slices.Contains(want, "9") && all[8].Time.After(all[7].Time) {
		t.Fatalf("fixture times do not separate the events: %v", want)
	}
	if got := seqs(store.AuditFilter{Since: since, Until: until}); got != strings.Join(want, ",") {
		t.Errorf("ListAudit(Since %s, Until %s) = seqs [%s], want [%s]", since, until, got, strings.Join(want, ","))
	}
	if got := seqs(store.AuditFilter{Since: all[len(all)-1].Time.Add(time.Microsecond)}); got != "" {
		t.Errorf("ListAudit(Since after the last event) = [%s], want none", got)
	}
	if got := seqs(store.AuditFilter{Until: all[0].Time}); got != "" {
		t.Errorf("ListAudit(Until the first event) = [%s], want none", got)
	}
}

func testAuditInvalidDetails(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.AppendAudit(ctx, audit.Event{Action: "loop.create", Details: json.RawMessage(`"not an object"`)})
		return err
	})
	wantErr(t, "AppendAudit with string details", err, audit.ErrInvalidDetails)
}

// testTamper edits stored rows behind the store's back; VerifyAudit must
// name the event that was changed, or the one after a deleted event.
func testTamper(t *testing.T, newStore func(t *testing.T) store.Store, tamper func(*testing.T, store.Store, int64, Tampering)) {
	for _, tc := range []struct {
		how        Tampering
		seq        int64
		wantBroken int64
		wantReason string
	}{
		{ChangeActor, 3, 3, "hash mismatch"},
		{ChangeDetails, 3, 3, "hash mismatch"},
		{ChangeActor, 1, 1, "hash mismatch"},
		{ChangeDetails, 5, 5, "hash mismatch"},
		{DeleteEvent, 3, 4, "gap"},
		{DeleteEvent, 1, 2, "gap"},
		// Cut off the end: no hash breaks, the recorded chain head shows it.
		{DeleteEvent, 5, 5, "removed from the end"},
	} {
		t.Run(fmt.Sprintf("%s event %d", tc.how, tc.seq), func(t *testing.T) {
			s := newStore(t)
			var evs []audit.Event
			for i := 1; i <= 5; i++ {
				evs = append(evs, appendEvent(t, s, event("ana@example.com", "loop.update", "teams/growth/loops/checkout-nudge", i)))
			}
			if res := mustVerify(t, s); !res.OK {
				t.Fatalf("chain broken before tampering: %+v", res)
			}
			tamper(t, s, tc.seq, tc.how)
			res := mustVerify(t, s)
			if res.OK || res.FirstBroken == nil {
				t.Fatalf("VerifyAudit after %s of event %d = %+v, want broken", tc.how, tc.seq, res)
			}
			fb := res.FirstBroken
			wantID := evs[tc.wantBroken-1].ID
			if tc.how == DeleteEvent && tc.seq == tc.wantBroken {
				wantID = "" // the event is gone; only its place can be named
			}
			if fb.Seq != tc.wantBroken || fb.ID != wantID || !strings.Contains(fb.Reason, tc.wantReason) {
				t.Errorf("FirstBroken = %+v, want event %d (%q) with a %q reason", fb, tc.wantBroken, wantID, tc.wantReason)
			}
		})
	}
}
