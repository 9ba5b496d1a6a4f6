package server

// slomap.go maps a loop's observation (package slo, store.Observations) into
// LoopStatus.slo, LoopStatus.lag and the SLOMet and Fresh conditions.

import (
	"context"
	"errors"
	"log/slog"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

var sloStateToProto = map[string]lgv1.SloStatus_State{
	"MET":      lgv1.SloStatus_MET,
	"BREACHED": lgv1.SloStatus_BREACHED,
	"UNKNOWN":  lgv1.SloStatus_UNKNOWN,
}

// withObservation adds the stored observation of l, if any, to out's
// status. Observations are best effort: a store error leaves them out of
// the answer, and is logged.
func withObservation(ctx context.Context, obs store.Observations, log *slog.Logger, l *loop.Loop, out *lgv1.Loop) {
	if out.Status == nil {
		return
	}
	ob, err := obs.GetObservation(ctx, l.Metadata.Team, l.Metadata.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("reading a loop's SLO and lag observation failed; answered without it", "loop", l.Metadata.Key(), "err", err)
		}
		return
	case ob.UID != "" && ob.UID != l.Metadata.UID:
		return // an earlier loop of the same name
	}
	observationToProto(ob, out.Status, true)
}

// withObservations adds to a page of listed loops (in (team, name) order,
// as ListLoops returns them) their observations, read in one query over
// the page's key range, in summary: SLO state and windows, each group's
// lag without its partitions, the SLOMet and Fresh conditions.
func withObservations(ctx context.Context, obs store.Observations, log *slog.Logger, loops []*loop.Loop, out []*lgv1.Loop) {
	if len(loops) == 0 {
		return
	}
	first, last := loops[0].Metadata, loops[len(loops)-1].Metadata
	list, err := obs.ListObservations(ctx, store.KeyRange{From: store.LoopKey{Team: first.Team, Name: first.Name}, To: store.LoopKey{Team: last.Team, Name: last.Name}})
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading the listed loops' SLO and lag observations failed; listed without them", "err", err)
		}
		return
	}
	byKey := make(map[string]*store.Observation, len(list))
	for _, ob := range list {
		byKey[ob.Team+"/"+ob.Name] = ob
	}
	for i, l := range loops {
		if ob := byKey[l.Metadata.Key()]; ob != nil && (ob.UID == "" || ob.UID == l.Metadata.UID) && out[i].Status != nil {
			observationToProto(ob, out[i].Status, false)
		}
	}
}

// observationToProto maps ob into st; without full, the daily latencies
// and the per-partition lag are left out (a listing's summary).
func observationToProto(ob *store.Observation, st *lgv1.LoopStatus, full bool) {
	if s := ob.SLO; s != nil {
		p := &lgv1.SloStatus{State: sloStateToProto[s.State], Reason: s.Reason, Message: s.Message,
			TargetP99Ms: s.TargetP99Ms, ObserveTime: ts(s.ObserveTime)}
		if p.ObserveTime == nil {
			p.ObserveTime = ts(ob.UpdateTime)
		}
		if p.State == lgv1.SloStatus_STATE_UNSPECIFIED {
			p.State = lgv1.SloStatus_UNKNOWN
		}
		for _, w := range s.Windows {
			p.Windows = append(p.Windows, &lgv1.LatencyWindow{Window: w.Window, P50Ms: w.P50Ms, P90Ms: w.P90Ms, P99Ms: w.P99Ms,
				Records: w.Records, RecordsWithoutHeader: w.RecordsWithoutHeader, RecordsOverTarget: w.RecordsOverTarget,
				ErrorBudgetRemaining: w.ErrorBudgetRemaining})
		}
		days := s.Days
		if !full {
			days = nil
		}
		for _, d := range days {
			p.Days = append(p.Days, &lgv1.LatencyDay{Day: d.Day, P50Ms: d.P50Ms, P99Ms: d.P99Ms, Records: d.Records,
				RecordsOverTarget: d.RecordsOverTarget, RecordsWithoutHeader: d.RecordsWithoutHeader})
		}
		st.Slo = p
	}
	for _, g := range ob.Lag {
		pg := &lgv1.ConsumerGroupLag{Group: g.Group, OffsetLag: g.OffsetLag, TimeLagMs: g.TimeLagMs, FreshnessMs: g.FreshnessMs, ObserveTime: ts(g.ObserveTime)}
		parts := g.Partitions
		if !full {
			parts = nil
		}
		for _, p := range parts {
			pg.Partitions = append(pg.Partitions, &lgv1.PartitionLag{Topic: p.Topic, Partition: p.Partition, CommittedOffset: p.CommittedOffset,
				EndOffset: p.EndOffset, OffsetLag: p.OffsetLag, TimeLagMs: p.TimeLagMs})
		}
		st.Lag = append(st.Lag, pg)
	}
	for _, c := range ob.Conditions {
		st.Conditions = append(st.Conditions, &lgv1.Condition{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			ObservedGeneration: c.ObservedGeneration, LastTransitionTime: ts(c.LastTransitionTime),
		})
	}
}
