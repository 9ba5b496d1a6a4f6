package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// report is everything one run measured (printed as the table and as one
// JSON line).
type report struct {
	Date       string       `json:"date"`
	GoVersion  string       `json:"goVersion"`
	CPU        string       `json:"cpu"`
	Cores      int          `json:"cores"`
	LoadStart  string       `json:"loadAvgStart"`
	LoadEnd    string       `json:"loadAvgEnd"`
	ResyncSec  float64      `json:"resyncSec"`
	IdleWindow float64      `json:"idleWindowSec"`
	Sizes      []sizeResult `json:"sizes"`
}

// sizeResult is one size's figures. Times are wall seconds; *CPUSec is
// loopgate's CPU time (user + system) over the same step.
type sizeResult struct {
	Loops     int `json:"loops"`
	Resources int `json:"adminResources"` // 8 per loop: 1 topic, 5 ACLs, 2 quotas

	ApplyWaitSec  float64 `json:"applyWaitSec"`
	ApplyCPUSec   float64 `json:"applyCpuSec"`
	PlanSec       float64 `json:"noopPlanSec"`
	PlanCPUSec    float64 `json:"noopPlanCpuSec"`
	ReapplySec    float64 `json:"noopReapplySec"`
	ReapplyCPUSec float64 `json:"noopReapplyCpuSec"`

	// DriftPassSec is the server's own figure (lastDriftPass.duration) of
	// the first pass over all loops that began after the re-apply;
	// DriftObserveSec the part of it spent observing the cluster.
	DriftPassSec    float64 `json:"driftPassSec"`
	DriftObserveSec float64 `json:"driftObserveSec"`
	DriftLoops      int     `json:"driftPassLoops"`
	DriftDrifted    int     `json:"driftPassDrifted"`

	IdleCPUPercent float64 `json:"idleCpuPercentOfOneCore"`
	RSSMiB         float64 `json:"rssMiB"`
	PeakRSSMiB     float64 `json:"peakRssMiB"`
	StoreMiB       float64 `json:"sqliteMiB"`
	KafkaDataMiB   float64 `json:"embeddedKafkaDataMiB"`
	KafkaDataFiles int64   `json:"embeddedKafkaDataFiles"`

	// RecreateSec: from the DeleteTopics response until the topic's
	// metadata shows it again with all its partitions. RecreateDetectSec:
	// from the deletion to the start of the drift pass that found it
	// (the wait for the resync tick); -1 when the server did not say.
	RecreateSec       float64 `json:"recreateSec"`
	RecreateDetectSec float64 `json:"recreateDetectSec"`
	RecreatedTopic    string  `json:"recreatedTopic"`

	Floor floorResult `json:"floor"`
}

// measureLoopgate runs steps a–f of the comparison on a loopgate serve
// child process.
func measureLoopgate(ctx context.Context, o options, dir string, n int, res *sizeResult) error {
	home := filepath.Join(dir, "home")
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	loops, err := writeLoops(dir, n)
	if err != nil {
		return err
	}
	cfgPath, err := writeConfig(dir, dataDir, n, o.resync)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, o.loopgate, cfgPath, home, filepath.Join(dir, "loopgate.log"))
	if err != nil {
		return err
	}
	defer srv.stop()
	fail := func(err error) error {
		if srv.exited() {
			err = fmt.Errorf("%w (loopgate has exited)", err)
		}
		return fmt.Errorf("%w\n%s", err, srv.logTail(30))
	}
	logf("[%d] loopgate serve pid %d, gRPC %s, %s at %s, resync %s", n, srv.pid(), srv.grpc, benchCluster,
		strings.Join(srv.clusters[benchCluster].Bootstrap, ","), o.resync)
	ctl := &loopctl{bin: o.loopctl, home: home, server: srv.grpc}

	// step runs loopctl, checks its exit code and output, and returns its
	// wall time and loopgate's CPU time meanwhile.
	step := func(name string, timeout time.Duration, check func(result) error, args ...string) (wall, cpu float64, err error) {
		before, err := readProc(srv.pid())
		if err != nil {
			return 0, 0, fail(err)
		}
		r, err := ctl.run(ctx, timeout, args...)
		if err != nil {
			return 0, 0, fail(fmt.Errorf("%s: %w\n%s", name, err, r))
		}
		after, err := readProc(srv.pid())
		if err != nil {
			return 0, 0, fail(err)
		}
		if r.code != 0 {
			return 0, 0, fail(fmt.Errorf("%s: loopctl %s\n%s", name, strings.Join(args, " "), r))
		}
		if err := check(r); err != nil {
			return 0, 0, fail(fmt.Errorf("%s: %w\n%s", name, err, r))
		}
		wall, cpu = r.took.Seconds(), (after.cpu - before.cpu).Seconds()
		logf("[%d] %s: %s (loopgate CPU %s)", n, name, fmtDur(wall), fmtDur(cpu))
		return wall, cpu, nil
	}

	// a. apply --wait until every loop is READY.
	allReady := fmt.Sprintf("waited for %d loops: %d READY", n, n)
	res.ApplyWaitSec, res.ApplyCPUSec, err = step("apply --wait", o.applyTimeout+2*time.Minute, func(r result) error {
		if !strings.Contains(r.stdout, allReady) {
			return fmt.Errorf("the output does not say %q", allReady)
		}
		return nil
	}, "apply", "-f", loops, "--wait", "--timeout", o.applyTimeout.String())
	if err != nil {
		return err
	}

	// b. no-op plan.
	res.PlanSec, res.PlanCPUSec, err = step("no-op plan", 15*time.Minute, func(r result) error {
		if got := strings.Count(r.stdout, "no resource changes: the cluster already matches"); got != n {
			return fmt.Errorf("%d of %d plans say the cluster already matches", got, n)
		}
		return nil
	}, "plan", "-f", loops)
	if err != nil {
		return err
	}

	// c. no-op re-apply.
	res.ReapplySec, res.ReapplyCPUSec, err = step("no-op re-apply", 15*time.Minute, func(r result) error {
		got := 0
		for line := range strings.SplitSeq(r.stdout, "\n") {
			if strings.HasSuffix(line, " unchanged") {
				got++
			}
		}
		if got != n {
			return fmt.Errorf("%d of %d loops unchanged", got, n)
		}
		return nil
	}, "apply", "-f", loops)
	if err != nil {
		return err
	}
	reapplied := time.Now()

	// d. one drift pass over all loops, begun after the re-apply (so on an
	// otherwise idle server), as the server reports it.
	pass, err := waitDriftPass(ctx, ctl, 2*o.resync+5*time.Minute, func(p *driftPass) bool {
		return p.Loops == n && p.StartTime.After(reapplied)
	})
	if err != nil {
		return fail(fmt.Errorf("drift pass: %w", err))
	}
	res.DriftPassSec, res.DriftObserveSec = pass.duration.Seconds(), pass.observe.Seconds()
	res.DriftLoops, res.DriftDrifted = pass.Loops, pass.Drifted
	logf("[%d] drift pass: %s over %d loops (observe %s), %d drifted", n, fmtDur(res.DriftPassSec), pass.Loops, fmtDur(res.DriftObserveSec), pass.Drifted)

	// e. idle CPU over a window of resync intervals with no requests; RSS.
	window := time.Duration(o.idleIntervals) * o.resync
	p0, err := readProc(srv.pid())
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	p1, err := readProc(srv.pid())
	if err != nil {
		return fail(err)
	}
	res.IdleCPUPercent = 100 * (p1.cpu - p0.cpu).Seconds() / time.Since(t0).Seconds()
	res.RSSMiB, res.PeakRSSMiB = float64(p1.rss)/(1<<20), float64(p1.peak)/(1<<20)
	kb, kf := dirSize(filepath.Join(dataDir, "kafka", benchCluster))
	res.KafkaDataMiB, res.KafkaDataFiles = float64(kb)/(1<<20), kf
	res.StoreMiB = float64(sqliteSize(dataDir)) / (1 << 20)
	logf("[%d] idle over %s: CPU %.2f%% of one core, RSS %.0f MiB (peak %.0f MiB); SQLite %.1f MiB; embedded kafka data %.0f MiB in %d files",
		n, window, res.IdleCPUPercent, res.RSSMiB, res.PeakRSSMiB, res.StoreMiB, res.KafkaDataMiB, res.KafkaDataFiles)

	// f. a topic deleted behind loopgate's back.
	if err := measureRecreate(ctx, ctl, srv.clusters[benchCluster], topicName(n/2), res); err != nil {
		return fail(fmt.Errorf("deleted-topic recreation: %w", err))
	}
	detect := "unknown"
	if res.RecreateDetectSec >= 0 {
		detect = fmtDur(res.RecreateDetectSec)
	}
	logf("[%d] %s deleted: recreated after %s (drift pass began %s after the deletion)", n, res.RecreatedTopic, fmtDur(res.RecreateSec), detect)
	t := time.Now()
	srv.stop()
	logf("[%d] loopgate stopped (SIGTERM) in %s", n, fmtDur(time.Since(t).Seconds()))
	return nil
}

// sqliteSize is the bytes of the SQLite store (loopgate.db with its -wal
// and -shm files) in dataDir.
func sqliteSize(dataDir string) int64 {
	matches, _ := filepath.Glob(filepath.Join(dataDir, "loopgate.db*"))
	var total int64
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil {
			total += info.Size()
		}
	}
	return total
}

// driftPass is lastDriftPass of `loopctl clusters -o json` (the proto
// Cluster.last_drift_pass in protojson form).
type driftPass struct {
	StartTime       time.Time  `json:"startTime"`
	Duration        string     `json:"duration"`
	ObserveDuration string     `json:"observeDuration"`
	Loops           int        `json:"loops"`
	Drifted         int        `json:"drifted"`
	Unsettled       int        `json:"unsettled"`
	Error           string     `json:"error"`
	LastDriftTime   *time.Time `json:"lastDriftTime"`

	duration, observe time.Duration
}

type clustersJSON struct {
	Clusters []struct {
		Name             string     `json:"name"`
		BootstrapServers []string   `json:"bootstrapServers"`
		LastDriftPass    *driftPass `json:"lastDriftPass"`
	} `json:"clusters"`
}

// lastDriftPass reads the last drift pass of the bench cluster with
// `loopctl clusters -o json`; nil when none ran yet.
func lastDriftPass(ctx context.Context, ctl *loopctl) (*driftPass, error) {
	r, err := ctl.run(ctx, time.Minute, "clusters", "-o", "json")
	if err != nil {
		return nil, err
	}
	if r.code != 0 {
		return nil, fmt.Errorf("loopctl clusters -o json\n%s", r)
	}
	var cj clustersJSON
	if err := json.Unmarshal([]byte(r.stdout), &cj); err != nil {
		return nil, fmt.Errorf("loopctl clusters -o json: %w\n%s", err, tailLines(r.stdout, 20))
	}
	for _, c := range cj.Clusters {
		if c.Name != benchCluster || c.LastDriftPass == nil {
			continue
		}
		p := c.LastDriftPass
		if p.Duration != "" {
			if p.duration, err = time.ParseDuration(p.Duration); err != nil {
				return nil, fmt.Errorf("lastDriftPass.duration %q: %w", p.Duration, err)
			}
		}
		if p.ObserveDuration != "" {
			if p.observe, err = time.ParseDuration(p.ObserveDuration); err != nil {
				return nil, fmt.Errorf("lastDriftPass.observeDuration %q: %w", p.ObserveDuration, err)
			}
		}
		return p, nil
	}
	return nil, nil
}

// waitDriftPass polls lastDriftPass every 500 ms until want accepts it,
// for at most bound.
func waitDriftPass(ctx context.Context, ctl *loopctl, bound time.Duration, want func(*driftPass) bool) (*driftPass, error) {
	deadline := time.Now().Add(bound)
	var last *driftPass
	for {
		p, err := lastDriftPass(ctx, ctl)
		if err != nil {
			return nil, err
		}
		if p != nil {
			if p.Error != "" {
				return nil, fmt.Errorf("the drift pass could not observe the cluster: %s", p.Error)
			}
			if want(p) {
				return p, nil
			}
			last = p
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no suitable drift pass within %s (last: %+v): %w", bound, last, errTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// measureRecreate deletes topic with an independent franz-go admin client
// (the superuser credentials the server's banner printed) and times until
// the topic exists again with all its partitions, polling metadata every
// 50 ms for at most 2 minutes.
func measureRecreate(ctx context.Context, ctl *loopctl, kc kafkaCluster, topic string, res *sizeResult) error {
	if kc.Mechanism != "SCRAM-SHA-512" || kc.User == "" {
		return fmt.Errorf("the banner gave no SCRAM-SHA-512 credentials for %s (mechanism %q)", kc.Name, kc.Mechanism)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Bootstrap...), kgo.MetadataMinAge(50*time.Millisecond),
		kgo.SASL(scram.Auth{User: kc.User, Pass: kc.Pass}.AsSha512Mechanism()))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// The topic counts as recreated once its metadata shows it with a new
	// topic ID and all its partitions: kfake's Metadata may still show the
	// deleted topic for a moment after DeleteTopics has answered.
	describe := func() (kadm.TopicDetail, error) {
		qctx, cancel := context.WithTimeout(rctx, 10*time.Second)
		defer cancel()
		td, err := adm.ListTopics(qctx, topic)
		if err != nil {
			return kadm.TopicDetail{}, err
		}
		return td[topic], nil
	}
	before, err := describe()
	if err != nil || before.Err != nil || len(before.Partitions) != partitionsPerLoop {
		return fmt.Errorf("topic %s is not there with %d partitions before the deletion (err %v, %v)", topic, partitionsPerLoop, err, before.Err)
	}
	resp, err := adm.DeleteTopics(rctx, topic)
	if err != nil {
		return err
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("deleting %s: %w", topic, err)
	}
	deleted := time.Now()
	res.RecreatedTopic = topic
	exists := func() (bool, error) {
		d, err := describe()
		if err != nil {
			return false, err
		}
		return d.Err == nil && d.ID != before.ID && len(d.Partitions) == partitionsPerLoop, nil
	}
	deadline := deleted.Add(2 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := exists()
		if err != nil {
			return err
		}
		if ok {
			res.RecreateSec = time.Since(deleted).Seconds()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not recreated within 2 minutes: %w", topic, errTimeout)
		}
		select {
		case <-rctx.Done():
			return rctx.Err()
		case <-tick.C:
		}
	}
	res.RecreateDetectSec = -1
	if p, err := lastDriftPass(ctx, ctl); err == nil && p != nil && p.LastDriftTime != nil && !p.LastDriftTime.Before(deleted.Add(-time.Second)) {
		res.RecreateDetectSec = max(0, p.LastDriftTime.Sub(deleted).Seconds())
	}
	return nil
}
