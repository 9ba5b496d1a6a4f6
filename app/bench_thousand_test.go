package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/cli"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// adminCounter counts the requests a kfake cluster receives, by kind.
type adminCounter struct {
	writes atomic.Int64 // CreateTopics, CreatePartitions, IncrementalAlterConfigs, CreateACLs, DeleteACLs, AlterClientQuotas, DeleteTopics
	reads  atomic.Int64 // Metadata, DescribeConfigs, DescribeACLs, DescribeClientQuotas
}

func (c *adminCounter) count(req kmsg.Request) {
	switch req.(type) {
	case *kmsg.CreateTopicsRequest, *kmsg.CreatePartitionsRequest, *kmsg.IncrementalAlterConfigsRequest,
		*kmsg.CreateACLsRequest, *kmsg.DeleteACLsRequest, *kmsg.AlterClientQuotasRequest, *kmsg.DeleteTopicsRequest:
		c.writes.Add(1)
	case *kmsg.MetadataRequest, *kmsg.DescribeConfigsRequest, *kmsg.DescribeACLsRequest, *kmsg.DescribeClientQuotasRequest:
		c.reads.Add(1)
	}
}

// thousandLoopsFile writes n loops of team growth (one 3-partition stream,
// a producer and a consumer each, region eu) as one multi-document file.
func thousandLoopsFile(tb testing.TB, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: bulk-%04d, team: growth}
spec:
  description: bulk loop %d
  owners: [ana@example.com]
  classification: internal
  residency: eu
  retention: 24h
  slo: {latencyP99: 2s}
  throughput: {bytesPerSecond: 64KiB, peakFactor: 2, recordBytes: 200}
  streams:
    - name: events
      partitions: 3
      schema: {format: avro, definition: '{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}'}
  producers: [{principal: "User:bulk-producer-%d", streams: [events]}]
  consumers: [{principal: "User:bulk-consumer-%d", group: bulk-group-%d, streams: [events]}]
`, i, i, i, i, i)
	}
	path := filepath.Join(tb.TempDir(), "loops.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkApplyThousandLoops: `loopctl apply -f` (the real CLI code, run
// in-process) of a file of 1,000 loops to a whole loopgate started
// in-process on the embedded default's components (SQLite with
// synchronous=FULL, a kfake cluster persisted to disk), until every loop is
// READY. Target (docs/benchmarks.md): ≤ 2 s end to end. Reported per apply:
//
//   - admit-s: until loopctl has every loop admitted (and exits 0);
//   - ready-s: until ListLoops shows all of them READY;
//   - admin-writes / admin-reads: admin requests the cluster received
//     (create/alter/delete vs. metadata/describe), counted by kfake.
func BenchmarkApplyThousandLoops(b *testing.B) {
	const n = 1000
	file := thousandLoopsFile(b, n)
	var admit, ready time.Duration
	var writes, reads int64
	for range b.N {
		b.StopTimer()
		env := startCounted(b)
		b.StartTimer()
		start := time.Now()
		var out, errOut bytes.Buffer
		code := cli.Run([]string{"apply", "-f", file, "--server", env.addr, "--token", env.token, "--insecure"}, &out, &errOut, func(string) string { return "" })
		admitted := time.Since(start)
		if code != 0 {
			b.Fatalf("loopctl apply exited %d: %s", code, errOut.String())
		}
		if got := strings.Count(out.String(), " created\n"); got != n {
			b.Fatalf("loopctl apply created %d loops, want %d", got, n)
		}
		env.waitAllReady(b, n)
		ready += time.Since(start)
		admit += admitted
		b.StopTimer()
		writes += env.counter.writes.Load()
		reads += env.counter.reads.Load()
		env.stop()
	}
	b.ReportMetric(admit.Seconds()/float64(b.N), "admit-s")
	b.ReportMetric(ready.Seconds()/float64(b.N), "ready-s")
	b.ReportMetric(float64(writes)/float64(b.N), "admin-writes")
	b.ReportMetric(float64(reads)/float64(b.N), "admin-reads")
}

type countedEnv struct {
	addr, token string
	counter     *adminCounter
	client      lgv1.LoopServiceClient
	ctx         context.Context
	stop        func()
}

// startCounted starts loopgate with one persisted kfake cluster whose
// requests are counted.
func startCounted(b *testing.B) *countedEnv {
	b.Helper()
	b.Setenv("HOME", b.TempDir())
	dataDir := filepath.Join(b.TempDir(), "data")
	counter := &adminCounter{}
	const user, pass = "loopgate", "bench-secret"
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass),
		kfake.EnableACLs(), kfake.DefaultNumPartitions(1), kfake.ClusterID("eu-bench"),
		kfake.DataDir(filepath.Join(dataDir, "kafka")))
	if err != nil {
		b.Fatal(err)
	}
	kf.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		counter.count(req)
		return nil, nil, false
	})
	b.Cleanup(kf.Close) // after the server's own cleanup
	cfg := config.Embedded(dataDir)
	cfg.Clusters = []config.Cluster{{Name: "eu-bench", Region: "eu", Zones: []string{"eu-a"}, ReplicationFactor: 1,
		BootstrapServers: kf.ListenAddrs(), SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: user, Password: pass}}}
	for i := range cfg.Teams {
		cfg.Teams[i].MaxPartitions = 1 << 30
		cfg.Teams[i].AllowedRegions = []string{"eu"}
		cfg.Teams[i].MaxBytesPerSecond = 1 << 50
	}
	r := runServer(b, cfg, slog.LevelInfo)
	// Count only what applying the file causes, not the startup.
	counter.writes.Store(0)
	counter.reads.Store(0)
	return &countedEnv{
		addr: r.addr, token: r.token, counter: counter,
		client: lgv1.NewLoopServiceClient(r.conn), ctx: r.ctx,
		stop: func() { r.Stop(); kf.Close() },
	}
}

// waitAllReady polls ListLoops until n loops are READY; a FAILED loop
// fails the benchmark.
func (e *countedEnv) waitAllReady(b *testing.B, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		readyCount, token := 0, ""
		for {
			resp, err := e.client.ListLoops(e.ctx, &lgv1.ListLoopsRequest{Parent: "teams/growth", PageSize: 1000, PageToken: token})
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range resp.GetLoops() {
				switch l.GetStatus().GetState() {
				case lgv1.Loop_READY:
					readyCount++
				case lgv1.Loop_FAILED:
					b.Fatalf("%s FAILED: %v", l.GetName(), l.GetStatus().GetConditions())
				}
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if readyCount == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d loops READY after 2 minutes", readyCount, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkApplyThousandLoopsWait is `loopctl apply -f FILE --wait` for
// 1,000 loops: until loopctl returns, every loop READY. The wait follows all
// loops at once (a List per team per poll), so it lasts about as long as
// the slowest loop.
func BenchmarkApplyThousandLoopsWait(b *testing.B) {
	const n = 1000
	file := thousandLoopsFile(b, n)
	var total time.Duration
	for range b.N {
		b.StopTimer()
		env := startCounted(b)
		b.StartTimer()
		start := time.Now()
		var out, errOut bytes.Buffer
		code := cli.Run([]string{"apply", "-f", file, "--wait", "--timeout", "5m", "--server", env.addr, "--token", env.token, "--insecure"}, &out, &errOut, func(string) string { return "" })
		total += time.Since(start)
		b.StopTimer()
		if code != 0 {
			b.Fatalf("loopctl apply --wait exited %d: %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), fmt.Sprintf("waited for %d loops: %d READY", n, n)) {
			b.Fatalf("apply --wait did not end with all READY:\n%s", tail(out.String(), 2000))
		}
		env.stop()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "wait-s")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// BenchmarkReplanThousandLoops is a no-op `loopctl plan -f FILE` and a
// no-op re-apply of 1,000 provisioned loops (the setup applies them and
// waits until all are READY). Target: ≤ 0.5 s each.
func BenchmarkReplanThousandLoops(b *testing.B) {
	const n = 1000
	file := thousandLoopsFile(b, n)
	env := startCounted(b)
	defer env.stop()
	run := func(args ...string) string {
		var out, errOut bytes.Buffer
		args = append(args, "--server", env.addr, "--token", env.token, "--insecure")
		if code := cli.Run(args, &out, &errOut, func(string) string { return "" }); code != 0 {
			b.Fatalf("loopctl %v exited %d: %s", args[:3], code, tail(errOut.String(), 2000))
		}
		return out.String()
	}
	run("apply", "-f", file)
	env.waitAllReady(b, n)
	var plan, apply time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		out := run("plan", "-f", file)
		plan += time.Since(start)
		if strings.Count(out, ": NOOP on cluster") != n || strings.Count(out, "no resource changes") != n {
			b.Fatalf("plan of provisioned loops is not a no-op:\n%s", tail(out, 2000))
		}
		start = time.Now()
		out = run("apply", "-f", file)
		apply += time.Since(start)
		if got := strings.Count(out, " unchanged\n"); got != n {
			b.Fatalf("re-apply: %d unchanged, want %d:\n%s", got, n, tail(out, 2000))
		}
	}
	b.ReportMetric(plan.Seconds()/float64(b.N), "plan-s")
	b.ReportMetric(apply.Seconds()/float64(b.N), "reapply-s")
}
