package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// deletingStatus is a loop's status right after its deletion was requested.
func deletingStatus() *loopgatev1.LoopStatus {
	return &loopgatev1.LoopStatus{State: loopgatev1.Loop_DELETING, ObservedGeneration: 1, Conditions: []*loopgatev1.Condition{
		{Type: "Provisioned", Status: "True", Reason: "Provisioned", Message: "all resources exist"},
		{Type: "InSync", Status: "False", Reason: "Deleting", Message: "removing topics, ACLs and quotas"},
	}}
}

// deletionFailedStatus is what the reconciler records on a loop whose
// deletion failed: still DELETING, Provisioned and InSync False.
var deletionFailedStatus = &loopgatev1.LoopStatus{State: loopgatev1.Loop_DELETING, ObservedGeneration: 1, Conditions: []*loopgatev1.Condition{
	{Type: "Provisioned", Status: "False", Reason: "KafkaError", Message: "deleting topic growth.loop-03.events: TOPIC_AUTHORIZATION_FAILED"},
	{Type: "InSync", Status: "False", Reason: "KafkaError", Message: "deleting topic growth.loop-03.events: TOPIC_AUTHORIZATION_FAILED"},
}}

// newEstate is a fleet of existing READY loops (uid "uid-NAME", etag
// "etag-1") for delete: DeleteLoop marks a loop DELETING, guarded by its
// etag, and every later read of a DELETING loop lets fate give it a new
// status or remove it (goneStatus); deletingReads counts those reads.
func newEstate(f *fakeServer, names []string, fate func(name string, deletingReads int) *loopgatev1.LoopStatus) *fleet {
	var fl *fleet
	deletingReads := map[string]int{}
	fl = newFleet(f, func(name string, _ int) *loopgatev1.LoopStatus {
		if fl.loops[name].GetStatus().GetState() != loopgatev1.Loop_DELETING || fate == nil {
			return nil
		}
		deletingReads[name]++
		return fate(name, deletingReads[name])
	})
	for _, name := range names {
		fl.loops[name] = &loopgatev1.Loop{Name: name, Uid: "uid-" + name, Etag: "etag-1", Generation: 1,
			Status: proto.Clone(readyStatus).(*loopgatev1.LoopStatus)}
	}
	f.deleteLoop = func(req *loopgatev1.DeleteLoopRequest) (*loopgatev1.Loop, error) {
		l, ok := fl.loops[req.GetName()]
		switch {
		case !ok:
			return nil, status.Error(codes.NotFound, "no such loop")
		case req.GetEtag() != l.GetEtag():
			return nil, status.Errorf(codes.Aborted, "etag %q is not the loop's", req.GetEtag())
		}
		if l.DeleteTime == nil {
			l.DeleteTime, l.Etag, l.Status = timestamppb.Now(), "etag-2", deletingStatus()
		}
		return proto.Clone(l).(*loopgatev1.Loop), nil
	}
	return fl
}

// loopNames are teams/TEAM/loops/loop-NN for NN in [from, to).
func loopNames(team string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("teams/%s/loops/loop-%02d", team, i))
	}
	return out
}

// deletedNames are the names of the DeleteLoop requests, sorted.
func deletedNames(f *fakeServer) []string {
	var out []string
	for _, r := range sent[*loopgatev1.DeleteLoopRequest](f) {
		out = append(out, r.GetName())
	}
	slices.Sort(out)
	return out
}

func TestDeleteSeveralLoopsByNameEachOnceWithItsEtag(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 3), nil)
	f.start(t)

	code, stdout, stderr := run(t, "delete", "growth/loop-02", "teams/growth/loops/loop-00", "growth/loop-01", "growth/loop-02")
	want := "teams/growth/loops/loop-02 deletion requested\n" +
		"teams/growth/loops/loop-00 deletion requested\n" +
		"teams/growth/loops/loop-01 deletion requested\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	if got := deletedNames(f); !slices.Equal(got, loopNames("growth", 0, 3)) {
		t.Errorf("DeleteLoop requests for %v, want each loop once", got)
	}
	ids := map[string]bool{}
	for _, r := range sent[*loopgatev1.DeleteLoopRequest](f) {
		if r.GetEtag() != "etag-1" {
			t.Errorf("%s deleted with etag %q, want the one just read", r.GetName(), r.GetEtag())
		}
		if len(r.GetRequestId()) != 36 || ids[r.GetRequestId()] {
			t.Errorf("%s deleted with request id %q: want a fresh UUID per deletion", r.GetName(), r.GetRequestId())
		}
		ids[r.GetRequestId()] = true
	}
	if gets := len(sent[*loopgatev1.GetLoopRequest](f)); gets != 3 {
		t.Errorf("%d GetLoop requests, want 3 (one per loop, for its etag)", gets)
	}
}

func TestDeleteReportsAMissingLoopAndDeletesTheOthers(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, []string{"teams/growth/loops/loop-00", "teams/growth/loops/loop-02"}, nil)
	f.start(t)

	// A mistyped name fails the command; the other loops are deleted.
	code, stdout, stderr := run(t, "delete", "growth/loop-00", "growth/loop-01", "growth/loop-02")
	want := "teams/growth/loops/loop-00 deletion requested\n" +
		"teams/growth/loops/loop-02 deletion requested\n"
	if code != 1 || stdout != want || !strings.Contains(stderr, "teams/growth/loops/loop-01 not found, nothing to delete") {
		t.Fatalf("exit %d, want 1 (a missing loop)\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	if got := deletedNames(f); !slices.Equal(got, []string{"teams/growth/loops/loop-00", "teams/growth/loops/loop-02"}) {
		t.Errorf("DeleteLoop requests for %v", got)
	}

	// With --ignore-not-found, deleting again succeeds.
	code, stdout, stderr = run(t, "delete", "growth/loop-01", "--ignore-not-found")
	if code != 0 || stdout != "teams/growth/loops/loop-01 not found, nothing to delete\n" || stderr != "" {
		t.Errorf("--ignore-not-found: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestDeleteExitsOneWhenADeletionRequestFails(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 4), nil)
	deleteLoop := f.deleteLoop
	f.deleteLoop = func(req *loopgatev1.DeleteLoopRequest) (*loopgatev1.Loop, error) {
		switch req.GetName() {
		case "teams/growth/loops/loop-01":
			return nil, status.Error(codes.PermissionDenied, "risk-dev@example.com may not loop.delete: no authorization rule allows it")
		case "teams/growth/loops/loop-02":
			return nil, status.Error(codes.Aborted, "loop growth/loop-02: etag mismatch")
		}
		return deleteLoop(req)
	}
	f.start(t)

	code, stdout, stderr := run(t, "delete", "growth/loop-00", "growth/loop-01", "growth/loop-02", "growth/loop-03", "--wait", "--timeout", "300ms")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"error: permission denied: growth/loop-01: risk-dev@example.com may not loop.delete",
		// The message names the loop already: not twice.
		"error: conflict: loop growth/loop-02: etag mismatch\n  the loop changed since it was read; run the command again\n",
		// The wait follows the others and times out on them, but a
		// failed deletion makes the exit code 1.
		"error: timed out after 300ms waiting for 2 of 2 loops to be deleted, still pending: growth/loop-00 (DELETING), growth/loop-03 (DELETING);",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "teams/growth/loops/loop-00 deletion requested\nteams/growth/loops/loop-03 deletion requested\n") ||
		strings.Contains(stdout, "loop-01") || strings.Contains(stdout, "loop-02") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestDeleteStopsAtAnUnreachableServer(t *testing.T) {
	f := &fakeServer{err: status.Error(codes.Unavailable, "connection refused")}
	f.start(t)
	code, stdout, stderr := run(t, "delete", "growth/loop-00", "growth/loop-01")
	if code != 1 || stdout != "" || strings.Count(stderr, "cannot reach loopgate") != 1 {
		t.Errorf("exit %d, want 1 with one explanation\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := len(sent[*loopgatev1.DeleteLoopRequest](f)); n != 0 {
		t.Errorf("%d DeleteLoop requests sent", n)
	}
}

// loopDoc is the example renamed to TEAM/NAME, with edit applied.
func loopDoc(t *testing.T, team, name string, edit func(string) string) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(example), "  name: checkout-nudge ", "  name: "+name+" ", 1)
	doc = strings.Replace(doc, "  team: growth ", "  team: "+team+" ", 1)
	if !strings.Contains(doc, "  name: "+name+" ") || !strings.Contains(doc, "  team: "+team+" ") {
		t.Fatal("could not rename the example (has its layout changed?)")
	}
	if edit != nil {
		doc = edit(doc)
	}
	return doc
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeleteFromADirectoryReadsOnlyTheLoopNames(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, append(loopNames("growth", 0, 3), loopNames("risk", 3, 4)...), nil)
	f.start(t)

	dir := t.TempDir()
	// loop-01's spec is invalid (too many partitions, an unknown field):
	// apply refuses it, delete only needs its name.
	invalid := loopDoc(t, "growth", "loop-01", func(doc string) string {
		doc = strings.Replace(doc, "partitions: 12", "partitions: 5000", 1)
		return strings.Replace(doc, "  residency: eu", "  residency: eu\n  colour: blue", 1)
	})
	a := writeFile(t, filepath.Join(dir, "a.yaml"), loopDoc(t, "growth", "loop-00", nil)+"\n---\n"+invalid+"\n---\n# nothing\n")
	writeFile(t, filepath.Join(dir, "sub", "b.yml"), loopDoc(t, "growth", "loop-02", nil))
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a loop file")
	if _, err := readLoopFile(nil, &bytes.Buffer{}, a); err == nil {
		t.Fatal("apply's reading accepts the invalid loop: the test proves nothing")
	}

	code, stdout, stderr := run(t, "delete", "-f", dir)
	want := "teams/growth/loops/loop-00 deletion requested\nteams/growth/loops/loop-01 deletion requested\n"
	if code != 0 || stdout != want {
		t.Fatalf("delete -f DIR: exit %d\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}

	// -R reads sub/ too; names and -f together, each loop once.
	code, stdout, stderr = run(t, "delete", "risk/loop-03", "growth/loop-02", "-f", dir, "-R")
	want = "teams/risk/loops/loop-03 deletion requested\n" +
		"teams/growth/loops/loop-02 deletion requested\n" +
		"teams/growth/loops/loop-00 is already being deleted\n" +
		"teams/growth/loops/loop-01 is already being deleted\n"
	if code != 0 || stdout != want {
		t.Fatalf("delete NAMES -f DIR -R: exit %d\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	if got := deletedNames(f); !slices.Equal(got, []string{"teams/growth/loops/loop-00", "teams/growth/loops/loop-01", "teams/growth/loops/loop-02", "teams/risk/loops/loop-03"}) {
		t.Errorf("DeleteLoop requests for %v, want each loop once", got)
	}
}

func TestDeleteFromFilesRefusesADocumentWithoutAValidName(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 1), nil)
	f.start(t)

	dir := t.TempDir()
	badName := loopDoc(t, "growth", "loop-01", func(doc string) string {
		// Double-quoted YAML escapes: a file cannot hold them raw.
		return strings.Replace(doc, "  name: loop-01 ", "  name: "+strconv.Quote("Loop_01"+hostile)+" ", 1)
	})
	notALoop := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
	a := writeFile(t, filepath.Join(dir, "a.yaml"), loopDoc(t, "growth", "loop-00", nil)+"---\n"+badName+"---\n"+notALoop)
	b := writeFile(t, filepath.Join(dir, "b.yaml"), "apiVersion: loopgate.dev/v1\nkind: Loop\nspec: {}\n")
	c := writeFile(t, filepath.Join(dir, "c.yaml"), "apiVersion: loopgate.dev/v1\nkind: Loop\nmetadata:\n  team: [growth]\n  name: x\n  name: y\n")

	code, stdout, stderr := run(t, "delete", "-f", dir)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, want 1 and nothing deleted\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("%s:document 2:line %d: metadata.name: \"Loop_01", a, lineOf(t, a, "name: \"Loop_01")),
		"must be 3-40 characters of lower-case letters",
		fmt.Sprintf("%s:document 3:line %d: kind: must be \"Loop\", not \"Deployment\" (this file may describe something other than a loop)", a, lineOf(t, a, "kind: Deployment")),
		b + ":document 1:line 1: metadata: is missing (a loop needs metadata.name and metadata.team)",
		c + ":document 1:line 6: metadata.name: duplicate key (first written on line 5)",
		c + ":document 1:line 4: metadata.team: must be a string, not a list",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "metadata.team: is required") {
		t.Errorf("a team that is not a single value is also reported missing:\n%s", stderr)
	}
	for _, c := range rawControls {
		if strings.Contains(stderr, c) {
			t.Errorf("stderr has %q raw:\n%s", c, stderr)
		}
	}
	if n := len(f.requests); n != 0 {
		t.Errorf("%d requests sent for files with problems, want none", n)
	}
}

// lineOf is the line of path where text first appears.
func lineOf(t *testing.T, path, text string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), text)
	if i < 0 {
		t.Fatalf("%s has no %q", path, text)
	}
	return strings.Count(string(b[:i]), "\n") + 1
}

func TestLoopNamesOfFollowsAliasesAndCountsEmptyDocuments(t *testing.T) {
	src := "apiVersion: loopgate.dev/v1\nkind: Loop\nmetadata: &m {team: growth, name: one-loop}\nspec: {nonsense: true}\n---\n" +
		"# nothing here\n---\n" +
		"apiVersion: loopgate.dev/v1\nkind: Loop\nx: &t risk\nmetadata: {team: *t, name: two-loop}\n---\n" +
		"apiVersion: loopgate.dev/v1\nkind: Loop\nmetadata: {team: growth, name: [unclosed\n"
	names, fes := loopNamesOf([]byte(src))
	if want := []string{"teams/growth/loops/one-loop", "teams/risk/loops/two-loop"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if len(fes) != 1 || fes[0].Document != 4 || !strings.Contains(fes[0].Message, "fix the YAML syntax") {
		t.Errorf("problems %v, want one YAML syntax error in document 4", fes)
	}
}

func TestDeleteRefusesNothingToDeleteAndAFileName(t *testing.T) {
	noServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete"}, "name the loops to delete"},
		{[]string{"delete", "-R"}, "-R reads the directories given with -f"},
		{[]string{"delete", "loops/checkout.yaml"}, "loops/checkout.yaml is a file name, not a loop: delete the loops of a file with -f loops/checkout.yaml"},
		{[]string{"delete", "growth"}, `"growth" is not a loop: write TEAM/NAME`},
	} {
		code, stdout, stderr := run(t, tc.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s\nwant %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestDeleteWaitOfOneLoopPrintsItsProgress(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 1), func(_ string, reads int) *loopgatev1.LoopStatus {
		if reads >= 2 {
			return goneStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "delete", "growth/loop-00", "--wait")
	want := "teams/growth/loops/loop-00 deletion requested\n" +
		"  state DELETING\n" +
		"  condition Provisioned=True (Provisioned): all resources exist\n" +
		"  condition InSync=False (Deleting): removing topics, ACLs and quotas\n" +
		"teams/growth/loops/loop-00 is deleted\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("exit %d\nstdout:\n%s\nwant\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
}

func TestDeleteWaitFollowsAFewLoopsUntilEachIsGone(t *testing.T) {
	f := &fakeServer{}
	var fl *fleet
	fl = newEstate(f, loopNames("growth", 0, 4), func(name string, reads int) *loopgatev1.LoopStatus {
		switch n := loopNumber(name); {
		case n == 3 && reads == 1:
			// Deleted, then created again by someone else: the loop
			// deleted is gone.
			l := fl.loops[name]
			l.Uid, l.DeleteTime = "uid-new", nil
			return &loopgatev1.LoopStatus{State: loopgatev1.Loop_PROVISIONING}
		case n < 3 && reads >= n+1: // loop-00 is gone at the first poll
			return goneStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "delete", "-f", writeLoops(t, 4), "--wait")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for i := range 4 {
		name := fmt.Sprintf("teams/growth/loops/loop-%02d", i)
		if !strings.Contains(stdout, name+" deletion requested\n") || !strings.Contains(stdout, name+" is deleted\n") ||
			!strings.Contains(stdout, fmt.Sprintf("  growth/loop-%02d: state DELETING\n", i)) {
			t.Errorf("%s is not followed:\n%s", name, stdout)
		}
	}
	if lists := sent[*loopgatev1.ListLoopsRequest](f); len(lists) != 0 || len(progressLines(stdout)) != 0 {
		t.Errorf("a few loops are polled with ListLoops or summed up:\n%s", stdout)
	}
}

func TestDeleteWaitSumsUpManyLoopsWithOneListPerTeamAndPoll(t *testing.T) {
	f := &fakeServer{}
	// growth/loop-00..29 and risk/loop-30..49: 00..19 are gone at the
	// first poll, 20..39 at the second, the rest at the third.
	names := append(loopNames("growth", 0, 30), loopNames("risk", 30, 50)...)
	newEstate(f, names, func(name string, reads int) *loopgatev1.LoopStatus {
		if reads >= loopNumber(name)/20+1 {
			return goneStatus
		}
		return nil
	})
	f.start(t)

	args := []string{"delete", "--wait"}
	for _, n := range names {
		args = append(args, shortName(n))
	}
	code, stdout, stderr := run(t, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, " deletion requested\n"); n != 50 {
		t.Errorf("%d deletions reported, want 50:\n%s", n, stdout)
	}
	polls := map[string]int{}
	for _, l := range sent[*loopgatev1.ListLoopsRequest](f) {
		if l.GetPageSize() != waitPageSize {
			t.Errorf("ListLoops page size %d, want %d", l.GetPageSize(), waitPageSize)
		}
		if l.GetPageToken() == "" {
			polls[l.GetParent()]++
		}
	}
	// One ListLoops per team and poll, while the team has loops pending.
	if want := map[string]int{"teams/growth": 2, "teams/risk": 3}; fmt.Sprint(polls) != fmt.Sprint(want) {
		t.Errorf("ListLoops polls per team %v, want %v", polls, want)
	}
	// One GetLoop per loop for its etag, and one to confirm that a loop
	// a listing no longer has is gone.
	if gets := len(sent[*loopgatev1.GetLoopRequest](f)); gets != 100 {
		t.Errorf("%d GetLoop requests, want 100", gets)
	}
	if strings.Contains(stdout, "is deleted") || strings.Contains(stdout, "  state ") {
		t.Errorf("50 loops are reported loop by loop:\n%s", stdout)
	}
	lines := progressLines(stdout)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "waiting for 50 loops to be deleted: 50 DELETING (") ||
		!strings.HasPrefix(lines[len(lines)-1], "waited for 50 loops to be deleted: 50 gone (") {
		t.Fatalf("progress lines:\n%s", strings.Join(lines, "\n"))
	}
	if len(lines) > 3 {
		t.Errorf("progress not throttled to a line a second:\n%s", strings.Join(lines, "\n"))
	}
}

func TestDeleteWaitReportsAFailedDeletionWithItsReason(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 12), func(name string, reads int) *loopgatev1.LoopStatus {
		switch {
		case loopNumber(name) == 3:
			return deletionFailedStatus
		case reads >= 2:
			return goneStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "delete", "-f", writeLoops(t, 12), "--wait")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := "error: teams/growth/loops/loop-03 deletion FAILED: Provisioned: deleting topic growth.loop-03.events: TOPIC_AUTHORIZATION_FAILED\n"
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant\n%s", stderr, want)
	}
	lines := progressLines(stdout)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "waited for 12 loops to be deleted: 11 gone, 1 FAILED (") {
		t.Errorf("last progress line %q", last)
	}
}

func TestDeleteWaitTimeoutNamesThePendingLoops(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 30), func(name string, reads int) *loopgatev1.LoopStatus {
		if loopNumber(name) < 10 {
			return goneStatus
		}
		return nil
	})
	f.start(t)

	code, stdout, stderr := run(t, "delete", "-f", writeLoops(t, 30), "--wait", "--timeout", "400ms")
	if code != 2 {
		t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := "error: timed out after 400ms waiting for 20 of 30 loops to be deleted, still pending: growth/loop-10 (DELETING), growth/loop-11 (DELETING), "
	if !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "growth/loop-29 (DELETING); raise --timeout") ||
		strings.Contains(stderr, "loop-09") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("timeout does not name the pending loops:\n%s", stderr)
	}
	lines := progressLines(stdout)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "waiting for 30 loops to be deleted: 10 gone, 20 DELETING (") {
		t.Errorf("last progress line %q", last)
	}
}

func TestDeleteOutputJSONAndYAML(t *testing.T) {
	f := &fakeServer{}
	newEstate(f, loopNames("growth", 0, 3), nil)
	f.start(t)

	code, stdout, stderr := run(t, "delete", "growth/loop-00", "growth/loop-09", "growth/loop-01", "-o", "json", "--ignore-not-found")
	if code != 0 || stderr != "teams/growth/loops/loop-09 not found, nothing to delete\n" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var list loopgatev1.ListLoopsResponse
	if err := protojson.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("-o json of several loops is not {\"loops\": [...]}: %v\n%s", err, stdout)
	}
	if len(list.GetLoops()) != 2 || list.GetLoops()[0].GetName() != "teams/growth/loops/loop-00" ||
		list.GetLoops()[1].GetStatus().GetState() != loopgatev1.Loop_DELETING {
		t.Errorf("-o json printed %v", list.GetLoops())
	}

	code, stdout, stderr = run(t, "delete", "growth/loop-02", "-o", "yaml")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "name: teams/growth/loops/loop-02\n") || !strings.Contains(stdout, "state: DELETING") {
		t.Errorf("-o yaml of one loop: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
