package reconciler_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// blockingAdmin holds Execute until released: an admin operation in
// flight. With untilCancelled it instead returns when its context ends.
type blockingAdmin struct {
	provisioning.Admin
	entered        chan struct{}
	release        chan struct{}
	untilCancelled bool
}

func (a *blockingAdmin) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	select {
	case a.entered <- struct{}{}:
	default:
	}
	if a.untilCancelled {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	<-a.release
	return a.Admin.Execute(ctx, actions)
}

// reconcilerGoroutines lists the stacks of goroutines running reconciler
// code, waiting briefly for ones that are just returning.
func reconcilerGoroutines(t *testing.T) []string {
	t.Helper()
	var found []string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		found = found[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "loopgate/reconciler.(*") || strings.Contains(g, "loopgate/reconciler.backoff") {
				found = append(found, g)
			}
		}
		if len(found) == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return found
}

// Run returns only after the reconcile in flight when its context ended
// has finished — its admin operations ran and its result is recorded —
// and nothing the reconciler started is still running afterwards.
func TestRunFinishesInflightReconcile(t *testing.T) {
	f := newFixture(t)
	blocking := &blockingAdmin{Admin: f.admin, entered: make(chan struct{}, 1), release: make(chan struct{})}
	rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": blocking},
		reconciler.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.create(t, testLoop("inflight", "g"))

	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	select {
	case <-blocking.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconcile reached Execute")
	}
	stop()
	select {
	case <-ran:
		t.Fatal("Run returned while a reconcile was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(blocking.release)
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the reconcile in flight finished")
	}
	if g := reconcilerGoroutines(t); len(g) > 0 {
		t.Errorf("%d goroutines still run reconciler code after Run returned:\n%s", len(g), strings.Join(g, "\n\n"))
	}

	l := f.get(t, "inflight")
	if l.Status.State != loop.StateReady {
		t.Errorf("state = %s (%+v), want READY: the reconcile in flight was cut instead of finished", l.Status.State, l.Status.Condition(loop.CondProvisioned))
	}
	if tp := f.topics(t); tp["growth.inflight.events"] != 3 {
		t.Errorf("topics = %v, want growth.inflight.events with 3 partitions", tp)
	}
	events, err := f.st.ListAudit(context.Background(), store.AuditFilter{Action: "loop.provision"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Outcome != "OK" {
		t.Errorf("provision events = %+v, want one OK", events)
	}
}

// A reconcile that does not finish within the shutdown grace is cut:
// Run returns shortly after the grace, with nothing left running, and a
// later Run converges the loop.
func TestRunCutsReconcileAfterGrace(t *testing.T) {
	f := newFixture(t)
	blocking := &blockingAdmin{Admin: f.admin, entered: make(chan struct{}, 1), untilCancelled: true}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": blocking},
		reconciler.Options{ShutdownGrace: 300 * time.Millisecond, Logger: quiet})
	f.create(t, testLoop("stuck", "g"))

	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	select {
	case <-blocking.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconcile reached Execute")
	}
	stopped := time.Now()
	stop()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the shutdown grace")
	}
	if took := time.Since(stopped); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("Run returned %v after its context ended, want about the 300ms grace", took)
	}
	if g := reconcilerGoroutines(t); len(g) > 0 {
		t.Errorf("%d goroutines still run reconciler code after Run returned:\n%s", len(g), strings.Join(g, "\n\n"))
	}

	// Enqueue outside Run is a no-op, not a leak.
	rec.Enqueue("growth/stuck")
	if g := reconcilerGoroutines(t); len(g) > 0 {
		t.Errorf("Enqueue after Run started goroutines:\n%s", strings.Join(g, "\n\n"))
	}

	// The same reconciler runs again (a lease won back) and converges.
	blocking.untilCancelled = false
	blocking.release = make(chan struct{})
	close(blocking.release)
	ctx2, stop2 := context.WithCancel(context.Background())
	go func() { ran <- rec.Run(ctx2) }()
	waitFor(t, 10*time.Second, "READY after the restart", provisioned(f.st, "stuck"))
	stop2()
	<-ran
}
