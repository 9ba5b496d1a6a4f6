package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opsServer is a running loopgate whose log (JSON or text) goes to log.
type opsServer struct {
	srv   *app.Server
	conn  *grpc.ClientConn
	log   *syncBuffer
	token string
	admin context.Context
}

func startOps(t *testing.T, cfg *config.Config, json bool) *opsServer {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	buf := &syncBuffer{}
	var h slog.Handler = slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	if json {
		h = slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return serveOps(t, cfg, buf, h)
}

// serveOps runs cfg (addresses set) until the test ends, logging through h
// into buf, and connects to it as the dev admin.
func serveOps(t *testing.T, cfg *config.Config, buf *syncBuffer, h slog.Handler) *opsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, slog.New(h))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	conn, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done; srv.Close() })
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil || creds == nil {
		t.Fatalf("dev credentials: %v", err)
	}
	return &opsServer{srv: srv, conn: conn, log: buf, token: creds.Token,
		admin: metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+creds.Token)}
}

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls f until it returns "" (success) or the deadline, then
// fails with f's last complaint.
func eventually(t *testing.T, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func healthStatus(t *testing.T, conn *grpc.ClientConn, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

// One server, every operations endpoint: /livez, /readyz, gRPC health
// without a token, /metrics counting gRPC and REST calls once each (refused
// ones too) with policy and reconcile metrics, and one JSON request log line
// per call with ids, actor, method, code and duration — and no token.
func TestOperationsEndpoints(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := startOps(t, config.Embedded(filepath.Join(t.TempDir(), "data")), true)
	base := "http://" + r.srv.HTTPAddr

	if code, body := httpGet(t, base+"/livez", ""); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/livez: %d %q", code, body)
	}
	eventually(t, 15*time.Second, func() string {
		code, body := httpGet(t, base+"/readyz", "")
		for _, want := range []string{"[+]store ok", "[+]policy ok", "[+]cluster/eu-embedded ok", "[+]cluster/us-embedded ok", "readyz check passed"} {
			if code != 200 || !strings.Contains(body, want) {
				return fmt.Sprintf("/readyz: %d, want 200 with %q:\n%s", code, want, body)
			}
		}
		return ""
	})
	// Health needs no token; it follows readiness.
	eventually(t, 15*time.Second, func() string {
		st, err := healthStatus(t, r.conn, "")
		if err != nil || st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Sprintf("health: %v %v", st, err)
		}
		return ""
	})
	if st, err := healthStatus(t, r.conn, "loopgate.v1.LoopService"); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of loopgate.v1.LoopService: %v %v", st, err)
	}
	// Reflection is off by default, and nothing else is served without a token.
	if _, err := listServices(t, r.conn); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection while off: %v, want Unimplemented", err)
	}
	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.ListLoops(context.Background(), &lgv1.ListLoopsRequest{Parent: "teams/growth"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListLoops without a token: %v", err)
	}

	// Native gRPC: a create with a request id, a plan; REST: a get, and a
	// request without a token the REST guard refuses before the gateway.
	growth := asDemo(t, "growth")
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "ops-loop", Loop: typicalLoop("ops-loop"), RequestId: "rid-ops-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := loops.PlanLoop(growth, &lgv1.PlanLoopRequest{Loop: typicalLoop("ops-plan")}); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, base+"/v1/teams/growth/loops/ops-loop", r.token); code != 200 {
		t.Fatalf("REST get: %d %s", code, body)
	}
	if code, _ := httpGet(t, base+"/v1/teams/growth/loops/ops-loop", "not-a-token"); code != 401 {
		t.Fatalf("REST get with a bad token: %d", code)
	}

	eventually(t, 30*time.Second, func() string {
		code, body := httpGet(t, base+"/metrics", r.token)
		if code != 200 {
			return fmt.Sprintf("/metrics: %d", code)
		}
		for _, want := range []string{
			`loopgate_api_requests_total{code="OK",method="/loopgate.v1.LoopService/CreateLoop",transport="grpc"} 1`,
			`loopgate_api_requests_total{code="OK",method="/loopgate.v1.LoopService/PlanLoop",transport="grpc"} 1`,
			`loopgate_api_requests_total{code="OK",method="/loopgate.v1.LoopService/GetLoop",transport="rest"} 1`,
			`loopgate_api_requests_total{code="Unauthenticated",method="/loopgate.v1.LoopService/ListLoops",transport="grpc"} 1`,
			`loopgate_api_requests_total{code="Unauthenticated",method="REST",transport="rest"} 1`,
			`loopgate_api_request_duration_seconds_bucket{method="/loopgate.v1.LoopService/CreateLoop",transport="grpc",le="+Inf"} 1`,
			`loopgate_policy_decision_duration_seconds_count{kind="request"} 1`,
			`loopgate_policy_decision_duration_seconds_count{kind="plan"} 1`,
			`loopgate_reconcile_actions_total{action="CreateTopic",result="ok"}`,
			`loopgate_loops{state="READY"} 1`,
			`loopgate_ready{check="cluster/eu-embedded"} 1`,
			`loopgate_reconcile_queue_depth `,
			`go_goroutines `,
		} {
			if !strings.Contains(body, want) {
				return fmt.Sprintf("/metrics lacks %q", want)
			}
		}
		if regexp.MustCompile(`loopgate_api_requests_total\{code="OK",method="/loopgate.v1.LoopService/GetLoop",transport="grpc"\}`).MatchString(body) {
			return "the REST call was counted as native gRPC too"
		}
		if !regexp.MustCompile(`loopgate_reconcile_pass_duration_seconds_count\{kind="batch"\} [1-9]`).MatchString(body) {
			return "no reconcile batch pass counted"
		}
		return ""
	})

	// The request log: one line per call, no token, no body.
	logs := r.log.String()
	for _, tok := range []string{r.token, "not-a-token"} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token is in the log")
		}
	}
	if strings.Contains(logs, "Nudge shoppers") {
		t.Error("a request body is in the log")
	}
	create := findLine(t, logs, `"method":"/loopgate.v1.LoopService/CreateLoop"`)
	for _, want := range []string{`"msg":"api call"`, `"code":"OK"`, `"actor":"growth-dev@example.com"`, `"request_id":"rid-ops-1"`, `"transport":"grpc"`, `"duration_ms":`, `"call_id":"`} {
		if !strings.Contains(create, want) {
			t.Errorf("the CreateLoop log line lacks %s: %s", want, create)
		}
	}
	get := findLine(t, logs, `"method":"/loopgate.v1.LoopService/GetLoop"`)
	if !strings.Contains(get, `"transport":"rest"`) || !strings.Contains(get, `"actor":"dev-admin@loopgate.local"`) {
		t.Errorf("the REST GetLoop log line: %s", get)
	}
	refused := findLine(t, logs, `"method":"/loopgate.v1.LoopService/ListLoops"`)
	if !strings.Contains(refused, `"code":"Unauthenticated"`) || !strings.Contains(refused, `"actor":"anonymous"`) {
		t.Errorf("the refused ListLoops log line: %s", refused)
	}
	if n := strings.Count(logs, `"method":"/loopgate.v1.LoopService/CreateLoop"`); n != 1 {
		t.Errorf("%d log lines for one CreateLoop, want 1", n)
	}
}

func findLine(t *testing.T, logs, sub string) string {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	t.Errorf("no log line with %s", sub)
	return ""
}

func listServices(t *testing.T, conn *grpc.ClientConn) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		out = append(out, s.GetName())
	}
	return out, nil
}

// Reflection on (config reflection: true, or serve --reflection): it lists
// the API without a token; the API itself still needs one. The text log
// format carries the same fields.
func TestReflectionWhenEnabled(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Reflection = true
	r := startOps(t, cfg, false)
	services, err := listServices(t, r.conn)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(services, " ")
	for _, want := range []string{"loopgate.v1.LoopService", "grpc.health.v1.Health"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reflection lists %v, without %s", services, want)
		}
	}
	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.GetLoop(context.Background(), &lgv1.GetLoopRequest{Name: "teams/growth/loops/x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetLoop without a token while reflection is on: %v", err)
	}
	if _, err := loops.GetLoop(r.admin, &lgv1.GetLoopRequest{Name: "teams/growth/loops/x"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetLoop as admin: %v", err)
	}
	line := findLine(t, r.log.String(), "method=/loopgate.v1.LoopService/GetLoop transport=grpc actor=dev-admin")
	for _, want := range []string{`msg="api call"`, "code=NotFound", "actor=dev-admin@loopgate.local", "transport=grpc", "duration_ms="} {
		if !strings.Contains(line, want) {
			t.Errorf("text log line lacks %s: %s", want, line)
		}
	}
}

// /readyz fails, naming the cluster, while a catalog cluster is
// unreachable, and recovers once it answers; gRPC health follows.
func TestReadyzFailsWhileAClusterIsUnreachable(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // closed: nothing answers there yet
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Clusters = append(cfg.Clusters, config.Cluster{Name: "xx-offline", Region: "xx", Zones: []string{"xx-a"},
		ReplicationFactor: 1, BootstrapServers: []string{fmt.Sprintf("127.0.0.1:%d", port)}})
	cfg.SetDefaults()
	r := startOps(t, cfg, false)
	base := "http://" + r.srv.HTTPAddr

	eventually(t, 20*time.Second, func() string {
		code, body := httpGet(t, base+"/readyz", "")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]cluster/xx-offline failed") || !strings.Contains(body, "[+]cluster/eu-embedded ok") {
			return fmt.Sprintf("/readyz while xx-offline is down: %d\n%s", code, body)
		}
		return ""
	})
	if _, body := httpGet(t, base+"/readyz?verbose", ""); strings.Contains(body, "cluster xx-offline") {
		t.Errorf("/readyz?verbose gives the reason to an anonymous caller:\n%s", body)
	}
	if _, body := httpGet(t, base+"/readyz?verbose", r.token); !strings.Contains(body, "cluster xx-offline") {
		t.Errorf("/readyz?verbose gives no reason:\n%s", body)
	}
	eventually(t, 20*time.Second, func() string {
		if st, err := healthStatus(t, r.conn, ""); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Sprintf("health while a cluster is down: %v %v", st, err)
		}
		return ""
	})

	// The cluster comes up on its address.
	kf, err := kfake.NewCluster(kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	eventually(t, 30*time.Second, func() string {
		code, body := httpGet(t, base+"/readyz", "")
		if code != http.StatusOK || !strings.Contains(body, "[+]cluster/xx-offline ok") {
			return fmt.Sprintf("/readyz after the cluster came up: %d\n%s", code, body)
		}
		return ""
	})
	eventually(t, 20*time.Second, func() string {
		if st, err := healthStatus(t, r.conn, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Sprintf("health after recovery: %v %v", st, err)
		}
		return ""
	})
	// And down again.
	kf.Close()
	eventually(t, 30*time.Second, func() string {
		if code, body := httpGet(t, base+"/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]cluster/xx-offline failed") {
			return fmt.Sprintf("/readyz after the cluster stopped again: %d\n%s", code, body)
		}
		return ""
	})
	if strings.Contains(r.log.String(), r.token) {
		t.Error("a token is in the log")
	}
}

// /metrics is read by Prometheus with the scrape token of metrics.tokenFile
// or by an admin's or auditor's API token (action metrics.read): its series
// name every team's loops, so a team member and an anonymous caller are
// refused, and both refusals audited; /livez stays open.
func TestMetricsAccess(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	path := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(path, []byte("scrape-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Metrics.TokenFile = path
	r := startOps(t, cfg, false)
	base := "http://" + r.srv.HTTPAddr
	if code, _ := httpGet(t, base+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	if code, body := httpGet(t, base+"/metrics", demoToken(t, "growth")); code != http.StatusUnauthorized || !strings.Contains(body, "may not read /metrics") {
		t.Errorf("/metrics with a team member's token: %d %q, want 401 saying the caller may not read /metrics", code, body)
	}
	for who, tok := range map[string]string{"the scrape token": "scrape-secret", "an admin's token": r.token, "an auditor's token": demoToken(t, "auditor")} {
		if code, body := httpGet(t, base+"/metrics", tok); code != http.StatusOK || !strings.Contains(body, "loopgate_api_requests_total") && !strings.Contains(body, "loopgate_loops") {
			t.Errorf("/metrics with %s: %d", who, code)
		}
	}
	if code, _ := httpGet(t, base+"/livez", ""); code != http.StatusOK {
		t.Errorf("/livez: %d", code)
	}
	// Both refusals are in the audit trail.
	eventually(t, 15*time.Second, func() string {
		page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.admin, &lgv1.ListAuditEventsRequest{PageSize: 200})
		if err != nil {
			return err.Error()
		}
		var forbidden, unauthenticated bool
		for _, e := range page.GetEvents() {
			switch {
			case e.GetAction() == "metrics.read" && e.GetActor() == "growth-dev@example.com" && e.GetOutcome() == "FORBIDDEN":
				forbidden = true
			case e.GetAction() == "auth.reject" && strings.Contains(e.GetResource(), "/metrics"):
				unauthenticated = true
			}
		}
		if !forbidden || !unauthenticated {
			return fmt.Sprintf("audit: team member's refusal %v, anonymous refusal %v", forbidden, unauthenticated)
		}
		return ""
	})
}

// metrics.public serves /metrics to anyone.
func TestMetricsPublic(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Metrics.Public = true
	r := startOps(t, cfg, false)
	if code, _ := httpGet(t, "http://"+r.srv.HTTPAddr+"/metrics", ""); code != http.StatusOK {
		t.Errorf("/metrics with metrics.public and no token: %d, want 200", code)
	}
}
