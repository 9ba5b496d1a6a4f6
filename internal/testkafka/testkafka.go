package testkafka

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a running single-node Apache Kafka cluster. Treat it as read-only.
type Broker struct {
	// SASLBootstrap is the SASL_PLAINTEXT listener (SCRAM-SHA-256 and -512): the one that
	// enforces ACLs for non-super users.
	SASLBootstrap []string
	// PlaintextBootstrap is an unauthenticated listener; its User:ANONYMOUS is a super user.
	PlaintextBootstrap []string
	AdminUser          string // super user, SCRAM credentials for both mechanisms
	AdminPassword      string
	Mechanism          string // SASL mechanism the helpers use: "SCRAM-SHA-512"
	Lib                string // directory holding the Kafka jars (a Java classpath of Lib/*)
	ClientProperties   string // admin client config for the CLI tools' --command-config
	Version            string // Kafka version, e.g. "4.4.0"
	ClusterID          string
	Dir                string        // config, data and broker.log
	PID                int           // broker JVM
	StartDuration      time.Duration // start.sh wall time: fetch check, format, boot, readiness

	toolsLog4j string
	scripts    string
	stopOnce   sync.Once
	stopErr    error

	configCmdOnce  sync.Once
	configCmdClass string
}

// Errors returned by [StartForMain] and reported by [Start]. Each names the missing piece.
var (
	// ErrDisabled means the Apache Kafka leg is not enabled; [Start] skips the test.
	ErrDisabled = errors.New("Apache Kafka leg skipped: set LOOPGATE_TEST_KAFKA=1")
	// ErrJavaMissing means no java >= 17 was found on PATH or in JAVA_HOME.
	ErrJavaMissing = errors.New("java (JDK >= 17) is missing: install openjdk-17-jre-headless or set JAVA_HOME")
	// ErrMavenMissing means the jars are not cached yet and mvn is not installed.
	ErrMavenMissing = errors.New("Maven (mvn) is missing: install maven to fetch the Kafka jars")
	// ErrFetch means Maven could not download the Kafka jars (Maven Central unreachable?).
	ErrFetch = errors.New("fetching the Kafka jars from Maven Central failed")
	// ErrNotReady means the broker did not accept an authenticated admin call in time.
	ErrNotReady = errors.New("Kafka broker did not become ready")
)

// Exit codes of scripts/kafka/*.sh (see common.sh).
const (
	exitNoJava   = 3
	exitNoMaven  = 4
	exitFetch    = 5
	exitNotReady = 6
)

// Enabled reports whether the Apache Kafka leg runs: LOOPGATE_TEST_KAFKA=1 (or true), or CI=true
// unless LOOPGATE_TEST_KAFKA is set to a false value.
func Enabled() bool {
	if v, ok := os.LookupEnv("LOOPGATE_TEST_KAFKA"); ok && v != "" {
		on, err := strconv.ParseBool(v)
		return err == nil && on
	}
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

var shared struct {
	once   sync.Once
	broker *Broker
	err    error
}

func sharedBroker() (*Broker, error) {
	shared.once.Do(func() {
		shared.broker, shared.err = launch(context.Background())
	})
	return shared.broker, shared.err
}

// Start returns the broker shared by the tests of this package, starting it on first use. It
// skips the test when the Kafka leg is disabled and fails it when the broker cannot be started.
func Start(t testing.TB) *Broker {
	t.Helper()
	b, err := sharedBroker()
	if errors.Is(err, ErrDisabled) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// StartForMain starts the shared broker from TestMain and returns a function that stops it. The
// stop function is always non-nil and safe to call more than once. When the leg is disabled the
// error is [ErrDisabled]; any error is reported again by every later [Start], so TestMain may
// ignore it.
func StartForMain() (*Broker, func(), error) {
	b, err := sharedBroker()
	if err != nil {
		return nil, func() {}, err
	}
	return b, func() {
		if err := b.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testkafka:", err)
		}
	}, nil
}

// StartFresh starts a broker for this test alone and stops it when the test ends. Prefer [Start]:
// each broker costs about 10 s and 0.5 GB of heap.
func StartFresh(t testing.TB) *Broker {
	t.Helper()
	b, err := launch(t.Context())
	if errors.Is(err, ErrDisabled) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// Stop stops the broker (SIGTERM, then SIGKILL) and deletes its directory. Safe to call twice.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() {
		out, err := exec.Command("bash", filepath.Join(b.scripts, "stop.sh"), b.Dir).CombinedOutput()
		if err != nil {
			b.stopErr = fmt.Errorf("testkafka: stopping broker pid %d in %s: %w\n%s", b.PID, b.Dir, err, out)
			return
		}
		if err := os.RemoveAll(b.Dir); err != nil {
			b.stopErr = fmt.Errorf("testkafka: removing broker dir: %w", err)
		}
	})
	return b.stopErr
}

// launch runs start.sh in a new temporary directory. The scripts' watchdog stops the broker once
// this process exits, so a crashed or timed-out test binary leaks no JVM (and the shared broker
// needs no one to stop it).
func launch(ctx context.Context) (*Broker, error) {
	if !Enabled() {
		return nil, ErrDisabled
	}
	if _, err := exec.LookPath(javaCommand()); err != nil {
		return nil, fmt.Errorf("testkafka: %w (looked for %q: %v)", ErrJavaMissing, javaCommand(), err)
	}
	scripts, err := scriptsDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "loopgate-kafka-")
	if err != nil {
		return nil, fmt.Errorf("testkafka: creating broker dir: %w", err)
	}

	// Cold fetches download ~80 MB; the broker itself is ready in ~10 s.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(scripts, "start.sh"), dir)
	cmd.Env = append(os.Environ(), "LOOPGATE_KAFKA_WATCH_PID="+strconv.Itoa(os.Getpid()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// On cancellation let start.sh's trap stop a half-started broker; SIGKILL 10 s later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	began := time.Now()
	runErr := cmd.Run()
	took := time.Since(began)
	if runErr != nil {
		_ = os.RemoveAll(dir) // start.sh already killed the broker and printed its log tail
		return nil, startError(runErr, out.String())
	}

	env, err := readEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		return nil, err
	}
	b := &Broker{
		SASLBootstrap:      strings.Split(env["KAFKA_SASL_BOOTSTRAP"], ","),
		PlaintextBootstrap: strings.Split(env["KAFKA_PLAINTEXT_BOOTSTRAP"], ","),
		AdminUser:          env["KAFKA_ADMIN_USER"],
		AdminPassword:      env["KAFKA_ADMIN_PASSWORD"],
		Mechanism:          env["KAFKA_SASL_MECHANISM"],
		Lib:                env["KAFKA_LIB"],
		ClientProperties:   env["KAFKA_CLIENT_PROPERTIES"],
		Version:            env["KAFKA_VERSION"],
		ClusterID:          env["KAFKA_CLUSTER_ID"],
		Dir:                dir,
		StartDuration:      took,
		toolsLog4j:         env["KAFKA_TOOLS_LOG4J"],
		scripts:            scripts,
	}
	b.PID, err = strconv.Atoi(env["KAFKA_PID"])
	if err != nil || b.AdminPassword == "" || b.Lib == "" || b.SASLBootstrap[0] == "" {
		_ = (&Broker{Dir: dir, scripts: scripts}).Stop()
		return nil, fmt.Errorf("testkafka: %s/env is incomplete (KAFKA_PID=%q): start.sh and this package disagree", dir, env["KAFKA_PID"])
	}
	return b, nil
}

// startError turns a start.sh failure into an error wrapping the sentinel for its exit code.
func startError(runErr error, output string) error {
	kind := ErrNotReady
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		switch exitErr.ExitCode() {
		case exitNoJava:
			kind = ErrJavaMissing
		case exitNoMaven:
			kind = ErrMavenMissing
		case exitFetch:
			kind = ErrFetch
		case exitNotReady:
			kind = ErrNotReady
		default:
			return fmt.Errorf("testkafka: scripts/kafka/start.sh failed: %w\n%s", runErr, tail(output, 80))
		}
	}
	return fmt.Errorf("testkafka: %w (scripts/kafka/start.sh: %v)\n%s", kind, runErr, tail(output, 80))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readEnvFile parses the DIR/env file written by start.sh: `export KEY='value'` lines, values in
// shell single quotes (see unquoteShell).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testkafka: reading broker env: %w", err)
	}
	defer f.Close()
	env := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, raw, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("testkafka: %s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		val, err := unquoteShell(raw)
		if err != nil {
			return nil, fmt.Errorf("testkafka: %s:%d: %s: %w", path, n, key, err)
		}
		env[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testkafka: reading %s: %w", path, err)
	}
	return env, nil
}

// unquoteShell undoes the single-quote quoting used by start.sh, where a quote inside a value
// closes the quoted part, adds a backslash-escaped quote and reopens it. Unquoted words pass
// through.
func unquoteShell(s string) (string, error) {
	if !strings.HasPrefix(s, "'") {
		return s, nil
	}
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, `\'`):
			b.WriteByte('\'')
			s = s[2:]
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[1 : 1+end])
			s = s[end+2:]
		default:
			return "", fmt.Errorf("unexpected %q after a quoted part", s)
		}
	}
	return b.String(), nil
}

// scriptsDir finds scripts/kafka: $LOOPGATE_KAFKA_SCRIPTS, else relative to this source file,
// else by walking up from the working directory to the module root.
func scriptsDir() (string, error) {
	var tried []string
	check := func(dir string) bool {
		tried = append(tried, dir)
		_, err := os.Stat(filepath.Join(dir, "start.sh"))
		return err == nil
	}
	if d := os.Getenv("LOOPGATE_KAFKA_SCRIPTS"); d != "" && check(d) {
		return d, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if d := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka"); check(d) {
			return filepath.Clean(d), nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if check(filepath.Join(d, "scripts", "kafka")) {
				return filepath.Join(d, "scripts", "kafka"), nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("testkafka: scripts/kafka/start.sh not found (tried %s); set LOOPGATE_KAFKA_SCRIPTS", strings.Join(tried, ", "))
}

// javaCommand mirrors common.sh: $JAVA, else $JAVA_HOME/bin/java, else java on PATH.
func javaCommand() string {
	if j := os.Getenv("JAVA"); j != "" {
		return j
	}
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if j := filepath.Join(h, "bin", "java"); isExecutable(j) {
			return j
		}
	}
	return "java"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
