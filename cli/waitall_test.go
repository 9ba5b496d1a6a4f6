package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// fleet is the server side of `apply --wait` (and `delete --wait`) for the
// fake server: loops are created PROVISIONING, and each read of a loop (a
// ListLoops poll, that is its first page, or a GetLoop) lets evolve give it
// a new status, or remove it (goneStatus).
type fleet struct {
	loops  map[string]*loopgatev1.Loop
	reads  map[string]int
	polls  int // ListLoops first pages
	page   int // loops per ListLoops page, fewer than asked to exercise paging
	evolve func(name string, reads int) *loopgatev1.LoopStatus
}

func newFleet(f *fakeServer, evolve func(name string, reads int) *loopgatev1.LoopStatus) *fleet {
	fl := &fleet{loops: map[string]*loopgatev1.Loop{}, reads: map[string]int{}, page: 30, evolve: evolve}
	f.createLoop = func(req *loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error) {
		name := req.GetParent() + "/loops/" + req.GetLoopId()
		fl.loops[name] = &loopgatev1.Loop{Name: name, Generation: 1, Spec: req.GetLoop().GetSpec(),
			Status: &loopgatev1.LoopStatus{State: loopgatev1.Loop_PROVISIONING}}
		return proto.Clone(fl.loops[name]).(*loopgatev1.Loop), nil
	}
	f.getLoop = func(req *loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
		l, ok := fl.loops[req.GetName()]
		if !ok {
			return nil, status.Error(codes.NotFound, "no such loop")
		}
		fl.read(l)
		if _, ok := fl.loops[req.GetName()]; !ok {
			return nil, status.Error(codes.NotFound, "no such loop")
		}
		return proto.Clone(l).(*loopgatev1.Loop), nil
	}
	f.listLoops = func(req *loopgatev1.ListLoopsRequest) (*loopgatev1.ListLoopsResponse, error) {
		teamLoops := func() []string {
			var names []string
			for name := range fl.loops {
				if strings.HasPrefix(name, req.GetParent()+"/") {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			return names
		}
		from, _ := strconv.Atoi(req.GetPageToken())
		if from == 0 {
			fl.polls++
			for _, name := range teamLoops() {
				fl.read(fl.loops[name])
			}
		}
		names := teamLoops() // without those removed by their read
		to := min(from+min(fl.page, int(req.GetPageSize())), len(names))
		resp := &loopgatev1.ListLoopsResponse{}
		for _, name := range names[from:to] {
			resp.Loops = append(resp.Loops, proto.Clone(fl.loops[name]).(*loopgatev1.Loop))
		}
		if to < len(names) {
			resp.NextPageToken = strconv.Itoa(to)
		}
		return resp, nil
	}
	return fl
}

// goneStatus, returned by a fleet's evolve, removes the loop.
var goneStatus = &loopgatev1.LoopStatus{}

func (fl *fleet) read(l *loopgatev1.Loop) {
	fl.reads[l.GetName()]++
	switch st := fl.evolve(l.GetName(), fl.reads[l.GetName()]); {
	case st == goneStatus:
		delete(fl.loops, l.GetName())
	case st != nil:
		l.Status = st
	}
}

// loopNumber is the N of teams/growth/loops/loop-N.
func loopNumber(name string) int {
	n, _ := strconv.Atoi(name[strings.LastIndex(name, "-")+1:])
	return n
}

var (
	readyStatus = &loopgatev1.LoopStatus{State: loopgatev1.Loop_READY, ObservedGeneration: 1,
		Conditions: []*loopgatev1.Condition{{Type: "Provisioned", Status: "True", Reason: "Provisioned", Message: "all resources exist"}}}
	failedStatus = &loopgatev1.LoopStatus{State: loopgatev1.Loop_FAILED, ObservedGeneration: 1,
		Conditions: []*loopgatev1.Condition{{Type: "Provisioned", Status: "False", Reason: "TopicCreateFailed", Message: "INVALID_REPLICATION_FACTOR"}}}
	awaitingStatus = &loopgatev1.LoopStatus{State: loopgatev1.Loop_PENDING_APPROVAL,
		Approvals: []*loopgatev1.ApprovalProgress{{Id: "latency-floor", Role: "platform", Required: 1}}}
)

// writeLoops writes a file of n copies of the example, named loop-00 on.
func writeLoops(t *testing.T, n int) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for i := range n {
		doc := strings.Replace(string(example), "  name: checkout-nudge ", fmt.Sprintf("  name: loop-%02d ", i), 1)
		if doc == string(example) {
			t.Fatal("could not rename the example (has its layout changed?)")
		}
		docs = append(docs, doc)
	}
	path := filepath.Join(t.TempDir(), "loops.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var regexpElapsed = regexp.MustCompile(`\([0-9.]+s\)`)

// progressLines are the "waiting for"/"waited for" lines of stdout.
func progressLines(stdout string) []string {
	var out []string
	for line := range strings.SplitSeq(stdout, "\n") {
		if strings.HasPrefix(line, "waiting for ") || strings.HasPrefix(line, "waited for ") {
			out = append(out, line)
		}
	}
	return out
}

func TestApplyWaitFollowsManyLoopsWithOneListPerPoll(t *testing.T) {
	f := &fakeServer{}
	// loop-00..19 are READY at the first poll, 20..39 at the second, the
	// rest at the third.
	fl := newFleet(f, func(name string, reads int) *loopgatev1.LoopStatus {
		if reads >= loopNumber(name)/20+1 {
			return readyStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 50), "--wait")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if fl.polls != 3 {
		t.Errorf("%d polls, want 3", fl.polls)
	}
	// The apply reads each loop once; waiting reads none of them one by one.
	if gets := len(sent[*loopgatev1.GetLoopRequest](f)); gets != 50 {
		t.Errorf("%d GetLoop requests, want 50 (one per loop, before creating it)", gets)
	}
	lists := sent[*loopgatev1.ListLoopsRequest](f)
	if len(lists) > 2*fl.polls { // two pages of the team per poll at most
		t.Errorf("%d ListLoops requests for %d polls, want at most one per page and poll", len(lists), fl.polls)
	}
	for _, l := range lists {
		if l.GetParent() != "teams/growth" || l.GetPageSize() != waitPageSize {
			t.Errorf("ListLoops parent %q page size %d, want teams/growth and %d", l.GetParent(), l.GetPageSize(), waitPageSize)
		}
	}
	if strings.Count(stdout, " created\n") != 50 {
		t.Errorf("stdout does not report the 50 creations:\n%s", stdout)
	}
	if strings.Contains(stdout, "is READY") || strings.Contains(stdout, "  state ") {
		t.Errorf("50 loops are reported loop by loop:\n%s", stdout)
	}
	lines := progressLines(stdout)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "waiting for 50 loops: 50 PROVISIONING (") ||
		!strings.HasPrefix(lines[len(lines)-1], "waited for 50 loops: 50 READY (") {
		t.Fatalf("progress lines:\n%s", strings.Join(lines, "\n"))
	}
	// Well under a second of polls: the first line and the last one, and
	// a middle one only if the machine is slow.
	if len(lines) > 3 {
		t.Errorf("progress not throttled to a line a second:\n%s", strings.Join(lines, "\n"))
	}
}

func TestApplyWaitReportsAFailedLoopWithItsReason(t *testing.T) {
	f := &fakeServer{}
	fl := newFleet(f, func(name string, reads int) *loopgatev1.LoopStatus {
		switch n := loopNumber(name); {
		case n == 7 && reads >= 2:
			return failedStatus
		case n == 8:
			return awaitingStatus
		case n != 7 && reads >= 2:
			return readyStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 50), "--wait")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, "error: teams/growth/loops/loop-07 FAILED: Provisioned: INVALID_REPLICATION_FACTOR\n"); n != 1 {
		t.Errorf("the FAILED loop is reported %d times, want once:\n%s", n, stderr)
	}
	if n := strings.Count(stdout, "teams/growth/loops/loop-08 PENDING_APPROVAL: latency-floor needs 1 more platform approval(s)"); n != 1 {
		t.Errorf("the loop awaiting approval is reported %d times, want once:\n%s", n, stdout)
	}
	lines := progressLines(stdout)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "waited for 50 loops: 48 READY, 1 PENDING_APPROVAL, 1 FAILED (") {
		t.Errorf("last progress line %q", last)
	}
	if fl.polls != 2 {
		t.Errorf("%d polls, want 2", fl.polls)
	}
}

func TestApplyWaitTimeoutNamesThePendingLoops(t *testing.T) {
	f := &fakeServer{}
	newFleet(f, func(name string, reads int) *loopgatev1.LoopStatus {
		if loopNumber(name) < 10 {
			return readyStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 50), "--wait", "--timeout", "400ms")
	if code != 2 {
		t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := "error: timed out after 400ms waiting for 40 of 50 loops, still pending: growth/loop-10 (PROVISIONING), growth/loop-11 (PROVISIONING), "
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "growth/loop-29 (PROVISIONING) and 20 more; raise --timeout") ||
		strings.Contains(stderr, "loop-30") || strings.Contains(stderr, "loop-09") {
		t.Errorf("timeout does not name the first 20 pending loops:\n%s", stderr)
	}
	lines := progressLines(stdout)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "waiting for 50 loops: 10 READY, 40 PROVISIONING (") {
		t.Errorf("last progress line %q", last)
	}
}

func TestApplyWaitFollowsAFewLoopsOneByOne(t *testing.T) {
	f := &fakeServer{}
	newFleet(f, func(name string, reads int) *loopgatev1.LoopStatus {
		// reads counts the apply's GetLoop after the creation too: none.
		if reads >= loopNumber(name)+1 {
			return readyStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 3), "--wait")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for i := range 3 {
		name := fmt.Sprintf("teams/growth/loops/loop-%02d", i)
		if !strings.Contains(stdout, name+" is READY\n") || !strings.Contains(stdout, fmt.Sprintf("  growth/loop-%02d: state READY\n", i)) {
			t.Errorf("%s is not followed:\n%s", name, stdout)
		}
	}
	if lists := sent[*loopgatev1.ListLoopsRequest](f); len(lists) != 0 || len(progressLines(stdout)) != 0 {
		t.Errorf("a few loops are polled with ListLoops or summed up:\n%s", stdout)
	}
}

func TestApplyWaitOfOneLoopPrintsItsProgress(t *testing.T) {
	f := &fakeServer{}
	newFleet(f, func(name string, reads int) *loopgatev1.LoopStatus {
		if reads >= 2 {
			return readyStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 1), "--wait")
	want := "teams/growth/loops/loop-00 created\n" +
		"  state PROVISIONING\n" +
		"  state READY\n" +
		"  condition Provisioned=True (Provisioned): all resources exist\n" +
		"teams/growth/loops/loop-00 is READY\n"
	if code != 0 || stdout != want {
		t.Errorf("exit %d\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
}

func TestProgressLineOnlyOnChangeAndAtMostOnceASecond(t *testing.T) {
	var buf strings.Builder
	w := &waiter{stdout: &buf, table: true, loops: map[string]*loopgatev1.Loop{}, verdicts: map[string]waitVerdict{}}
	for i := range 12 {
		name := fmt.Sprintf("teams/growth/loops/loop-%02d", i)
		w.names = append(w.names, name)
		w.loops[name] = loopIn(loopgatev1.Loop_PROVISIONING, 1, 0)
	}
	w.pending = w.names
	w.report(false) // the first line
	w.report(false) // nothing changed
	w.verdicts[w.names[0]] = doneReady
	w.report(false) // changed, but within a second of the last line
	w.lastAt = w.lastAt.Add(-progressEvery)
	w.report(false) // a second later: the change
	w.report(false) // nothing changed
	w.verdicts[w.names[1]] = doneFailed
	w.loops[w.names[2]] = loopIn(loopgatev1.Loop_READY, 2, 1) // READY of generation 1 only
	w.report(true)                                            // the final line, whenever
	got := regexpElapsed.ReplaceAllString(buf.String(), "(Xs)")
	want := "waiting for 12 loops: 12 PROVISIONING (Xs)\n" +
		"waiting for 12 loops: 1 READY, 11 PROVISIONING (Xs)\n" +
		"waiting for 12 loops: 1 READY, 1 FAILED, 9 PROVISIONING, 1 UPDATING (Xs)\n"
	if got != want {
		t.Errorf("progress lines\n%s\nwant\n%s", got, want)
	}
}
