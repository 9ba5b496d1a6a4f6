package telemetry

import (
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// LoopLabel is the label per-loop series carry ("team/name").
const LoopLabel = "loop"

// loopCapped wraps a collector registered with Metrics.Register: series
// with a "loop" label are exposed for at most max distinct loops (the first
// in name order, so the set is stable while the loops are); series without
// one pass unchanged.
type loopCapped struct {
	inner   prometheus.Collector
	max     int
	dropped atomic.Int64 // loops left out at the last scrape
}

func (c *loopCapped) Describe(ch chan<- *prometheus.Desc) { c.inner.Describe(ch) }

func (c *loopCapped) Collect(ch chan<- prometheus.Metric) {
	type series struct {
		m    prometheus.Metric
		loop string
	}
	var all []series
	loops := map[string]struct{}{}
	in := make(chan prometheus.Metric, 256)
	go func() {
		c.inner.Collect(in)
		close(in)
	}()
	for m := range in {
		s := series{m: m}
		var pb dto.Metric
		if err := m.Write(&pb); err == nil {
			for _, lp := range pb.GetLabel() {
				if lp.GetName() == LoopLabel {
					s.loop = lp.GetValue()
					loops[s.loop] = struct{}{}
					break
				}
			}
		}
		all = append(all, s)
	}
	keep := loops
	dropped := 0
	if len(loops) > c.max {
		names := make([]string, 0, len(loops))
		for l := range loops {
			names = append(names, l)
		}
		slices.Sort(names)
		keep = make(map[string]struct{}, c.max)
		for _, l := range names[:c.max] {
			keep[l] = struct{}{}
		}
		dropped = len(names) - c.max
	}
	c.dropped.Store(int64(dropped))
	for _, s := range all {
		if s.loop != "" {
			if _, ok := keep[s.loop]; !ok {
				continue
			}
		}
		ch <- s.m
	}
}
