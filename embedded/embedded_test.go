package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/embedded"
)

// adminFor is an independent kadm client logged in as the superuser.
func adminFor(t *testing.T, c *embedded.Cluster) *kadm.Client {
	t.Helper()
	conn := c.Conn()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.BootstrapServers()...),
		kgo.SASL(scram.Auth{User: conn.SASL.Username, Pass: conn.SASL.Password}.AsSha512Mechanism()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// TestRestartKeepsTopicsACLsAndQuotas protects the embedded mode's promise
// that a restart loses nothing, including the superuser login.
func TestRestartKeepsTopicsACLsAndQuotas(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	c, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range c.BootstrapServers() {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("bootstrap %s: want 127.0.0.1 only", addr)
		}
	}
	firstPassword := c.Conn().SASL.Password
	adm := adminFor(t, c)
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("1000")}, "growth.loop.events"); err != nil {
		t.Fatal(err)
	}
	b := kadm.NewACLs().Allow("User:app").AllowHosts("*").Topics("growth.loop.events").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)
	if _, err := adm.CreateACLs(ctx, b); err != nil {
		t.Fatal(err)
	}
	user := "app"
	if _, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: []kadm.ClientQuotaEntityComponent{{Type: "user", Name: &user}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 4096}},
	}}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c2, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c2.Close()
	if c2.Conn().SASL.Password != firstPassword {
		t.Errorf("restart generated a new password instead of reusing the stored one")
	}
	adm2 := adminFor(t, c2)

	td, err := adm2.ListTopics(ctx, "growth.loop.events")
	if err != nil {
		t.Fatal(err)
	}
	if d := td["growth.loop.events"]; d.Err != nil || len(d.Partitions) != 3 {
		t.Errorf("topic after restart: %+v", d)
	}
	rcs, err := adm2.DescribeTopicConfigs(ctx, "growth.loop.events")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("growth.loop.events", nil)
	var retention string
	for _, cfg := range rc.Configs {
		if cfg.Key == "retention.ms" {
			retention = cfg.MaybeValue()
		}
	}
	if retention != "1000" {
		t.Errorf("retention.ms after restart = %q, want 1000", retention)
	}
	acls, err := adm2.DescribeACLs(ctx, kadm.NewACLs().Allow("User:app").AllowHosts("*").Topics("growth.loop.events").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead))
	if err != nil {
		t.Fatal(err)
	}
	if len(acls) != 1 || len(acls[0].Described) != 1 {
		t.Errorf("ACLs after restart: %+v", acls)
	}
	q, err := adm2.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &user}})
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || len(q[0].Values) != 1 || q[0].Values[0].Value != 4096 {
		t.Errorf("quota after restart: %+v", q)
	}
}

// TestCredentialsAreStoredPrivately protects the dev credentials file that
// makes restarts work.
func TestCredentialsAreStoredPrivately(t *testing.T) {
	dir := t.TempDir()
	c, err := embedded.Start(context.Background(), embedded.Options{DataDir: dir, SuperUser: "root", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fi, err := os.Stat(filepath.Join(dir, embedded.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	if got := c.Conn().SASL; got.Username != "root" || got.Password != "s3cret" || got.Mechanism != embedded.Mechanism {
		t.Errorf("Conn().SASL = %v", got)
	}
}

// TestRestartWithOtherPasswordIsRefused protects against starting a cluster
// nobody can log in to: persisted SCRAM credentials win in kfake.
func TestRestartWithOtherPasswordIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Password: "first"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = embedded.Start(ctx, embedded.Options{DataDir: dir, Password: "second"})
	if !errors.Is(err, embedded.ErrCredentials) {
		t.Fatalf("restart with another password: err %v, want ErrCredentials", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q should name the data dir", err)
	}
}

// TestInMemoryClusterWorksWithoutDataDir protects the test and benchmark
// use: no data dir, a generated password, a working login.
func TestInMemoryClusterWorksWithoutDataDir(t *testing.T) {
	c, err := embedded.Start(context.Background(), embedded.Options{Name: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Conn().SASL.Password == "" {
		t.Fatal("no password generated")
	}
	if _, err := adminFor(t, c).CreateTopic(context.Background(), 1, 1, nil, "x"); err != nil {
		t.Fatalf("superuser cannot create a topic: %v", err)
	}
}
