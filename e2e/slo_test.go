package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/protobuf/encoding/protojson"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

var (
	exampleBinsOnce sync.Once
	exampleBinsErr  error
)

// exampleBin builds examples/NAME once and returns its path.
func exampleBin(t *testing.T, name string) string {
	t.Helper()
	exampleBinsOnce.Do(func() {
		for _, b := range []string{"acting-service", "load-producer"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, b), "../examples/"+b).CombinedOutput()
			if err != nil {
				exampleBinsErr = fmt.Errorf("building examples/%s: %v\n%s", b, err, out)
				return
			}
		}
	})
	if exampleBinsErr != nil {
		t.Fatal(exampleBinsErr)
	}
	return filepath.Join(binDir, name)
}

// proc is a running example program.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuf
	done chan struct{}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startExample(t *testing.T, bin, password string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KAFKA_PASSWORD="+password)
	p := &proc{cmd: cmd, out: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for the program to finish (it writes what
// is due and commits), SIGKILL after 20 s.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 20s:\n%s", filepath.Base(p.cmd.Path), p.out.String())
	}
}

// loopStatus is `loopctl get KEY -o json` as the API message.
func loopStatus(t *testing.T, home string, env []string, key string) *lgv1.Loop {
	t.Helper()
	r := loopctl(t, home, env, "get", key, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("loopctl get %s: %s", key, r)
	}
	var l lgv1.Loop
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(r.Stdout), &l); err != nil {
		t.Fatalf("decoding loopctl get -o json: %v\n%s", err, r.Stdout)
	}
	return &l
}

func condition(l *lgv1.Loop, typ string) *lgv1.Condition {
	for _, c := range l.GetStatus().GetConditions() {
		if c.GetType() == typ {
			return c
		}
	}
	return nil
}

// waitStatus polls the loop until ok accepts it (or fails after within).
func waitStatus(t *testing.T, home string, env []string, key string, within time.Duration, what string, ok func(*lgv1.Loop) bool) *lgv1.Loop {
	t.Helper()
	var l *lgv1.Loop
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(time.Second) {
		if l = loopStatus(t, home, env, key); ok(l) {
			return l
		}
	}
	t.Fatalf("%s: not within %v; last status:\nslo %v\nlag %v\nconditions %v", what, within, l.GetStatus().GetSlo(), l.GetStatus().GetLag(), l.GetStatus().GetConditions())
	return nil
}

// actionLatencies reads every record of the action topic (as the cluster's
// admin, independently of loopgate's sampler) and returns ts − origin in
// ms for those whose action timestamp is in [from, to].
func actionLatencies(t *testing.T, c cluster, topic string, from, to time.Time) (lat []float64, without int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap...),
		kgo.SASL(scram.Auth{User: c.User, Pass: c.Pass}.AsSha512Mechanism()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	idle := 0
	for idle < 3 {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			break
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if r.Timestamp.Before(from) || r.Timestamp.After(to) {
				return
			}
			for _, h := range r.Headers {
				if h.Key == "loopgate-origin-ts" {
					o, err := strconv.ParseInt(string(h.Value), 10, 64)
					if err == nil {
						lat = append(lat, float64(r.Timestamp.UnixMilli()-o))
						return
					}
				}
			}
			without++
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return lat, without
}

// exactQuantile is the q-quantile of xs by rank (the DDSketch definition:
// the value at rank ⌊q·(n−1)⌋ of the sorted values).
func exactQuantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

var reMeasured = regexp.MustCompile(`p99 over the last minute is (\S+), above the target (\S+)`)

// TestLoopSLOEndToEnd runs a producer and the reference acting service
// (examples/) against the embedded default with nothing but what loopctl
// printed, and checks loopgate's SLO and lag against ground truth the test
// measures itself: the reported 1m p99 is within 10% of the exact p99 of
// the action records; a delay above the SLO flips SLOMet to False with the
// measured value; stopping the consumer grows its time lag and flips Fresh.
func TestLoopSLOEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end SLO test: about two minutes")
	}
	actor := exampleBin(t, "acting-service")
	producer := exampleBin(t, "load-producer")
	home, data := t.TempDir(), t.TempDir()
	srv := startServer(t, home, data)

	// The reference loop, with a freshness target short enough to see it missed.
	spec, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(t.TempDir(), "loop.yaml")
	if err := os.WriteFile(specFile, []byte(strings.Replace(string(spec), "freshness: 30s", "freshness: 10s", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The plan is complete: the observer's read access to the action topic
	// is a derived resource like every other grant.
	if r := loopctl(t, home, nil, "plan", "-f", specFile); r.Code != 0 || !strings.Contains(r.Stdout, "User:loopgate-observer") {
		t.Errorf("the plan does not show the observer's ACL on the action topic: %s", r)
	}
	if r := loopctl(t, home, nil, "apply", "-f", specFile, "--wait"); r.Code != 0 {
		t.Fatalf("apply: %s", r)
	}
	const key, events, actions = "growth/checkout-nudge", "growth.checkout-nudge.events", "growth.checkout-nudge.actions"
	growth := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "growth")}

	// The plan and contract say what loopgate needs: the observer's read
	// ACL on the action topic, the origin header for the acting principal.
	contract := loopctl(t, home, growth, "contract", key, "--principal", "nudge-engine", "--client", "franz-go")
	if !strings.Contains(contract.Stdout, "loopgate-origin-ts") || !strings.Contains(contract.Stdout, "strconv.FormatInt(ev.Timestamp.UnixMilli(), 10)") {
		t.Errorf("the acting principal's contract does not name the origin header:\n%s", contract)
	}
	if c := loopctl(t, home, growth, "contract", key, "--principal", "checkout-api", "--client", "java"); strings.Contains(c.Stdout, "loopgate-origin-ts") {
		t.Errorf("the producer's contract names the origin header:\n%s", c)
	}

	prodCreds := issueCredentials(t, home, growth, "growth/checkout-api", false)
	actCreds := issueCredentials(t, home, growth, "growth/nudge-engine", false)
	brokers := strings.Join(actCreds.Endpoints[0].BootstrapServers, ",")
	actArgs := func(delay, jitter string) []string {
		return []string{"--brokers", brokers, "--user", actCreds.Username, "--group", "nudge-engine",
			"--events", events, "--actions", actions, "--delay", delay, "--jitter", jitter, "--commit-interval", "500ms"}
	}

	// Sampling starts once the loop is observed: NoTraffic before any action.
	waitStatus(t, home, growth, key, 40*time.Second, "SLO status observed (NoTraffic)", func(l *lgv1.Loop) bool {
		return l.GetStatus().GetSlo().GetReason() == "NoTraffic"
	})

	// Phase 1: 50 events/s, acted on after 50–150 ms.
	act := startExample(t, actor, actCreds.Password, actArgs("50ms", "100ms")...)
	time.Sleep(3 * time.Second) // the acting service joins its group
	prod := startExample(t, producer, prodCreds.Password, "--brokers", brokers, "--user", prodCreds.Username, "--topic", events, "--rate", "50")
	start := time.Now()
	time.Sleep(20 * time.Second)
	// Stop producing, let the acting service finish, then read what
	// loopgate reports once it has evaluated past the last action.
	prod.stop(t)
	time.Sleep(500 * time.Millisecond)
	act.stop(t)
	end := time.Now()
	l := waitStatus(t, home, growth, key, 30*time.Second, "SLO evaluated after phase 1", func(l *lgv1.Loop) bool {
		s := l.GetStatus().GetSlo()
		return s.GetObserveTime().AsTime().After(end) && len(s.GetWindows()) == 3 && s.GetWindows()[0].GetRecords() > 0
	})
	lat, without := actionLatencies(t, srv.Clusters["eu"], actions, start.Add(-5*time.Second), end)
	if len(lat) < 500 || without != 0 {
		t.Fatalf("ground truth: %d action records with the header, %d without; want ≥ 500 and 0\nactor:\n%s", len(lat), without, act.out.String())
	}
	truth := exactQuantile(lat, 0.99)
	w := l.GetStatus().GetSlo().GetWindows()[0]
	t.Logf("phase 1: %d action records, exact p99 %.1f ms; loopgate 1m p99 %.1f ms p50 %.1f ms over %d sampled records (budget left %.2f)",
		len(lat), truth, w.GetP99Ms(), w.GetP50Ms(), w.GetRecords(), w.GetErrorBudgetRemaining())
	if w.GetWindow() != "1m" || w.GetP99Ms() < 0.9*truth || w.GetP99Ms() > 1.1*truth {
		t.Errorf("loopgate's 1m p99 %.1f ms is not within 10%% of the measured %.1f ms", w.GetP99Ms(), truth)
	}
	if w.GetRecords() < int64(len(lat))/2 {
		t.Errorf("loopgate sampled %d of %d action records at 50/s (below the cap: it should see nearly all)", w.GetRecords(), len(lat))
	}
	if s := l.GetStatus().GetSlo(); s.GetState() != lgv1.SloStatus_MET || s.GetTargetP99Ms() != 2000 {
		t.Errorf("phase 1 SLO %v %s (%s), want MET against 2000 ms", s.GetState(), s.GetReason(), s.GetMessage())
	}
	if c := condition(l, "SLOMet"); c == nil || c.GetStatus() != "True" || c.GetReason() != "Met" {
		t.Errorf("SLOMet after phase 1 = %v, want True/Met", c)
	}
	// The listing (the portal's overview) carries the SLO state too.
	if r := loopctl(t, home, growth, "get", "--team", "growth", "-o", "json"); r.Code != 0 {
		t.Errorf("loopctl get --team growth: %s", r)
	} else {
		var list lgv1.ListLoopsResponse
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(r.Stdout), &list); err != nil {
			t.Fatalf("decoding loopctl get --team growth -o json: %v", err)
		}
		found := false
		for _, ll := range list.GetLoops() {
			if ll.GetName() == l.GetName() {
				found = true
				if ll.GetStatus().GetSlo().GetState() != lgv1.SloStatus_MET || condition(ll, "SLOMet") == nil {
					t.Errorf("listed SLO %v, conditions %v; want MET with SLOMet", ll.GetStatus().GetSlo(), ll.GetStatus().GetConditions())
				}
			}
		}
		if !found {
			t.Errorf("the listing lacks %s", l.GetName())
		}
	}

	// Phase 2: a 3 s delay, above the 2 s SLO.
	act = startExample(t, actor, actCreds.Password, actArgs("3s", "0s")...)
	prod = startExample(t, producer, prodCreds.Password, "--brokers", brokers, "--user", prodCreds.Username, "--topic", events, "--rate", "50")
	l = waitStatus(t, home, growth, key, 60*time.Second, "SLOMet False after injecting a 3s delay", func(l *lgv1.Loop) bool {
		c := condition(l, "SLOMet")
		return c != nil && c.GetStatus() == "False"
	})
	c := condition(l, "SLOMet")
	p99 := l.GetStatus().GetSlo().GetWindows()[0].GetP99Ms()
	m := reMeasured.FindStringSubmatch(c.GetMessage())
	if c.GetReason() != "Breach" || m == nil || m[2] != "2s" {
		t.Fatalf("SLOMet = %v, want reason Breach and a message with the measured p99 above the target 2s", c)
	}
	measured, err := time.ParseDuration(m[1])
	if err != nil || float64(measured.Milliseconds()) < 0.99*p99 || float64(measured.Milliseconds()) > 1.01*p99 || p99 < 2000 {
		t.Errorf("the message's measured p99 %q does not match the reported 1m p99 %.0f ms (> 2000)", m[1], p99)
	}
	t.Logf("phase 2: %s", c.GetMessage())

	// Phase 3: the consumer stops while producing continues: its time lag
	// grows and Fresh flips to False.
	act.stop(t)
	first := waitStatus(t, home, growth, key, 30*time.Second, "consumer lag observed", func(l *lgv1.Loop) bool {
		for _, g := range l.GetStatus().GetLag() {
			if g.GetGroup() == "nudge-engine" && g.GetOffsetLag() > 0 && g.GetTimeLagMs() > 0 {
				return true
			}
		}
		return false
	})
	lagOf := func(l *lgv1.Loop) *lgv1.ConsumerGroupLag {
		for _, g := range l.GetStatus().GetLag() {
			if g.GetGroup() == "nudge-engine" {
				return g
			}
		}
		return nil
	}
	l = waitStatus(t, home, growth, key, 60*time.Second, "Fresh False after the consumer stopped", func(l *lgv1.Loop) bool {
		c := condition(l, "Fresh")
		return c != nil && c.GetStatus() == "False"
	})
	g0, g1 := lagOf(first), lagOf(l)
	t.Logf("phase 3: lag %d records %d ms, then %d records %d ms; Fresh: %s", g0.GetOffsetLag(), g0.GetTimeLagMs(), g1.GetOffsetLag(), g1.GetTimeLagMs(), condition(l, "Fresh").GetMessage())
	if g1.GetTimeLagMs() <= g0.GetTimeLagMs() || g1.GetOffsetLag() <= g0.GetOffsetLag() || g1.GetTimeLagMs() <= 10_000 || g1.GetFreshnessMs() != 10_000 {
		t.Errorf("lag did not grow past the 10 s freshness: %v then %v", g0, g1)
	}
	if len(g1.GetPartitions()) != 12 {
		t.Errorf("lag has %d partitions, want the 12 of %s", len(g1.GetPartitions()), events)
	}

	// loopctl status says it all in one place.
	st := loopctl(t, home, growth, "status", key)
	for _, want := range []string{"SLO:", "P99", "1m", "28d", "nudge-engine", "FRESHNESS", "Fresh=False"} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("loopctl status lacks %q:\n%s", want, st)
		}
	}
	prod.stop(t)
}
