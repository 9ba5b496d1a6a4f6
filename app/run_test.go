package app

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/config"
)

// Regression: a failure late in New (here: the gRPC address is taken) used
// to panic in the cleanup, because the named result was already nil. It must
// return an error that names the address, and release what it had started.
func TestNewFailsCleanlyWhenTheAddressIsTaken(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.GRPCAddr, cfg.HTTPAddr = busy.Addr().String(), "127.0.0.1:0"
	srv, err := New(context.Background(), cfg, nil)
	if err == nil {
		srv.Close()
		t.Fatal("New succeeded on a taken address")
	}
	if !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("error does not name the address: %v", err)
	}
	// The data dir (and its embedded clusters) can be used again at once.
	cfg.GRPCAddr = "127.0.0.1:0"
	srv, err = New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("second New on the same data dir: %v", err)
	}
	srv.Close()
}
