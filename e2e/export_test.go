package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestExportReappliesUnchanged is "files as the source of truth": every
// example that applies cleanly, exported with `get -o yaml`, re-applies as
// unchanged; so does the export of every loop (`get --all-teams -o yaml`);
// and `loopctl diff` says 0 on an export and 2 once it is edited.
func TestExportReappliesUnchanged(t *testing.T) {
	home := t.TempDir()
	startServer(t, home, filepath.Join(t.TempDir(), "data"))
	dir := t.TempDir()

	examples := []struct {
		file, key string
		as        []string
	}{
		{"checkout-nudge.yaml", "growth/checkout-nudge", nil},
		{"fraud-signals-needs-approval.yaml", "risk/fraud-signals", []string{"--as", "risk"}},
	}
	exports := map[string]string{}
	for _, ex := range examples {
		as := func(args ...string) []string { return append(append([]string{}, ex.as...), args...) }
		if r := loopctl(t, home, nil, as("apply", "-f", examplePath(t, ex.file))...); r.Code != 0 || !strings.Contains(r.Stdout, "created") {
			t.Fatalf("apply %s: %s", ex.file, r)
		}
		r := loopctl(t, home, nil, as("get", ex.key, "-o", "yaml")...)
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "apiVersion: loopgate.dev/v1\nkind: Loop\n") || strings.Contains(r.Stdout, "status") {
			t.Fatalf("get %s -o yaml is not a loop file: %s", ex.key, r)
		}
		path := writeSpec(t, dir, strings.ReplaceAll(ex.key, "/", "_")+".yaml", r.Stdout)
		exports[ex.key] = path
		r = loopctl(t, home, nil, as("apply", "-f", path)...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "teams/"+strings.Replace(ex.key, "/", "/loops/", 1)+" unchanged") {
			t.Errorf("re-apply of the export of %s is not unchanged: %s\n--- export\n%s", ex.key, r, r.Stdout)
		}
		if r = loopctl(t, home, nil, as("diff", "-f", path)...); r.Code != 0 || !strings.Contains(r.Stdout, "no changes") {
			t.Errorf("diff of the export of %s: %s", ex.key, r)
		}
	}

	// Everything at once: one multi-document file, re-applied by an admin.
	r := loopctl(t, home, nil, "--as", "admin", "get", "--all-teams", "-o", "yaml")
	if r.Code != 0 || strings.Count(r.Stdout, "kind: Loop\n") != len(examples) {
		t.Fatalf("get --all-teams -o yaml: %s", r)
	}
	all := writeSpec(t, dir, "all.yaml", r.Stdout)
	r = loopctl(t, home, nil, "--as", "admin", "apply", "-f", all)
	if r.Code != 0 || strings.Count(r.Stdout, " unchanged\n") != len(examples) || strings.Contains(r.Stdout, "updated") {
		t.Errorf("re-apply of the full export: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "admin", "diff", "-f", dir); r.Code != 0 {
		t.Errorf("diff of the export directory: %s", r)
	}

	// An edited export is a change: diff exits 2 and shows it.
	path := exports["growth/checkout-nudge"]
	body := readFile(t, path)
	if !strings.Contains(body, "\n  retention: 3d\n") {
		t.Fatalf("the export has no `retention: 3d` line:\n%s", body)
	}
	writeSpec(t, dir, filepath.Base(path), strings.Replace(body, "\n  retention: 3d\n", "\n  retention: 4d\n", 1))
	r = loopctl(t, home, nil, "diff", "-f", path)
	if r.Code != 2 || !strings.Contains(r.Stdout, "UPDATE") || !strings.Contains(r.Stdout, "retention.ms") {
		t.Errorf("diff after editing retention: want exit 2 with the retention change: %s", r)
	}
	// Nothing was changed by diff.
	if r = loopctl(t, home, nil, "diff", "-f", examplePath(t, "checkout-nudge.yaml")); r.Code != 0 {
		t.Errorf("diff of the applied example after a diff: %s", r)
	}
}
