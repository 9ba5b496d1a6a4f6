package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loopgate/loopgate/internal/utf8clip"
)

// Defaults of readiness checking.
const (
	// DefaultReadyTTL is how long a check's result is reused: however
	// often load balancers probe, each dependency (the store, every Kafka
	// cluster) is asked at most once per TTL.
	DefaultReadyTTL = 5 * time.Second
	// DefaultProbeTimeout bounds one check.
	DefaultProbeTimeout = 2 * time.Second
)

// Check is one readiness check: Probe returns nil when the dependency is
// usable.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Result is a check's last outcome.
type Result struct {
	Name string
	Err  error
	At   time.Time     // when the probe finished
	Took time.Duration // how long it took
}

type checkState struct {
	res     Result
	done    bool          // res holds a finished probe
	running chan struct{} // closed when the running probe finishes; nil if none
}

// Readiness runs readiness checks with a cache: a check is probed again
// only when its last result is older than the TTL, concurrent callers share
// one probe, and probes run detached from the caller (a cancelled request
// does not poison the cache).
type Readiness struct {
	checks   []Check
	ttl      time.Duration
	timeout  time.Duration
	draining atomic.Bool
	mu       sync.Mutex
	state    map[string]*checkState
	desc     *prometheus.Desc
}

// NewReadiness returns a checker; ttl and timeout 0 take the defaults.
func NewReadiness(ttl, timeout time.Duration, checks ...Check) *Readiness {
	if ttl <= 0 {
		ttl = DefaultReadyTTL
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	return &Readiness{checks: checks, ttl: ttl, timeout: timeout, state: map[string]*checkState{},
		desc: prometheus.NewDesc(Namespace+"_ready", "Readiness checks at their last probe: 1 passing, 0 failing (see /readyz).", []string{"check"}, nil)}
}

// Add appends a check (before serving).
func (r *Readiness) Add(c Check) { r.checks = append(r.checks, c) }

// SetDraining marks the process as shutting down: it is not ready any more,
// whatever the checks say.
func (r *Readiness) SetDraining() { r.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (r *Readiness) Draining() bool { return r.draining.Load() }

// Results returns every check's result, probing those whose result is
// older than the TTL (in parallel). ctx only bounds the wait.
func (r *Readiness) Results(ctx context.Context) []Result {
	out := make([]Result, len(r.checks))
	var wg sync.WaitGroup
	for i, c := range r.checks {
		wg.Go(func() { out[i] = r.result(ctx, c) })
	}
	wg.Wait()
	return out
}

// Ready reports whether every check passes and the process is not draining.
func (r *Readiness) Ready(ctx context.Context) bool {
	if r.Draining() {
		return false
	}
	for _, res := range r.Results(ctx) {
		if res.Err != nil {
			return false
		}
	}
	return true
}

func (r *Readiness) result(ctx context.Context, c Check) Result {
	r.mu.Lock()
	st := r.state[c.Name]
	if st == nil {
		st = &checkState{}
		r.state[c.Name] = st
	}
	if st.done && time.Since(st.res.At) < r.ttl {
		res := st.res
		r.mu.Unlock()
		return res
	}
	wait := st.running
	if wait == nil {
		wait = make(chan struct{})
		st.running = wait
		go r.probe(c, st, wait)
	}
	r.mu.Unlock()
	select {
	case <-wait:
		r.mu.Lock()
		defer r.mu.Unlock()
		return st.res
	case <-ctx.Done():
		return Result{Name: c.Name, Err: fmt.Errorf("no answer before the request ended: %w", ctx.Err()), At: time.Now()}
	}
}

func (r *Readiness) probe(c Check, st *checkState, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := time.Now()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("check panicked: %v", p)
			}
		}()
		return c.Probe(ctx)
	}()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	r.mu.Lock()
	st.res = Result{Name: c.Name, Err: err, At: time.Now(), Took: time.Since(start)}
	st.done = true
	st.running = nil
	r.mu.Unlock()
	close(done)
}

// Describe and Collect make the checker a collector of loopgate_ready
// {check}: the cached results, never a new probe.
func (r *Readiness) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect reports the last result of every check probed so far.
func (r *Readiness) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.checks {
		st := r.state[c.Name]
		if st == nil || !st.done {
			continue
		}
		v := 1.0
		if st.res.Err != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, v, c.Name)
	}
}

// Watch calls set with the readiness every interval (and once at once)
// until ctx ends; the gRPC health service follows it this way.
func (r *Readiness) Watch(ctx context.Context, interval time.Duration, set func(ready bool)) {
	if interval <= 0 {
		interval = r.ttl
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		set(r.Ready(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LivezHandler answers 200 "ok" while the process serves HTTP at all: it
// checks nothing else, so that a liveness probe never restarts loopgate
// because a dependency is down.
func LivezHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = fmt.Fprintln(w, "ok")
	})
}

// ReadyzHandler answers 200 when every check passes, else 503, with one
// line per check, Kubernetes style ("[+]store ok", "[-]cluster/eu
// failed"). The reasons of failures are shown with ?verbose only, and
// when details is non-nil only to callers it lets in (the reasons name
// hosts and addresses); otherwise "reason withheld".
func (r *Readiness) ReadyzHandler(details Gate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, verbose := req.URL.Query()["verbose"]
		verbose = verbose && (details == nil || details.Check(req) == nil)
		ctx, cancel := context.WithTimeout(req.Context(), r.timeout+time.Second)
		defer cancel()
		results := r.Results(ctx)
		var b strings.Builder
		ok := true
		if r.Draining() {
			ok = false
			b.WriteString("[-]shutdown failed: the process is shutting down\n")
		}
		for _, res := range results {
			if res.Err == nil {
				fmt.Fprintf(&b, "[+]%s ok", res.Name)
			} else {
				ok = false
				fmt.Fprintf(&b, "[-]%s failed: ", res.Name)
				if verbose {
					b.WriteString(oneLine(res.Err.Error()))
				} else {
					b.WriteString("reason withheld")
				}
			}
			if verbose && !res.At.IsZero() {
				fmt.Fprintf(&b, " (checked %s ago in %s)", time.Since(res.At).Round(time.Millisecond), res.Took.Round(time.Microsecond))
			}
			b.WriteByte('\n')
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ok {
			b.WriteString("readyz check passed\n")
			w.WriteHeader(http.StatusOK)
		} else {
			b.WriteString("readyz check failed\n")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(b.String()))
	})
}

func oneLine(s string) string {
	return utf8clip.WithEllipsis(strings.ReplaceAll(s, "\n", " "), 300, "…")
}
