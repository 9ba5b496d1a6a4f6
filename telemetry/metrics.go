// Package telemetry is loopgate's operational surface: the Prometheus
// metrics it serves on /metrics (an own registry with the Go and process
// collectors, never the global one), the readiness checks behind /readyz and
// the gRPC health service, and the handlers of /metrics, /livez and /readyz.
//
// It depends on no other loopgate package: the server wires the API
// interceptor, the policy engine and the reconciler to it through plain
// callbacks (ObserveAPICall, ObserveDecision, ObserveReconcile, ...), so
// that inner packages never import Prometheus. docs/operations.md lists
// every metric with its labels and cardinality.
package telemetry

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every loopgate metric.
const Namespace = "loopgate"

// DefaultMaxLoopSeries caps the loops that per-loop collectors registered
// with Register may expose series for (config metrics.maxLoopSeries).
const DefaultMaxLoopSeries = 2000

// LoopStatesTTL is how long the loops-by-state counts are reused between
// scrapes: counting walks the in-memory peer index, never the store.
const LoopStatesTTL = 5 * time.Second

// Options configure New. Every callback is optional.
type Options struct {
	// MaxLoopSeries caps the distinct values of the "loop" label over the
	// collectors added with Register; 0 = DefaultMaxLoopSeries.
	MaxLoopSeries int
	// LoopStates counts loops by state (a cheap in-memory count); called
	// at most once per LoopStatesTTL, at scrape time.
	LoopStates func() map[string]int
	// Queue reports the reconciler's queue at scrape time.
	Queue func() QueueStats
}

// QueueStats is the reconciler's work at one instant.
type QueueStats struct {
	Queued, InFlight, RetriesPending, Parked int
}

// Metrics holds loopgate's registry and its own metrics.
type Metrics struct {
	reg *prometheus.Registry

	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	decisions    *prometheus.HistogramVec
	decisionErrs *prometheus.CounterVec
	passes       *prometheus.HistogramVec
	passLoops    *prometheus.CounterVec
	actions      *prometheus.CounterVec
	reconErrs    *prometheus.CounterVec

	maxLoops int
	capped   struct {
		sync.Mutex
		all []*loopCapped
	}
	states struct {
		sync.Mutex
		at     time.Time
		counts map[string]int
	}
	opts Options
}

// Label values of the reconcile metrics.
const (
	PassBatch = "batch" // a worker's reconcile of queued loops
	PassDrift = "drift" // a drift pass over one cluster

	ErrorTerminal  = "terminal"
	ErrorRetriable = "retriable"
)

// LoopStateValues are the states loopgate_loops always reports (0 when no
// loop is in them), so that dashboards never see a series vanish.
var LoopStateValues = []string{"PENDING_APPROVAL", "PROVISIONING", "READY", "FAILED", "DELETING", "REJECTED"}

// New returns the metrics of one loopgate process.
func New(opts Options) *Metrics {
	if opts.MaxLoopSeries <= 0 {
		opts.MaxLoopSeries = DefaultMaxLoopSeries
	}
	m := &Metrics{reg: prometheus.NewRegistry(), maxLoops: opts.MaxLoopSeries, opts: opts}
	// API latencies: from sub-millisecond reads to multi-second batches.
	apiBuckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "api_requests_total",
		Help: "API calls by gRPC method, status code and transport (grpc: native gRPC; rest: through the REST gateway). Calls refused before authentication are counted too; REST requests refused before they reach the gateway have method \"REST\".",
	}, []string{"method", "code", "transport"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "api_request_duration_seconds",
		Help:    "API call latency as the server saw it (authentication, authorization and the handler), by gRPC method and transport.",
		Buckets: apiBuckets,
	}, []string{"method", "transport"})
	m.decisions = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "policy_decision_duration_seconds",
		Help:    "OPA policy evaluation latency by decision kind (request, plan, reevaluation, impact).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"kind"})
	m.decisionErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "policy_evaluation_failures_total",
		Help: "Policy evaluations that failed (and so denied, failing closed), by decision kind.",
	}, []string{"kind"})
	m.passes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "reconcile_pass_duration_seconds",
		Help:    "Reconcile pass duration: kind batch is one worker's reconcile of queued loops, kind drift one drift pass over a cluster.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"kind"})
	m.passLoops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "reconcile_loops_total",
		Help: "Loops handled by reconcile passes, by pass kind.",
	}, []string{"kind"})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "reconcile_actions_total",
		Help: "Admin operations the reconciler executed on clusters, by action kind (CreateTopic, CreateACL, ...) and result (ok, error).",
	}, []string{"action", "result"})
	m.reconErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "reconcile_errors_total",
		Help: "Loops whose reconcile failed, by class: terminal (parked until it changes) or retriable (retried with backoff).",
	}, []string{"class"})
	for _, k := range []string{PassBatch, PassDrift} {
		m.passes.WithLabelValues(k)
		m.passLoops.WithLabelValues(k)
	}
	for _, c := range []string{ErrorTerminal, ErrorRetriable} {
		m.reconErrs.WithLabelValues(c)
	}
	m.reg.MustRegister(m.apiRequests, m.apiDuration, m.decisions, m.decisionErrs, m.passes, m.passLoops, m.actions, m.reconErrs)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f))
	}
	if opts.Queue != nil {
		m.reg.MustRegister(newQueueCollector(opts.Queue))
	}
	if opts.LoopStates != nil {
		m.reg.MustRegister(&loopStates{m: m, desc: prometheus.NewDesc(Namespace+"_loops",
			"Loops by state (counted from the in-memory index, refreshed at most every 5s).", []string{"state"}, nil)})
	}
	gauge("metrics_loops_dropped", "Loops whose per-loop series were left out of the last scrape because more loops than metrics.maxLoopSeries have series.",
		func() float64 {
			m.capped.Lock()
			defer m.capped.Unlock()
			n := 0
			for _, c := range m.capped.all {
				n = max(n, int(c.dropped.Load()))
			}
			return float64(n)
		})
	gauge("metrics_max_loop_series", "The cap on loops with per-loop series (metrics.maxLoopSeries).", func() float64 { return float64(m.maxLoops) })
	return m
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds a collector to the registry /metrics serves — the hook for
// per-loop collectors (latency, lag, SLO, cost). Series with a "loop"
// label are capped: when more than MaxLoopSeries distinct loops have
// series, only the first MaxLoopSeries loops in name order are exposed and
// loopgate_metrics_loops_dropped says how many were left out. Collectors
// should cap themselves too; this is the bound the scrape never exceeds.
// queueCollector exports the reconciler's queue from one snapshot per
// scrape (one lock of the reconciler, not one per gauge).
type queueCollector struct {
	stats                             func() QueueStats
	queued, inflight, retries, parked *prometheus.Desc
}

func newQueueCollector(stats func() QueueStats) *queueCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, nil)
	}
	return &queueCollector{stats: stats,
		queued:   d("reconcile_queue_depth", "Loops waiting in the reconcile queue (only the process that runs the reconciler has any)."),
		inflight: d("reconcile_inflight", "Loops being reconciled now."),
		retries:  d("reconcile_retries_pending", "Loops waiting for a retry after a retriable failure (backoff)."),
		parked:   d("reconcile_parked", "Loops parked by a terminal reconcile error until they change."),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.inflight
	ch <- c.retries
	ch <- c.parked
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q := c.stats()
	for _, g := range []struct {
		d *prometheus.Desc
		v int
	}{{c.queued, q.Queued}, {c.inflight, q.InFlight}, {c.retries, q.RetriesPending}, {c.parked, q.Parked}} {
		ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, float64(g.v))
	}
}

func (m *Metrics) Register(c prometheus.Collector) error {
	lc := &loopCapped{inner: c, max: m.maxLoops}
	if err := m.reg.Register(lc); err != nil {
		return err
	}
	m.capped.Lock()
	m.capped.all = append(m.capped.all, lc)
	m.capped.Unlock()
	return nil
}

// ObserveAPICall records one API call.
func (m *Metrics) ObserveAPICall(method, code, transport string, took time.Duration) {
	m.apiRequests.WithLabelValues(method, code, transport).Inc()
	m.apiDuration.WithLabelValues(method, transport).Observe(took.Seconds())
}

// ObserveDecision records one policy evaluation.
func (m *Metrics) ObserveDecision(kind string, took time.Duration, failed bool) {
	m.decisions.WithLabelValues(kind).Observe(took.Seconds())
	if failed {
		m.decisionErrs.WithLabelValues(kind).Inc()
	}
}

// ObserveReconcile records one reconcile pass of kind PassBatch or
// PassDrift over loops loops, terminal and retriable of which failed.
func (m *Metrics) ObserveReconcile(kind string, loops, terminal, retriable int, took time.Duration) {
	m.passes.WithLabelValues(kind).Observe(took.Seconds())
	m.passLoops.WithLabelValues(kind).Add(float64(loops))
	if terminal > 0 {
		m.reconErrs.WithLabelValues(ErrorTerminal).Add(float64(terminal))
	}
	if retriable > 0 {
		m.reconErrs.WithLabelValues(ErrorRetriable).Add(float64(retriable))
	}
}

// ObserveAction records one admin operation the reconciler executed.
func (m *Metrics) ObserveAction(kind string, failed bool) {
	result := "ok"
	if failed {
		result = "error"
	}
	m.actions.WithLabelValues(kind, result).Inc()
}

// loopStates is loopgate_loops: counts by state, cached for LoopStatesTTL.
type loopStates struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (l *loopStates) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *loopStates) Collect(ch chan<- prometheus.Metric) {
	m := l.m
	m.states.Lock()
	if m.states.counts == nil || time.Since(m.states.at) >= LoopStatesTTL {
		m.states.counts = m.opts.LoopStates()
		m.states.at = time.Now()
	}
	counts := m.states.counts
	m.states.Unlock()
	seen := map[string]bool{}
	for _, s := range LoopStateValues {
		seen[s] = true
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
	for s, n := range counts {
		if !seen[s] && s != "" {
			ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, float64(n), s)
		}
	}
}
