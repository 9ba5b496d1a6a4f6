package reconciler_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
)

// The hooks see every batch pass, every admin operation and every drift
// pass; the queue and the loops by state are readable at any time.
func TestHooksObservePassesAndActions(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var passes []reconciler.PassStats
	actions := map[provisioning.ActionKind]int{}
	peers := reconciler.NewPeerIndex(f.cat)
	rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": f.admin}, reconciler.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Peers: peers, Resync: 200 * time.Millisecond,
		Hooks: reconciler.Hooks{
			Pass: func(p reconciler.PassStats) { mu.Lock(); passes = append(passes, p); mu.Unlock() },
			Action: func(k provisioning.ActionKind, failed bool) {
				if !failed {
					mu.Lock()
					actions[k]++
					mu.Unlock()
				}
			},
		},
	})
	if q := rec.Queue(); q != (reconciler.QueueStats{}) {
		t.Errorf("queue before Run: %+v", q)
	}
	f.create(t, testLoop("hooked", "g"))
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		var batch, drift bool
		for _, p := range passes {
			batch = batch || p.Kind == reconciler.PassBatch && p.Loops > 0 && p.Duration > 0
			drift = drift || p.Kind == reconciler.PassDrift && p.Cluster == "eu-test" && p.Loops == 1
		}
		created := actions[provisioning.CreateTopic]
		mu.Unlock()
		if batch && drift && created == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hooks saw batch=%v drift=%v CreateTopic=%d (passes %+v, actions %v)", batch, drift, created, passes, actions)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if got := peers.CountByState(); got["READY"] != 1 || len(got) != 1 {
		t.Errorf("loops by state = %v, want READY: 1", got)
	}
}
