package testkafka

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMain shows the recommended pattern: one broker for the package, stopped deterministically.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(abandonBroker())
	}
	_, stop, _ := StartForMain() // a start error is reported by each Start(t)
	code := m.Run()
	stop()
	os.Exit(code)
}

func randomSuffix() string { return strings.ToLower(rand.Text()[:10]) }

// TestRealBrokerEnforcesSCRAMAndACLs proves the harness gives a real, locked-down Kafka: the
// admin provisions over SASL, a non-super user may write only where an ACL allows it, and
// Kafka's own CLI tools see the same topic, ACL and SCRAM credentials.
func TestRealBrokerEnforcesSCRAMAndACLs(t *testing.T) {
	b := Start(t)
	t.Logf("Apache Kafka %s ready in %s (start.sh: fetch check, format, boot, authenticated probe); lib %s",
		b.Version, b.StartDuration.Round(time.Millisecond), b.Lib)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	adm := b.Admin(t)

	suffix := randomSuffix()
	t1, t2 := "testkafka-t1-"+suffix, "testkafka-t2-"+suffix
	created, err := adm.CreateTopics(ctx, 1, 1, nil, t1, t2)
	if err != nil {
		t.Fatalf("admin CreateTopics over SASL: %v", err)
	}
	if err := created.Error(); err != nil {
		t.Fatalf("admin CreateTopics: %v", err)
	}

	const alice = "alice"
	alicePassword := rand.Text()
	if err := b.CreateUser(ctx, alice, alicePassword); err != nil {
		t.Fatal(err)
	}
	acls, err := adm.CreateACLs(ctx, kadm.NewACLs().
		Allow("User:"+alice).AllowHosts("*").
		Topics(t1).Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatalf("CreateACLs: %v", err)
	}
	for _, r := range acls {
		if r.Err != nil {
			t.Fatalf("CreateACLs %s %v on %s: %v (%s)", r.Principal, r.Operation, r.Name, r.Err, r.ErrMessage)
		}
	}

	// The broker applies a committed ACL a moment after CreateACLs returns: retry briefly.
	value := []byte("hello from alice " + suffix)
	var produceErr error
	for deadline := time.Now().Add(20 * time.Second); ; {
		produceErr = produceAs(ctx, t, b, alice, alicePassword, t1, value)
		if produceErr == nil || !errors.Is(produceErr, kerr.TopicAuthorizationFailed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if produceErr != nil {
		t.Fatalf("alice produce to %s with WRITE allowed: %v", t1, produceErr)
	}

	err = produceAs(ctx, t, b, alice, alicePassword, t2, []byte("must be refused"))
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produce to %s without an ACL: got %v, want TOPIC_AUTHORIZATION_FAILED", t2, err)
	}

	if got := readFirstValue(ctx, t, b, t1); string(got) != string(value) {
		t.Fatalf("first record in %s = %q, want alice's %q", t1, got, value)
	}

	if err := loginAs(ctx, t, b, alice, "wrong-"+alicePassword); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("alice logging in with a wrong password: got %v, want SASL_AUTHENTICATION_FAILED", err)
	}

	// Independent checks with Kafka's own tools.
	out, err := b.TopicCommand("--describe", "--topic", t1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Topic: " + t1, "PartitionCount: 1", "ReplicationFactor: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("TopicCommand --describe output lacks %q:\n%s", want, out)
		}
	}
	out, err = b.AclCommand("--list", "--topic", t1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"principal=User:alice", "operation=WRITE", "permissionType=ALLOW"} {
		if !strings.Contains(out, want) {
			t.Errorf("AclCommand --list output lacks %q:\n%s", want, out)
		}
	}
	if out, err = b.AclCommand("--list", "--topic", t2); err != nil {
		t.Fatal(err)
	} else if strings.Contains(out, "User:alice") {
		t.Errorf("AclCommand --list --topic %s shows an ACL for alice, want none:\n%s", t2, out)
	}
	out, err = b.ConfigCommand("--describe", "--entity-type", "users", "--entity-name", alice)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "SCRAM-SHA-512=iterations=4096") {
		t.Errorf("ConfigCommand --describe users alice lacks SCRAM-SHA-512=iterations=4096:\n%s", out)
	}
}

// produceAs produces one record as user and returns the produce (or login) error.
func produceAs(ctx context.Context, t *testing.T, b *Broker, user, password, topic string, value []byte) error {
	t.Helper()
	cl, err := b.Client(user, password, kgo.RequestRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr()
}

// loginAs connects as user and returns the error of the first request (SASL happens first).
func loginAs(ctx context.Context, t *testing.T, b *Broker, user, password string) error {
	t.Helper()
	cl, err := b.Client(user, password, kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// readFirstValue reads the first record of topic's partition 0 as the admin.
func readFirstValue(ctx context.Context, t *testing.T, b *Broker, topic string) []byte {
	t.Helper()
	cl, err := b.Client(b.AdminUser, b.AdminPassword,
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: no record within 20s: %v", topic, err)
		}
		for _, fe := range fetches.Errors() {
			t.Fatalf("reading %s partition %d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		if recs := fetches.Records(); len(recs) > 0 {
			return recs[0].Value
		}
	}
}

func TestEnabledFollowsEnvironment(t *testing.T) {
	for _, tc := range []struct {
		kafka, ci string // "-" leaves the variable unset
		want      bool
	}{
		{"-", "-", false},
		{"1", "-", true},
		{"true", "-", true},
		{"0", "-", false},
		{"-", "true", true},
		{"0", "true", false}, // explicit opt-out wins in CI
		{"", "true", true},   // empty counts as unset
		{"yes-please", "-", false},
	} {
		setOrUnset(t, "LOOPGATE_TEST_KAFKA", tc.kafka)
		setOrUnset(t, "CI", tc.ci)
		if got := Enabled(); got != tc.want {
			t.Errorf("LOOPGATE_TEST_KAFKA=%q CI=%q: Enabled() = %v, want %v", tc.kafka, tc.ci, got, tc.want)
		}
	}
}

func setOrUnset(t *testing.T, key, value string) {
	t.Setenv(key, "") // registers restoration of the original value
	if value == "-" {
		os.Unsetenv(key)
		return
	}
	os.Setenv(key, value)
}

// TestReadEnvFileUndoesStartShQuoting protects the contract with start.sh, which single-quotes
// every value so that DIR/env can be sourced by a shell whatever the paths contain.
func TestReadEnvFileUndoesStartShQuoting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	content := "# comment\n" +
		"export KAFKA_SASL_BOOTSTRAP='127.0.0.1:9092'\n" +
		"export KAFKA_LIB='/home/o'\\''brien/kafka lib'\n" +
		"KAFKA_VERSION=4.4.0\n\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := readEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"KAFKA_SASL_BOOTSTRAP": "127.0.0.1:9092",
		"KAFKA_LIB":            "/home/o'brien/kafka lib",
		"KAFKA_VERSION":        "4.4.0",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("got %d keys %v, want %d", len(env), env, len(want))
	}

	// The same file through a real shell must agree.
	out, err := exec.Command("bash", "-c", `source "$1" && printf %s "$KAFKA_LIB"`, "bash", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != want["KAFKA_LIB"] {
		t.Errorf("bash reads KAFKA_LIB as %q, readEnvFile as %q", out, env["KAFKA_LIB"])
	}

	if err := os.WriteFile(path, []byte("export KAFKA_LIB='unterminated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnvFile(path); err == nil || !strings.Contains(err.Error(), "KAFKA_LIB") {
		t.Errorf("unterminated quote: got %v, want an error naming KAFKA_LIB", err)
	}
}

// TestStartErrorNamesTheMissingPiece protects the mapping from the scripts' exit codes
// (scripts/kafka/common.sh) to the errors a CI failure reports.
func TestStartErrorNamesTheMissingPiece(t *testing.T) {
	for code, want := range map[int]error{
		exitNoJava:   ErrJavaMissing,
		exitNoMaven:  ErrMavenMissing,
		exitFetch:    ErrFetch,
		exitNotReady: ErrNotReady,
	} {
		runErr := exec.Command("bash", "-c", "exit "+strconv.Itoa(code)).Run()
		err := startError(runErr, "script said why\n")
		if !errors.Is(err, want) {
			t.Errorf("exit %d: got %v, want errors.Is %v", code, err, want)
		}
		if !strings.Contains(err.Error(), "script said why") {
			t.Errorf("exit %d: error %q drops the script's output", code, err)
		}
	}
	// The constants must match common.sh, which the scripts really exit with.
	scripts, err := scriptsDir()
	if err != nil {
		t.Fatal(err)
	}
	common, err := os.ReadFile(filepath.Join(scripts, "common.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]int{"EXIT_NO_JAVA": exitNoJava, "EXIT_NO_MAVEN": exitNoMaven,
		"EXIT_FETCH": exitFetch, "EXIT_NOT_READY": exitNotReady} {
		if line := name + "=" + strconv.Itoa(code); !strings.Contains(string(common), line) {
			t.Errorf("common.sh lacks %q: Go and shell exit codes disagree", line)
		}
	}
}

// TestStartErrorReportsMissingJava runs start.sh for real with a java that does not exist.
func TestStartErrorReportsMissingJava(t *testing.T) {
	scripts, err := scriptsDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(scripts, "start.sh"), t.TempDir())
	cmd.Env = append(os.Environ(), "JAVA=/nonexistent/java")
	out, runErr := cmd.CombinedOutput()
	err = startError(runErr, string(out))
	if !errors.Is(err, ErrJavaMissing) || !strings.Contains(err.Error(), "java not found") {
		t.Fatalf("got %v, want ErrJavaMissing with the script's explanation", err)
	}
}
