package reconciler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// estate is a store and an in-memory embedded cluster holding n converged
// loops: each one 6-partition stream, its own producer, consumer and group
// (1 topic, 5 ACLs, 2 quotas: 8 admin resources per loop), written to the
// store as READY with its inventory and provisioned on the cluster, as
// loopgate would have left them.
type estate struct {
	st    store.Store
	cat   *catalog.Catalog
	cl    catalog.Cluster
	admin provisioning.Admin
	rec   *reconciler.Reconciler
	keys  []string
}

func estateLoop(i int, lean bool) *loop.Loop {
	id := fmt.Sprintf("l%06d", i)
	l := &loop.Loop{
		Metadata: loop.Metadata{Name: id, Team: "growth", UID: id + "-uid", Generation: 1},
		Spec: loop.Spec{
			Owners: []string{"ana@example.com"}, Classification: loop.Internal, Residency: "eu",
			RetentionMs: 86400000, SLO: loop.SLO{LatencyP99Ms: 2000},
			Throughput: loop.Throughput{BytesPerSecond: 1 << 20, PeakFactor: 2},
			Streams: []loop.Stream{{Name: "events", Partitions: 6, Schema: loop.Schema{Format: "avro",
				Definition: `{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}`}}},
			Producers: []loop.Producer{{Principal: "User:" + id + "-producer", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:" + id + "-consumer", Group: id, Streams: []string{"events"}}},
		},
	}
	if lean {
		l.Spec.Streams[0].Partitions = 1
		l.Spec.Consumers = nil
	}
	return l
}

func newEstate(b *testing.B, n int, lean bool) *estate {
	b.Helper()
	ctx := context.Background()
	ec, err := embedded.Start(ctx, embedded.Options{Name: "eu-bench"}) // in memory
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ec.Close)
	kcl, err := provisioning.Connect(ec.Conn())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(kcl.Close)
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cl := catalog.Cluster{Name: "eu-bench", Region: "eu", ReplicationFactor: 1, BootstrapServers: ec.BootstrapServers()}
	cat := &catalog.Catalog{Teams: map[string]catalog.Team{"growth": {Name: "growth"}}, Clusters: []catalog.Cluster{cl}}
	e := &estate{st: st, cat: cat, cl: cl, admin: provisioning.NewKafkaAdmin(kcl)}

	start := time.Now()
	const chunk = 2000
	for lo := 0; lo < n; lo += chunk {
		var loops []*loop.Loop
		var want provisioning.Resources
		for i := lo; i < min(lo+chunk, n); i++ {
			l := estateLoop(i, lean)
			d := provisioning.Derive(l, cl)
			l.Status = loop.Status{State: loop.StateReady, ObservedGeneration: 1, Cluster: cl.Name, Inventory: inventory(d)}
			loops = append(loops, l)
			want.Topics = append(want.Topics, d.Topics...)
			want.ACLs = append(want.ACLs, d.ACLs...)
			want.Quotas = append(want.Quotas, d.Quotas...)
			e.keys = append(e.keys, l.Metadata.Key())
		}
		if err := st.Update(ctx, func(tx store.Tx) error {
			for _, l := range loops {
				if err := tx.CreateLoop(ctx, l); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		plan := provisioning.Plan(want, provisioning.Resources{})
		if _, err := e.admin.Execute(ctx, plan.Actions); err != nil {
			b.Fatalf("provisioning loops %d-%d: %v", lo, lo+len(loops), err)
		}
	}
	b.Logf("seeded %d loops in %v", n, time.Since(start).Round(time.Millisecond))
	e.rec = reconciler.New(st, cat, map[string]provisioning.Admin{cl.Name: e.admin},
		reconciler.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return e
}

func inventory(r provisioning.Resources) loop.Inventory {
	var inv loop.Inventory
	seen := map[string]bool{}
	add := func(list *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	for _, t := range r.Topics {
		add(&inv.Topics, t.Name)
	}
	for _, a := range r.ACLs {
		if a.ResourceType == provisioning.ResourceGroup {
			add(&inv.Groups, a.ResourceName)
		}
		add(&inv.Principals, a.Principal)
	}
	for _, q := range r.Quotas {
		add(&inv.Principals, q.Principal)
	}
	return inv
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMB is the process's resident set now (Linux), in MB.
func rssMB() float64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	fmt.Sscan(string(raw), &size, &resident)
	return float64(resident*int64(os.Getpagesize())) / 1e6
}

// BenchmarkDriftPass measures one resync of a converged estate of 1,000 and
// 10,000 loops (see estate): derive every loop's desired state from the
// peer index, observe the cluster once, cut each loop's view out of it.
// Every 10th pass lists the store instead (Options.FullResyncEvery): run
// with -benchtime 10x for the amortised figure. The cluster is embedded
// kfake in memory, in this process, so cpu-s/pass counts the cluster's
// work too; idle-core-% is that CPU spread over the default 30 s resync
// interval. repair-ms is one pass that finds a deleted topic plus the
// reconcile that recreates it.
func BenchmarkDriftPass(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run("loops="+strconv.Itoa(n), func(b *testing.B) { benchDriftPass(b, n, false) })
	}
}

// BenchmarkDriftPassScaling is the same pass over lean loops (one
// 1-partition topic, a producer: 1 topic, 2 ACLs, 1 quota each) at 1,000,
// 10,000 and, with LOOPGATE_BENCH_100K=1, 100,000 loops, to show how a
// pass grows with the estate. Lean, because kfake keeps ACLs in a list and
// checks every new one against all others: seeding 500,000 ACLs (100,000
// typical loops) would take hours; 200,000 take a few minutes.
func BenchmarkDriftPassScaling(b *testing.B) {
	sizes := []int{1000, 10000}
	if os.Getenv("LOOPGATE_BENCH_100K") == "1" {
		sizes = append(sizes, 100000)
	}
	for _, n := range sizes {
		b.Run("loops="+strconv.Itoa(n), func(b *testing.B) { benchDriftPass(b, n, true) })
	}
}

func benchDriftPass(b *testing.B, n int, lean bool) {
	e := newEstate(b, n, lean)
	ctx := context.Background()
	reconciler.ResyncNow(ctx, e.rec) // the first pass lists the store and loads the index
	runtime.GC()
	var cpu time.Duration
	var last reconciler.DriftReport
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuTime()
		reconciler.ResyncNow(ctx, e.rec)
		cpu += cpuTime() - c0
		last = e.rec.DriftReports()[0]
		if last.Loops != n || last.Drifted != 0 || last.Err != "" {
			b.Fatalf("pass over a converged estate: %+v", last)
		}
	}
	b.StopTimer()
	perPass := cpu / time.Duration(b.N)
	b.ReportMetric(perPass.Seconds(), "cpu-s/pass")
	b.ReportMetric(100*perPass.Seconds()/reconciler.DefaultResync.Seconds(), "idle-core-%")
	b.ReportMetric(float64(last.Observe.Milliseconds()), "observe-ms")
	b.ReportMetric(rssMB(), "rss-MB")

	// A topic deleted behind loopgate's back.
	victim := e.keys[n/2]
	topic := provisioning.TopicName("growth", victim[len("growth/"):], "events")
	if _, err := e.admin.Execute(ctx, []provisioning.Action{{Kind: provisioning.DeleteTopic, Resource: "topic " + topic, Topic: &provisioning.Topic{Name: topic}}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	reconciler.ResyncNow(ctx, e.rec)
	rep := e.rec.DriftReports()[0]
	if rep.Drifted != 1 || rep.Names[0] != victim {
		b.Fatalf("pass after deleting %s found %+v", topic, rep)
	}
	if errs := e.rec.ReconcileBatch(ctx, rep.Names); len(errs) > 0 {
		b.Fatalf("repair: %v", errs)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "repair-ms")
	reconciler.ResyncNow(ctx, e.rec)
	if rep := e.rec.DriftReports()[0]; rep.Drifted != 0 {
		b.Fatalf("drift left after the repair: %+v", rep)
	}
}
