package provisioning_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// The behaviour of KafkaAdmin on a live cluster is tested by the contract
// suite (provisioning/provtest, run by contract_kfake_test.go and
// contract_kafka_test.go). This file keeps the small in-process
// environment the benchmarks in bench_test.go measure with.

// env is one in-process cluster (SASL/SCRAM + ACLs on) with loopgate's
// admin.
type env struct {
	cat   catalog.Cluster
	admin *provisioning.KafkaAdmin
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c, err := embedded.Start(context.Background(), embedded.Options{Name: "bench"})
	if err != nil {
		tb.Fatalf("embedded.Start: %v", err)
	}
	tb.Cleanup(c.Close)
	cl, err := provisioning.Connect(c.Conn())
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(cl.Close)
	return &env{
		cat:   catalog.Cluster{Name: "bench", Region: "eu", ReplicationFactor: 1},
		admin: provisioning.NewKafkaAdmin(cl),
	}
}

// randomLoop is the reference example under a random team name.
func randomLoop(tb testing.TB) *loop.Loop {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	l := checkoutNudge()
	l.Metadata.Team = "t" + hex.EncodeToString(b)
	return l
}

// converge observes, plans and executes once, failing on any problem or
// error.
func (e *env) converge(tb testing.TB, desired, scope provisioning.Resources) {
	tb.Helper()
	ctx := context.Background()
	obs, err := e.admin.Observe(ctx, scope)
	if err != nil {
		tb.Fatalf("Observe: %v", err)
	}
	p := provisioning.Plan(desired, obs)
	if len(p.Problems) > 0 {
		tb.Fatalf("unexpected problems: %v", p.Problems)
	}
	if res, err := e.admin.Execute(ctx, p.Actions); err != nil {
		tb.Fatalf("Execute: %v\n%s", err, provisioning.FormatResults(res))
	}
}
