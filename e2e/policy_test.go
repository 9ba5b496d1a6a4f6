package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/internal/policytest"
)

// TestPolicyGovernanceWithLoopctl drives policy governance with the real
// binaries: a security reviewer pushes a candidate directory, the list shows
// it as a candidate with its tests, diff names the new rule file, the
// uploader's own approval is refused, a second reviewer approves, the
// bundle is activated, history shows it, and a rollback returns to the
// built-in bundle.
func TestPolicyGovernanceWithLoopctl(t *testing.T) {
	home := t.TempDir()
	startServer(t, home, filepath.Join(t.TempDir(), "data"))

	// The candidate as a directory, the way a reviewer keeps it in git.
	dir := t.TempDir()
	archive := policytest.PIIRetention(t, "pii-3d-e2e", policytest.PIIRetentionTest)
	tarball := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(tarball, archive, 0o600); err != nil {
		t.Fatal(err)
	}

	if r := loopctl(t, home, nil, "--as", "growth", "policy", "push", tarball); r.Code == 0 || !strings.Contains(r.Stderr, "policy.push") {
		t.Errorf("a team member pushing: %s", r)
	}
	r := loopctl(t, home, nil, "--as", "reviewer", "policy", "push", tarball)
	if r.Code != 0 || !strings.Contains(r.Stdout, "policy/bundles/pii-3d-e2e pushed") {
		t.Fatalf("push: %s", r)
	}
	r = loopctl(t, home, nil, "policy", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, "pii-3d-e2e") || !strings.Contains(r.Stdout, "CANDIDATE") || !strings.Contains(r.Stdout, "builtin") {
		t.Errorf("list: %s", r)
	}
	// A loop kept three days is not affected by a three-day cap; its
	// creation's decision is in the log and explains itself.
	if r = loopctl(t, home, nil, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait"); r.Code != 0 {
		t.Fatalf("apply: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer2", "policy", "impact", "pii-3d-e2e"); r.Code != 0 || !strings.Contains(r.Stdout, "0 of 1 loop(s) would be judged otherwise") {
		t.Errorf("impact: %s", r)
	}
	r = loopctl(t, home, nil, "policy", "decisions", "--loop", "growth/checkout-nudge", "-o", "json")
	var listed struct {
		Decisions []struct{ Name, Kind, Verdict string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &listed); r.Code != 0 || err != nil {
		t.Fatalf("decisions: %s (%v)", r, err)
	}
	// Newest first: the impact run's decision about the loop (the
	// candidate's), then the creation's.
	kinds := map[string]string{}
	for _, d := range listed.Decisions {
		if _, seen := kinds[d.Kind]; !seen {
			kinds[d.Kind] = d.Name
		}
	}
	if len(listed.Decisions) == 0 || listed.Decisions[0].Kind != "impact" || kinds["request"] == "" {
		t.Fatalf("decisions: want the impact run's newest and the creation's: %s", r)
	}
	if r = loopctl(t, home, nil, "policy", "explain", kinds["request"]); r.Code != 0 || !strings.Contains(r.Stdout, "same verdict and findings") {
		t.Errorf("explain: %s", r)
	}

	r = loopctl(t, home, nil, "policy", "diff", "builtin", "pii-3d-e2e")
	if r.Code != 2 || !strings.Contains(r.Stdout, "added in pii-3d-e2e: loop/pii_retention.rego") || !strings.Contains(r.Stdout, "changed: .manifest") {
		t.Errorf("diff: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer", "policy", "approve", "pii-3d-e2e"); r.Code == 0 || !strings.Contains(r.Stderr, "SELF_APPROVAL") {
		t.Errorf("the uploader approving: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer", "policy", "activate", "pii-3d-e2e"); r.Code == 0 || !strings.Contains(r.Stderr, "APPROVALS_MISSING") {
		t.Errorf("activating unapproved: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer2", "policy", "approve", "pii-3d-e2e", "--comment", "reviewed the diff"); r.Code != 0 || !strings.Contains(r.Stdout, "1 of 1 approval") {
		t.Fatalf("approve: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer", "policy", "activate", "pii-3d-e2e", "--comment", "2026 data review"); r.Code != 0 || !strings.Contains(r.Stdout, "policy/bundles/pii-3d-e2e is active") {
		t.Fatalf("activate: %s", r)
	}
	r = loopctl(t, home, nil, "policy", "show", "pii-3d-e2e")
	if r.Code != 0 || !strings.Contains(r.Stdout, "ACTIVE") || !strings.Contains(r.Stdout, "second-reviewer@loopgate.local") {
		t.Errorf("show: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer2", "policy", "rollback"); r.Code == 0 || !strings.Contains(r.Stderr, "comment") {
		t.Errorf("rollback without a comment: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer2", "policy", "rollback", "--comment", "too strict"); r.Code != 0 || !strings.Contains(r.Stdout, "policy/bundles/builtin is active") {
		t.Fatalf("rollback: %s", r)
	}
	r = loopctl(t, home, nil, "policy", "history")
	if r.Code != 0 || !strings.Contains(r.Stdout, "ROLLBACK") || !strings.Contains(r.Stdout, "ACTIVATE") {
		t.Errorf("history: %s", r)
	}
}
