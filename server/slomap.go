package server

// slomap.go maps a loop's observation (package slo, store.Observations) into
// LoopStatus.slo, LoopStatus.lag and the SLOMet and Fresh conditions.

import (
	"context"

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
// status. Observations are best effort: a store error leaves them out.
func withObservation(ctx context.Context, st store.Reader, l *loop.Loop, out *lgv1.Loop) {
	obs, ok := st.(store.Observations)
	if !ok || out.Status == nil {
		return
	}
	ob, err := obs.GetObservation(ctx, l.Metadata.Team, l.Metadata.Name)
	if err != nil || (ob.UID != "" && ob.UID != l.Metadata.UID) {
		return
	}
	observationToProto(ob, out.Status)
}

func observationToProto(ob *store.Observation, st *lgv1.LoopStatus) {
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
		for _, d := range s.Days {
			p.Days = append(p.Days, &lgv1.LatencyDay{Day: d.Day, P50Ms: d.P50Ms, P99Ms: d.P99Ms, Records: d.Records,
				RecordsOverTarget: d.RecordsOverTarget, RecordsWithoutHeader: d.RecordsWithoutHeader})
		}
		st.Slo = p
	}
	for _, g := range ob.Lag {
		pg := &lgv1.ConsumerGroupLag{Group: g.Group, OffsetLag: g.OffsetLag, TimeLagMs: g.TimeLagMs, FreshnessMs: g.FreshnessMs, ObserveTime: ts(g.ObserveTime)}
		for _, p := range g.Partitions {
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
