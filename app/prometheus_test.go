package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// EnvPrometheus set to "1" enables the Prometheus leg: a real Prometheus
// server (Debian package, installed by scripts/prometheus/install.sh if
// missing) scrapes loopgate and PromQL queries read loopgate's series back.
const EnvPrometheus = "LOOPGATE_TEST_PROMETHEUS"

// prometheusBinary finds the prometheus binary, installing it if needed.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LOOPGATE_TEST_PROMETHEUS_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "scripts", "prometheus", "install.sh")
	var out, errb bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("Prometheus leg enabled but prometheus could not be installed (%s): %v\n%s", script, err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1]
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant PromQL query over Prometheus' HTTP API.
func promQuery(base, q string) ([]promResult, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s", q, body.Status, body.Error)
	}
	return body.Data.Result, nil
}

// A real Prometheus server scrapes loopgate (with the metrics bearer
// token) and PromQL returns loopgate's series: the API call that created a
// loop, the loops by state, and — when the per-loop collectors are there —
// a loop's p99 latency.
func TestPrometheusScrapesLoopgate(t *testing.T) {
	if os.Getenv(EnvPrometheus) != "1" && os.Getenv("CI") != "true" {
		t.Skipf("Prometheus leg skipped: set %s=1 (scripts/test.sh does with CI=true or LOOPGATE_TEST_ALL=1)", EnvPrometheus)
	}
	bin := prometheusBinary(t)
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "metrics-token")
	if err := os.WriteFile(tokenFile, []byte("prometheus-scrape-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Embedded(filepath.Join(dir, "data"))
	cfg.Metrics.TokenFile = tokenFile
	r := startOps(t, cfg, false)

	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.CreateLoop(asDemo(t, "growth"), &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "prom-loop", Loop: typicalLoop("prom-loop")}); err != nil {
		t.Fatal(err)
	}

	promPort := freePort(t)
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: loopgate
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: %s
    static_configs:
      - targets: ['%s']
`, tokenFile, r.srv.HTTPAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logb syncBuffer
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort),
		"--log.level=warn",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel() // kills the process
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logb.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	value := func(q string) (string, string) {
		res, err := promQuery(base, q)
		if err != nil {
			return "", err.Error()
		}
		if len(res) == 0 {
			return "", "no result yet for " + q
		}
		v, _ := res[0].Value[1].(string)
		return v, ""
	}
	eventually(t, 60*time.Second, func() string {
		v, msg := value(`up{job="loopgate"}`)
		if msg != "" {
			return msg
		}
		if v != "1" {
			return "up{job=\"loopgate\"} = " + v + ": the scrape fails (token?)"
		}
		return ""
	})
	q := `loopgate_api_requests_total{method="/loopgate.v1.LoopService/CreateLoop",code="OK",transport="grpc"}`
	eventually(t, 30*time.Second, func() string {
		v, msg := value(q)
		if msg != "" {
			return msg
		}
		if v != "1" {
			return q + " = " + v + ", want 1"
		}
		return ""
	})
	t.Logf("PromQL %s = 1", q)
	eventually(t, 30*time.Second, func() string {
		v, msg := value(`sum(loopgate_loops)`)
		if msg != "" {
			return msg
		}
		if v != "1" {
			return "sum(loopgate_loops) = " + v + ", want 1"
		}
		return ""
	})
	if v, msg := value(`sum(loopgate_policy_decision_duration_seconds_count{kind="request"})`); msg != "" || v == "0" {
		t.Errorf("policy decision count: %q %s", v, msg)
	}

	// Every query of the example Grafana dashboard parses and runs.
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "docs", "grafana", "loopgate-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana/loopgate-dashboard.json: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$loop", ".*")
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if _, err := promQuery(base, vars.Replace(tg.Expr)); err != nil {
				t.Errorf("dashboard panel %q: %v", p.Title, err)
			}
			queries++
		}
	}
	if queries == 0 {
		t.Fatal("docs/grafana/loopgate-dashboard.json: no panel query found")
	}
	t.Logf("%d dashboard queries run", queries)

	// A loop's p99 latency: the acting principal writes action records
	// whose origin header is 150 ms older than the record; loopgate samples
	// them and Prometheus reads the loop's 1-minute p99 back.
	eventuallyReady(t, loops, asDemo(t, "growth"), "teams/growth/loops/prom-loop")
	stop := produceActions(t, loops, r, "prom-loop", 150*time.Millisecond)
	defer stop()
	p99 := `loopgate_loop_latency_seconds{loop="growth/prom-loop",window="1m",quantile="0.99"}`
	eventually(t, 60*time.Second, func() string {
		v, msg := value(p99)
		if msg != "" {
			return msg
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0.14 || f > 0.2 {
			return fmt.Sprintf("%s = %s, want about 0.15", p99, v)
		}
		t.Logf("PromQL %s = %s", p99, v)
		return ""
	})
	if v, msg := value(`loopgate_loop_slo_met{loop="growth/prom-loop"}`); msg != "" || v != "1" {
		t.Errorf("loopgate_loop_slo_met: %q %s, want 1", v, msg)
	}
	if v, msg := value(`sum(loopgate_loop_cost_monthly{loop="growth/prom-loop"})`); msg != "" || v == "0" {
		t.Errorf("loopgate_loop_cost_monthly: %q %s, want the forecast", v, msg)
	}
}

// eventuallyReady waits (at most 30 s) until the loop is READY.
func eventuallyReady(t *testing.T, loops lgv1.LoopServiceClient, ctx context.Context, name string) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		l, err := loops.GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
		if err != nil {
			return err.Error()
		}
		if l.GetStatus().GetState() != lgv1.Loop_READY {
			return name + " is " + l.GetStatus().GetState().String()
		}
		return ""
	})
}

// produceActions writes 20 action records a second to loop's action topic
// as the acting principal (User:nudge-engine, credentials issued through
// the API), each with the origin header lat before its own timestamp, until
// stop is called.
func produceActions(t *testing.T, loops lgv1.LoopServiceClient, r *opsServer, loop string, lat time.Duration) (stop func()) {
	t.Helper()
	growth := asDemo(t, "growth")
	creds, err := lgv1.NewPrincipalServiceClient(r.conn).IssuePrincipalCredentials(growth,
		&lgv1.IssuePrincipalCredentialsRequest{Name: "teams/growth/principals/nudge-engine"})
	if err != nil {
		t.Fatal(err)
	}
	contract, err := loops.GetLoopContract(growth, &lgv1.GetLoopContractRequest{Name: "teams/growth/loops/" + loop, Principal: "User:nudge-engine"})
	if err != nil {
		t.Fatal(err)
	}
	topic := contract.GetOriginHeader().GetTopic()
	if topic == "" {
		t.Fatalf("the acting principal's contract names no origin header: %v", contract)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(contract.GetBootstrapServers()...),
		kgo.SASL(scram.Auth{User: creds.GetUsername(), Pass: creds.GetPassword()}.AsSha512Mechanism()),
		kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounded whatever happens
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			rec := &kgo.Record{Value: []byte("nudge"), Timestamp: now,
				Headers: []kgo.RecordHeader{{Key: contract.GetOriginHeader().GetKey(), Value: []byte(strconv.FormatInt(now.Add(-lat).UnixMilli(), 10))}}}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil && ctx.Err() == nil {
				t.Errorf("producing an action record: %v", err)
				return
			}
		}
	}()
	return func() { cancel(); <-done; cl.Close() }
}
