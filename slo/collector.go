package slo

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the observer's last evaluation of every loop (at most
// Config.MaxExportedLoops loops, in key order; the rest are counted in
// loopgate_loop_metrics_dropped_loops). It reads memory only, never the
// store. Register it with prometheus.Registerer.MustRegister.
type Collector struct {
	o *Observer

	latency, sloMet, budget, lagRecords, lagSeconds, withoutHeader, dropped *prometheus.Desc
}

// Collector returns the Prometheus collector of o.
func (o *Observer) Collector() *Collector {
	return &Collector{
		o: o,
		latency: prometheus.NewDesc("loopgate_loop_latency_seconds",
			"Producer-to-action latency of sampled action records, by window (1m, 1h, 28d) and quantile (DDSketch, 1% relative accuracy).",
			[]string{"loop", "window", "quantile"}, nil),
		sloMet: prometheus.NewDesc("loopgate_loop_slo_met",
			"Whether the loop meets its latency SLO over the last minute: 1 met, 0 breached, -1 unknown.", []string{"loop"}, nil),
		budget: prometheus.NewDesc("loopgate_loop_error_budget_remaining",
			"Share of the 28-day error budget left: 1 - over/(1% x records); negative when overspent.", []string{"loop"}, nil),
		lagRecords: prometheus.NewDesc("loopgate_loop_consumer_lag_records",
			"Records not yet consumed by the group, over all partitions.", []string{"loop", "group"}, nil),
		lagSeconds: prometheus.NewDesc("loopgate_loop_consumer_lag_seconds",
			"Age of the oldest record the group has not consumed (interpolated from end-offset history).", []string{"loop", "group"}, nil),
		withoutHeader: prometheus.NewDesc("loopgate_loop_records_without_header_total",
			"Sampled action records without the loopgate-origin-ts header, since this process started sampling.", []string{"loop"}, nil),
		dropped: prometheus.NewDesc("loopgate_loop_metrics_dropped_loops",
			"Loops not exported because of the cap on exported loops.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.latency, c.sloMet, c.budget, c.lagRecords, c.lagSeconds, c.withoutHeader, c.dropped} {
		ch <- d
	}
}

var quantiles = []struct {
	label string
	get   func(w windowValues) float64
}{
	{"0.5", func(w windowValues) float64 { return w.p50 }},
	{"0.9", func(w windowValues) float64 { return w.p90 }},
	{"0.99", func(w windowValues) float64 { return w.p99 }},
}

type windowValues struct{ p50, p90, p99 float64 }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.o.Snapshot()
	totals := c.o.withoutHeaderTotals()
	limit := c.o.cfg.MaxExportedLoops
	dropped := 0
	if len(snap) > limit {
		dropped = len(snap) - limit
		snap = snap[:limit]
	}
	for _, ob := range snap {
		key := ob.Team + "/" + ob.Name
		if s := ob.SLO; s != nil {
			for _, w := range s.Windows {
				if w.Records == 0 {
					continue
				}
				v := windowValues{w.P50Ms / 1000, w.P90Ms / 1000, w.P99Ms / 1000}
				for _, q := range quantiles {
					ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, q.get(v), key, w.Window, q.label)
				}
				if w.Window == Window28d {
					ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, w.ErrorBudgetRemaining, key)
				}
			}
			met := -1.0
			switch s.State {
			case StateMet:
				met = 1
			case StateBreached:
				met = 0
			}
			ch <- prometheus.MustNewConstMetric(c.sloMet, prometheus.GaugeValue, met, key)
		}
		for _, g := range ob.Lag {
			ch <- prometheus.MustNewConstMetric(c.lagRecords, prometheus.GaugeValue, float64(g.OffsetLag), key, g.Group)
			ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, float64(g.TimeLagMs)/1000, key, g.Group)
		}
		ch <- prometheus.MustNewConstMetric(c.withoutHeader, prometheus.CounterValue, float64(totals[key]), key)
	}
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.GaugeValue, float64(dropped))
}

func (o *Observer) withoutHeaderTotals() map[string]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int64, len(o.states))
	for k, s := range o.states {
		out[k] = s.withoutHeaderTotal
	}
	return out
}
