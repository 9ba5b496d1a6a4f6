package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// fakeAPI writes loops the way admission.Core does — creates, spec updates
// (a new generation) and deletion requests, each keeping the reconciler's
// inventory and cluster as keepReconcilerState does — and notifies the
// reconciler after each commit.
type fakeAPI struct {
	t      testing.TB
	st     store.Store
	notify func(key string)
	uids   atomic.Int64
}

func cloneLoop(l *loop.Loop) *loop.Loop {
	raw, _ := json.Marshal(l)
	var out loop.Loop
	_ = json.Unmarshal(raw, &out)
	return &out
}

func (a *fakeAPI) create(ctx context.Context, name string, spec loop.Spec) {
	l := &loop.Loop{
		Metadata: loop.Metadata{Name: name, Team: "growth", UID: fmt.Sprintf("%s-%d", name, a.uids.Add(1)), Generation: 1},
		Spec:     spec,
		Status:   loop.Status{State: loop.StateProvisioning},
	}
	err := a.st.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l) })
	if errors.Is(err, store.ErrAlreadyExists) {
		return // the API refuses: the loop exists (maybe still being deleted)
	}
	if err != nil {
		a.t.Error(err)
		return
	}
	a.notify(l.Metadata.Key())
}

func (a *fakeAPI) update(ctx context.Context, name string, spec loop.Spec) {
	cur, err := a.st.GetLoop(ctx, "growth", name)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		a.t.Error(err)
		return
	}
	if !cur.Metadata.DeleteTime.IsZero() {
		return // LOOP_DELETING
	}
	next := cloneLoop(cur)
	next.Spec = spec
	next.Metadata.Generation++
	next.Status.State = loop.StateProvisioning
	err = a.st.Update(ctx, func(tx store.Tx) error {
		fresh, err := tx.GetLoop(ctx, "growth", name)
		if err != nil {
			return err
		}
		next.Status.Inventory = fresh.Status.Inventory
		if fresh.Status.Cluster != "" {
			next.Status.Cluster = fresh.Status.Cluster
		}
		return tx.UpdateLoop(ctx, next, cur.Metadata.Etag)
	})
	if errors.Is(err, store.ErrEtagMismatch) || errors.Is(err, store.ErrNotFound) {
		return // a concurrent write won: the API answers 409 / 404
	}
	if err != nil {
		a.t.Error(err)
		return
	}
	a.notify(next.Metadata.Key())
}

func (a *fakeAPI) delete(ctx context.Context, name string) {
	cur, err := a.st.GetLoop(ctx, "growth", name)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		a.t.Error(err)
		return
	}
	if !cur.Metadata.DeleteTime.IsZero() {
		return
	}
	next := cloneLoop(cur)
	next.Metadata.DeleteTime = time.Now()
	err = a.st.Update(ctx, func(tx store.Tx) error {
		fresh, err := tx.GetLoop(ctx, "growth", name)
		if err != nil {
			return err
		}
		next.Status = fresh.Status
		next.Status.State = loop.StateDeleting
		return tx.UpdateLoop(ctx, next, cur.Metadata.Etag)
	})
	if errors.Is(err, store.ErrEtagMismatch) || errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		a.t.Error(err)
		return
	}
	a.notify(next.Metadata.Key())
}

// randomSpec is a loop whose topics, consumer group and principals vary,
// some of them shared with other loops: one or two streams (one partition
// each, so no update shrinks a topic), a producer and a consumer that are
// either the loop's own principals or shared ones, a consumer group that
// is the loop's default group, another group of its namespace or a shared
// group, and a throughput that sizes the quotas.
func randomSpec(rng *rand.Rand, name string) loop.Spec {
	var streams []loop.Stream
	var names []string
	for _, s := range []string{"events", "clicks"} {
		if rng.IntN(2) == 0 {
			streams = append(streams, loop.Stream{Name: s, Partitions: 1})
			names = append(names, s)
		}
	}
	if len(streams) == 0 {
		streams = []loop.Stream{{Name: "events", Partitions: 1}}
		names = []string{"events"}
	}
	producer := []string{"User:shared-producer", "User:" + name + "-producer"}[rng.IntN(2)]
	consumer := []string{"User:shared-consumer", "User:" + name + "-consumer"}[rng.IntN(2)]
	group := []string{"shared-group", loop.DefaultGroup("growth", name, consumer), "growth." + name + ".alt"}[rng.IntN(3)]
	return loop.Spec{
		Owners: []string{"ana@example.com"}, Classification: loop.Internal, Residency: "eu",
		RetentionMs: 86400000, SLO: loop.SLO{LatencyP99Ms: 2000},
		Throughput: loop.Throughput{BytesPerSecond: int64(1+rng.IntN(4)) << 20, PeakFactor: 1},
		Streams:    streams,
		Producers:  []loop.Producer{{Principal: producer, Streams: names}},
		Consumers:  []loop.Consumer{{Principal: consumer, Group: group, Streams: names}},
	}
}

// Concurrent creates, updates and deletes of the same loops while the
// reconciler runs: once the writes stop and the reconciler settles, the
// cluster holds exactly what the live loops need — no orphan topic, ACL or
// quota of a deleted or changed loop, nothing missing — and it stays so
// after a restart.
func TestConcurrentWritesLeaveNoOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("concurrency stress test")
	}
	f := newFixture(t)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	admins := map[string]provisioning.Admin{"eu-test": f.admin}
	rec := reconciler.New(f.st, f.cat, admins, reconciler.Options{Resync: 200 * time.Millisecond, Workers: 4, Logger: quiet})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(runCtx) }()
	defer func() {
		stop()
		<-ran
	}()

	const (
		loops   = 20
		writers = 8
		writes  = 60
	)
	api := &fakeAPI{t: t, st: f.st, notify: rec.Enqueue}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range writes {
				name := fmt.Sprintf("c-%02d", rng.IntN(loops))
				deletes := 4 // in 20; none in the last quarter, so that loops remain
				if i >= writes*3/4 {
					deletes = 0
				}
				switch n := rng.IntN(20); {
				case n >= 20-deletes:
					api.delete(ctx, name)
				case n < 10:
					api.create(ctx, name, randomSpec(rng, name))
				default:
					api.update(ctx, name, randomSpec(rng, name))
				}
				time.Sleep(time.Duration(rng.IntN(4)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	t.Logf("writes done in %v", time.Since(start))

	// Settle: every remaining loop READY at its generation, no deletion
	// pending, and the cluster exactly what they need.
	var last census
	deadline := time.Now().Add(60 * time.Second)
	for {
		live, all := f.liveLoops(t)
		ready := len(live) == len(all)
		for _, l := range live {
			ready = ready && l.Status.State == loop.StateReady && l.Status.ObservedGeneration == l.Metadata.Generation
		}
		if ready {
			if last = f.takeCensus(t); last.clean() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after the writes stopped:\ncensus: %v\nloops:\n%s", f.takeCensus(t), f.states(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ran <- nil // for the deferred wait

	live, _ := f.liveLoops(t)
	t.Logf("settled with %d live loops in %v", len(live), time.Since(start))
	if c := f.takeCensus(t); !c.clean() {
		t.Fatalf("census after the reconciler stopped: %v", c)
	}

	// Restart: a fresh reconciler (empty peer index, no parks) finds
	// nothing to do and the census stays clean.
	before, err := f.st.ListAudit(ctx, store.AuditFilter{PageSize: 1000, Newest: true})
	if err != nil {
		t.Fatal(err)
	}
	rec2 := reconciler.New(f.st, f.cat, admins, reconciler.Options{Resync: 50 * time.Millisecond, Logger: quiet})
	ctx2, stop2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop2()
	if err := rec2.Run(ctx2); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCensus(t); !c.clean() {
		t.Fatalf("census after a restart: %v", c)
	}
	after, err := f.st.ListAudit(ctx, store.AuditFilter{PageSize: 1000, Newest: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) > 0 && len(after) > 0 && after[0].Seq != before[0].Seq {
		t.Errorf("a restart over converged loops wrote audit events: newest %s %s", after[0].Action, after[0].Resource)
	}
	if res, err := f.st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
	}
}
