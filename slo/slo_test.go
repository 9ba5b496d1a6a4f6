package slo

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func within(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

// The 1m window holds the last minute only; 1h the last 60 minutes; the
// 28-day window every day of the last 28; quantiles within 1%.
func TestWindowsSpanTheirPeriods(t *testing.T) {
	w := NewWindows(time.Minute)
	// 1..1000 ms at t0, all within one slot.
	for i := 1; i <= 1000; i++ {
		w.Add(t0, float64(i), i > 990)
	}
	s := w.Short(t0)
	if s.Records != 1000 || s.Over != 10 {
		t.Fatalf("short window: records %d over %d, want 1000 and 10", s.Records, s.Over)
	}
	for _, q := range []struct{ q, want float64 }{{0.5, 500}, {0.9, 900}, {0.99, 990}} {
		if got := s.Quantile(q.q); !within(got, q.want, 0.011) {
			t.Errorf("p%v = %v, want %v within 1%%", q.q*100, got, q.want)
		}
	}
	// Two minutes later the short window is empty, the hour still has them.
	later := t0.Add(2 * time.Minute)
	if s := w.Short(later); s.Records != 0 || s.Quantile(0.99) != 0 {
		t.Errorf("short window 2 minutes later: %d records, p99 %v; want empty", s.Records, s.Quantile(0.99))
	}
	if s := w.Long(later); s.Records != 1000 {
		t.Errorf("hour window 2 minutes later: %d records, want 1000", s.Records)
	}
	// 61 minutes later the hour is empty too; the 28 days keep them.
	hour := t0.Add(61 * time.Minute)
	if s := w.Long(hour); s.Records != 0 {
		t.Errorf("hour window 61 minutes later: %d records, want 0", s.Records)
	}
	if s := w.Month(hour); s.Records != 1000 {
		t.Errorf("28-day window: %d records, want 1000", s.Records)
	}
	// Another day adds up; after 28 days the first day is gone.
	w.Add(t0.AddDate(0, 0, 1), 5, false)
	if s := w.Month(t0.AddDate(0, 0, 1)); s.Records != 1001 {
		t.Errorf("28-day window over two days: %d records, want 1001", s.Records)
	}
	if s := w.Month(t0.AddDate(0, 0, 28)); s.Records != 1 {
		t.Errorf("28-day window 28 days on: %d records, want 1 (the first day out)", s.Records)
	}
	// Records without the header are counted apart, never in quantiles.
	w.AddWithoutHeader(hour)
	if s := w.Short(hour); s.WithoutHeader != 1 || s.Records != 0 {
		t.Errorf("without header: %+v", s)
	}
}

func TestErrorBudget(t *testing.T) {
	for _, c := range []struct {
		records, over int64
		want          float64
	}{{0, 0, 1}, {1000, 0, 1}, {1000, 5, 0.5}, {1000, 10, 0}, {1000, 30, -2}} {
		if got := (Summary{Records: c.records, Over: c.over}).ErrorBudgetRemaining(); !within(got, c.want, 1e-9) && got != c.want {
			t.Errorf("budget(%d records, %d over) = %v, want %v", c.records, c.over, got, c.want)
		}
	}
}

// Days survive a round trip through their serialized form (what the store
// keeps), and only changed days are handed out again.
func TestDaysRoundTrip(t *testing.T) {
	w := NewWindows(time.Minute)
	for i := 1; i <= 100; i++ {
		w.Add(t0, float64(i*10), i > 98)
	}
	w.AddWithoutHeader(t0)
	if days := w.DirtyDays(); len(days) != 0 {
		t.Errorf("DirtyDays before the slot completed = %d days, want none", len(days))
	}
	if m := w.Month(t0); m.Records != 100 || m.WithoutHeader != 1 {
		t.Errorf("Month before roll-up = %+v, want the unrolled slot counted", m)
	}
	w.Roll(t0.Add(time.Minute))
	if m := w.Month(t0); m.Records != 100 || m.WithoutHeader != 1 {
		t.Errorf("Month after roll-up = %+v, want each record once", m)
	}
	if l := w.Long(t0); l.Records != 100 {
		t.Errorf("Long after roll-up = %+v, want each record once", l)
	}
	days := w.DirtyDays()
	if len(days) != 1 || days[0].Records != 100 || days[0].Over != 2 || days[0].WithoutHeader != 1 {
		t.Fatalf("DirtyDays = %+v", days)
	}
	if again := w.DirtyDays(); len(again) != 0 {
		t.Errorf("DirtyDays again = %d days, want none", len(again))
	}
	r := NewWindows(time.Minute)
	if err := r.RestoreDay(days[0]); err != nil {
		t.Fatal(err)
	}
	a, b := w.Month(t0), r.Month(t0)
	if a.Records != b.Records || a.Quantile(0.99) != b.Quantile(0.99) || a.WithoutHeader != b.WithoutHeader {
		t.Errorf("restored month %+v p99 %v, want %+v p99 %v", b, b.Quantile(0.99), a, a.Quantile(0.99))
	}
}

// Daily gives one entry per day with records, oldest first, counting a
// day's rolled-up and not yet rolled-up records once each; days that left
// the 28-day window are gone. Evaluate carries them as Days.
func TestDailyLatencies(t *testing.T) {
	w := NewWindows(time.Minute)
	day1, day3 := t0.AddDate(0, 0, -2), t0
	for i := 1; i <= 100; i++ {
		w.Add(day1, 100, false) // day 1: everything at 100 ms
	}
	w.Roll(day1.Add(time.Minute))
	for i := 1; i <= 100; i++ {
		w.Add(day3, float64(i*10), i > 90) // today: 10..1000 ms, not rolled up yet
	}
	w.AddWithoutHeader(day3)
	got := w.Daily(day3)
	if len(got) != 2 || !got[0].Day.Equal(dayOf(day1)) || !got[1].Day.Equal(dayOf(day3)) {
		t.Fatalf("Daily = %+v, want day 1 then today", got)
	}
	if got[0].Records != 100 || !within(got[0].Quantile(0.99), 100, 0.011) {
		t.Errorf("day 1: %d records, p99 %v; want 100 at 100 ms", got[0].Records, got[0].Quantile(0.99))
	}
	if got[1].Records != 100 || got[1].Over != 10 || got[1].WithoutHeader != 1 || !within(got[1].Quantile(0.99), 990, 0.011) {
		t.Errorf("today: %+v p99 %v", got[1].Summary, got[1].Quantile(0.99))
	}
	w.Roll(day3.Add(time.Minute))
	if again := w.Daily(day3.Add(time.Minute)); len(again) != 2 || again[1].Records != 100 {
		t.Errorf("after roll-up today counts %d records, want 100 once", again[1].Records)
	}
	if late := w.Daily(day1.AddDate(0, 0, Days)); len(late) != 1 || !late[0].Day.Equal(dayOf(day3)) {
		t.Errorf("28 days after day 1: %+v, want only today", late)
	}
	o := Evaluate(w, 500, "", day3.Add(time.Minute))
	if len(o.Days) != 2 || o.Days[0].Day != dayOf(day1).Format(time.DateOnly) || o.Days[1].RecordsOverTarget != 10 {
		t.Errorf("Evaluate days = %+v", o.Days)
	}
}

func TestOffsetTableInterpolates(t *testing.T) {
	var tab OffsetTable
	// 100 records per second.
	for i := range 11 {
		tab.Observe(int64(i*100), t0.Add(time.Duration(i)*time.Second))
	}
	now := t0.Add(10 * time.Second)
	cases := []struct {
		committed int64
		want      time.Duration
	}{
		{1000, 0},                     // caught up
		{1200, 0},                     // ahead of the last observation
		{950, 500 * time.Millisecond}, // written 9.5 s after t0
		{500, 5 * time.Second},        // exactly at a point
		{0, 10 * time.Second},         // the first point
	}
	for _, c := range cases {
		if got := tab.TimeLag(c.committed, now); (got - c.want).Abs() > time.Millisecond {
			t.Errorf("TimeLag(%d) = %v, want %v", c.committed, got, c.want)
		}
	}
	// An unchanged end offset keeps the time it was first seen: a stopped
	// producer does not make a stopped consumer look fresh.
	tab.Observe(1000, t0.Add(15*time.Second))
	tab.Observe(1000, t0.Add(20*time.Second))
	if got := tab.TimeLag(950, t0.Add(20*time.Second)); (got - 10500*time.Millisecond).Abs() > time.Millisecond {
		t.Errorf("after a flat period TimeLag(950) = %v, want 10.5s", got)
	}
	// Records written after the flat period are placed after it: 100/s
	// again from t0+20s.
	tab.Observe(1100, t0.Add(21*time.Second))
	if got := tab.TimeLag(1050, t0.Add(21*time.Second)); (got - 500*time.Millisecond).Abs() > time.Millisecond {
		t.Errorf("after production resumed TimeLag(1050) = %v, want 0.5s (not spread over the flat period)", got)
	}
	if len(tab.points) != 13 {
		t.Errorf("table holds %d points, want 13 (11, the flat period's end, the resumption)", len(tab.points))
	}
	// The table stays bounded.
	for i := range 1000 {
		tab.Observe(int64(2000+i), t0.Add(time.Minute+time.Duration(i)*time.Second))
	}
	if len(tab.points) > maxPoints {
		t.Errorf("table holds %d points, more than %d", len(tab.points), maxPoints)
	}
	// A lower end offset (the topic re-created) starts over.
	tab.Observe(5, t0.Add(time.Hour))
	if tab.Latest() != 5 || len(tab.points) != 1 {
		t.Errorf("after a lower end offset: latest %d, %d points", tab.Latest(), len(tab.points))
	}
}

func TestEvaluateConditions(t *testing.T) {
	w := NewWindows(time.Minute)
	o := Evaluate(w, 500, "", t0)
	if o.State != StateUnknown || o.Reason != ReasonNoTraffic {
		t.Errorf("no records: %s/%s, want UNKNOWN/NoTraffic", o.State, o.Reason)
	}
	w.AddWithoutHeader(t0)
	if o := Evaluate(w, 500, "", t0); o.Reason != ReasonNoHeader || !strings.Contains(o.Message, HeaderKey) {
		t.Errorf("records without header only: %s %q, want NoHeader naming the header", o.Reason, o.Message)
	}
	for i := range 100 {
		w.Add(t0, float64(100+i), false)
	}
	o = Evaluate(w, 500, "", t0)
	if o.State != StateMet || SLOCondition(o, 3).Status != loop.True || SLOCondition(o, 3).ObservedGeneration != 3 {
		t.Errorf("p99 199ms vs 500ms: %s %+v", o.State, SLOCondition(o, 3))
	}
	if len(o.Windows) != 3 || o.Windows[0].Window != "1m" || o.Windows[1].Window != "1h" || o.Windows[2].Window != "28d" {
		t.Errorf("windows %+v", o.Windows)
	}
	for range 5 {
		w.Add(t0, 2500, true)
	}
	o = Evaluate(w, 500, "", t0)
	c := SLOCondition(o, 1)
	if o.State != StateBreached || c.Status != loop.False || c.Reason != ReasonBreach || !strings.Contains(c.Message, "2.5") || !strings.Contains(c.Message, "500ms") {
		t.Errorf("5%% at 2.5 s: %s %+v, want BREACHED with the measured p99 and the target", o.State, c)
	}
	if o := Evaluate(w, 500, "no observer principal on cluster x", t0); o.Reason != ReasonNotSampled || SLOCondition(o, 1).Status != loop.Unknown {
		t.Errorf("not sampled: %+v", o)
	}
}

func TestFreshCondition(t *testing.T) {
	lag := []store.GroupLag{{Group: "a", TimeLagMs: 200, OffsetLag: 3}, {Group: "b", TimeLagMs: 45000, OffsetLag: 900}}
	if c := FreshCondition(nil, false, true, 30000, 1); c.Status != loop.Unknown || c.Reason != ReasonNotObserved {
		t.Errorf("never observed: %+v", c)
	}
	if c := FreshCondition(nil, false, false, 30000, 1); c.Status != loop.Unknown || c.Reason != ReasonNoConsumers {
		t.Errorf("no groups: %+v", c)
	}
	c := FreshCondition(lag, true, true, 30000, 1)
	if c.Status != loop.False || !strings.Contains(c.Message, "45s") || !strings.Contains(c.Message, "group b") {
		t.Errorf("45 s lag vs 30 s: %+v", c)
	}
	if c := FreshCondition(lag[:1], true, true, 30000, 1); c.Status != loop.True {
		t.Errorf("200 ms lag vs 30 s: %+v", c)
	}
	if c := FreshCondition(lag, true, true, 0, 1); c.Status != loop.Unknown || c.Reason != ReasonNoTarget {
		t.Errorf("no target: %+v", c)
	}
}

func TestTargetOf(t *testing.T) {
	l := &loop.Loop{
		Metadata: loop.Metadata{Team: "growth", Name: "n", UID: "u", Generation: 2},
		Spec: loop.Spec{SLO: loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Streams:   []loop.Stream{{Name: "events"}, {Name: "actions"}},
			Consumers: []loop.Consumer{{Principal: "User:e", Group: "g", Streams: []string{"events"}}, {Principal: "User:f", Streams: []string{"events", "nope"}}},
			Action:    &loop.Action{Stream: "actions"}},
	}
	if _, ok := targetOf(l); ok {
		t.Error("a loop without a cluster is observed")
	}
	l.Status.Cluster = "eu"
	tg, ok := targetOf(l)
	if !ok || tg.actionTopic != "growth.n.actions" || !slices.Equal(tg.groups["g"], []string{"growth.n.events"}) ||
		!slices.Equal(tg.groups["growth.n.f"], []string{"growth.n.events"}) || tg.targetMs != 2000 {
		t.Errorf("targetOf = %+v", tg)
	}
	l.Metadata.DeleteTime = t0
	if _, ok := targetOf(l); ok {
		t.Error("a loop being deleted is observed")
	}
}

// An observation that differs only in when it was made has the same
// fingerprint, so flush does not rewrite it; a changed figure does not.
func TestFingerprintIgnoresObserveTimes(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(1_800_000_000+int64(s), 0) }
	obs := func(when time.Time, lag int64) store.Observation {
		return store.Observation{
			SLO: &store.SLOObservation{State: "MET", Reason: "Met", ObserveTime: when},
			Lag: []store.GroupLag{{Group: "g", OffsetLag: lag, ObserveTime: when}},
		}
	}
	a, b := obs(at(0), 5), obs(at(10), 5)
	if string(fingerprint(a)) != string(fingerprint(b)) {
		t.Errorf("observations 10 s apart with the same figures differ:\n%s\n%s", fingerprint(a), fingerprint(b))
	}
	if string(fingerprint(a)) == string(fingerprint(obs(at(0), 6))) {
		t.Errorf("a changed lag has the same fingerprint")
	}
	if !a.SLO.ObserveTime.Equal(at(0)) || !a.Lag[0].ObserveTime.Equal(at(0)) {
		t.Errorf("fingerprint changed the observation it was given")
	}
}
