package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/testkafka"
)

// outageFor is how long the broker is away.
const outageFor = 30 * time.Second

// TestBrokerOutageApacheKafka is app.TestBrokerOutage on Apache Kafka: a
// dedicated broker (testkafka.StartFresh) is killed while applies are in
// flight and started again 30s later on the same ports and data (the
// package cannot restart a broker, so the test runs the broker's JVM again
// with the configuration start.sh wrote, and records its pid where
// testkafka's Stop and watchdog look for it). Loops created, updated and
// deleted meanwhile wait with a Provisioned/InSync condition naming the
// unreachable cluster, then converge; the broker then holds exactly what
// the loops need.
func TestBrokerOutageApacheKafka(t *testing.T) {
	began := time.Now()
	broker := testkafka.StartFresh(t)
	t.Logf("Apache Kafka %s started in %v", broker.Version, broker.StartDuration.Round(time.Millisecond))
	const clusterName = "eu-kafka"
	cfg := fmt.Sprintf(`grpcAddr: 127.0.0.1:0
httpAddr: 127.0.0.1:0
dataDir: %s
resync: 5s
clusters:
  - name: %s
    region: eu
    replicationFactor: 1
    bootstrapServers: [%s]
    sasl: {mechanism: %s, username: %s, passwordEnv: LOOPGATE_E2E_KAFKA_PASSWORD}
    superUsers: ["User:ANONYMOUS"]
teams:
  - {name: growth, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 1000, maxBytesPerSecond: 52428800}
tokens:
  - {token: outage-admin-token, subject: admin@example.com, roles: [admin]}
`, t.TempDir(), clusterName, strings.Join(broker.SASLBootstrap, ", "), broker.Mechanism, broker.AdminUser)
	cfgPath := filepath.Join(t.TempDir(), "loopgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOPGATE_E2E_KAFKA_PASSWORD", broker.AdminPassword)
	srv := startServer(t, t.TempDir(), t.TempDir(), "--config", cfgPath)
	cl := grpcClient(t, srv.GRPC)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer outage-admin-token")
	create := func(name string) {
		t.Helper()
		if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: name, Loop: outageLoop(name), RequestId: "create-" + name}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}

	for _, name := range []string{"steady", "changing", "doomed"} {
		create(name)
	}
	waitLoops(t, cl, ctx, []string{"steady", "changing", "doomed"}, nil, 60*time.Second)

	// Applies in flight, then the broker dies.
	early := []string{"early-1", "early-2", "early-3", "early-4", "early-5", "early-6"}
	var down time.Time
	createConcurrently(t, cl, ctx, early, func() {
		if err := syscall.Kill(broker.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("killing the broker (pid %d): %v", broker.PID, err)
		}
		down = time.Now()
		for syscall.Kill(broker.PID, 0) == nil {
			if time.Since(down) > 10*time.Second {
				t.Fatalf("broker pid %d still alive 10s after SIGKILL", broker.PID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Logf("broker (pid %d) killed %v after the start, while %v were being created", broker.PID, down.Sub(began).Round(time.Millisecond), early)

	time.Sleep(time.Second)
	late := []string{"late-1", "late-2"}
	for _, name := range late {
		create(name)
	}
	cur, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/changing"})
	if err != nil {
		t.Fatal(err)
	}
	spec := proto.Clone(cur.GetSpec()).(*lgv1.LoopSpec)
	spec.RetentionMs = 48 * 3600 * 1000
	spec.Streams[0].Partitions = 4
	if _, err := cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{Loop: &lgv1.Loop{Name: cur.Name, Etag: cur.Etag, Spec: spec}, RequestId: "update-changing"}); err != nil {
		t.Fatalf("update during the outage: %v", err)
	}
	if _, err := cl.DeleteLoop(ctx, &lgv1.DeleteLoopRequest{Name: "teams/growth/loops/doomed", RequestId: "delete-doomed"}); err != nil {
		t.Fatalf("delete during the outage: %v", err)
	}

	waiting := append(append(append([]string{}, early...), late...), "changing", "doomed")
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s", srv.output())
		}
	}()
	waitUnreachable(t, cl, ctx, waiting, early, clusterName, down)

	// The broker returns: same configuration, ports and data.
	time.Sleep(time.Until(down.Add(outageFor)))
	restartBroker(t, broker)
	back := time.Now()
	t.Logf("broker back (pid %d) after %v", broker.PID, back.Sub(down).Round(time.Millisecond))

	kc := cluster{Name: clusterName, Bootstrap: broker.SASLBootstrap, Mechanism: broker.Mechanism, User: broker.AdminUser, Pass: broker.AdminPassword}
	adm, _ := kafkaAdmin(t, kc)
	for {
		mctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := adm.BrokerMetadata(mctx)
		cancel()
		if err == nil {
			break
		}
		if time.Since(back) > 90*time.Second {
			t.Fatalf("the restarted broker does not answer 90s after its start: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the restarted broker answers %v after its start", time.Since(back).Round(time.Millisecond))

	all := append(append([]string{"steady", "changing"}, early...), late...)
	waitLoops(t, cl, ctx, all, []string{"doomed"}, 60*time.Second)
	t.Logf("converged %v after the broker was started again", time.Since(back).Round(time.Millisecond))

	// Apache Kafka's broker learns of quotas a moment after the controller.
	list, err := cl.ListLoops(ctx, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := expectedCensus(list.GetLoops(), clusterName, broker.AdminUser)
	var diff []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		got := takeCensus(t, kc)
		if diff = want.diff(got); len(diff) == 0 {
			t.Logf("census: %d topics, %d ACLs, %d quotas, %d SCRAM users, exactly what the %d loops need", len(got.Topics), len(got.ACLs), len(got.Quotas), len(got.SCRAM), len(list.GetLoops()))
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the broker after the outage differs from what the loops need:\n  %s", strings.Join(diff, "\n  "))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res, err := lgv1.NewAuditServiceClient(dialGRPC(t, srv.GRPC)).VerifyAuditChain(ctx, &lgv1.VerifyAuditChainRequest{})
	if err != nil || !res.GetOk() {
		t.Errorf("audit chain: %v %v", res, err)
	}
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

// restartBroker runs the broker's JVM again as scripts/kafka/start.sh did
// (same server.properties: same ports, same data dir) and records its pid
// in DIR/broker.pid, so that testkafka's Stop and watchdog stop it.
func restartBroker(t *testing.T, b *testkafka.Broker) {
	t.Helper()
	java := os.Getenv("JAVA")
	if java == "" {
		java = "java"
		if h := os.Getenv("JAVA_HOME"); h != "" {
			java = filepath.Join(h, "bin", "java")
		}
	}
	logf, err := os.OpenFile(filepath.Join(b.Dir, "broker.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(java, "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+filepath.Join(b.Dir, "log4j2.properties"),
		"-cp", filepath.Join(b.Lib, "*"), "kafka.Kafka", filepath.Join(b.Dir, "server.properties"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the broker again: %v", err)
	}
	b.PID = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := os.WriteFile(filepath.Join(b.Dir, "broker.pid"), []byte(strconv.Itoa(b.PID)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	// Runs before StartFresh's Stop, which then finds nothing to stop.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
}

// createConcurrently creates the loops at once and calls outage as soon as
// the first create returns, while the others are being created and
// provisioned.
func createConcurrently(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, names []string, outage func()) {
	t.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	first := make(chan struct{})
	errs := make(chan error, len(names))
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(first) })
			if _, err := cl.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: name, Loop: outageLoop(name), RequestId: "create-" + name}); err != nil {
				errs <- fmt.Errorf("create %s: %w", name, err)
			}
		}()
	}
	<-first
	outage()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// outageLoop is a small loop with its own principals: two streams (2 and 1
// partitions), a producer, an acting service that consumes and writes the
// action stream.
func outageLoop(name string) *lgv1.Loop {
	schema := func(rec string) *lgv1.StreamSchema {
		return &lgv1.StreamSchema{Format: "avro", Definition: `{"type":"record","name":"` + rec + `","fields":[{"name":"id","type":"string"}]}`}
	}
	return &lgv1.Loop{
		Name: "teams/growth/loops/" + name,
		Spec: &lgv1.LoopSpec{
			Owners: []string{"ana@example.com"}, Classification: "internal", Residency: "eu", RetentionMs: 24 * 3600 * 1000,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 100 << 10, PeakFactor: 2},
			Streams: []*lgv1.Stream{
				{Name: "events", Partitions: 2, Schema: schema("E")},
				{Name: "actions", Partitions: 1, Schema: schema("A")},
			},
			Producers: []*lgv1.Producer{{Principal: "User:" + name + "-api", Streams: []string{"events"}}, {Principal: "User:" + name + "-engine", Streams: []string{"actions"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:" + name + "-engine", Group: name + "-engine", Streams: []string{"events"}}},
			Action:    &lgv1.LoopAction{Stream: "actions"},
		},
	}
}

// unreachable is what a condition says when the cluster cannot be reached.
var unreachable = regexp.MustCompile(`(?i)unreachable|not reachable|cannot reach|could not reach|connection refused|unable to dial|dial tcp`)

// waitUnreachable waits, within the outage, until every loop of names with
// work to do has a Provisioned or InSync condition, False, of its current
// generation, that names the cluster and says it cannot be reached. Only
// the loops of mayBeReady (created just before the outage) may instead be
// READY: provisioned as the broker went away.
func waitUnreachable(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, names, mayBeReady []string, clusterName string, down time.Time) {
	t.Helper()
	for {
		var missing []string
		seen := map[string]string{}
		for _, name := range names {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name})
			if err != nil {
				t.Fatalf("get %s during the outage: %v", name, err)
			}
			st := l.GetStatus()
			if st.GetState() == lgv1.Loop_READY && st.GetObservedGeneration() == l.GetGeneration() {
				if !slices.Contains(mayBeReady, name) {
					t.Fatalf("%s is READY at generation %d, written while its cluster was down: %s", name, l.GetGeneration(), conditionText(st))
				}
				seen[name] = "READY: provisioned as the broker went away"
				continue
			}
			var found *lgv1.Condition
			for _, c := range st.GetConditions() {
				text := c.GetReason() + " " + c.GetMessage()
				if (c.GetType() == "Provisioned" || c.GetType() == "InSync") && c.GetStatus() == "False" && c.GetObservedGeneration() == l.GetGeneration() &&
					strings.Contains(text, clusterName) && unreachable.MatchString(text) {
					found = c
					break
				}
			}
			if found == nil {
				missing = append(missing, fmt.Sprintf("%s %s: %s", name, st.GetState(), conditionText(st)))
				continue
			}
			seen[name] = fmt.Sprintf("%s, %s=%s %s: %s", st.GetState(), found.GetType(), found.GetStatus(), found.GetReason(), found.GetMessage())
		}
		if len(missing) == 0 {
			t.Logf("%v into the outage every loop with work to do waits and names the cause:", time.Since(down).Round(time.Millisecond))
			for _, name := range names {
				t.Logf("  %s: %s", name, seen[name])
			}
			return
		}
		if time.Since(down) > outageFor-time.Second {
			for _, name := range names {
				if seen[name] != "" {
					t.Logf("  %s: %s", name, seen[name])
				}
			}
			t.Fatalf("%v into the outage, loops do not say that cluster %s is unreachable:\n  %s", time.Since(down).Round(time.Second), clusterName, strings.Join(missing, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitLoops waits until every loop of ready is READY at its generation and
// every loop of gone is gone.
func waitLoops(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, ready, gone []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending []string
		for _, name := range ready {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name})
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			if st := l.GetStatus(); st.GetState() != lgv1.Loop_READY || st.GetObservedGeneration() != l.GetGeneration() {
				pending = append(pending, fmt.Sprintf("%s %s (generation %d, observed %d): %s", name, st.GetState(), l.GetGeneration(), st.GetObservedGeneration(), conditionText(st)))
			}
		}
		for _, name := range gone {
			if l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + name}); err == nil {
				pending = append(pending, fmt.Sprintf("%s still there: %s %s", name, l.GetStatus().GetState(), conditionText(l.GetStatus())))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged within %v:\n  %s", within, strings.Join(pending, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
