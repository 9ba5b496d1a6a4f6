package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyAtomic: `loopctl apply --atomic` of a file with one denied
// document applies nothing (no loop, no "created" audit event, the loop
// listing unchanged) and names the denied loop with its violations; the
// same file without --atomic applies the valid loop and reports the denied
// one, as before; a file of valid loops is applied all together, and
// --wait follows them to READY.
func TestApplyAtomic(t *testing.T) {
	home := t.TempDir()
	startServer(t, home, filepath.Join(t.TempDir(), "data"))
	dir := t.TempDir()
	good, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	denied, err := os.ReadFile(examplePath(t, "denied-pii-in-us.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mixed := writeSpec(t, dir, "mixed.yaml", string(good)+"\n---\n"+string(denied))
	listBefore := loopctl(t, home, nil, "get", "--all-teams", "-o", "yaml")

	r := loopctl(t, home, nil, "apply", "--atomic", "-f", mixed)
	if r.Code != 1 || strings.Contains(r.Stdout, "created") {
		t.Fatalf("apply --atomic with a denied document: want exit 1 and nothing created: %s", r)
	}
	for _, want := range []string{"loops[1] (teams/growth/loops/clickstream-us)", "loops[1].spec.residency", "PII_RESIDENCY", "nothing was applied"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("apply --atomic refusal lacks %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, "loops[0]") {
		t.Errorf("the refusal names the valid document as failing:\n%s", r.Stderr)
	}
	if got := loopctl(t, home, nil, "get", "growth/checkout-nudge"); got.Code == 0 {
		t.Errorf("the valid loop of a refused atomic apply exists: %s", got)
	}
	if after := loopctl(t, home, nil, "get", "--all-teams", "-o", "yaml"); after.Stdout != listBefore.Stdout {
		t.Errorf("the loop listing changed:\nbefore:\n%s\nafter:\n%s", listBefore.Stdout, after.Stdout)
	}
	ar := loopctl(t, home, nil, "audit", "-o", "json")
	var deniedEvents, batchRefusals int
	for _, e := range decodeEvents(t, ar.Stdout) {
		switch {
		case e["action"] == "loop.create" && e["outcome"] == "OK", strings.HasSuffix(e["action"].(string), ".claim"):
			t.Errorf("a refused atomic apply left an event: %v", e)
		case e["action"] == "loop.create" && e["outcome"] == "DENIED" && e["resource"] == "teams/growth/loops/clickstream-us":
			deniedEvents++
		case e["action"] == "loop.batchApply" && e["outcome"] == "DENIED":
			batchRefusals++
		}
	}
	if deniedEvents != 1 || batchRefusals != 1 {
		t.Errorf("audit after the refused atomic apply: %d denials of clickstream-us, %d batch refusals; want 1 each", deniedEvents, batchRefusals)
	}

	// Without --atomic: the valid loop is applied, the denied one reported.
	r = loopctl(t, home, nil, "apply", "-f", mixed, "--dry-run")
	if r.Code != 1 || !strings.Contains(r.Stdout, "teams/growth/loops/checkout-nudge created (dry run)") || !strings.Contains(r.Stderr, "PII_RESIDENCY") {
		t.Errorf("apply --dry-run of the mixed file: %s", r)
	}

	// Valid loops, all together, followed to READY.
	second := strings.Replace(string(good), "name: checkout-nudge", "name: checkout-nudge-2", 1)
	second = strings.NewReplacer("User:checkout-api", "User:checkout-api-2", "User:nudge-engine", "User:nudge-engine-2", "group: nudge-engine", "group: nudge-engine-2").Replace(second)
	both := writeSpec(t, dir, "both.yaml", string(good)+"\n---\n"+second)
	r = loopctl(t, home, nil, "apply", "--atomic", "--wait", "-f", both)
	if r.Code != 0 || strings.Count(r.Stdout, " created\n") != 2 || strings.Count(r.Stdout, "READY") < 2 {
		t.Fatalf("apply --atomic --wait of two valid loops: %s", r)
	}
	r = loopctl(t, home, nil, "apply", "--atomic", "-f", both)
	if r.Code != 0 || strings.Count(r.Stdout, " unchanged\n") != 2 {
		t.Errorf("re-apply --atomic: want both unchanged: %s", r)
	}
}
