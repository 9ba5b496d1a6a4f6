package reconciler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// passAdmin counts the Observe and Execute calls it passes on, apart.
type passAdmin struct {
	provisioning.Admin
	observes, executes atomic.Int64
}

func (a *passAdmin) Observe(ctx context.Context, want provisioning.Resources) (provisioning.Resources, error) {
	a.observes.Add(1)
	return a.Admin.Observe(ctx, want)
}

func (a *passAdmin) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	a.executes.Add(1)
	return a.Admin.Execute(ctx, actions)
}

// countingStore counts write transactions.
type countingStore struct {
	store.Store
	updates atomic.Int64
}

func (s *countingStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.updates.Add(1)
	return s.Store.Update(ctx, fn)
}

// A drift pass compares every converged loop of a cluster with one
// observation of it: a converged estate costs one Observe per pass, no
// store write and no admin write; a topic deleted behind loopgate's back
// is found by the next pass, named in the cluster's report and recreated
// by a reconcile that says DriftCorrected.
func TestDriftPassObservesOnceAndRepairsOnlyWhatDrifted(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	names := []string{"alpha", "beta", "gamma", "delta"}
	for _, n := range names {
		f.create(t, testLoop(n, n+"-group"))
		f.reconcile(t, "growth/"+n)
	}
	admin := &passAdmin{Admin: f.admin}
	st := &countingStore{Store: f.st}
	rec := reconciler.New(st, f.cat, map[string]provisioning.Admin{"eu-test": admin},
		reconciler.Options{Resync: 150 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rec.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// Passes over a converged cluster.
	waitReport(t, rec, func(r reconciler.DriftReport) bool { return r.Loops == len(names) })
	obs0, upd0, exe0 := admin.observes.Load(), st.updates.Load(), admin.executes.Load()
	start := rec.DriftReports()[0].Start
	waitReport(t, rec, func(r reconciler.DriftReport) bool { return r.Start.After(start) })
	start = rec.DriftReports()[0].Start
	waitReport(t, rec, func(r reconciler.DriftReport) bool { return r.Start.After(start) })
	rep := rec.DriftReports()[0]
	if rep.Drifted != 0 || rep.Unsettled != 0 || rep.Err != "" {
		t.Errorf("report of a converged cluster = %+v, want nothing drifted", rep)
	}
	if got := admin.observes.Load() - obs0; got < 2 || got > 3 {
		t.Errorf("two passes over %d loops made %d Observe calls, want one per pass", len(names), got)
	}
	if got := st.updates.Load() - upd0; got != 0 {
		t.Errorf("passes over a converged cluster ran %d store transactions, want none", got)
	}
	if got := admin.executes.Load() - exe0; got != 0 {
		t.Errorf("passes over a converged cluster executed %d admin batches, want none", got)
	}

	// Drift: a topic and a consumer group's ACL removed out of band.
	if _, err := f.kadm.DeleteTopics(ctx, "growth.beta.events"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.topics(t)["growth.beta.events"] != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("deleted topic not recreated; last report %+v", rec.DriftReports())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitReport(t, rec, func(r reconciler.DriftReport) bool { return !r.LastDriftAt.IsZero() })
	if rep := rec.DriftReports()[0]; !slices.Equal(rep.LastDrifted, []string{"growth/beta"}) {
		t.Errorf("last drift found on the cluster names %v, want [growth/beta]", rep.LastDrifted)
	}
	waitFor(t, 20*time.Second, "InSync reason DriftCorrected on growth/beta", func() (bool, string) {
		c := f.get(t, "beta").Status.Condition(loop.CondInSync)
		return c != nil && c.Reason == "DriftCorrected", fmt.Sprintf("%+v", c)
	})
	for _, n := range names {
		if n != "beta" {
			if c := f.get(t, n).Status.Condition(loop.CondInSync); c != nil && c.Reason == "DriftCorrected" {
				t.Errorf("growth/%s did not drift but says %s", n, c.Reason)
			}
		}
	}
}

// Loops that are not converged are not compared: they are reconciled, as
// before the drift pass existed. A loop whose status is PROVISIONING (a
// crash before its first reconcile) reaches READY through a resync alone.
func TestDriftPassEnqueuesUnconvergedLoops(t *testing.T) {
	f := newFixture(t)
	f.create(t, testLoop("pending", "g"))
	rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": f.admin},
		reconciler.Options{Resync: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	defer func() { stop(); <-done }()
	waitFor(t, 20*time.Second, "growth/pending READY", provisioned(f.st, "pending"))
	waitReport(t, rec, func(r reconciler.DriftReport) bool { return r.Loops == 1 && r.Drifted == 0 })
}

func waitReport(t *testing.T, rec *reconciler.Reconciler, ok func(reconciler.DriftReport) bool) {
	t.Helper()
	waitFor(t, 20*time.Second, "a drift report", func() (bool, string) {
		reps := rec.DriftReports()
		return len(reps) == 1 && ok(reps[0]), fmt.Sprintf("%+v", reps)
	})
}

// ComputeBatch gives each loop exactly what Compute gives it alone, with
// one Observe for all: provisioned, drifted, new and changed loops, some
// sharing a principal and a group.
func TestComputeBatchEqualsComputeAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, n := range []string{"one", "two", "three"} {
		f.create(t, testLoop(n, "shared-group"))
		f.reconcile(t, "growth/"+n)
	}
	if _, err := f.kadm.DeleteTopics(ctx, "growth.two.events"); err != nil {
		t.Fatal(err)
	}
	changed := f.get(t, "three")
	changed.Spec.Streams[0].Partitions = 6
	changed.Spec.RetentionMs = 3600000
	fresh := testLoop("four", "other-group")
	loops := []*loop.Loop{f.get(t, "one"), f.get(t, "two"), changed, fresh}

	peers := reconciler.StorePeers{Store: f.st, Catalog: f.cat}
	cl := f.cat.Clusters[0]
	admin := &passAdmin{Admin: f.admin}
	batch, err := reconciler.ComputeBatch(ctx, peers, admin, loops, cl)
	if err != nil {
		t.Fatal(err)
	}
	if got := admin.observes.Load(); got != 1 {
		t.Errorf("ComputeBatch of %d loops observed %d times, want once", len(loops), got)
	}
	for i, l := range loops {
		alone, err := reconciler.Compute(ctx, peers, f.admin, l, cl)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(batch[i], alone) {
			t.Errorf("%s: batch computed\n%+v\nalone\n%+v", l.Metadata.Key(), batch[i], alone)
		}
	}
	if len(batch[0].Plan.Actions) != 0 || len(batch[1].Plan.Actions) == 0 || len(batch[2].Plan.Actions) == 0 || len(batch[3].Plan.Actions) == 0 {
		t.Errorf("plans: converged %d, drifted %d, changed %d, new %d actions; want 0 and more than 0 for the others",
			len(batch[0].Plan.Actions), len(batch[1].Plan.Actions), len(batch[2].Plan.Actions), len(batch[3].Plan.Actions))
	}
}
