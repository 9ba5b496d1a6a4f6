// Command estatebench runs the "estate" comparison with the real binaries:
// for each size N it applies N loops with `loopctl` to a `loopgate serve`
// child process on its embedded default (SQLite, embedded kfake persisted
// to a temp data dir), measures apply --wait until READY, a no-op plan, a
// no-op re-apply, one drift pass, idle CPU and RSS, and how long a topic
// deleted behind loopgate's back takes to come back; then it measures the
// floor, raw batched admin calls with franz-go's kadm for the same topics
// on a fresh embedded cluster, and prints a markdown table and one JSON
// line. scripts/bench-estate.sh builds and runs it:
//
//	scripts/bench-estate.sh [SIZES...]            # default 1000 10000
//	go run ./internal/estatebench [flags] [SIZES...]
//
// Everything listens on 127.0.0.1 and lives in a temp dir removed at the
// end; every wait is bounded.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	loopgate, loopctl string        // binaries (built into the work dir when empty)
	work              string        // temp root (made and removed when empty)
	resync            time.Duration // the server's resync interval
	idleIntervals     int           // idle CPU window, in resync intervals
	applyTimeout      time.Duration // loopctl apply --wait --timeout
	keep              bool          // keep the work dir (debugging)
	sizes             []int
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("estatebench", flag.ContinueOnError)
	fs.StringVar(&o.loopgate, "loopgate", "", "loopgate binary (default: go build ./cmd/loopgate into the work dir)")
	fs.StringVar(&o.loopctl, "loopctl", "", "loopctl binary (default: go build ./cmd/loopctl into the work dir)")
	fs.StringVar(&o.work, "work", "", "work dir for data dirs, HOME and loop files (default: a new temp dir, removed at the end)")
	fs.DurationVar(&o.resync, "resync", 10*time.Second, "resync interval of the server (config resync:)")
	fs.IntVar(&o.idleIntervals, "idle-intervals", 3, "idle CPU window, in resync intervals")
	fs.DurationVar(&o.applyTimeout, "apply-timeout", 10*time.Minute, "loopctl apply --wait --timeout")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: estatebench [flags] [SIZES...]   (default sizes: 1000 10000)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	for _, a := range fs.Args() {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > 99999 {
			fmt.Fprintf(os.Stderr, "estatebench: size %q: want a number of loops from 1 to 99999\n", a)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	if len(o.sizes) == 0 {
		o.sizes = []int{1000, 10000}
	}
	if o.resync < time.Second || o.idleIntervals < 1 {
		fmt.Fprintln(os.Stderr, "estatebench: -resync must be at least 1s and -idle-intervals at least 1")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "estatebench: interrupted; loopgate stopped and temp dirs removed")
			return 130
		}
		fmt.Fprintln(os.Stderr, "estatebench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options) error {
	if o.work == "" {
		dir, err := os.MkdirTemp("", "loopgate-estate-")
		if err != nil {
			return err
		}
		o.work = dir
		if o.keep {
			logf("keeping the work dir %s", dir)
		} else {
			defer os.RemoveAll(dir)
		}
	}
	if err := buildBinaries(ctx, &o); err != nil {
		return err
	}
	var err error
	if o.loopgate, err = filepath.Abs(o.loopgate); err != nil {
		return err
	}
	if o.loopctl, err = filepath.Abs(o.loopctl); err != nil {
		return err
	}

	rep := report{
		Date:       time.Now().Format(time.RFC3339),
		GoVersion:  goVersion(ctx),
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		LoadStart:  loadAvg(),
		ResyncSec:  o.resync.Seconds(),
		IdleWindow: (time.Duration(o.idleIntervals) * o.resync).Seconds(),
	}
	for _, n := range o.sizes {
		logf("=== %d loops", n)
		res, err := runSize(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%d loops: %w", n, err)
		}
		rep.Sizes = append(rep.Sizes, res)
	}
	rep.LoadEnd = loadAvg()
	printTable(os.Stdout, &rep)
	raw, err := json.Marshal(&rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\n%s\n", raw)
	return nil
}

// buildBinaries builds loopgate and loopctl into the work dir unless given.
func buildBinaries(ctx context.Context, o *options) error {
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&o.loopgate, "github.com/loopgate/loopgate/cmd/loopgate"}, {&o.loopctl, "github.com/loopgate/loopgate/cmd/loopctl"}} {
		if *b.path != "" {
			continue
		}
		out := filepath.Join(o.work, "bin", filepath.Base(b.pkg))
		logf("building %s", b.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", b.pkg, err)
		}
		*b.path = out
	}
	return nil
}

// runSize measures loopgate, then the floor, for n loops.
func runSize(ctx context.Context, o options, n int) (sizeResult, error) {
	res := sizeResult{Loops: n, Resources: 8 * n}
	dir := filepath.Join(o.work, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	defer func() {
		if !o.keep {
			_ = os.RemoveAll(dir) // the next size starts with the disk space back
		}
	}()
	if err := measureLoopgate(ctx, o, dir, n, &res); err != nil {
		return res, err
	}
	if err := measureFloor(ctx, dir, n, &res.Floor); err != nil {
		return res, fmt.Errorf("floor: %w", err)
	}
	logf("[%d] floor: apply %s (CreateTopics %s + CreateACLs %s), no-op diff %s", n,
		fmtDur(res.Floor.ApplySec), fmtDur(res.Floor.CreateTopicsSec), fmtDur(res.Floor.CreateACLsSec), fmtDur(res.Floor.NoopDiffSec))
	return res, nil
}

// logf reports progress on stderr (the table and JSON go to stdout).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// goVersion is `go version`, or the version this program was built with
// when go is not on PATH.
func goVersion(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "version").Output()
	if err != nil {
		return runtime.Version() + " (go not on PATH)"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// errTimeout marks a bounded wait that ran out.
var errTimeout = errors.New("timed out")
