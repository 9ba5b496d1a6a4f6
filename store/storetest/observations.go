package storetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

func observationsOf(_ *testing.T, s store.Store) store.Observations { return s }

func sampleObservation(team, name string, now time.Time) store.Observation {
	return store.Observation{
		Team: team, Name: name, UID: "uid-1", UpdateTime: now,
		SLO: &store.SLOObservation{State: "MET", Reason: "Met", Message: "p99 120ms ≤ 2s", TargetP99Ms: 2000, ObserveTime: now,
			Windows: []store.LatencyWindow{{Window: "1m", P50Ms: 40, P90Ms: 90, P99Ms: 120, Records: 1000, RecordsWithoutHeader: 3, RecordsOverTarget: 2, ErrorBudgetRemaining: 0.8}}},
		Lag: []store.GroupLag{{Group: "nudge-engine", OffsetLag: 12, TimeLagMs: 340, FreshnessMs: 30000, ObserveTime: now,
			Partitions: []store.PartitionLag{{Topic: team + "." + name + ".events", Partition: 0, CommittedOffset: 100, EndOffset: 112, OffsetLag: 12, TimeLagMs: 340}}}},
		Conditions: []loop.Condition{{Type: "SLOMet", Status: loop.True, Reason: "Met", LastTransitionTime: now}},
	}
}

// Observations round-trip, are replaced on the next write, are skipped for
// loops that do not exist, and go with their loop when it is deleted.
func testObservations(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	o := observationsOf(t, s)
	create(t, s, newLoop("growth", "checkout-nudge"))
	create(t, s, newLoop("growth", "other"))
	now := time.Now().UTC().Truncate(time.Millisecond)

	if _, err := o.GetObservation(ctx, "growth", "checkout-nudge"); err == nil {
		t.Fatal("GetObservation before any write: want ErrNotFound")
	} else {
		wantErr(t, "GetObservation before any write", err, store.ErrNotFound)
	}
	obs := []store.Observation{sampleObservation("growth", "checkout-nudge", now), sampleObservation("growth", "ghost", now)}
	if err := o.PutObservations(ctx, obs, nil, time.Time{}); err != nil {
		t.Fatalf("PutObservations: %v", err)
	}
	got, err := o.GetObservation(ctx, "growth", "checkout-nudge")
	if err != nil {
		t.Fatalf("GetObservation: %v", err)
	}
	if got.SLO == nil || got.SLO.Windows[0].P99Ms != 120 || got.SLO.Windows[0].RecordsWithoutHeader != 3 || got.Lag[0].Partitions[0].OffsetLag != 12 ||
		got.Conditions[0].Type != "SLOMet" || !got.Conditions[0].LastTransitionTime.Equal(now) || got.UID != "uid-1" || !got.UpdateTime.Equal(now) {
		t.Errorf("GetObservation = %+v, want what was written", got)
	}
	if _, err := o.GetObservation(ctx, "growth", "ghost"); err == nil {
		t.Error("an observation of a loop that does not exist was written")
	}

	// Replaced, not appended.
	next := sampleObservation("growth", "checkout-nudge", now.Add(time.Second))
	next.SLO.State, next.SLO.Reason = "BREACHED", "Breach"
	if err := o.PutObservations(ctx, []store.Observation{next, sampleObservation("growth", "other", now)}, nil, time.Time{}); err != nil {
		t.Fatalf("PutObservations again: %v", err)
	}
	if got, err := o.GetObservation(ctx, "growth", "checkout-nudge"); err != nil || got.SLO.State != "BREACHED" {
		t.Errorf("GetObservation after a second write = %+v, %v; want state BREACHED", got, err)
	}
	all, err := o.ListObservations(ctx, store.KeyRange{})
	if err != nil || len(all) != 2 || all[0].Name != "checkout-nudge" || all[1].Name != "other" {
		t.Errorf("ListObservations = %d observations (err %v), want checkout-nudge and other", len(all), err)
	}
	// By key range (a page of ListLoops): both ends included, (team, name) order.
	create(t, s, newLoop("growth", "aaa"))
	create(t, s, newLoop("risk", "alpha"))
	if err := o.PutObservations(ctx, []store.Observation{sampleObservation("growth", "aaa", now), sampleObservation("risk", "alpha", now)}, nil, time.Time{}); err != nil {
		t.Fatalf("PutObservations: %v", err)
	}
	for _, tc := range []struct {
		r    store.KeyRange
		want string
	}{
		{store.KeyRange{}, "growth/aaa growth/checkout-nudge growth/other risk/alpha"},
		{store.KeyRange{From: store.LoopKey{Team: "growth", Name: "checkout-nudge"}, To: store.LoopKey{Team: "growth", Name: "other"}}, "growth/checkout-nudge growth/other"},
		{store.KeyRange{From: store.LoopKey{Team: "growth", Name: "b"}}, "growth/checkout-nudge growth/other risk/alpha"},
		{store.KeyRange{To: store.LoopKey{Team: "growth", Name: "b"}}, "growth/aaa"},
		{store.KeyRange{From: store.LoopKey{Team: "risk", Name: ""}}, "risk/alpha"},
		{store.KeyRange{From: store.LoopKey{Team: "growth", Name: "p"}, To: store.LoopKey{Team: "growth", Name: "q"}}, ""},
	} {
		got, err := o.ListObservations(ctx, tc.r)
		var keys []string
		for _, ob := range got {
			keys = append(keys, ob.Team+"/"+ob.Name)
		}
		if err != nil || strings.Join(keys, " ") != tc.want {
			t.Errorf("ListObservations(%+v) = [%s] (err %v), want [%s]", tc.r, strings.Join(keys, " "), err, tc.want)
		}
	}

	// Deleting the loop deletes its observation; the name's next loop starts clean.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteLoop(ctx, "growth", "checkout-nudge") }); err != nil {
		t.Fatalf("DeleteLoop: %v", err)
	}
	_, err = o.GetObservation(ctx, "growth", "checkout-nudge")
	wantErr(t, "GetObservation after DeleteLoop", err, store.ErrNotFound)
	create(t, s, newLoop("growth", "checkout-nudge"))
	_, err = o.GetObservation(ctx, "growth", "checkout-nudge")
	wantErr(t, "GetObservation of a re-created loop", err, store.ErrNotFound)
}

// Daily sketches round-trip byte for byte, are replaced per day, pruned
// by day, skipped for missing loops and deleted with their loop.
func testDailySketches(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	o := observationsOf(t, s)
	create(t, s, newLoop("growth", "checkout-nudge"))
	create(t, s, newLoop("risk", "fraud"))
	day := func(n int) time.Time { return time.Date(2026, 11, n, 0, 0, 0, 0, time.UTC) }
	sk := []byte{0x02, 0x00, 0xff, 0x10, 0x42}
	days := []store.DailySketch{
		{Team: "growth", Name: "checkout-nudge", Day: day(1), Sketch: sk, Records: 10, RecordsWithoutHeader: 1, RecordsOverTarget: 2},
		{Team: "growth", Name: "checkout-nudge", Day: day(2), Sketch: sk, Records: 20},
		{Team: "risk", Name: "fraud", Day: day(2), Sketch: sk, Records: 30},
		{Team: "growth", Name: "ghost", Day: day(2), Sketch: sk, Records: 5},
	}
	if err := o.PutObservations(ctx, nil, days, time.Time{}); err != nil {
		t.Fatalf("PutObservations: %v", err)
	}
	got, err := o.ListDailySketches(ctx, day(1))
	if err != nil || len(got) != 3 {
		t.Fatalf("ListDailySketches = %d (err %v), want 3 (the missing loop's skipped)", len(got), err)
	}
	if g := got[0]; g.Team != "growth" || !g.Day.Equal(day(1)) || !bytes.Equal(g.Sketch, sk) || g.Records != 10 || g.RecordsWithoutHeader != 1 || g.RecordsOverTarget != 2 {
		t.Errorf("first sketch = %+v, want growth/checkout-nudge of Nov 1 as written", g)
	}
	if got, _ := o.ListDailySketches(ctx, day(2)); len(got) != 2 {
		t.Errorf("ListDailySketches since Nov 2 = %d, want 2", len(got))
	}
	// Same day again: replaced; prune before Nov 2.
	days[1].Records = 25
	if err := o.PutObservations(ctx, nil, days[1:2], day(2)); err != nil {
		t.Fatalf("PutObservations: %v", err)
	}
	got, _ = o.ListDailySketches(ctx, day(1))
	if len(got) != 2 || got[0].Records != 25 || !got[0].Day.Equal(day(2)) {
		t.Errorf("after replace and prune: %+v, want Nov 2 of both loops, growth's with 25 records", got)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteLoop(ctx, "growth", "checkout-nudge") }); err != nil {
		t.Fatalf("DeleteLoop: %v", err)
	}
	got, _ = o.ListDailySketches(ctx, day(1))
	if len(got) != 1 || got[0].Team != "risk" {
		t.Errorf("after DeleteLoop: %+v, want only risk/fraud's", got)
	}
}
