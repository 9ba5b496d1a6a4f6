package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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

// testCtx bounds a test's cluster starts in time.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// onlyBootstrap returns the single bootstrap address and its port, and
// checks it is on 127.0.0.1.
func onlyBootstrap(t *testing.T, c *embedded.Cluster) (string, int) {
	t.Helper()
	addrs := c.BootstrapServers()
	if len(addrs) != 1 {
		t.Fatalf("BootstrapServers() = %v, want one address", addrs)
	}
	host, p, err := net.SplitHostPort(addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" {
		t.Fatalf("bootstrap %s: want 127.0.0.1 only", addrs[0])
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0], port
}

// recordedPort reads the port recorded in dir, checking the file is private.
func recordedPort(t *testing.T, dir string) int {
	t.Helper()
	path := filepath.Join(dir, embedded.ListenerFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Port int `json:"port"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rec.Port
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRestartKeepsBootstrapAddress protects the promise that clients of an
// embedded cluster keep working across loopgate restarts.
func TestRestartKeepsBootstrapAddress(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	c, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first, port := onlyBootstrap(t, c)
	c.Close()
	if got := recordedPort(t, dir); got != port {
		t.Errorf("%s records port %d, want %d", embedded.ListenerFile, got, port)
	}

	c2, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c2.Close()
	if second, _ := onlyBootstrap(t, c2); second != first {
		t.Errorf("bootstrap after restart = %s, want %s", second, first)
	}
	if _, err := adminFor(t, c2).CreateTopic(ctx, 1, 1, nil, "after.restart"); err != nil {
		t.Errorf("superuser cannot create a topic after restart: %v", err)
	}
}

// TestRecordedPortInUseIsExplained protects the operator from a silent
// address change: a taken port is an error that says what to do.
func TestRecordedPortInUseIsExplained(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	c, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, port := onlyBootstrap(t, c)
	c.Close()

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("holding port %d: %v", port, err)
	}
	defer ln.Close()

	c2, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err == nil {
		c2.Close()
		t.Fatal("Start succeeded on a taken port")
	}
	if !errors.Is(err, embedded.ErrPortInUse) {
		t.Fatalf("err %v, want ErrPortInUse", err)
	}
	msg := err.Error()
	for _, want := range []string{`"eu"`, strconv.Itoa(port), filepath.Join(dir, embedded.ListenerFile), "stop the process", "delete"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q should contain %q", msg, want)
		}
	}
	if got := recordedPort(t, dir); got != port {
		t.Errorf("a failed start changed the recorded port to %d, want %d", got, port)
	}

	// Releasing the port is enough to start again on the same address.
	ln.Close()
	c3, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir})
	if err != nil {
		t.Fatalf("start after releasing the port: %v", err)
	}
	defer c3.Close()
	if _, got := onlyBootstrap(t, c3); got != port {
		t.Errorf("port after release = %d, want %d", got, port)
	}
}

// TestExplicitPortWinsAndIsRecorded protects the embeddedPort setting: it
// overrides the recorded port and becomes the one later starts reuse.
func TestExplicitPortWinsAndIsRecorded(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	c, err := embedded.Start(ctx, embedded.Options{Name: "us", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, picked := onlyBootstrap(t, c)
	c.Close()

	want := freePort(t)
	for want == picked {
		want = freePort(t)
	}
	c2, err := embedded.Start(ctx, embedded.Options{Name: "us", DataDir: dir, Port: want})
	if err != nil {
		t.Fatalf("start with Port %d: %v", want, err)
	}
	if _, got := onlyBootstrap(t, c2); got != want {
		t.Errorf("port = %d, want the requested %d", got, want)
	}
	c2.Close()
	if got := recordedPort(t, dir); got != want {
		t.Errorf("%s records port %d, want the requested %d", embedded.ListenerFile, got, want)
	}

	c3, err := embedded.Start(ctx, embedded.Options{Name: "us", DataDir: dir})
	if err != nil {
		t.Fatalf("restart without Port: %v", err)
	}
	defer c3.Close()
	if _, got := onlyBootstrap(t, c3); got != want {
		t.Errorf("port after restart = %d, want the recorded %d", got, want)
	}
}

// TestRequestedPortInUseIsExplained covers a taken port from Options.Port.
func TestRequestedPortInUseIsExplained(t *testing.T) {
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	c, err := embedded.Start(ctx, embedded.Options{Name: "eu", DataDir: dir, Port: port})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded on a taken port")
	}
	if !errors.Is(err, embedded.ErrPortInUse) {
		t.Fatalf("err %v, want ErrPortInUse", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q should name port %d", err, port)
	}
	if _, err := os.Stat(filepath.Join(dir, embedded.ListenerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed start recorded a port (stat: %v)", err)
	}
}

// TestCorruptListenerFileIsExplained protects against silently picking a
// new address when the record is unreadable.
func TestCorruptListenerFileIsExplained(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, embedded.ListenerFile)
	if err := os.WriteFile(path, []byte("{port"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := embedded.Start(testCtx(t), embedded.Options{Name: "eu", DataDir: dir})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded with a corrupt listener file")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should name %s", err, path)
	}
}

// TestInMemoryClusterPicksAFreePort protects the in-memory mode: without a
// data dir there is nothing to record, and a free port is taken.
func TestInMemoryClusterPicksAFreePort(t *testing.T) {
	c, err := embedded.Start(testCtx(t), embedded.Options{Name: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, port := onlyBootstrap(t, c); port == 0 {
		t.Error("no port")
	}
}
