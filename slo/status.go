package slo

import (
	"fmt"
	"time"

	"github.com/loopgate/loopgate/contract"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// Condition types this package sets on a loop's status.
const (
	CondSLOMet = "SLOMet"
	CondFresh  = "Fresh"
)

// Reasons of the SLOMet condition (and of LoopStatus.slo.reason).
const (
	ReasonMet        = "Met"
	ReasonBreach     = "Breach"
	ReasonNoTraffic  = "NoTraffic"
	ReasonNoHeader   = "NoHeader"
	ReasonNotSampled = "NotSampled"
)

// Reasons of the Fresh condition.
const (
	ReasonFresh       = "Fresh"
	ReasonStale       = "Lagging"
	ReasonNotObserved = "NotObserved"
	ReasonNoTarget    = "NoFreshnessTarget"
	ReasonNoConsumers = "NoConsumers"
)

// SLO states (LoopStatus.slo.state).
const (
	StateMet      = "MET"
	StateBreached = "BREACHED"
	StateUnknown  = "UNKNOWN"
)

// HeaderKey is the record header the acting service puts on every action
// record: the triggering record's timestamp, ms since the Unix epoch, as
// decimal ASCII. The contract tells the acting service this name; the
// sampler reads the same constant.
const HeaderKey = contract.OriginHeaderKey

func fmtMs(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

func window(name string, s Summary) store.LatencyWindow {
	return store.LatencyWindow{
		Window: name, P50Ms: s.Quantile(0.5), P90Ms: s.Quantile(0.9), P99Ms: s.Quantile(0.99),
		Records: s.Records, RecordsWithoutHeader: s.WithoutHeader, RecordsOverTarget: s.Over,
		ErrorBudgetRemaining: s.ErrorBudgetRemaining(),
	}
}

// Evaluate judges a loop's SLO from its windows at now: notSampled, when
// not empty, says why the action topic is not read (state UNKNOWN,
// NotSampled). Otherwise the short (1m) window decides: no record →
// NoTraffic; records but none with the header → NoHeader; p99 above the
// target → BREACHED; else MET.
func Evaluate(w *Windows, targetMs int64, notSampled string, now time.Time) store.SLOObservation {
	short, long, month := w.Short(now), w.Long(now), w.Month(now)
	o := store.SLOObservation{TargetP99Ms: targetMs, ObserveTime: now,
		Windows: []store.LatencyWindow{window(Window1m, short), window(Window1h, long), window(Window28d, month)}}
	for _, d := range w.Daily(now) {
		o.Days = append(o.Days, store.LatencyDay{Day: d.Day.Format(time.DateOnly), P50Ms: d.Quantile(0.5), P99Ms: d.Quantile(0.99),
			Records: d.Records, RecordsOverTarget: d.Over, RecordsWithoutHeader: d.WithoutHeader})
	}
	p99 := o.Windows[0].P99Ms
	switch {
	case notSampled != "":
		o.State, o.Reason, o.Message = StateUnknown, ReasonNotSampled, notSampled
	case short.Records == 0 && short.WithoutHeader == 0:
		o.State, o.Reason, o.Message = StateUnknown, ReasonNoTraffic, "no action record in the last minute"
	case short.Records == 0:
		o.State, o.Reason, o.Message = StateUnknown, ReasonNoHeader,
			fmt.Sprintf("%d action records in the last minute, none with the %s header", short.WithoutHeader, HeaderKey)
	case p99 > float64(targetMs):
		o.State, o.Reason, o.Message = StateBreached, ReasonBreach,
			fmt.Sprintf("p99 over the last minute is %s, above the target %s (%d of %d sampled records over)", fmtMs(p99), fmtMs(float64(targetMs)), short.Over, short.Records)
	default:
		o.State, o.Reason, o.Message = StateMet, ReasonMet,
			fmt.Sprintf("p99 over the last minute is %s, within the target %s (%d sampled records)", fmtMs(p99), fmtMs(float64(targetMs)), short.Records)
	}
	if o.Reason != ReasonNotSampled && short.WithoutHeader > 0 && short.Records > 0 {
		o.Message += fmt.Sprintf("; %d records without the %s header not counted", short.WithoutHeader, HeaderKey)
	}
	return o
}

// SLOCondition is the SLOMet condition for an SLO observation.
func SLOCondition(o store.SLOObservation, generation int64) loop.Condition {
	c := loop.Condition{Type: CondSLOMet, Reason: o.Reason, Message: o.Message, ObservedGeneration: generation}
	switch o.State {
	case StateMet:
		c.Status = loop.True
	case StateBreached:
		c.Status = loop.False
	default:
		c.Status = loop.Unknown
	}
	return c
}

// FreshCondition is the Fresh condition for the observed lag of a loop's
// groups (nil: never observed) against freshnessMs (0: the spec sets none).
func FreshCondition(lag []store.GroupLag, observed bool, hasGroups bool, freshnessMs int64, generation int64) loop.Condition {
	c := loop.Condition{Type: CondFresh, ObservedGeneration: generation, Status: loop.Unknown}
	if !hasGroups {
		c.Reason, c.Message = ReasonNoConsumers, "the loop has no consumer group"
		return c
	}
	if !observed || len(lag) == 0 {
		c.Reason, c.Message = ReasonNotObserved, "consumer lag has not been observed yet"
		return c
	}
	worst := store.GroupLag{Group: "", TimeLagMs: -1}
	for _, g := range lag {
		if g.TimeLagMs > worst.TimeLagMs {
			worst = g
		}
	}
	lagStr := fmt.Sprintf("max time lag %s (group %s, %d records behind)", fmtMs(float64(max(worst.TimeLagMs, 0))), worst.Group, worst.OffsetLag)
	switch {
	case freshnessMs <= 0:
		c.Reason, c.Message = ReasonNoTarget, "spec.slo.freshness is not set; "+lagStr
	case worst.TimeLagMs > freshnessMs:
		c.Status, c.Reason, c.Message = loop.False, ReasonStale, lagStr+", above the freshness target "+fmtMs(float64(freshnessMs))
	default:
		c.Status, c.Reason, c.Message = loop.True, ReasonFresh, lagStr+", within the freshness target "+fmtMs(float64(freshnessMs))
	}
	return c
}
