package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func startApp(t *testing.T) (*app.Server, context.CancelFunc, chan error) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	return srv, cancel, ran
}

// When one listener fails, Run stops the others and returns the failure:
// nothing keeps serving half a loopgate.
func TestListenerFailureStopsEverything(t *testing.T) {
	srv, cancel, ran := startApp(t)
	defer cancel()
	defer srv.Close()
	conn, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	clusters := lgv1.NewClusterServiceClient(conn)
	if _, err := clusters.ListClusters(context.Background(), &lgv1.ListClustersRequest{}); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("the gRPC listener does not answer: %v", err)
	}
	srv.BreakREST()
	select {
	case err := <-ran:
		if err == nil || !strings.Contains(err.Error(), "REST listener") {
			t.Errorf("Run returned %v, want the REST listener's failure", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its REST listener failed")
	}
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	if _, err := clusters.ListClusters(ctx, &lgv1.ListClustersRequest{}); err == nil || errors.Is(err, context.DeadlineExceeded) == false && !strings.Contains(err.Error(), "Unavailable") && !strings.Contains(err.Error(), "connection refused") && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("the gRPC listener still serves after Run returned: %v", err)
	}
}

// Run returns only when everything it started has stopped; after Close no
// goroutine of the server is left.
func TestShutdownLeavesNothingRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, cancel, ran := startApp(t)
	conn, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = lgv1.NewClusterServiceClient(conn).ListClusters(context.Background(), &lgv1.ListClustersRequest{})
	conn.Close()
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before start, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
