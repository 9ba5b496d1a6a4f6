// Package e2e drives the real binaries: `loopgate serve` on its embedded
// default (or a config file) and `loopctl`, plus raw gRPC and REST clients,
// and checks the Kafka clusters with an independent franz-go admin client.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/internal/testpg"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loopgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, b := range []string{"loopgate", "loopctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../cmd/"+b)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b, err)
			os.Exit(1)
		}
	}
	code := testpg.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is one cluster as the server's start banner describes it.
type cluster struct {
	Name, Region string
	Bootstrap    []string
	Mechanism    string
	User, Pass   string
}

// server is a running `loopgate serve` process.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	Home     string
	DataDir  string
	GRPC     string
	REST     string
	Clusters map[string]cluster // by region
	mu       sync.Mutex
	out      bytes.Buffer
	done     chan struct{}
}

var (
	reGRPC    = regexp.MustCompile(`^\s*gRPC:\s+(\S+)`)
	reREST    = regexp.MustCompile(`^\s*REST:\s+http://(\S+)/v1/`)
	reCluster = regexp.MustCompile(`^\s*cluster:\s+(\S+) \(region (\S+), \S+\) bootstrap (\S+)(?: SASL (\S+) user (\S+) password (\S+))?`)
)

// startServer runs loopgate serve with HOME=home and the given data dir.
func startServer(t *testing.T, home, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "loopgate"), args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, Home: home, DataDir: dataDir, Clusters: map[string]cluster{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{s: s}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			s.mu.Unlock()
			if m := reGRPC.FindStringSubmatch(line); m != nil {
				s.GRPC = m[1]
			}
			if m := reREST.FindStringSubmatch(line); m != nil {
				s.REST = m[1]
			}
			if m := reCluster.FindStringSubmatch(line); m != nil {
				s.Clusters[m[2]] = cluster{Name: m[1], Region: m[2], Bootstrap: strings.Split(m[3], ","), Mechanism: m[4], User: m[5], Pass: m[6]}
			}
			if strings.HasPrefix(line, "Press Ctrl+C to stop.") && !announced {
				announced = true
				ready <- nil
			}
		}
		if !announced {
			ready <- fmt.Errorf("loopgate exited before it was ready")
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%v\n%s", err, s.output())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("loopgate not ready within 60s\n%s", s.output())
	}
	t.Cleanup(s.stop)
	return s
}

type lockedWriter struct{ s *server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// stop sends SIGTERM and waits (SIGKILL after 10s).
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// kill stops the server with SIGKILL (a crash).
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// result is a finished loopctl run.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// loopctl runs the CLI with HOME=home (so it finds the dev credentials).
func loopctl(t *testing.T, home string, env []string, args ...string) result {
	t.Helper()
	return loopctlIn(t, home, env, "", args...)
}

// loopctlIn is loopctl with stdin.
func loopctlIn(t *testing.T, home string, env []string, stdin string, args ...string) result {
	t.Helper()
	r, err := execLoopctl(home, env, stdin, args...)
	if err != nil {
		t.Fatalf("running loopctl %v: %v", args, err)
	}
	return r
}

// execLoopctl runs the loopctl binary with HOME=home, a clean environment
// plus env, and stdin; err is set only when the binary could not run.
func execLoopctl(home string, env []string, stdin string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "loopctl"), args...)
	cmd.Env = append(append(cleanEnv(), "HOME="+home), env...)
	cmd.Dir = repoRoot(nil)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return result{}, err
	}
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}, nil
}

// cleanEnv drops LOOPGATE_* variables a developer may have set.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOOPGATE_") {
			out = append(out, kv)
		}
	}
	return out
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// kafkaAdmin is an independent admin client (not loopgate's code) for a
// cluster, authenticating with the credentials the banner printed.
func kafkaAdmin(t *testing.T, c cluster) (*kadm.Client, *kgo.Client) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(c.Bootstrap...), kgo.MetadataMinAge(50 * time.Millisecond)}
	switch c.Mechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.User, Pass: c.Pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.User, Pass: c.Pass}.AsSha512Mechanism()))
	default:
		t.Fatalf("unknown SASL mechanism %q", c.Mechanism)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl), cl
}
