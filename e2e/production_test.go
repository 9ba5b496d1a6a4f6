package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/loopgate/loopgate/embedded"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/policytest"
	"github.com/loopgate/loopgate/internal/testkafka"
	"github.com/loopgate/loopgate/internal/testpg"
)

// prodConfig writes a production-style config: PostgreSQL store, one
// external Kafka cluster reached with SASL/SCRAM, explicit tokens.
func prodConfig(t *testing.T, dsn string, bootstrap []string, mech, user, pass string) string {
	t.Helper()
	cfg := fmt.Sprintf(`grpcAddr: 127.0.0.1:0
httpAddr: 127.0.0.1:0
dataDir: %s
resync: 5s
store:
  driver: postgres
  dsnEnv: LOOPGATE_E2E_DSN
clusters:
  - name: eu-kafka
    region: eu
    replicationFactor: 1
    bootstrapServers: [%s]
    sasl: {mechanism: %s, username: %s, passwordEnv: LOOPGATE_E2E_KAFKA_PASSWORD}
    credentials: scram-sha-512
    superUsers: ["User:ANONYMOUS"]
teams:
  - {name: growth, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 100000, maxBytesPerSecond: 52428800}
  - {name: risk, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 1000, maxBytesPerSecond: 52428800}
tokens:
  - {token: prod-admin-token, subject: admin@example.com, roles: [admin]}
  - {token: prod-growth-token, subject: growth@example.com, teams: [growth], roles: [developer]}
  - {token: prod-reviewer-token, subject: reviewer@example.com, roles: [security-reviewer]}
  - {token: prod-reviewer2-token, subject: reviewer2@example.com, roles: [security-reviewer]}
`, t.TempDir(), strings.Join(bootstrap, ", "), mech, user)
	path := filepath.Join(t.TempDir(), "loopgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOOPGATE_E2E_DSN", dsn)
	t.Setenv("LOOPGATE_E2E_KAFKA_PASSWORD", pass)
	return path
}

// TestProductionModeApacheKafkaPostgres runs `loopgate serve --config` on
// PostgreSQL and Apache Kafka (loopgate authenticating with SCRAM) and checks
// what it provisioned with Kafka's own command-line tools.
func TestProductionModeApacheKafkaPostgres(t *testing.T) {
	dsn := testpg.DSN(t)
	broker := testkafka.StartFresh(t)
	t.Logf("Apache Kafka %s, PostgreSQL %s", broker.Version, testpg.Version())
	cfg := prodConfig(t, dsn, broker.SASLBootstrap, broker.Mechanism, broker.AdminUser, broker.AdminPassword)
	withObserver(t, cfg)
	home := t.TempDir()
	srv := startServer(t, home, t.TempDir(), "--config", cfg)
	env := []string{"LOOPGATE_SERVER=" + srv.GRPC, "LOOPGATE_TOKEN=prod-growth-token"}

	r := loopctl(t, home, env, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "READY") {
		t.Fatalf("apply on Apache Kafka: %s\nserver:\n%s", r, srv.output())
	}

	desc, err := broker.TopicCommand("--describe", "--topic", "growth.checkout-nudge.events")
	if err != nil {
		t.Fatalf("TopicCommand: %v\n%s", err, desc)
	}
	if !regexp.MustCompile(`PartitionCount:\s*12`).MatchString(desc) || !strings.Contains(desc, "retention.ms=259200000") {
		t.Errorf("TopicCommand --describe: want 12 partitions and retention.ms=259200000:\n%s", desc)
	}
	eventually(t, func() error {
		acls, err := broker.AclCommand("--list", "--topic", "growth.checkout-nudge.events")
		if err != nil {
			return fmt.Errorf("AclCommand: %v\n%s", err, acls)
		}
		for _, want := range []string{"User:checkout-api", "User:nudge-engine", "operation=WRITE", "operation=READ", "operation=DESCRIBE"} {
			if !strings.Contains(acls, want) {
				return fmt.Errorf("AclCommand --list lacks %q:\n%s", want, acls)
			}
		}
		groupACLs, err := broker.AclCommand("--list", "--group", "nudge-engine")
		if err != nil || !strings.Contains(groupACLs, "User:nudge-engine") {
			return fmt.Errorf("group ACL missing: %v\n%s", err, groupACLs)
		}
		quotas, err := broker.ConfigCommand("--describe", "--entity-type", "users", "--entity-name", "checkout-api")
		if err != nil || !strings.Contains(quotas, "producer_byte_rate=6291456") {
			return fmt.Errorf("ConfigCommand quota for checkout-api: %v\n%s", err, quotas)
		}
		return nil
	})

	// Use the loop with credentials loopgate created through the admin API,
	// and only what loopctl printed; rotation revokes the old password.
	producer := issueCredentials(t, home, env, "growth/checkout-api", false)
	actor := issueCredentials(t, home, env, "growth/nudge-engine", false)
	if got := producer.Endpoints[0].BootstrapServers; !slices.Equal(got, broker.SASLBootstrap) {
		t.Errorf("credentials bootstrap %v, want the broker's SASL listener %v", got, broker.SASLBootstrap)
	}
	useTheLoop(t, producer, actor)
	// loopgate's observer logs in to Apache Kafka with the SCRAM credential
	// it set itself and reads the action topic under the READ ACL the plan
	// showed: action records with the origin header are measured.
	stopActions := keepActing(t, actor, "growth.checkout-nudge.actions", 100*time.Millisecond)
	var sampled *lgv1.SloStatus
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		sampled = loopStatus(t, home, env, "growth/checkout-nudge").GetStatus().GetSlo()
		if len(sampled.GetWindows()) > 0 && sampled.GetWindows()[0].GetRecords() > 0 {
			break
		}
		time.Sleep(time.Second)
	}
	stopActions()
	if w := sampled.GetWindows(); len(w) == 0 || w[0].GetRecords() == 0 || w[0].GetP99Ms() < 90 || w[0].GetP99Ms() > 150 {
		t.Errorf("the observer did not measure the action records on Apache Kafka (100 ms each): %v\nserver:\n%s", sampled, srv.output())
	} else {
		t.Logf("observer on Apache Kafka: %d action records sampled, 1m p99 %.1f ms", w[0].GetRecords(), w[0].GetP99Ms())
	}
	rotated := issueCredentials(t, home, env, "growth/checkout-api", true)
	eventually(t, func() error {
		if authenticates(t, producer) {
			return fmt.Errorf("the old password still authenticates after --rotate")
		}
		if !authenticates(t, rotated) {
			return fmt.Errorf("the rotated password does not authenticate")
		}
		return nil
	})
	if strings.Contains(srv.output(), rotated.Password) || strings.Contains(srv.output(), producer.Password) {
		t.Errorf("a password is in the server's output")
	}

	// A denied loop provisions nothing on the real broker either.
	r = loopctl(t, home, env, "apply", "-f", examplePath(t, "denied-pii-in-us.yaml"))
	if r.Code == 0 {
		t.Fatalf("denied loop applied: %s", r)
	}
	if list, _ := broker.TopicCommand("--list"); strings.Contains(list, "clickstream") {
		t.Errorf("denied loop's topic exists:\n%s", list)
	}

	// Delete removes everything, as seen by TopicCommand.
	if r = loopctl(t, home, env, "delete", "growth/checkout-nudge", "--wait"); r.Code != 0 {
		t.Fatalf("delete: %s", r)
	}
	eventually(t, func() error {
		list, err := broker.TopicCommand("--list")
		if err != nil || strings.Contains(list, "growth.checkout-nudge") {
			return fmt.Errorf("topics after delete: %v\n%s", err, list)
		}
		return nil
	})
	if r = loopctl(t, home, []string{"LOOPGATE_SERVER=" + srv.GRPC, "LOOPGATE_TOKEN=prod-admin-token"}, "audit", "verify"); r.Code != 0 {
		t.Errorf("audit verify: %s", r)
	}
}

// withObserver gives the cluster of a prodConfig file loopgate's observer
// principal (loopgate sets its SCRAM password, docs/slo.md).
func withObserver(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(raw), "    credentials: scram-sha-512\n", "    credentials: scram-sha-512\n    observer: {username: loopgate-observer}\n", 1)
	if out == string(raw) {
		t.Fatal("prodConfig has no credentials line to add the observer after")
	}
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keepActing writes an action record with the origin header lat older than
// the record, every 200 ms as the acting principal, until stopped (at most
// two minutes).
func keepActing(t *testing.T, actor issued, topic string, lat time.Duration) (stop func()) {
	t.Helper()
	cl := client(t, actor)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			now := time.Now()
			rec := &kgo.Record{Topic: topic, Value: []byte(`{"user_id":"u1"}`), Timestamp: now,
				Headers: []kgo.RecordHeader{{Key: "loopgate-origin-ts", Value: []byte(fmt.Sprint(now.Add(-lat).UnixMilli()))}}}
			_ = cl.ProduceSync(ctx, rec).FirstErr()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done; cl.Close() }
}

func eventually(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestTwoProcessesSharePostgres: two loopgate processes on one PostgreSQL
// database (and one Kafka cluster) take concurrent applies. No update is
// lost, the audit chain neither forks nor gaps, and exactly one process
// reconciles.
func TestTwoProcessesSharePostgres(t *testing.T) {
	dsn := testpg.DSN(t)
	// One shared Kafka cluster outside both processes: kfake with SASL.
	kc, err := embedded.Start(context.Background(), embedded.Options{Name: "shared", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	conn := kc.Conn()
	cfg := prodConfig(t, dsn, conn.BootstrapServers, conn.SASL.Mechanism, conn.SASL.Username, conn.SASL.Password)
	a := startServer(t, t.TempDir(), t.TempDir(), "--config", cfg, "--log-level", "info")
	b := startServer(t, t.TempDir(), t.TempDir(), "--config", cfg, "--log-level", "info")

	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer prod-growth-token")
	clients := []lgv1.LoopServiceClient{grpcClient(t, a.GRPC), grpcClient(t, b.GRPC)}

	// Both processes create different loops concurrently.
	const loops = 6
	var wg sync.WaitGroup
	for i := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("shared-%d", i)
			l := protoLoop(id, 86400000)
			if _, err := clients[i%2].CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: id, Loop: l}); err != nil {
				t.Errorf("create %s: %v", id, err)
			}
		}()
	}
	wg.Wait()

	// Both processes update one loop concurrently with etag CAS and retries.
	const writers, updates = 4, 5
	var applied atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w%2]
			for u := 0; u < updates; {
				cur, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/shared-0"})
				if err != nil {
					t.Errorf("get: %v", err)
					return
				}
				next := cur.GetSpec().GetRetentionMs() + 1000
				_, err = cl.UpdateLoop(ctx, &lgv1.UpdateLoopRequest{
					Loop:       &lgv1.Loop{Name: cur.Name, Etag: cur.Etag, Spec: &lgv1.LoopSpec{RetentionMs: next}},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"spec.retention_ms"}},
				})
				switch status.Code(err) {
				case codes.OK:
					applied.Add(1)
					u++
				case codes.Aborted: // lost the race: read again
				default:
					t.Errorf("update: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()

	final, err := clients[0].GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/shared-0"})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(writers * updates); applied.Load() != want || final.GetGeneration() != 1+want || final.GetSpec().GetRetentionMs() != 86400000+1000*want {
		t.Errorf("lost update: %d successful updates, generation %d, retention %d (want generation %d, retention %d)",
			applied.Load(), final.GetGeneration(), final.GetSpec().GetRetentionMs(), 1+want, 86400000+1000*want)
	}

	// Everything converges (whichever process leads) and the chain verifies
	// from both processes.
	for i := range loops {
		name := fmt.Sprintf("teams/growth/loops/shared-%d", i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			l, err := clients[1].GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
			if err == nil && l.GetStatus().GetState() == lgv1.Loop_READY && l.GetStatus().GetObservedGeneration() == l.GetGeneration() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not converge: %v %v\nA:\n%s\nB:\n%s", name, l.GetStatus(), err, a.output(), b.output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	adminCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer prod-admin-token")
	for _, addr := range []string{a.GRPC, b.GRPC} {
		conn := dialGRPC(t, addr)
		res, err := lgv1.NewAuditServiceClient(conn).VerifyAuditChain(adminCtx, &lgv1.VerifyAuditChainRequest{})
		if err != nil || !res.GetOk() {
			t.Errorf("audit chain via %s: %v %v", addr, res, err)
		}
		events, err := lgv1.NewAuditServiceClient(conn).ListAuditEvents(adminCtx, &lgv1.ListAuditEventsRequest{Action: "loop.update", PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(events.GetEvents()); int64(got) != applied.Load() {
			t.Errorf("loop.update audit events = %d, want %d (one per successful update)", got, applied.Load())
		}
	}
	// `:plan` in a process that does not run the reconciler sees loops the
	// other process wrote a moment ago (its peer index follows the change
	// feed): a loop sharing a producer with a loop just created through the
	// leader plans, on the follower, the shared quota sized for both.
	leader, follower := clients[0], clients[1]
	if strings.Contains(b.output(), "this process now runs the reconciler") {
		leader, follower = clients[1], clients[0]
	}
	first := protoLoop("plan-first", 86400000)
	first.Spec.Producers[0].Principal = "User:plan-shared-producer"
	if _, err := leader.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "plan-first", Loop: first}); err != nil {
		t.Fatal(err)
	}
	second := protoLoop("plan-second", 86400000)
	second.Name = "teams/growth/loops/plan-second"
	second.Spec.Producers[0].Principal = "User:plan-shared-producer"
	rate := func(summary string) int64 {
		var v int64
		if _, after, ok := strings.Cut(summary, "producer_byte_rate="); ok {
			fmt.Sscanf(after, "%d", &v)
		}
		return v
	}
	eventually(t, func() error {
		plan, err := follower.PlanLoop(ctx, &lgv1.PlanLoopRequest{Loop: second})
		if err != nil {
			return err
		}
		for _, c := range plan.GetChanges() {
			if strings.Contains(c.GetResource(), "plan-shared-producer") && rate(c.GetCurrent()) > 0 && rate(c.GetDesired()) == 2*rate(c.GetCurrent()) {
				return nil
			}
		}
		return fmt.Errorf("the follower's plan does not size the shared producer's quota for both loops: %v", plan.GetChanges())
	})

	leaders := 0
	for _, s := range []*server{a, b} {
		if strings.Contains(s.output(), "this process now runs the reconciler") {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d processes ran the reconciler, want exactly 1", leaders)
	}

	// SLO status is observed by the process that runs the reconciler and
	// read from the store by every replica; these loops have no action
	// stream (and the cluster no observer), so it is UNKNOWN, saying why.
	eventually(t, func() error {
		for _, cl := range []lgv1.LoopServiceClient{follower, leader} {
			l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/shared-1"})
			if err != nil {
				return err
			}
			s := l.GetStatus().GetSlo()
			if s.GetState() != lgv1.SloStatus_UNKNOWN || s.GetReason() != "NotSampled" || s.GetMessage() == "" {
				return fmt.Errorf("SLO status = %v, want UNKNOWN/NotSampled with why", s)
			}
		}
		return nil
	})
}

// TestPolicyActivationReachesEveryReplica: a bundle pushed, approved and
// activated through one loopgate process is what the other process, on
// the same PostgreSQL database, judges by within seconds.
func TestPolicyActivationReachesEveryReplica(t *testing.T) {
	dsn := testpg.DSN(t)
	kc, err := embedded.Start(context.Background(), embedded.Options{Name: "shared", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	conn := kc.Conn()
	cfg := prodConfig(t, dsn, conn.BootstrapServers, conn.SASL.Mechanism, conn.SASL.Username, conn.SASL.Password)
	a := startServer(t, t.TempDir(), t.TempDir(), "--config", cfg, "--log-level", "info")
	b := startServer(t, t.TempDir(), t.TempDir(), "--config", cfg, "--log-level", "info")
	as := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	policyA := lgv1.NewPolicyServiceClient(dialGRPC(t, a.GRPC))
	loopsB := grpcClient(t, b.GRPC)

	week := protoLoop("pii-week", 7*24*3600*1000)
	week.Name = "teams/growth/loops/pii-week"
	week.Spec.Classification = "pii"
	planOnB := func() (*lgv1.PlanLoopResponse, error) {
		return loopsB.PlanLoop(as("prod-growth-token"), &lgv1.PlanLoopRequest{Loop: week})
	}
	denies := func(p *lgv1.PlanLoopResponse) bool {
		return slices.ContainsFunc(p.GetVerdict().GetDeny(), func(v *lgv1.Violation) bool { return v.GetId() == "PII_RETENTION_OVER_3D" })
	}
	if p, err := planOnB(); err != nil || denies(p) {
		t.Fatalf("before activation, B: %v %v", p.GetVerdict(), err)
	}

	pushed, err := policyA.PushPolicyBundle(as("prod-reviewer-token"), &lgv1.PushPolicyBundleRequest{Archive: policytest.PIIRetention(t, "pii-3d-replicas", policytest.PIIRetentionTest)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policyA.ApprovePolicyBundle(as("prod-reviewer2-token"), &lgv1.ApprovePolicyBundleRequest{Name: pushed.GetName(), Digest: pushed.GetDigest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := policyA.ActivatePolicyBundle(as("prod-reviewer-token"), &lgv1.ActivatePolicyBundleRequest{Name: pushed.GetName()}); err != nil {
		t.Fatal(err)
	}
	activated := time.Now()
	deadline := activated.Add(15 * time.Second)
	for {
		p, err := planOnB()
		if err == nil && denies(p) && p.GetVerdict().GetBundleRevision() == "pii-3d-replicas" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B still judges by %s 15 s after activation on A: %v\nB:\n%s", p.GetVerdict().GetBundleRevision(), err, b.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("replica B judged by the new bundle %v after activation on A", time.Since(activated).Round(time.Millisecond))
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func grpcClient(t *testing.T, addr string) lgv1.LoopServiceClient {
	return lgv1.NewLoopServiceClient(dialGRPC(t, addr))
}

func protoLoop(id string, retentionMs int64) *lgv1.Loop {
	return &lgv1.Loop{
		Spec: &lgv1.LoopSpec{
			Owners: []string{"ana@example.com"}, Classification: "internal", Residency: "eu", RetentionMs: retentionMs,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 1 << 20, PeakFactor: 2},
			Streams: []*lgv1.Stream{{Name: "events", Partitions: 3, Schema: &lgv1.StreamSchema{Format: "avro",
				Definition: `{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}`}}},
			Producers: []*lgv1.Producer{{Principal: "User:" + id + "-producer", Streams: []string{"events"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:" + id + "-consumer", Group: id, Streams: []string{"events"}}},
		},
	}
}
