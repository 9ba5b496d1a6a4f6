package slo

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

func testLoop(name string) *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: "growth", Name: name, Generation: 1},
		Spec: loop.Spec{SLO: loop.SLO{LatencyP99Ms: 500, FreshnessMs: 30000},
			Streams:   []loop.Stream{{Name: "events"}, {Name: "actions"}},
			Consumers: []loop.Consumer{{Principal: "User:actor", Group: "actor", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"}},
		Status: loop.Status{State: loop.StateReady, Cluster: "c1"},
	}
}

// An observer against a real (in-process) Kafka and the SQLite store:
// samples the action topic, caps what it samples, polls lag, persists, and
// restores the 28-day window after a restart; the collector exports it.
func TestObserverSamplesPersistsAndRestores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "growth.fast.actions", "growth.fast.events", "growth.bare.actions"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	st, err := sqlite.Open(ctx, sqlite.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fast, bare := testLoop("fast"), testLoop("bare")
	bare.Spec.Consumers = nil
	for _, l := range []*loop.Loop{fast, bare} {
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l) }); err != nil {
			t.Fatal(err)
		}
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.UpdateStatus(ctx, "growth", l.Metadata.Name, l.Status) }); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	conn := provisioning.ClusterConn{BootstrapServers: kc.ListenAddrs()}
	newObserver := func() *Observer {
		return New(Config{SampleRate: 5, LagInterval: 200 * time.Millisecond, FlushInterval: 300 * time.Millisecond, ShortWindow: time.Minute},
			st, st, []Cluster{{Name: "c1", Admin: admin, Sampler: func(context.Context) (provisioning.ClusterConn, error) { return conn, nil }}},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	o := newObserver()
	octx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = o.Run(octx); close(done) }()

	get := func(name string) *store.Observation {
		ob, err := st.GetObservation(ctx, "growth", name)
		if err != nil {
			return nil
		}
		return ob
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("%s: not within 30s; fast %+v bare %+v", what, get("fast"), get("bare"))
	}
	waitFor("NoTraffic before any action", func() bool {
		ob := get("fast")
		return ob != nil && ob.SLO.Reason == ReasonNoTraffic
	})
	time.Sleep(time.Second) // the sampler's first fetch is in flight

	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// 200 fast actions with the header (100 ms), 10 over the 500 ms target,
	// all within one cap period: only SampleRate × 10 s = 50 are sampled.
	now := time.Now()
	var recs []*kgo.Record
	for i := range 200 {
		lat := 100 * time.Millisecond
		if i%20 == 0 {
			lat = 900 * time.Millisecond
		}
		recs = append(recs, &kgo.Record{Topic: "growth.fast.actions", Timestamp: now,
			Headers: []kgo.RecordHeader{{Key: HeaderKey, Value: []byte(strconv.FormatInt(now.Add(-lat).UnixMilli(), 10))}}})
	}
	for range 7 {
		recs = append(recs, &kgo.Record{Topic: "growth.bare.actions"})
	}
	// 40 events nobody consumed: the group "actor" lags.
	for range 40 {
		recs = append(recs, &kgo.Record{Topic: "growth.fast.events"})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor("fast sampled, bare without header, lag observed", func() bool {
		f, b := get("fast"), get("bare")
		return f != nil && b != nil && f.SLO.Windows[0].Records > 0 && b.SLO.Reason == ReasonNoHeader && len(f.Lag) == 1 && f.Lag[0].OffsetLag == 40
	})
	time.Sleep(time.Second) // nothing more is sampled in this period
	f := get("fast")
	w := f.SLO.Windows[0]
	if w.Records > 50 || w.Records < 5 {
		t.Errorf("sampled %d records of 200, want at most the cap (5/s × 10 s = 50)", w.Records)
	}
	if w.P50Ms < 99 || w.P50Ms > 101 {
		t.Errorf("p50 %v ms, want 100 within 1%%", w.P50Ms)
	}
	if b := get("bare"); b.SLO.Windows[0].RecordsWithoutHeader != 7 || b.SLO.State != StateUnknown || !strings.Contains(b.SLO.Message, HeaderKey) {
		t.Errorf("bare: %+v", b.SLO)
	}
	if l := f.Lag[0]; l.Group != "actor" || l.Partitions[0].CommittedOffset != -1 || l.Partitions[0].EndOffset != 40 || l.FreshnessMs != 30000 {
		t.Errorf("lag %+v", l)
	}
	var met, fresh *loop.Condition
	for i, c := range f.Conditions {
		switch c.Type {
		case CondSLOMet:
			met = &f.Conditions[i]
		case CondFresh:
			fresh = &f.Conditions[i]
		}
	}
	if met == nil || fresh == nil || met.LastTransitionTime.IsZero() || fresh.Status == "" {
		t.Errorf("conditions %+v", f.Conditions)
	}

	// The collector exports what is in memory.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(o.Collector())
	if n, err := testutil.GatherAndCount(reg, "loopgate_loop_latency_seconds"); err != nil || n != 9 {
		t.Errorf("latency series = %d (err %v), want 9 (1m, 1h and 28d, 3 quantiles, of the sampled loop)", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP loopgate_loop_records_without_header_total Sampled action records without the loopgate-origin-ts header, since this process started sampling.
# TYPE loopgate_loop_records_without_header_total counter
loopgate_loop_records_without_header_total{loop="growth/bare"} 7
loopgate_loop_records_without_header_total{loop="growth/fast"} 0
# HELP loopgate_loop_consumer_lag_records Records not yet consumed by the group, over all partitions.
# TYPE loopgate_loop_consumer_lag_records gauge
loopgate_loop_consumer_lag_records{group="actor",loop="growth/fast"} 40
# HELP loopgate_loop_metrics_dropped_loops Loops not exported because of the cap on exported loops.
# TYPE loopgate_loop_metrics_dropped_loops gauge
loopgate_loop_metrics_dropped_loops 0
`), "loopgate_loop_records_without_header_total", "loopgate_loop_consumer_lag_records", "loopgate_loop_metrics_dropped_loops"); err != nil {
		t.Error(err)
	}

	// Restart: the days come back from the store.
	stop()
	<-done
	days, err := st.ListDailySketches(ctx, time.Now().AddDate(0, 0, -1))
	if err != nil || len(days) != 2 {
		t.Fatalf("persisted days = %d (err %v), want one per loop", len(days), err)
	}
	o2 := newObserver()
	o2.restore(ctx)
	if err := o2.reload(ctx); err != nil {
		t.Fatal(err)
	}
	o2.mu.Lock()
	m := o2.states["growth/fast"].win.Month(time.Now())
	o2.mu.Unlock()
	if m.Records != w.Records {
		t.Errorf("28-day window after restart: %d records, want %d", m.Records, w.Records)
	}

	// Deleting the loop removes its observation.
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.DeleteLoop(ctx, "growth", "fast") }); err != nil {
		t.Fatal(err)
	}
	if ob := get("fast"); ob != nil {
		t.Errorf("observation of a deleted loop: %+v", ob)
	}
}

// The exported loops are capped; the rest are counted.
func TestCollectorCapsLoops(t *testing.T) {
	o := New(Config{MaxExportedLoops: 2}, nil, nil, nil, nil)
	o.running = true // as while Run runs
	now := time.Now()
	for _, n := range []string{"a", "b", "c"} {
		l := testLoop(n)
		tg, _ := targetOf(l)
		o.mu.Lock()
		o.setLocked(tg)
		o.evaluateLocked(o.states[tg.key], now)
		o.mu.Unlock()
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(o.Collector())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP loopgate_loop_metrics_dropped_loops Loops not exported because of the cap on exported loops.
# TYPE loopgate_loop_metrics_dropped_loops gauge
loopgate_loop_metrics_dropped_loops 1
# HELP loopgate_loop_slo_met Whether the loop meets its latency SLO over the last minute: 1 met, 0 breached, -1 unknown.
# TYPE loopgate_loop_slo_met gauge
loopgate_loop_slo_met{loop="growth/a"} -1
loopgate_loop_slo_met{loop="growth/b"} -1
`), "loopgate_loop_metrics_dropped_loops", "loopgate_loop_slo_met"); err != nil {
		t.Error(err)
	}
	// A process that does not (or no longer) run the observer exports none.
	o.mu.Lock()
	o.running = false
	o.mu.Unlock()
	if n, err := testutil.GatherAndCount(reg, "loopgate_loop_slo_met"); err != nil || n != 0 {
		t.Errorf("not running: %d loop_slo_met series (err %v), want none", n, err)
	}
}

// A poll that cannot read a group's committed offsets says so (it is
// logged) and leaves that group out, rather than reporting it as lagging by
// everything retained or silently dropping it; the next good poll has it.
func TestLagPollReportsWhatItCouldNotRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "growth.fast.events", "growth.fast.actions"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	admin, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var recs []*kgo.Record
	for range 40 {
		recs = append(recs, &kgo.Record{Topic: "growth.fast.events"})
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	o := New(Config{LagInterval: time.Second}, nil, nil, []Cluster{{Name: "c1", Admin: admin}}, slog.New(slog.DiscardHandler))
	tg, ok := targetOf(testLoop("fast"))
	if !ok {
		t.Fatal("no target")
	}
	o.mu.Lock()
	o.setLocked(tg)
	o.mu.Unlock()
	adm := kadm.NewClient(admin)
	tables := map[topicPartition]*OffsetTable{}
	lagOf := func() ([]store.GroupLag, bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		s := o.states[tg.key]
		return s.lag, s.lagObserved
	}

	var failing atomic.Bool
	failing.Store(true)
	kc.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetFetchRequest)
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil, true
	})
	problems := o.pollLagOnce(ctx, &Cluster{Name: "c1", Admin: admin}, adm, tables)
	if len(problems) != 1 || !strings.Contains(problems[0], "committed offsets of group actor") || !strings.Contains(problems[0], "GROUP_AUTHORIZATION_FAILED") {
		t.Errorf("problems = %q, want the group's fetch named", problems)
	}
	if lags, _ := lagOf(); len(lags) != 0 {
		t.Errorf("a group whose offsets could not be read has lag %+v", lags)
	}

	// Offsets readable again: the group has committed nothing, so it lags
	// by all 40 records, and there is no problem.
	failing.Store(false)
	if problems := o.pollLagOnce(ctx, &Cluster{Name: "c1", Admin: admin}, adm, tables); len(problems) != 0 {
		t.Errorf("problems after recovery: %q", problems)
	}
	if lags, ok := lagOf(); !ok || len(lags) != 1 || lags[0].Group != "actor" || lags[0].OffsetLag != 40 {
		t.Errorf("lag after recovery = %+v, want group actor 40 records behind", lags)
	}
}

// A loop waiting to be provisioned is read again after 1 s, then at
// doubling intervals up to 30 s, and forgotten after 10 minutes.
func TestPendingLoopsBackOff(t *testing.T) {
	now := t0
	o := New(Config{}, nil, nil, nil, slog.New(slog.DiscardHandler))
	o.now = func() time.Time { return now }
	o.pending["growth/waiting"] = &pendingLoop{since: now, next: now.Add(pendingFirst), every: pendingFirst}
	var reads []time.Duration
	for s := 0; s <= 700; s++ { // the observer's 1-second ticks
		now = t0.Add(time.Duration(s) * time.Second)
		if len(o.pendingKeys()) == 1 {
			reads = append(reads, now.Sub(t0))
		}
	}
	want := []time.Duration{1, 3, 7, 15, 31, 61, 91}
	for i, w := range want {
		if i >= len(reads) || reads[i] != w*time.Second {
			t.Fatalf("reads at %v, want them to start %v seconds", reads, want)
		}
	}
	if n := len(reads); n < 20 || n > 25 {
		t.Errorf("%d reads in 10 minutes, want about 20 (every 30 s once backed off)", n)
	}
	if _, ok := o.pending["growth/waiting"]; ok {
		t.Errorf("still pending after 10 minutes")
	}
}

// countingObservations counts PutObservations calls (and the loops written).
type countingObservations struct {
	store.Observations
	puts, loops int
}

func (c *countingObservations) PutObservations(_ context.Context, obs []store.Observation, _ []store.DailySketch, _ time.Time) error {
	c.puts++
	c.loops += len(obs)
	return nil
}

// An observation that says the same is not written again at every flush:
// only when it changes, or once a minute to keep its UpdateTime fresh.
func TestFlushWritesOnlyChangesAndOnceAMinute(t *testing.T) {
	now := t0
	st := &countingObservations{}
	o := New(Config{}, nil, st, nil, slog.New(slog.DiscardHandler))
	o.now = func() time.Time { return now }
	tg, _ := targetOf(testLoop("idle"))
	o.mu.Lock()
	o.setLocked(tg)
	o.mu.Unlock()
	ctx := context.Background()
	for i := range 6 { // every 10 s for 50 s
		now = t0.Add(time.Duration(i) * 10 * time.Second)
		o.Flush(ctx)
	}
	if st.loops != 1 {
		t.Errorf("an unchanged loop was written %d times in 50 s of flushes, want once", st.loops)
	}
	now = t0.Add(61 * time.Second)
	o.Flush(ctx)
	if st.loops != 2 {
		t.Errorf("after a minute: written %d times, want twice (the refresh of UpdateTime)", st.loops)
	}
}
