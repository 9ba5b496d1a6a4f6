package app_test

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/census"
)

// outageFor is how long the cluster is away.
const outageFor = 30 * time.Second

// TestBrokerOutage: loopgate's only Kafka cluster (a kfake cluster this test
// runs on a fixed port, with SASL/SCRAM and ACLs, as an external cluster)
// goes away for 30s while applies are in flight, then comes back on the
// same port, empty (as after losing its disks: loopgate must re-create
// what is missing). Meanwhile loops are created, updated and deleted.
// Every loop with work to do waits with a Provisioned/InSync condition
// that names the cluster and says it cannot be reached; none is reported
// READY at a generation it could not provision; after the cluster returns
// every loop converges and the cluster holds exactly what the loops need.
func TestBrokerOutage(t *testing.T) {
	began := time.Now()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	pass := randomHex(t)
	const user, clusterName = "outage-admin", "eu-outage"
	startCluster := func() *kfake.Cluster {
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			var kf *kfake.Cluster
			kf, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.ClusterID("outage"),
				kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass), kfake.EnableACLs(), kfake.DefaultNumPartitions(1))
			if err == nil {
				return kf
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("starting kfake on %s: %v", addr, err)
		return nil
	}
	kf := startCluster()
	var kfMu sync.Mutex
	t.Cleanup(func() { kfMu.Lock(); kf.Close(); kfMu.Unlock() })

	t.Setenv("HOME", t.TempDir())
	cfg := &config.Config{
		DataDir: filepath.Join(t.TempDir(), "data"),
		Resync:  5 * time.Second,
		Clusters: []config.Cluster{{
			Name: clusterName, Region: "eu", ReplicationFactor: 1, BootstrapServers: []string{addr},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: user, Password: pass},
		}},
		Teams:          []catalog.Team{{Name: "growth", AllowedRegions: []string{"eu"}, MaxPartitionsPerLoop: 64, MaxPartitions: 1000, MaxBytesPerSecond: 50 << 20}},
		DevCredentials: true,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runServer(t, cfg, slog.LevelDebug)
	team := census.Team{Name: "growth", Loops: lgv1.NewLoopServiceClient(r.conn)}
	ctx := r.ctx

	// Before: three loops provisioned.
	team.CreateAll(t, ctx, "steady", "changing", "doomed")
	team.WaitConverged(t, ctx, []string{"steady", "changing", "doomed"}, nil, 20*time.Second)

	// Applies in flight, then the cluster goes away.
	early := []string{"early-1", "early-2", "early-3", "early-4", "early-5", "early-6"}
	var down time.Time
	team.CreateConcurrently(t, ctx, early, func() {
		kfMu.Lock()
		kf.Close()
		kfMu.Unlock()
		down = time.Now()
	})
	t.Logf("cluster %s (%s) down %v after the start, while %v were being created", clusterName, addr, down.Sub(began).Round(time.Millisecond), early)

	// While it is away: more creates, an update, a delete.
	time.Sleep(time.Second)
	late := []string{"late-1", "late-2"}
	team.ChangeWhileDown(t, ctx, late, "changing", "doomed")

	// Every loop with work to do waits, and says why. An early loop may
	// have been provisioned in the moment the cluster went away, and then
	// has no work to do; the others were written while it was down.
	waiting := append(append(append([]string{}, early...), late...), "changing", "doomed")
	team.WaitUnreachable(t, ctx, waiting, early, clusterName, down, outageFor)

	// The cluster comes back on the same port, empty.
	time.Sleep(time.Until(down.Add(outageFor)))
	kfMu.Lock()
	kf = startCluster()
	kfMu.Unlock()
	back := time.Now()
	t.Logf("cluster back after %v", back.Sub(down).Round(time.Millisecond))

	all := append(append([]string{"steady", "changing"}, early...), late...)
	team.WaitConverged(t, ctx, all, []string{"doomed"}, 40*time.Second)
	t.Logf("converged %v after the cluster returned", time.Since(back).Round(time.Millisecond))

	// The returned cluster holds exactly what the loops need, by an
	// independent client's census.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	census.Matches(t, ctx, team.Loops, kcl, clusterName, user, 0)
	res, err := lgv1.NewAuditServiceClient(r.conn).VerifyAuditChain(ctx, &lgv1.VerifyAuditChainRequest{})
	if err != nil || !res.GetOk() {
		t.Errorf("audit chain: %v %v", res, err)
	}
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
