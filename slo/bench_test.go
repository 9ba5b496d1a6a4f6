package slo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// The benchmark's cluster and producer run in a helper process (this test
// binary re-run with benchHelperEnv set), so that the CPU time this
// process spends is the sampler's alone, measured with getrusage.
const (
	benchHelperEnv = "LOOPGATE_SLO_BENCH_HELPER"
	benchLoops     = 1000
)

func benchTopic(i int) string { return fmt.Sprintf("bench.loop-%04d.actions", i) }

// TestBenchHelperCluster is the helper process: a kfake cluster with the
// action topics of benchLoops loops, and a producer writing rate records
// per second to each (with the origin header, 20 ms in the past), until
// its stdin closes. It prints the cluster's address first. Skipped unless
// run by BenchmarkSampler.
func TestBenchHelperCluster(t *testing.T) {
	rate, _ := strconv.Atoi(os.Getenv(benchHelperEnv))
	if rate <= 0 {
		t.Skip("helper process of BenchmarkSampler")
	}
	topics := make([]string, benchLoops)
	for i := range topics {
		topics[i] = benchTopic(i)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Printf("ADDR %s\n", strings.Join(c.ListenAddrs(), ","))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	// Spread each second's records over 10 ticks.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	carry := 0.0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		carry += float64(rate) / 10
		n := int(carry)
		carry -= float64(n)
		origin := []byte(strconv.FormatInt(time.Now().Add(-20*time.Millisecond).UnixMilli(), 10))
		for range n {
			for _, topic := range topics {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"user_id":"u1"}`),
					Headers: []kgo.RecordHeader{{Key: HeaderKey, Value: origin}}}, nil)
			}
		}
	}
}

type benchLoopList []*loop.Loop

func (b benchLoopList) GetLoop(_ context.Context, team, name string) (*loop.Loop, error) {
	for _, l := range b {
		if l.Metadata.Team == team && l.Metadata.Name == name {
			return l, nil
		}
	}
	return nil, store.ErrNotFound
}

func (b benchLoopList) ListLoops(context.Context, store.ListOptions) ([]*loop.Loop, string, error) {
	return b, "", nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSampler measures what sampling 1,000 loops' action topics at
// the default cap (200 records/s per loop) costs this process: CPU time
// (getrusage, user + system) per wall second over a 20 s window, with the
// cluster and the producers in another process. It reports %core (100 =
// one core busy) and the records sampled per second. Run it with
// -benchtime=1x; it is a measurement, not an assertion.
func BenchmarkSampler(b *testing.B) {
	for _, rate := range benchRates() {
		b.Run(fmt.Sprintf("loops=%d/rate=%d", benchLoops, rate), func(b *testing.B) { benchSampler(b, rate) })
	}
}

func benchSampler(b *testing.B, rate int) {
	helper := exec.Command(os.Args[0], "-test.run=^TestBenchHelperCluster$", "-test.count=1")
	helper.Env = append(os.Environ(), benchHelperEnv+"="+strconv.Itoa(rate))
	stdin, err := helper.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = helper.Wait() }()
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatal("the helper printed no address")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	loops := make(benchLoopList, benchLoops)
	for i := range loops {
		loops[i] = &loop.Loop{
			Metadata: loop.Metadata{Team: "bench", Name: fmt.Sprintf("loop-%04d", i), UID: strconv.Itoa(i), Generation: 1},
			Spec: loop.Spec{SLO: loop.SLO{LatencyP99Ms: 2000}, Streams: []loop.Stream{{Name: "actions"}},
				Action: &loop.Action{Stream: "actions"}},
			Status: loop.Status{Cluster: "bench", State: loop.StateReady},
		}
	}
	conn := provisioning.ClusterConn{BootstrapServers: strings.Split(addr, ",")}
	o := New(Config{}, loops, nil, []Cluster{{Name: "bench",
		Sampler: func(context.Context) (provisioning.ClusterConn, error) { return conn, nil }}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	sampled := func() int64 {
		o.mu.Lock()
		defer o.mu.Unlock()
		var n int64
		now := o.now()
		for _, s := range o.states {
			n += s.win.Long(now).Records
		}
		return n
	}
	// Warm up: every topic assigned and records flowing.
	deadline := time.Now().Add(60 * time.Second)
	for sampled() < int64(benchLoops*rate) && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	b.ResetTimer()
	const window = 20 * time.Second
	n0, c0, t0 := sampled(), cpuTime(), time.Now()
	time.Sleep(window)
	n1, c1, t1 := sampled(), cpuTime(), time.Now()
	b.StopTimer()
	wall := t1.Sub(t0)
	b.ReportMetric(100*float64(c1-c0)/float64(wall), "%core")
	b.ReportMetric(float64(n1-n0)/wall.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// benchRates are the per-loop produce rates benchmarked (records/s);
// LOOPGATE_SLO_BENCH_RATES=1,10 picks others.
func benchRates() []int {
	out := []int{1, 10, 50}
	if v := os.Getenv("LOOPGATE_SLO_BENCH_RATES"); v != "" {
		out = nil
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				out = append(out, n)
			}
		}
	}
	return out
}
