package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// A stored observation becomes status.slo, status.lag and the SLOMet and
// Fresh conditions, after the loop's own conditions; an observation of an
// earlier loop of the same name (another uid) is not shown.
func TestWithObservation(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := &loop.Loop{Metadata: loop.Metadata{Team: "growth", Name: "n"}, Spec: loop.Spec{Owners: []string{"a@example.com"}}}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l) }); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ob := store.Observation{Team: "growth", Name: "n", UID: l.Metadata.UID, UpdateTime: now,
		SLO: &store.SLOObservation{State: "BREACHED", Reason: "Breach", Message: "p99 3s above 2s", TargetP99Ms: 2000,
			Windows: []store.LatencyWindow{{Window: "1m", P50Ms: 100, P90Ms: 2000, P99Ms: 3000, Records: 100, RecordsWithoutHeader: 2, RecordsOverTarget: 5, ErrorBudgetRemaining: -4}},
			Days:    []store.LatencyDay{{Day: "2026-11-29", P50Ms: 90, P99Ms: 250, Records: 40, RecordsOverTarget: 1, RecordsWithoutHeader: 3}}},
		Lag: []store.GroupLag{{Group: "g", OffsetLag: 7, TimeLagMs: 1500, FreshnessMs: 1000, ObserveTime: now,
			Partitions: []store.PartitionLag{{Topic: "t", Partition: 2, CommittedOffset: 3, EndOffset: 10, OffsetLag: 7, TimeLagMs: 1500}}}},
		Conditions: []loop.Condition{{Type: "SLOMet", Status: loop.False, Reason: "Breach", LastTransitionTime: now}, {Type: "Fresh", Status: loop.False, Reason: "Lagging"}},
	}
	if err := st.PutObservations(ctx, []store.Observation{ob}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	out := &lgv1.Loop{Status: &lgv1.LoopStatus{Conditions: []*lgv1.Condition{{Type: "Provisioned", Status: "True"}}}}
	withObservation(ctx, st, slog.New(slog.DiscardHandler), l, out)
	s := out.GetStatus()
	if s.GetSlo().GetState() != lgv1.SloStatus_BREACHED || s.GetSlo().GetTargetP99Ms() != 2000 || !s.GetSlo().GetObserveTime().AsTime().Equal(now) {
		t.Errorf("slo = %v", s.GetSlo())
	}
	if d := s.GetSlo().GetDays(); len(d) != 1 || d[0].GetDay() != "2026-11-29" || d[0].GetP99Ms() != 250 || d[0].GetRecords() != 40 ||
		d[0].GetRecordsOverTarget() != 1 || d[0].GetRecordsWithoutHeader() != 3 || d[0].GetP50Ms() != 90 {
		t.Errorf("days = %v", d)
	}
	if w := s.GetSlo().GetWindows()[0]; w.GetP99Ms() != 3000 || w.GetRecordsWithoutHeader() != 2 || w.GetErrorBudgetRemaining() != -4 {
		t.Errorf("window = %v", w)
	}
	if g := s.GetLag()[0]; g.GetGroup() != "g" || g.GetTimeLagMs() != 1500 || g.GetPartitions()[0].GetEndOffset() != 10 {
		t.Errorf("lag = %v", g)
	}
	if c := s.GetConditions(); len(c) != 3 || c[0].GetType() != "Provisioned" || c[1].GetType() != "SLOMet" || c[2].GetType() != "Fresh" ||
		!c[1].GetLastTransitionTime().AsTime().Equal(now) {
		t.Errorf("conditions = %v", c)
	}

	// Another uid: not shown.
	other := *l
	other.Metadata.UID = "someone-else"
	out = &lgv1.Loop{Status: &lgv1.LoopStatus{}}
	withObservation(ctx, st, slog.New(slog.DiscardHandler), &other, out)
	if out.GetStatus().GetSlo() != nil || len(out.GetStatus().GetConditions()) != 0 {
		t.Errorf("an observation of another uid was shown: %v", out.GetStatus())
	}

	// A listing: the summary (no days, no partitions) of each listed loop
	// with an observation of its own uid, from one range query.
	l2 := &loop.Loop{Metadata: loop.Metadata{Team: "growth", Name: "p"}, Spec: loop.Spec{Owners: []string{"a@example.com"}}}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l2) }); err != nil {
		t.Fatal(err)
	}
	listed := []*lgv1.Loop{{Status: &lgv1.LoopStatus{}}, {Status: &lgv1.LoopStatus{}}, {Status: &lgv1.LoopStatus{}}}
	withObservations(ctx, st, slog.New(slog.DiscardHandler), []*loop.Loop{l, l2, &other}, listed)
	if sl := listed[0].GetStatus().GetSlo(); sl.GetState() != lgv1.SloStatus_BREACHED || len(sl.GetWindows()) != 1 || len(sl.GetDays()) != 0 {
		t.Errorf("listed slo = %v, want the state and windows without days", sl)
	}
	if g := listed[0].GetStatus().GetLag(); len(g) != 1 || g[0].GetOffsetLag() != 7 || len(g[0].GetPartitions()) != 0 {
		t.Errorf("listed lag = %v, want the group's lag without partitions", g)
	}
	if listed[1].GetStatus().GetSlo() != nil || listed[2].GetStatus().GetSlo() != nil {
		t.Errorf("a loop without an observation (or of another uid) got one: %v %v", listed[1].GetStatus(), listed[2].GetStatus())
	}

	// A store error is logged, not hidden, and the loop is answered without it.
	var logs strings.Builder
	st.Close()
	out = &lgv1.Loop{Status: &lgv1.LoopStatus{}}
	withObservation(ctx, st, slog.New(slog.NewTextHandler(&logs, nil)), l, out)
	if out.GetStatus().GetSlo() != nil || !strings.Contains(logs.String(), "observation failed") {
		t.Errorf("a failing store: status %v, log %q", out.GetStatus(), logs.String())
	}
}
