package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loopgate/loopgate/telemetry"
)

func scrape(t *testing.T, h http.Handler, token string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestMetricsExposeOwnSeriesAndRuntimeCollectors(t *testing.T) {
	states := atomic.Int32{}
	queueReads := 0
	m := telemetry.New(telemetry.Options{
		LoopStates: func() map[string]int {
			states.Add(1)
			return map[string]int{"READY": 3, "FAILED": 1}
		},
		Queue: func() telemetry.QueueStats { queueReads++; return telemetry.QueueStats{Queued: 7, Parked: 2} },
	})
	m.ObserveAPICall("/loopgate.v1.LoopService/GetLoop", "OK", "grpc", 3*time.Millisecond)
	m.ObserveAPICall("/loopgate.v1.LoopService/GetLoop", "NotFound", "rest", time.Millisecond)
	m.ObserveDecision("plan", 2*time.Millisecond, false)
	m.ObserveDecision("request", time.Millisecond, true)
	m.ObserveReconcile(telemetry.PassBatch, 4, 1, 2, 50*time.Millisecond)
	m.ObserveAction("CreateTopic", false)
	m.ObserveAction("CreateACL", true)

	code, body := scrape(t, m.Handler(nil), "")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d", code)
	}
	if queueReads != 1 {
		t.Errorf("one scrape read the reconciler's queue %d times, want once", queueReads)
	}
	for _, want := range []string{
		`loopgate_api_requests_total{code="OK",method="/loopgate.v1.LoopService/GetLoop",transport="grpc"} 1`,
		`loopgate_api_requests_total{code="NotFound",method="/loopgate.v1.LoopService/GetLoop",transport="rest"} 1`,
		`loopgate_api_request_duration_seconds_count{method="/loopgate.v1.LoopService/GetLoop",transport="grpc"} 1`,
		`loopgate_policy_decision_duration_seconds_count{kind="plan"} 1`,
		`loopgate_policy_evaluation_failures_total{kind="request"} 1`,
		`loopgate_reconcile_pass_duration_seconds_count{kind="batch"} 1`,
		`loopgate_reconcile_loops_total{kind="batch"} 4`,
		`loopgate_reconcile_errors_total{class="terminal"} 1`,
		`loopgate_reconcile_errors_total{class="retriable"} 2`,
		`loopgate_reconcile_actions_total{action="CreateACL",result="error"} 1`,
		`loopgate_reconcile_queue_depth 7`,
		`loopgate_reconcile_parked 2`,
		`loopgate_loops{state="READY"} 3`,
		`loopgate_loops{state="PENDING_APPROVAL"} 0`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// Loop states are counted at most once per TTL however often scraped.
	scrape(t, m.Handler(nil), "")
	scrape(t, m.Handler(nil), "")
	if n := states.Load(); n != 1 {
		t.Errorf("loop states counted %d times in three scrapes within the TTL, want 1", n)
	}
}

// perLoop is a collector like the ones the per-loop metrics register.
type perLoop struct {
	desc  *prometheus.Desc
	loops int
}

func (p *perLoop) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }
func (p *perLoop) Collect(ch chan<- prometheus.Metric) {
	for i := range p.loops {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 1, fmt.Sprintf("team/loop-%04d", i), "0.99")
	}
}

func TestRegisteredCollectorsAreCappedPerLoop(t *testing.T) {
	m := telemetry.New(telemetry.Options{MaxLoopSeries: 10})
	c := &perLoop{desc: prometheus.NewDesc("loopgate_test_loop_latency_seconds", "test", []string{"loop", "quantile"}, nil), loops: 25}
	if err := m.Register(c); err != nil {
		t.Fatal(err)
	}
	if n := count(t, m, "loopgate_test_loop_latency_seconds"); n != 10 {
		t.Errorf("%d per-loop series exposed, want the cap of 10", n)
	}
	_, body := scrape(t, m.Handler(nil), "")
	if !strings.Contains(body, "loopgate_metrics_loops_dropped 15") {
		t.Errorf("dropped loops not reported:\n%s", grep(body, "dropped"))
	}
	if !strings.Contains(body, `loop="team/loop-0000"`) || strings.Contains(body, `loop="team/loop-0010"`) {
		t.Errorf("the first loops by name are not the ones kept")
	}
	c.loops = 5
	if n := count(t, m, "loopgate_test_loop_latency_seconds"); n != 5 {
		t.Errorf("under the cap: %d series, want all 5", n)
	}
	// The hook refuses a collector clashing with loopgate's own metrics.
	dup := prometheus.NewCounter(prometheus.CounterOpts{Name: "loopgate_api_requests_total", Help: "x"})
	if err := m.Register(dup); err == nil {
		t.Error("a duplicate metric name was accepted")
	}
}

func count(t *testing.T, m *telemetry.Metrics, name string) int {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := telemetry.NewBearerFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := telemetry.New(telemetry.Options{}).Handler(auth)
	if code, _ := scrape(t, h, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := scrape(t, h, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, _ := scrape(t, h, "s3cret"); code != http.StatusOK {
		t.Errorf("right token: %d, want 200", code)
	}
	// A rotated file takes effect without a restart.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(path, []byte("n3w-token-longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := scrape(t, h, "n3w-token-longer"); code != http.StatusOK {
		t.Errorf("rotated token: %d, want 200", code)
	}
	if code, _ := scrape(t, h, "s3cret"); code != http.StatusUnauthorized {
		t.Errorf("old token after rotation: %d, want 401", code)
	}
	if _, err := telemetry.NewBearerFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing token file was accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.NewBearerFile(empty); err == nil {
		t.Error("an empty token file was accepted")
	}
}

func readyz(t *testing.T, r *telemetry.Readiness, query string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ReadyzHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz"+query, nil))
	return rec.Code, rec.Body.String()
}

func TestReadinessCachesAndNamesTheFailingCheck(t *testing.T) {
	var mu sync.Mutex
	var down error = errors.New("dial tcp 127.0.0.1:1: connection refused")
	probes := atomic.Int32{}
	r := telemetry.NewReadiness(200*time.Millisecond, time.Second,
		telemetry.Check{Name: "store", Probe: func(context.Context) error { return nil }},
		telemetry.Check{Name: "cluster/eu", Probe: func(context.Context) error {
			probes.Add(1)
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			return down
		}},
	)
	code, body := readyz(t, r, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]cluster/eu failed: reason withheld") || !strings.Contains(body, "[+]store ok") {
		t.Fatalf("while the cluster is down: %d\n%s", code, body)
	}
	if strings.Contains(body, "127.0.0.1") {
		t.Errorf("the reason is shown without ?verbose:\n%s", body)
	}
	if _, body := readyz(t, r, "?verbose"); !strings.Contains(body, "connection refused") {
		t.Errorf("?verbose does not give the reason:\n%s", body)
	}
	// Concurrent probes within the TTL share one probe of the cluster.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { readyz(t, r, "") })
	}
	wg.Wait()
	if n := probes.Load(); n != 1 {
		t.Errorf("the cluster was probed %d times within the TTL, want 1", n)
	}
	mu.Lock()
	down = nil
	mu.Unlock()
	time.Sleep(250 * time.Millisecond)
	if code, body := readyz(t, r, ""); code != http.StatusOK || !strings.Contains(body, "[+]cluster/eu ok") {
		t.Errorf("after recovery: %d\n%s", code, body)
	}
	r.SetDraining()
	if code, body := readyz(t, r, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("while draining: %d\n%s", code, body)
	}
}

func TestReadinessProbeIsBoundedByItsTimeout(t *testing.T) {
	r := telemetry.NewReadiness(time.Second, 50*time.Millisecond, telemetry.Check{Name: "hang", Probe: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	start := time.Now()
	if r.Ready(context.Background()) {
		t.Error("a hanging check counted as ready")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a hanging check held readiness for %s", took)
	}
}

func TestLivez(t *testing.T) {
	rec := httptest.NewRecorder()
	telemetry.LivezHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/livez", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Errorf("livez: %d %q", rec.Code, rec.Body.String())
	}
}
