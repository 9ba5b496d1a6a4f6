package testkafka

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary start a broker and exit without stopping it (see TestMain),
// standing in for a test binary that crashed or hit -timeout.
const helperEnv = "TESTKAFKA_HELPER_ABANDON_BROKER"

// abandonBroker is the child side of TestWatchdogStopsBrokerOfDeadTestBinary.
func abandonBroker() int {
	b, _, err := StartForMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("broker %d %s\n", b.PID, b.Dir)
	return 0 // exit with the broker still running
}

// TestStopTerminatesBrokerAndRemovesDir protects the promise that tests leak no JVM and no files.
func TestStopTerminatesBrokerAndRemovesDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second broker; skipped with -short")
	}
	b := StartFresh(t)
	if !processAlive(b.PID) {
		t.Fatalf("broker pid %d not running right after StartFresh", b.PID)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if processAlive(b.PID) {
		t.Errorf("broker pid %d still running after Stop", b.PID)
	}
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Errorf("broker dir %s still there after Stop (stat: %v)", b.Dir, err)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil (Stop is idempotent)", err)
	}
}

// TestWatchdogStopsBrokerOfDeadTestBinary protects against leaked brokers when a test binary
// dies without cleanup (panic, os.Exit, -timeout): start.sh's watchdog must stop the broker and
// remove its directory once the process that started it is gone.
func TestWatchdogStopsBrokerOfDeadTestBinary(t *testing.T) {
	if !Enabled() {
		t.Skip(ErrDisabled.Error())
	}
	if testing.Short() {
		t.Skip("starts a second broker; skipped with -short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, stderr.String())
	}
	var pid int
	var dir string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "broker" {
			pid, _ = strconv.Atoi(f[1])
			dir = f[2]
		}
	}
	if pid == 0 {
		t.Fatalf("helper printed no broker line:\n%s\n%s", out, stderr.String())
	}
	t.Cleanup(func() { // never leak, even when the assertion below fails
		if processAlive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	// The watchdog polls every second; a clean broker shutdown takes a few more.
	deadline := time.Now().Add(45 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if processAlive(pid) {
		t.Fatalf("broker pid %d still running 45s after its test binary exited", pid)
	}
	for time.Now().Before(deadline) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("broker dir %s not removed after its test binary exited", dir)
}

// processAlive reports whether pid is a running (not zombie) process.
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if os.IsNotExist(err) {
			return false
		}
		return syscall.Kill(pid, 0) == nil // no procfs
	}
	// Format: pid (comm) state ...; comm may hold spaces and parentheses.
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
