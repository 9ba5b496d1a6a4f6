// Package testpg gives tests a fresh PostgreSQL database each.
//
// Start with DSN and Main. A package whose tests need PostgreSQL declares
//
//	func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }
//
// and each test calls testpg.DSN(t), which returns the DSN of a brand-new
// database (CREATE DATABASE lg_<random>) that is dropped when the test ends.
//
// Where the server comes from:
//   - LOOPGATE_TEST_POSTGRES_DSN set: an existing server. The DSN's role
//     needs CREATEDB; its database is only used to create and drop others.
//   - otherwise: scripts/postgres/start.sh starts a throwaway server (and
//     installs PostgreSQL from Debian packages if missing) the first time a
//     test of the package asks for it; Main stops it after the last test.
//
// The PostgreSQL leg is opt-in: it runs when LOOPGATE_TEST_POSTGRES=1,
// CI=true or LOOPGATE_TEST_POSTGRES_DSN is set, and tests are skipped
// otherwise. Once enabled, a server that cannot be installed, started or
// reached fails the test (t.Fatal) with the missing piece named: a CI run
// must never go green by silently skipping its database leg.
package testpg

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by this package.
const (
	// EnvEnable set to "1" enables the PostgreSQL leg.
	EnvEnable = "LOOPGATE_TEST_POSTGRES"
	// EnvDSN points at an existing server instead of starting one.
	EnvDSN = "LOOPGATE_TEST_POSTGRES_DSN"
)

// server is the package-wide server, started at most once.
var server struct {
	once    sync.Once
	mainRan bool   // Main is running the tests
	dsn     string // admin DSN: its role may CREATE/DROP DATABASE
	version string
	dir     string // set when we started the server and must stop it
	err     error
}

// Enabled reports whether the PostgreSQL leg runs (see the package doc).
func Enabled() bool {
	return os.Getenv(EnvEnable) == "1" || os.Getenv("CI") == "true" || os.Getenv(EnvDSN) != ""
}

// Main runs the package's tests and then stops the server if this package
// started one. Use it from TestMain: os.Exit(testpg.Main(m)).
func Main(m *testing.M) int {
	server.mainRan = true
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testpg: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// DSN returns the DSN of a fresh, empty database on the test server, and
// drops the database when t ends (after the cleanups t registers later, so
// close pools opened on it with t.Cleanup). It skips t when the PostgreSQL
// leg is not enabled and fails it when the server is unusable.
func DSN(t testing.TB) string {
	t.Helper()
	if !Enabled() {
		t.Skipf("PostgreSQL leg skipped: set %s=1", EnvEnable)
	}
	if !server.mainRan {
		t.Fatal("testpg: the package must run its tests through testpg.Main, so the server is stopped at the end: " +
			"add `func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }`")
	}
	server.once.Do(func() {
		server.dsn, server.version, server.dir, server.err = start()
	})
	if server.err != nil {
		t.Fatalf("testpg: PostgreSQL leg enabled but no server: %v", server.err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server.dsn)
	if err != nil {
		t.Fatalf("testpg: connect to the test server: %v", err)
	}
	defer admin.Close(ctx)

	name := "lg_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testpg: create database %s (does the role in the DSN have CREATEDB?): %v", name, err)
	}
	t.Cleanup(func() { drop(t, name) })

	u, err := url.Parse(server.dsn)
	if err != nil {
		t.Fatalf("testpg: parse DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Version returns the server version ("15.18"), or "" before the first DSN
// call or when unknown.
func Version() string { return server.version }

// drop removes a test database; WITH (FORCE) ends sessions a test forgot.
func drop(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server.dsn)
	if err != nil {
		t.Errorf("testpg: connect to drop database %s: %v", name, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Errorf("testpg: drop database %s: %v", name, err)
	}
}

// start returns the admin DSN of an existing server (EnvDSN) or starts one
// with scripts/postgres/start.sh in a new directory.
func start() (dsn, version, dir string, err error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return "", "", "", fmt.Errorf("%s is not a valid DSN: %w", EnvDSN, err)
		}
		return dsn, serverVersion(dsn), "", nil
	}
	script, err := findScript("start.sh")
	if err != nil {
		return "", "", "", err
	}
	if _, err := exec.LookPath("bash"); err != nil {
		return "", "", "", fmt.Errorf("bash is needed to run %s: %w", script, err)
	}
	// Directly under the temp dir: when the tests run as root, the server
	// runs as the postgres user, which must be able to reach dir.
	dir, err = os.MkdirTemp("", "loopgate-pg-")
	if err != nil {
		return "", "", "", fmt.Errorf("create server directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a cold apt install is slow
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", "", fmt.Errorf("%s failed: %w\n%s", script, err, out)
	}
	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		return "", "", dir, err
	}
	if err := startWatchdog(dir); err != nil {
		return "", "", dir, err
	}
	dsn = env[EnvDSN]
	if dsn == "" {
		return "", "", dir, fmt.Errorf("%s wrote no %s to %s/env", script, EnvDSN, dir)
	}
	return dsn, env["LOOPGATE_TEST_POSTGRES_VERSION"], dir, nil
}

// startWatchdog starts a detached shell that stops the server and removes
// dir once this test binary is gone, however it ended: Main stops the
// server on a normal exit, but a test timeout (panic) or a kill skips Main.
// It lives in its own process group, so a Ctrl-C aimed at go test leaves
// it alive to clean up.
func startWatchdog(dir string) error {
	stopScript, err := findScript("stop.sh")
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", "-c",
		`while kill -0 "$0" 2>/dev/null; do sleep 1; done; [ -d "$2" ] && bash "$1" "$2" >/dev/null 2>&1; rm -rf "$2"`,
		strconv.Itoa(os.Getpid()), stopScript, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the server watchdog: %w", err)
	}
	return cmd.Process.Release()
}

// stop stops the server this package started, if any, and removes its
// directory.
func stop() error {
	if server.dir == "" {
		return nil
	}
	dir := server.dir
	server.dir = ""
	script, err := findScript("stop.sh")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "bash", script, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s failed (server left running): %w\n%s", script, dir, err, out)
	}
	return os.RemoveAll(dir)
}

// findScript locates scripts/postgres/<name> in the module root, found by
// walking up from the working directory (a package directory under go test).
func findScript(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find scripts/postgres/%s: %w", name, err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "scripts", "postgres", name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("missing %s in the module root: %w", p, err)
			}
			return p, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s: cannot find scripts/postgres/%s; set %s to use an existing server", wd, name, EnvDSN)
		}
	}
}

// readEnv parses the KEY=VALUE lines written by start.sh.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read server env: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read server env %s: %w", path, err)
	}
	return env, nil
}

// serverVersion asks an existing server for its version; "" if it cannot.
func serverVersion(dsn string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	first, _, _ := strings.Cut(v, " ")
	return first
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
