package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/config"
)

// Per loop: one 6-partition stream, its own producer, consumer and group:
// 1 topic, 5 ACLs (producer WRITE+DESCRIBE, consumer READ+DESCRIBE on the
// topic, READ on the group), 2 quotas.
const (
	partitionsPerLoop = 6
	benchTeam         = "growth"
	benchCluster      = "eu-embedded"
)

func loopName(i int) string      { return fmt.Sprintf("bulk-%05d", i) }
func topicName(i int) string     { return benchTeam + "." + loopName(i) + ".events" }
func producerName(i int) string  { return fmt.Sprintf("User:bulk-producer-%d", i) }
func consumerName(i int) string  { return fmt.Sprintf("User:bulk-consumer-%d", i) }
func consumerGroup(i int) string { return fmt.Sprintf("bulk-group-%d", i) }

// loopsPerFile bounds the loops of one file: loopctl refuses a loop file
// over 4 MiB (loop.MaxFileBytes), about 5,800 of these loops.
const loopsPerFile = 1000

// writeLoops writes n loops of team growth, the shape of
// thousandLoopsFile (app/bench_thousand_test.go) with 6 partitions, as
// multi-document files of up to loopsPerFile loops in a new directory,
// which `loopctl apply -f DIR` reads in name order.
func writeLoops(dir string, n int) (string, error) {
	loopsDir := filepath.Join(dir, "loops")
	if err := os.MkdirAll(loopsDir, 0o700); err != nil {
		return "", err
	}
	for first := 0; first < n; first += loopsPerFile {
		var b strings.Builder
		for i := first; i < min(n, first+loopsPerFile); i++ {
			if i > first {
				b.WriteString("---\n")
			}
			fmt.Fprintf(&b, `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: %s, team: %s}
spec:
  description: bulk loop %d
  owners: [ana@example.com]
  classification: internal
  residency: eu
  retention: 24h
  slo: {latencyP99: 2s}
  throughput: {bytesPerSecond: 64KiB, peakFactor: 2, recordBytes: 200}
  streams:
    - name: events
      partitions: %d
      schema: {format: avro, definition: '{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}'}
  producers: [{principal: %q, streams: [events]}]
  consumers: [{principal: %q, group: %s, streams: [events]}]
`, loopName(i), benchTeam, i, partitionsPerLoop, producerName(i), consumerName(i), consumerGroup(i))
		}
		path := filepath.Join(loopsDir, fmt.Sprintf("loops-%05d.yaml", first))
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return "", err
		}
	}
	return loopsDir, nil
}

// fileConfig is the part of config.Config the benchmark writes.
type fileConfig struct {
	GRPCAddr       string            `yaml:"grpcAddr"`
	HTTPAddr       string            `yaml:"httpAddr"`
	DataDir        string            `yaml:"dataDir"`
	DevCredentials bool              `yaml:"devCredentials"`
	Resync         string            `yaml:"resync"`
	RateLimits     config.RateLimits `yaml:"rateLimits"`
	Clusters       []fileCluster     `yaml:"clusters"`
	Teams          []catalog.Team    `yaml:"teams"`
}

type fileCluster struct {
	Name              string   `yaml:"name"`
	Region            string   `yaml:"region"`
	Zones             []string `yaml:"zones"`
	ReplicationFactor int16    `yaml:"replicationFactor"`
	Embedded          bool     `yaml:"embedded"`
}

// writeConfig writes the embedded default (config.Embedded: the same
// clusters, teams and dev credentials) as a config file, with free ports
// on 127.0.0.1, the given resync, team growth's limits raised so that n
// loops fit, and the per-identity mutation rate limit off (it would
// otherwise throttle the plan and re-apply of a large estate: 20/s after a
// burst of 2000). It loads the file back with config.Load to check it.
func writeConfig(dir, dataDir string, n int, resync time.Duration) (string, error) {
	def := config.Embedded(dataDir)
	fc := fileConfig{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir, DevCredentials: true,
		Resync:     resync.String(),
		RateLimits: config.RateLimits{MutationsPerSecond: -1},
		Teams:      def.Teams,
	}
	for _, c := range def.Clusters {
		fc.Clusters = append(fc.Clusters, fileCluster{Name: c.Name, Region: c.Region, Zones: c.Zones, ReplicationFactor: c.ReplicationFactor, Embedded: c.Embedded})
	}
	found := false
	for i := range fc.Teams {
		if t := &fc.Teams[i]; t.Name == benchTeam {
			found = true
			t.MaxPartitions = max(t.MaxPartitions, int32(partitionsPerLoop*n+partitionsPerLoop))
			t.MaxPartitionsPerLoop = max(t.MaxPartitionsPerLoop, partitionsPerLoop)
		}
	}
	if !found {
		return "", fmt.Errorf("the embedded default has no team %q", benchTeam)
	}
	raw, err := yaml.Marshal(&fc)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "loopgate.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return "", err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", fmt.Errorf("the generated config does not load: %w", err)
	}
	if cfg.Resync != resync || !cfg.DevCredentials {
		return "", fmt.Errorf("the generated config %s reads back as resync %s, devCredentials %v", path, cfg.Resync, cfg.DevCredentials)
	}
	return path, nil
}

// kafkaCluster is one cluster as the server's start banner describes it.
type kafkaCluster struct {
	Name, Region string
	Bootstrap    []string
	Mechanism    string
	User, Pass   string
}

// server is a running `loopgate serve` child process.
type server struct {
	cmd      *exec.Cmd
	home     string
	logPath  string
	grpc     string
	clusters map[string]kafkaCluster // by name
	log      *os.File
	logMu    sync.Mutex
	done     chan struct{}
}

var (
	reGRPC    = regexp.MustCompile(`^\s*gRPC:\s+(\S+)`)
	reCluster = regexp.MustCompile(`^\s*cluster:\s+(\S+) \(region (\S+), \S+\) bootstrap (\S+)(?: SASL (\S+) user (\S+) password (\S+))?`)
)

// startServer runs `loopgate serve --config cfgPath` with HOME=home (where
// it writes the dev credentials), its output going to logPath, and waits
// (at most a minute) until its banner says it is ready.
func startServer(ctx context.Context, bin, cfgPath, home, logPath string) (*server, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	s := &server{home: home, logPath: logPath, log: logFile, clusters: map[string]kafkaCluster{}, done: make(chan struct{})}
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--log-level", "info")
	cmd.Env = append(cleanEnv(), "HOME="+home)
	cmd.SysProcAttr = childAttr()
	cmd.Stderr = &lockedWriter{mu: &s.logMu, w: logFile}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting loopgate: %w", err)
	}
	s.cmd = cmd
	ready := make(chan error, 1)
	var scanned sync.WaitGroup
	scanned.Go(func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			fmt.Fprintln(logFile, line)
			s.logMu.Unlock()
			if announced {
				continue
			}
			if m := reGRPC.FindStringSubmatch(line); m != nil {
				s.grpc = m[1]
			}
			if m := reCluster.FindStringSubmatch(line); m != nil {
				s.clusters[m[1]] = kafkaCluster{Name: m[1], Region: m[2], Bootstrap: strings.Split(m[3], ","), Mechanism: m[4], User: m[5], Pass: m[6]}
			}
			if strings.HasPrefix(line, "Press Ctrl+C to stop.") {
				announced = true
				ready <- nil
			}
		}
		if !announced {
			ready <- fmt.Errorf("loopgate exited before it was ready")
		}
	})
	go func() {
		scanned.Wait() // all output read before Wait closes the pipe
		_ = cmd.Wait()
		s.logMu.Lock()
		_ = logFile.Close()
		s.logMu.Unlock()
		close(s.done)
	}()
	select {
	case err = <-ready:
	case <-time.After(time.Minute):
		err = fmt.Errorf("loopgate not ready within a minute: %w", errTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil && (s.grpc == "" || s.clusters[benchCluster].Bootstrap == nil) {
		err = fmt.Errorf("the banner did not give the gRPC address and cluster %s", benchCluster)
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%w\n%s", err, s.logTail(40))
	}
	return s, nil
}

// stop sends SIGTERM and waits for the process (SIGKILL after a minute:
// the embedded clusters flush to disk on the way out).
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		logf("loopgate did not stop within a minute of SIGTERM; killing it")
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// logTail is the last n lines of the server's output.
func (s *server) logTail(n int) string {
	raw, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	return "--- loopgate output (last lines)\n" + tailLines(string(raw), n)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// cleanEnv is the environment without LOOPGATE_* variables a developer may
// have set.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LOOPGATE_") && !strings.HasPrefix(kv, "HOME=") {
			out = append(out, kv)
		}
	}
	return out
}

// loopctl runs the loopctl binary against one server: HOME holds the dev
// credentials loopgate wrote (the admin token), LOOPGATE_SERVER its
// address.
type loopctl struct {
	bin, home, server string
}

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout (last lines)\n%s--- stderr (last lines)\n%s",
		r.code, r.took.Round(time.Millisecond), tailLines(r.stdout, 20), tailLines(r.stderr, 20))
}

// run runs loopctl with args, bounded by timeout; took is its wall time.
func (c *loopctl) run(parent context.Context, timeout time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(cleanEnv(), "HOME="+c.home, "LOOPGATE_SERVER="+c.server)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err := parent.Err(); err != nil {
		return r, fmt.Errorf("loopctl %s: %w", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("loopctl %s: %w after %s", strings.Join(args, " "), errTimeout, timeout)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		return r, fmt.Errorf("running loopctl: %w", err)
	}
	return r, nil
}

func tailLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// procStat is what /proc/PID tells about a process.
type procStat struct {
	cpu  time.Duration // utime + stime
	rss  int64         // VmRSS, bytes
	peak int64         // VmHWM, bytes
}

var clkTck = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
})

// readProc reads utime+stime (/proc/PID/stat, ticks → seconds by
// getconf CLK_TCK) and VmRSS, VmHWM (/proc/PID/status).
func readProc(pid int) (procStat, error) {
	var ps procStat
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return ps, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[end+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ps, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	ticks := utime + stime
	tck := clkTck()
	ps.cpu = time.Duration(ticks/tck)*time.Second + time.Duration(ticks%tck)*time.Second/time.Duration(tck)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &ps.rss
		case "VmHWM":
			dst = &ps.peak
		default:
			continue
		}
		fs := strings.Fields(v) // "123456 kB"
		if len(fs) == 2 && fs[1] == "kB" {
			if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
				*dst = kb << 10
			}
		}
	}
	if ps.rss == 0 {
		return ps, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return ps, nil
}

// dirSize is the bytes and files under dir.
func dirSize(dir string) (bytes, files int64) {
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files
}
