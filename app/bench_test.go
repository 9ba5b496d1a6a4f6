package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// startEmbedded runs a whole loopgate (embedded default) in-process on free
// ports and returns a LoopService client and a context authenticated as the
// dev admin.
func startEmbedded(tb testing.TB) (lgv1.LoopServiceClient, context.Context) {
	conn, ctx := startEmbeddedConn(tb)
	return lgv1.NewLoopServiceClient(conn), ctx
}

// startEmbeddedConn is startEmbedded returning the connection itself.
func startEmbeddedConn(tb testing.TB) (*grpc.ClientConn, context.Context) {
	tb.Helper()
	tb.Setenv("HOME", tb.TempDir())
	cfg := config.Embedded(filepath.Join(tb.TempDir(), "data"))
	for i := range cfg.Teams {
		cfg.Teams[i].MaxPartitions = 1 << 30 // benchmarks create many loops
	}
	r := runServer(tb, cfg, slog.LevelDebug)
	return r.conn, r.ctx
}

// running is a loopgate served in-process by runServer.
type running struct {
	addr, token string
	http        string // the REST listener
	conn        *grpc.ClientConn
	ctx         context.Context // authenticated as the dev admin
	stopOnce    sync.Once
	stop        func()
}

// Stop shuts the server down (also done when the test ends).
func (r *running) Stop() { r.stopOnce.Do(r.stop) }

// runServer serves cfg in-process on free ports until the test ends (or
// Stop) and connects to it as the dev admin. cfg must write dev
// credentials; HOME must point at a temporary directory. Set
// LOOPGATE_BENCH_LOG to see the server's log at level.
func runServer(tb testing.TB, cfg *config.Config, level slog.Level) *running {
	tb.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	var logOut io.Writer = io.Discard
	if os.Getenv("LOOPGATE_BENCH_LOG") != "" {
		logOut = os.Stderr
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})))
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	conn, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	r := &running{addr: srv.GRPCAddr, http: srv.HTTPAddr, conn: conn, stop: func() { conn.Close(); cancel(); <-done; srv.Close() }}
	tb.Cleanup(r.Stop)
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil || creds == nil {
		tb.Fatalf("reading the dev credentials the server wrote to %s: %v", path, err)
	}
	r.token = creds.Token
	r.ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+creds.Token)
	return r
}

// typicalLoop is examples/checkout-nudge.yaml: two streams, a producer, a consumer.
func typicalLoop(name string) *lgv1.Loop {
	return &lgv1.Loop{
		Name:   "teams/growth/loops/" + name,
		Labels: map[string]string{"domain": "checkout"},
		Spec: &lgv1.LoopSpec{
			Description: "Nudge shoppers who abandon checkout", Owners: []string{"ana@example.com"},
			Classification: "pii", Residency: "eu", RetentionMs: 72 * 3600 * 1000,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams: []*lgv1.Stream{
				{Name: "events", Partitions: 12, Schema: &lgv1.StreamSchema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}`}},
				{Name: "actions", Schema: &lgv1.StreamSchema{Format: "avro", Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []*lgv1.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}, {Principal: "User:nudge-engine", Streams: []string{"actions"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &lgv1.LoopAction{Stream: "actions"},
		},
	}
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 { return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkPlanGRPC: `:plan` of a typical, already provisioned loop over
// gRPC on the embedded default (policy + derive + observe the cluster +
// plan). target (docs/benchmarks.md): p99 ≤ 20 ms.
func BenchmarkPlanGRPC(b *testing.B) {
	cl, ctx := startEmbedded(b)
	l := typicalLoop("bench-plan")
	if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "bench-plan", Loop: l}); err != nil {
		b.Fatal(err)
	}
	waitReady(b, cl, ctx, l.Name)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := cl.PlanLoop(ctx, &lgv1.PlanLoopRequest{Loop: l})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if len(resp.GetChanges()) != 0 {
			b.Fatalf("re-plan of a converged loop is not empty: %v", resp.GetChanges())
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkCreateToReady: CreateLoop of a typical loop until GetLoop says
// READY (topics, ACLs and quotas provisioned on the embedded cluster),
// polling every 0.5 ms. target (docs/benchmarks.md): p99 ≤ 100 ms.
func BenchmarkCreateToReady(b *testing.B) {
	cl, ctx := startEmbedded(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-ready-%d", i)
		l := typicalLoop(id)
		start := time.Now()
		if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: id, Loop: l}); err != nil {
			b.Fatal(err)
		}
		waitReady(b, cl, ctx, l.Name)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func waitReady(b *testing.B, cl lgv1.LoopServiceClient, ctx context.Context, name string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
		if err != nil {
			b.Fatal(err)
		}
		switch got.GetStatus().GetState() {
		case lgv1.Loop_READY:
			return
		case lgv1.Loop_FAILED:
			b.Fatalf("%s FAILED: %v", name, got.GetStatus().GetConditions())
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not READY: %v", name, got.GetStatus())
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// BenchmarkCreateLoop: the admission path alone over gRPC (authorize,
// validate with Avro parsing, derive, policy, one store transaction with
// the decision and audit event); the reconciler runs alongside.
func BenchmarkCreateLoop(b *testing.B) {
	cl, ctx := startEmbedded(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-create-%d", i)
		start := time.Now()
		if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: id, Loop: typicalLoop(id), RequestId: id}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
