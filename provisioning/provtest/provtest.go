// Package provtest is the provisioning contract suite: the behaviour every
// Kafka-protocol cluster loopgate provisions on must show through
// provisioning.KafkaAdmin, checked against a live cluster.
//
// Start with Run. The provisioning package runs it twice: against an
// in-process kfake cluster (embedded.Start, always) and against a real
// Apache Kafka broker (internal/testkafka, when LOOPGATE_TEST_KAFKA=1 or
// CI=true). A difference between the two legs is a loopgate bug, a kfake
// leniency (it accepts any topic config) or a broker timing effect (Apache
// Kafka applies metadata, ACL and SCRAM changes a moment after the admin
// call returns); Cluster.Real tells the suite which one to expect.
//
// Every subtest derives its own loop with random team, principal and group
// names, so subtests run in parallel and repeated runs on a shared broker
// never collide. What happened on the cluster is always checked with an
// independent franz-go client built by hand (see checker), never only with
// loopgate's own Observe.
package provtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/provisioning"
)

// Cluster is a live cluster to run the suite against.
type Cluster struct {
	// Name identifies the leg in failure messages, e.g. "kfake" or
	// "apache-kafka-4.4.0".
	Name string
	// Conn logs in as a super user: loopgate's admin and the suite's
	// independent checker both use it.
	Conn provisioning.ClusterConn
	// RF is the replication factor the catalog gives derived topics; it
	// must not exceed the number of brokers.
	RF int16
	// NewUser creates a SCRAM user that is not a super user and returns
	// how to log in as it. Nil means CreateSCRAMUser, which works on kfake
	// and Apache Kafka alike. Either way the suite then waits until the
	// new user can log in.
	NewUser func(t testing.TB, name, password string) provisioning.ClusterConn
	// Real is true for a real Apache Kafka broker: it validates topic
	// configs itself, and its metadata, ACL and SCRAM changes become
	// visible a moment after the admin call returns. kfake is false.
	Real bool
}

// SCRAMIterations is the iteration count of the users the suite creates:
// Kafka's minimum, and the only count kfake accepts for logging in.
const SCRAMIterations = 4096

// Run runs the contract suite against c. Each top-level subtest runs in
// parallel with the others; the caller keeps the cluster up until Run
// returns.
func Run(t *testing.T, c Cluster) {
	t.Helper()
	h := newHarness(t, c)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"CreateIsIdempotent", testCreateIsIdempotent},
		{"UpdatePlansOnlyWhatChanged", testUpdatePlansOnlyWhatChanged},
		{"PartitionsOnlyGrow", testPartitionsOnlyGrow},
		{"DeleteRemovesOnlyTheLoopsResources", testDeleteRemovesOnlyTheLoopsResources},
		{"DriftedACLIsRemoved", testDriftedACLIsRemoved},
		{"ReadOnlyRefusesEveryWrite", testReadOnlyRefusesEveryWrite},
		{"Errors", testErrors},
		{"ACLsEnforced", testACLsEnforced},
		{"SCRAMCredentials", testSCRAMCredentials},
		{"RemovePrincipal", testRemovePrincipal},
		{"ReadOnlyRefusesCredentialWrites", testReadOnlyRefusesCredentialWrites},
		{"CredentialsAuthorizationFailure", testCredentialsAuthorizationFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, h)
		})
	}
}

// harness holds what the subtests share: loopgate's admins (normal and
// read-only) over one client, and an independent checker.
type harness struct {
	c        Cluster
	cat      catalog.Cluster
	admin    *provisioning.KafkaAdmin
	readOnly *provisioning.KafkaAdmin
	check    *kadm.Client
	// settle is how long a change may take to become visible: kfake
	// applies everything before it answers, Apache Kafka a moment later.
	settle time.Duration
}

func newHarness(t *testing.T, c Cluster) *harness {
	t.Helper()
	if c.RF == 0 {
		c.RF = 1
	}
	cl, err := provisioning.Connect(c.Conn, kgo.ClientID("loopgate-provtest"))
	if err != nil {
		t.Fatalf("%s: provisioning.Connect: %v", c.Name, err)
	}
	t.Cleanup(cl.Close)
	raw, err := kgo.NewClient(append(clientOpts(t, c.Conn), kgo.MetadataMinAge(10*time.Millisecond))...)
	if err != nil {
		t.Fatalf("%s: checker client: %v", c.Name, err)
	}
	t.Cleanup(raw.Close)
	h := &harness{
		c:        c,
		cat:      catalog.Cluster{Name: c.Name, Region: "test", ReplicationFactor: c.RF},
		admin:    provisioning.NewKafkaAdmin(cl),
		readOnly: provisioning.NewKafkaAdmin(cl, provisioning.ReadOnly()),
		check:    kadm.NewClient(raw),
		settle:   5 * time.Second,
	}
	if c.Real {
		h.settle = 30 * time.Second
	}
	return h
}

// clientOpts are franz-go options for conn, built by hand rather than
// with provisioning.Connect so that the checker and the test users do not
// share loopgate's code paths.
func clientOpts(t testing.TB, conn provisioning.ClusterConn) []kgo.Opt {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(conn.BootstrapServers...), kgo.ClientID("provtest-checker")}
	if s := conn.SASL; s != nil {
		switch s.Mechanism {
		case provisioning.MechanismScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		case provisioning.MechanismScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case provisioning.MechanismPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		default:
			t.Fatalf("provtest: SASL mechanism %q is not supported by the suite", s.Mechanism)
		}
	}
	if conn.TLS != nil {
		t.Fatalf("provtest: TLS connections are not supported by the suite; run it on a plaintext or SASL_PLAINTEXT listener")
	}
	return opts
}

// CreateSCRAMUser creates (or resets) SCRAM-SHA-512 credentials for name
// through admin (a super user's connection) and returns admin's bootstrap
// servers with the new credentials. It does not wait for the user to be
// usable; Run does that.
func CreateSCRAMUser(t testing.TB, admin provisioning.ClusterConn, name, password string) provisioning.ClusterConn {
	t.Helper()
	cl, err := kgo.NewClient(clientOpts(t, admin)...)
	if err != nil {
		t.Fatalf("provtest: creating user %s: %v", name, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: name, Mechanism: kadm.ScramSha512, Iterations: SCRAMIterations, Password: password,
	}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("provtest: creating SCRAM user %s: %v", name, err)
	}
	return provisioning.ClusterConn{
		BootstrapServers: admin.BootstrapServers,
		SASL:             &provisioning.SASL{Mechanism: provisioning.MechanismScramSHA512, Username: name, Password: password},
	}
}

// newUser creates a non-super user and waits until it can log in.
func (h *harness) newUser(t testing.TB, name string) provisioning.ClusterConn {
	t.Helper()
	password := "pw-" + randomID(t)
	var conn provisioning.ClusterConn
	if h.c.NewUser != nil {
		conn = h.c.NewUser(t, name, password)
	} else {
		conn = CreateSCRAMUser(t, h.c.Conn, name, password)
	}
	h.eventually(t, "user "+name+" can log in", func(ctx context.Context) error {
		cl, err := kgo.NewClient(clientOpts(t, conn)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		req := kmsg.NewMetadataRequest() // all topics: needs no ACL, only a successful login
		_, err = req.RequestWith(ctx, cl)
		return err
	})
	return conn
}

// eventually retries check until it returns nil or h.settle passes, then
// fails the test with the last error. Each attempt gets its own deadline.
func (h *harness) eventually(t testing.TB, what string, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(h.settle)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: still failing after %v: %v", h.c.Name, what, h.settle, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// randomID is 8 random hex digits.
func randomID(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("provtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// testCtx returns a context that ends with the test, bounded to one minute.
func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}
