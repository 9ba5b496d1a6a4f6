package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// loopYAML is the checkout-nudge example renamed to name.
func loopYAML(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), "name: checkout-nudge ", "name: "+name+" ", 1)
}

// loopTree writes files (path relative to a new directory -> content) and
// returns the directory.
func loopTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// createEverything answers GetLoop with NotFound and CreateLoop with the
// loop sent.
func createEverything(f *fakeServer) {
	f.getLoop = func(*loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
		return nil, status.Error(codes.NotFound, "no such loop")
	}
	f.createLoop = func(req *loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error) {
		return req.GetLoop(), nil
	}
}

// applied returns the loop names of apply's "NAME created" lines, in order.
func appliedNames(stdout string) []string {
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if name, ok := strings.CutSuffix(line, " created"); ok {
			out = append(out, shortName(name))
		}
	}
	return out
}

func TestApplyDirectoryInLexicalOrder(t *testing.T) {
	dir := loopTree(t, map[string]string{
		"b.yaml":       "",
		"a.yml":        "",
		"c.YAML":       "",
		"notes.txt":    "not a loop",
		"sub/d.yaml":   "",
		"sub/x/e.yaml": "",
	})
	for _, p := range []string{"b.yaml", "a.yml", "c.YAML", "sub/d.yaml", "sub/x/e.yaml"} {
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)) + "-loop"
		if err := os.WriteFile(filepath.Join(dir, p), []byte(loopYAML(t, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := filepath.Join(t.TempDir(), "z.yaml")
	if err := os.WriteFile(extra, []byte(loopYAML(t, "z-loop")), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", dir}, "a-loop b-loop c-loop"},
		{[]string{"-f", dir, "-R"}, "a-loop b-loop c-loop d-loop e-loop"},
		{[]string{"-f", filepath.Join(dir, "sub"), "--recursive"}, "d-loop e-loop"},
		{[]string{"-f", extra, "-f", dir}, "z-loop a-loop b-loop c-loop"},
	} {
		f := &fakeServer{}
		createEverything(f)
		f.start(t)
		code, stdout, stderr := run(t, append([]string{"apply"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("apply %v: exit %d\n%s%s", tc.args, code, stdout, stderr)
		}
		var got []string
		for _, n := range appliedNames(stdout) {
			got = append(got, strings.TrimPrefix(n, "growth/"))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("apply %v applied %v, want %s", tc.args, got, tc.want)
		}
		if n := len(sent[*loopgatev1.CreateLoopRequest](f)); n != len(got) {
			t.Errorf("apply %v sent %d creates for %d loops", tc.args, n, len(got))
		}
	}
}

func TestPlanDirectoryPlansInOrder(t *testing.T) {
	dir := loopTree(t, map[string]string{"2.yaml": loopYAML(t, "two"), "1.yaml": loopYAML(t, "one"), "sub/3.yml": loopYAML(t, "three")})
	f := &fakeServer{planLoop: func(*loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) {
		return &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_CREATE, Verdict: &loopgatev1.PolicyVerdict{Allowed: true}}, nil
	}}
	f.start(t)
	code, stdout, stderr := run(t, "plan", "-f", dir, "-R")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	var got []string
	for _, r := range sent[*loopgatev1.PlanLoopRequest](f) {
		got = append(got, shortName(r.GetLoop().GetName()))
	}
	if strings.Join(got, " ") != "growth/one growth/two growth/three" {
		t.Errorf("planned %v, want one, two, three", got)
	}
}

func TestApplyDirectoryNamesTheBadFileAndSendsNothing(t *testing.T) {
	bad := strings.Replace(loopYAML(t, "bad"), "retention: 72h", "retention: forever", 1)
	dir := loopTree(t, map[string]string{"a-good.yaml": loopYAML(t, "good"), "b-bad.yaml": bad, "c-good.yaml": loopYAML(t, "good-too")})
	for _, cmd := range []string{"apply", "plan", "diff"} {
		f := &fakeServer{}
		createEverything(f)
		f.start(t)
		code, stdout, stderr := run(t, cmd, "-f", dir)
		if code != 1 {
			t.Fatalf("%s of a directory with a bad file: exit %d, want 1\n%s%s", cmd, code, stdout, stderr)
		}
		if !strings.Contains(stderr, filepath.Join(dir, "b-bad.yaml")+":document 1:line") || !strings.Contains(stderr, "retention") {
			t.Errorf("%s: the problem does not name the file and line:\n%s", cmd, stderr)
		}
		if strings.Contains(stderr, "a-good.yaml") || strings.Contains(stderr, "c-good.yaml") {
			t.Errorf("%s: good files named as bad:\n%s", cmd, stderr)
		}
		if n := len(f.requests); n != 0 {
			t.Errorf("%s sent %d requests despite a bad file", cmd, n)
		}
	}
}

func TestDirectoryWithoutLoopFiles(t *testing.T) {
	noServer(t)
	dir := loopTree(t, map[string]string{"README.md": "x", "sub/a.yaml": loopYAML(t, "a")})
	code, _, stderr := run(t, "apply", "-f", dir)
	if code != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, "-R") {
		t.Errorf("apply of a directory without loop files: exit %d\n%s", code, stderr)
	}
	code, _, stderr = run(t, "plan", "-f", filepath.Join(dir, "missing"))
	if code != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("plan of a missing path: exit %d\n%s", code, stderr)
	}
}

func TestDiffExitCodes(t *testing.T) {
	path := filepath.Join("..", "examples", "checkout-nudge.yaml")
	desired := exampleLoop(t)
	allowed := &loopgatev1.PolicyVerdict{Allowed: true}
	for _, tc := range []struct {
		name   string
		plan   *loopgatev1.PlanLoopResponse
		labels map[string]string // of the existing loop; nil: it does not exist
		exists bool
		code   int
		out    string
		spec   bool // the existing loop's spec differs (retention)
	}{
		{"no changes", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_NOOP, Verdict: allowed}, desired.GetLabels(), true, 0, "no changes", false},
		{"spec change", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_UPDATE, Verdict: allowed,
			Changes: []*loopgatev1.PlannedChange{{Kind: "UpdateTopicConfig", Resource: "growth.checkout-nudge.events", Current: "retention.ms=1", Desired: "retention.ms=2"}}},
			desired.GetLabels(), true, 2, "retention.ms=2", true},
		{"drift only", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_UPDATE, Verdict: allowed,
			Changes: []*loopgatev1.PlannedChange{{Kind: "CreateTopic", Resource: "growth.checkout-nudge.events"}}},
			desired.GetLabels(), true, 0, "the file matches the loop", false},
		{"labels only", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_NOOP, Verdict: allowed}, map[string]string{"domain": "other"}, true, 2, "labels: domain=other -> domain=checkout", false},
		{"new loop", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_CREATE, Verdict: allowed}, nil, false, 2, "CREATE", false},
		{"denied", &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_UPDATE, Verdict: &loopgatev1.PolicyVerdict{
			Deny: []*loopgatev1.Violation{{Id: "PII_RESIDENCY", Msg: "no"}}}}, desired.GetLabels(), true, 1, "DENIED", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{
				planLoop: func(*loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) { return tc.plan, nil },
				getLoop: func(*loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
					if !tc.exists {
						return nil, status.Error(codes.NotFound, "no such loop")
					}
					cur := proto.Clone(desired).(*loopgatev1.Loop)
					cur.Labels = tc.labels
					if tc.spec {
						cur.Spec.RetentionMs = 1
					}
					return cur, nil
				},
			}
			f.start(t)
			code, stdout, stderr := run(t, "diff", "-f", path)
			if code != tc.code || !strings.Contains(stdout, tc.out) {
				t.Errorf("diff: exit %d (want %d), want %q in\n%s%s", code, tc.code, tc.out, stdout, stderr)
			}
		})
	}
	// A server error is an error (1), not a change.
	f := &fakeServer{err: status.Error(codes.Internal, "boom"), planLoop: func(*loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) {
		return nil, status.Error(codes.Internal, "boom")
	}}
	f.start(t)
	if code, stdout, stderr := run(t, "diff", "-f", path); code != 1 {
		t.Errorf("diff with a failing server: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
}

// served is what a server would return for the example: the spec with
// output-only metadata and a status.
func served(t *testing.T, name string) *loopgatev1.Loop {
	t.Helper()
	l := exampleLoop(t)
	l.Name = "teams/growth/loops/" + name
	l.Uid, l.Etag, l.Generation = "uid-1", "etag-1", 3
	l.Status = &loopgatev1.LoopStatus{State: loopgatev1.Loop_READY, ObservedGeneration: 3, Cluster: "eu-1", DecisionId: "dec-1"}
	return l
}

func TestGetYAMLIsTheFileApplyReads(t *testing.T) {
	f := &fakeServer{loop: served(t, "checkout-nudge")}
	f.start(t)
	code, stdout, stderr := run(t, "get", "growth/checkout-nudge", "-o", "yaml")
	if code != 0 {
		t.Fatalf("get -o yaml: exit %d\n%s", code, stderr)
	}
	for _, banned := range []string{"status", "etag", "uid", "generation", "READY", "retentionMs"} {
		if strings.Contains(stdout, banned) {
			t.Errorf("get -o yaml printed %q, which a loop file does not have:\n%s", banned, stdout)
		}
	}
	for _, want := range []string{"apiVersion: loopgate.dev/v1", "kind: Loop", "team: growth", "retention: 3d", "bytesPerSecond: 2MiB"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("get -o yaml lacks %q:\n%s", want, stdout)
		}
	}
	got, err := loop.Load(strings.NewReader(stdout))
	if err != nil || len(got) != 1 {
		t.Fatalf("apply cannot read get -o yaml: %v\n%s", err, stdout)
	}
	if back := toProto(got[0]); !proto.Equal(back, exampleLoop(t)) {
		t.Errorf("get -o yaml does not read back as the loop:\n got %v\nwant %v", back, exampleLoop(t))
	}

	// -o json stays the API message, with its status.
	_, stdout, _ = run(t, "get", "growth/checkout-nudge", "-o", "json")
	if !strings.Contains(stdout, `"status"`) || !strings.Contains(stdout, `"retentionMs"`) {
		t.Errorf("get -o json is not the API message:\n%s", stdout)
	}
}

func TestGetAllTeamsYAMLExportsEveryPage(t *testing.T) {
	pages := []*loopgatev1.ListLoopsResponse{
		{Loops: []*loopgatev1.Loop{served(t, "one"), served(t, "two")}, NextPageToken: "p2"},
		{Loops: []*loopgatev1.Loop{served(t, "three")}},
	}
	f := &fakeServer{}
	f.listLoops = func(req *loopgatev1.ListLoopsRequest) (*loopgatev1.ListLoopsResponse, error) {
		if req.GetParent() != "teams/-" {
			t.Errorf("parent = %q, want teams/-", req.GetParent())
		}
		if req.GetPageToken() == "p2" {
			return pages[1], nil
		}
		return pages[0], nil
	}
	f.start(t)
	code, stdout, stderr := run(t, "get", "--all-teams", "-o", "yaml")
	if code != 0 {
		t.Fatalf("get --all-teams -o yaml: exit %d\n%s", code, stderr)
	}
	loops, err := loop.Load(strings.NewReader(stdout))
	if err != nil {
		t.Fatalf("the export does not load: %v\n%s", err, stdout)
	}
	var names []string
	for _, l := range loops {
		names = append(names, l.Metadata.Name)
	}
	if strings.Join(names, " ") != "one two three" {
		t.Errorf("exported %v, want one two three", names)
	}

	code, _, stderr = run(t, "get", "--all-teams", "--team", "growth")
	if code != 1 || !strings.Contains(stderr, "--all-teams") {
		t.Errorf("--all-teams with --team: exit %d\n%s", code, stderr)
	}
}
