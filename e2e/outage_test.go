package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/census"
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
	team := census.Team{Name: "growth", Loops: grpcClient(t, srv.GRPC)}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer outage-admin-token")

	team.CreateAll(t, ctx, "steady", "changing", "doomed")
	team.WaitConverged(t, ctx, []string{"steady", "changing", "doomed"}, nil, 60*time.Second)

	// Applies in flight, then the broker dies.
	early := []string{"early-1", "early-2", "early-3", "early-4", "early-5", "early-6"}
	var down time.Time
	team.CreateConcurrently(t, ctx, early, func() {
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
	team.ChangeWhileDown(t, ctx, late, "changing", "doomed")

	waiting := append(append(append([]string{}, early...), late...), "changing", "doomed")
	defer func() {
		if t.Failed() {
			t.Logf("server output:\n%s", srv.output())
		}
	}()
	team.WaitUnreachable(t, ctx, waiting, early, clusterName, down, outageFor)

	// The broker returns: same configuration, ports and data.
	time.Sleep(time.Until(down.Add(outageFor)))
	restartBroker(t, broker)
	back := time.Now()
	t.Logf("broker back (pid %d) after %v", broker.PID, back.Sub(down).Round(time.Millisecond))

	kc := cluster{Name: clusterName, Bootstrap: broker.SASLBootstrap, Mechanism: broker.Mechanism, User: broker.AdminUser, Pass: broker.AdminPassword}
	adm, kcl := kafkaAdmin(t, kc)
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
	team.WaitConverged(t, ctx, all, []string{"doomed"}, 60*time.Second)
	t.Logf("converged %v after the broker was started again", time.Since(back).Round(time.Millisecond))

	// Apache Kafka's broker learns of quotas a moment after the controller.
	census.Matches(t, ctx, team.Loops, kcl, clusterName, broker.AdminUser, 20*time.Second)
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
