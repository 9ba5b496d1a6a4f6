package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/reconciler"
)

// costCollector exports every loop's monthly cost forecast (package cost,
// docs/cost.md) per component, computed at scrape time from the loops as
// the peer index last read them: arithmetic over the spec and the catalog,
// no store read. Its loop series are capped with the other per-loop
// series (metrics.maxLoopSeries, see telemetry.Metrics.Register).
type costCollector struct {
	peers *reconciler.PeerIndex
	core  *admission.Core
	desc  *prometheus.Desc
}

func newCostCollector(peers *reconciler.PeerIndex, core *admission.Core) *costCollector {
	return &costCollector{peers: peers, core: core, desc: prometheus.NewDesc("loopgate_loop_cost_monthly",
		"Forecast monthly cost of a loop's current spec on its cluster's storage model, per component, in the price list's currency (docs/cost.md).",
		[]string{"loop", "component", "currency"}, nil)}
}

func (c *costCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *costCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.peers.Loops() {
		if !l.Metadata.DeleteTime.IsZero() {
			continue
		}
		est := c.core.CostOf(l)
		if est == nil {
			continue
		}
		key := l.Metadata.Team + "/" + l.Metadata.Name
		for _, it := range est.Items {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, it.Monthly, key, it.Component, est.Currency)
		}
	}
}
