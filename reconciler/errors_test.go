package reconciler_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// countingAdmin counts the calls that reach the cluster.
type countingAdmin struct {
	provisioning.Admin
	calls atomic.Int64
}

func (a *countingAdmin) Observe(ctx context.Context, want provisioning.Resources) (provisioning.Resources, error) {
	a.calls.Add(1)
	return a.Admin.Observe(ctx, want)
}

func (a *countingAdmin) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	a.calls.Add(1)
	return a.Admin.Execute(ctx, actions)
}

const (
	superUser, superPass = "root", "root-secret"
	weakUser, weakPass   = "loopgate", "loopgate-secret"
)

// deniedCluster is a kfake cluster with SASL and ACLs on where loopgate
// logs in as a user that no ACL allows anything. It returns the cluster,
// loopgate's admin (counted) and the number of requests the cluster got.
func deniedCluster(t *testing.T) (*kfake.Cluster, *countingAdmin, *atomic.Int64) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(provisioning.MechanismScramSHA512, superUser, superPass),
		kfake.User(provisioning.MechanismScramSHA512, weakUser, weakPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	var requests atomic.Int64
	kc.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		requests.Add(1)
		return nil, nil, false // count only; the cluster answers
	})
	cl, err := provisioning.Connect(provisioning.ClusterConn{
		BootstrapServers: kc.ListenAddrs(),
		SASL:             &provisioning.SASL{Mechanism: provisioning.MechanismScramSHA512, Username: weakUser, Password: weakPass},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kc, &countingAdmin{Admin: provisioning.NewKafkaAdmin(cl)}, &requests
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testCatalog(bootstrap []string) *catalog.Catalog {
	return &catalog.Catalog{
		Teams:    map[string]catalog.Team{"growth": {Name: "growth"}},
		Clusters: []catalog.Cluster{{Name: "eu-test", Region: "eu", ReplicationFactor: 1, BootstrapServers: bootstrap}},
	}
}

func createLoop(t *testing.T, st store.Store, l *loop.Loop) {
	t.Helper()
	ctx := context.Background()
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l) }); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func provisioned(st store.Store, name string) func() (bool, string) {
	return func() (bool, string) {
		l, err := st.GetLoop(context.Background(), "growth", name)
		if err != nil {
			return false, err.Error()
		}
		c := l.Status.Condition(loop.CondProvisioned)
		if c == nil {
			return false, string(l.Status.State)
		}
		return l.Status.State == loop.StateReady, string(l.Status.State) + " " + c.Reason + ": " + c.Message
	}
}

// A cluster whose ACLs deny loopgate: the loop is FAILED with reason
// AuthorizationFailed and the error as message, and it is parked: resyncs
// do not send the cluster a single request more.
func TestTerminalErrorParksLoop(t *testing.T) {
	_, admin, requests := deniedCluster(t)
	st := openStore(t)
	cat := testCatalog(nil)
	rec := reconciler.New(st, cat, map[string]provisioning.Admin{"eu-test": admin},
		reconciler.Options{Resync: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	createLoop(t, st, testLoop("denied", "g"))

	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	defer func() {
		stop()
		<-ran
	}()

	var reason, message string
	waitFor(t, 10*time.Second, "the loop is FAILED", func() (bool, string) {
		l, err := st.GetLoop(context.Background(), "growth", "denied")
		if err != nil {
			return false, err.Error()
		}
		c := l.Status.Condition(loop.CondProvisioned)
		if c == nil || l.Status.State != loop.StateFailed {
			return false, string(l.Status.State)
		}
		reason, message = c.Reason, c.Message
		return true, ""
	})
	if reason != provisioning.ReasonAuthorizationFailed {
		t.Errorf("Provisioned reason = %q (%s), want %q", reason, message, provisioning.ReasonAuthorizationFailed)
	}
	t.Logf("condition: %s: %s", reason, message)

	// Parked: over 50 resyncs the count of admin calls and cluster
	// requests does not move.
	time.Sleep(200 * time.Millisecond) // let the failing reconcile's own requests land
	calls, reqs := admin.calls.Load(), requests.Load()
	time.Sleep(time.Second)
	if got := admin.calls.Load(); got != calls {
		t.Errorf("admin calls grew from %d to %d while the loop was parked", calls, got)
	}
	if got := requests.Load(); got != reqs {
		t.Errorf("cluster requests grew from %d to %d while the loop was parked", reqs, got)
	}
}

// A parked loop is tried again when its spec changes (and parked again if
// that fails the same way), and on an explicit Retry, which converges it
// once the cluster allows loopgate in.
func TestParkedLoopIsRetriedOnChangeAndOnRetry(t *testing.T) {
	kc, admin, _ := deniedCluster(t)
	st := openStore(t)
	cat := testCatalog(nil)
	rec := reconciler.New(st, cat, map[string]provisioning.Admin{"eu-test": admin},
		reconciler.Options{Resync: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	createLoop(t, st, testLoop("denied", "g"))
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	defer func() {
		stop()
		<-ran
	}()
	waitFor(t, 10*time.Second, "parked", func() (bool, string) { return rec.Parked("growth/denied"), "" })

	// A spec change: a new generation is tried at once.
	calls := admin.calls.Load()
	err := st.Update(context.Background(), func(tx store.Tx) error {
		l, err := tx.GetLoop(context.Background(), "growth", "denied")
		if err != nil {
			return err
		}
		etag := l.Metadata.Etag
		l.Metadata.Generation++
		l.Spec.RetentionMs *= 2
		return tx.UpdateLoop(context.Background(), l, etag)
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.Enqueue("growth/denied")
	waitFor(t, 10*time.Second, "the new generation is tried and parked again", func() (bool, string) {
		l, _ := st.GetLoop(context.Background(), "growth", "denied")
		return admin.calls.Load() > calls && rec.Parked("growth/denied") && l.Status.ObservedGeneration == 2, ""
	})

	// The operator grants loopgate what it needs, then asks for a retry.
	super, err := provisioning.Connect(provisioning.ClusterConn{
		BootstrapServers: kc.ListenAddrs(),
		SASL:             &provisioning.SASL{Mechanism: provisioning.MechanismScramSHA512, Username: superUser, Password: superPass},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	grant := kmsg.NewCreateACLsRequest()
	for _, res := range []struct {
		typ  kmsg.ACLResourceType
		name string
	}{{kmsg.ACLResourceTypeTopic, "*"}, {kmsg.ACLResourceTypeGroup, "*"}, {kmsg.ACLResourceTypeCluster, "kafka-cluster"}} {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = res.typ, res.name, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host = "User:"+weakUser, "*"
		c.Operation, c.PermissionType = kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
		grant.Creations = append(grant.Creations, c)
	}
	if _, err := grant.RequestWith(context.Background(), super); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if rec.Parked("growth/denied") == false {
		t.Fatal("the loop left its park before anything asked for it")
	}
	rec.Retry("growth/denied")
	waitFor(t, 10*time.Second, "READY after Retry", provisioned(st, "denied"))
	if rec.Parked("growth/denied") {
		t.Error("a converged loop is still parked")
	}
}

// flakyAdmin is a cluster that is down (the network refuses) until up is
// set; it counts the calls that met the outage.
type flakyAdmin struct {
	provisioning.Admin
	up     atomic.Bool
	failed atomic.Int64
}

func (a *flakyAdmin) down() error {
	a.failed.Add(1)
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

func (a *flakyAdmin) Observe(ctx context.Context, want provisioning.Resources) (provisioning.Resources, error) {
	if !a.up.Load() {
		return provisioning.Resources{}, a.down()
	}
	return a.Admin.Observe(ctx, want)
}

// A retriable failure — the cluster is down, then comes back — is retried
// with backoff (the loop is FAILED meanwhile, never parked) and converges.
func TestRetriableErrorConverges(t *testing.T) {
	t.Run("admin", func(t *testing.T) {
		f := newFixture(t)
		flaky := &flakyAdmin{Admin: f.admin}
		rec := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": flaky}, reconciler.Options{
			Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		f.create(t, testLoop("flaky", "g"))
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- rec.Run(ctx) }()
		defer func() {
			stop()
			<-ran
		}()
		waitFor(t, 10*time.Second, "several retries while down", func() (bool, string) { return flaky.failed.Load() >= 5, "" })
		l := f.get(t, "flaky")
		if c := l.Status.Condition(loop.CondProvisioned); l.Status.State != loop.StateFailed || c == nil || c.Reason != reconciler.ReasonClusterUnreachable {
			t.Errorf("while down: %s %+v, want FAILED / ClusterUnreachable", l.Status.State, c)
		}
		if rec.Parked("growth/flaky") {
			t.Error("a retriable failure parked the loop")
		}
		flaky.up.Store(true)
		waitFor(t, 10*time.Second, "READY once the cluster is back", provisioned(f.st, "flaky"))
	})

	// The same with a real cluster: loopgate's client points at a port
	// where nothing listens, and a kfake broker starts there later.
	t.Run("cluster", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		addr := ln.Addr().String()
		cl, err := provisioning.Connect(provisioning.ClusterConn{BootstrapServers: []string{addr}},
			kgo.RetryTimeout(100*time.Millisecond), kgo.RequestRetries(1), kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		admin := &countingAdmin{Admin: provisioning.NewKafkaAdmin(cl)}
		st := openStore(t)
		rec := reconciler.New(st, testCatalog([]string{addr}), map[string]provisioning.Admin{"eu-test": admin}, reconciler.Options{
			Backoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		createLoop(t, st, testLoop("down", "g"))
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- rec.Run(ctx) }()
		defer func() {
			stop()
			<-ran
		}()
		waitFor(t, 10*time.Second, "FAILED while the cluster is down", func() (bool, string) {
			l, err := st.GetLoop(context.Background(), "growth", "down")
			return err == nil && l.Status.State == loop.StateFailed && admin.calls.Load() >= 3, ""
		})
		if rec.Parked("growth/down") {
			t.Fatal("a cluster that is down parked the loop")
		}
		kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
		if err != nil {
			t.Fatal(err)
		}
		defer kc.Close()
		waitFor(t, 15*time.Second, "READY once the cluster is up", provisioned(st, "down"))
	})
}
