package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeleteEstateFromFiles: a directory of 12 loop files (three teams on
// both embedded clusters, a subdirectory per team), applied with
// `apply -f DIR -R --wait`, is deleted with `delete -f DIR -R --wait`:
// every deletion is requested and the wait, summed up in a progress line,
// ends once all 12 are gone. Then `loopctl get` shows none of them, the
// audit trail has one deletion and one deprovisioning per loop, and no
// topic of theirs is left on the clusters. Deleting again finds nothing to
// delete and succeeds.
func TestDeleteEstateFromFiles(t *testing.T) {
	home := t.TempDir()
	srv := startServer(t, home, filepath.Join(t.TempDir(), "data"))
	example := readFile(t, examplePath(t, "checkout-nudge.yaml"))
	dir := t.TempDir()
	loops := crashLoops(12)
	want := map[string]bool{} // resource names
	for _, l := range loops {
		sub := filepath.Join(dir, l.team)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		writeSpec(t, sub, l.name+".yaml", l.yaml(t, example))
		want["teams/"+l.team+"/loops/"+l.name] = true
	}

	r := loopctl(t, home, nil, "apply", "-f", dir, "-R", "--wait", "--timeout", "90s")
	if r.Code != 0 || strings.Count(r.Stdout, " created\n") != len(loops) || !strings.Contains(r.Stdout, "waited for 12 loops: 12 READY (") {
		t.Fatalf("apply -f DIR -R --wait: %s", r)
	}

	r = loopctl(t, home, nil, "delete", "-f", dir, "-R", "--wait", "--timeout", "90s")
	if r.Code != 0 || r.Stderr != "" || strings.Count(r.Stdout, " deletion requested\n") != len(loops) ||
		!strings.Contains(r.Stdout, "waited for 12 loops to be deleted: 12 gone (") {
		t.Fatalf("delete -f DIR -R --wait: %s", r)
	}
	for name := range want {
		if !strings.Contains(r.Stdout, name+" deletion requested\n") {
			t.Errorf("the deletion of %s is not reported: %s", name, r)
		}
	}
	if strings.Contains(r.Stdout, " is deleted\n") {
		t.Errorf("12 loops are followed one by one, not summed up: %s", r)
	}

	// `loopctl get` shows none of them.
	list, err := listLoops(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if want[l.GetName()] {
			t.Errorf("%s is still listed after delete --wait (state %s)", l.GetName(), l.GetStatus().GetState())
		}
	}
	if r := loopctl(t, home, nil, "get", loops[0].key()); r.Code != 1 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("get %s after its deletion: %s", loops[0].key(), r)
	}

	// One deletion request and one deprovisioning per loop on the audit
	// trail.
	deletes, deprovisions := map[string]int{}, map[string]int{}
	for _, e := range auditEvents(t, home) {
		if e.GetOutcome() != "OK" || !want[e.GetResource()] {
			continue
		}
		switch e.GetAction() {
		case "loop.delete":
			deletes[e.GetResource()]++
		case "loop.deprovision":
			deprovisions[e.GetResource()]++
		}
	}
	for name := range want {
		if deletes[name] != 1 || deprovisions[name] != 1 {
			t.Errorf("%s: %d loop.delete and %d loop.deprovision events with outcome OK, want 1 each", name, deletes[name], deprovisions[name])
		}
	}

	// Nothing of theirs is left on either cluster.
	for region, c := range srv.Clusters {
		for _, team := range []string{"growth", "risk", "search"} {
			if st := observe(t, c, team+".crash-"); len(st.Partitions) != 0 {
				t.Errorf("topics left on %s (region %s) after the deletion: %v", c.Name, region, st.Partitions)
			}
		}
	}

	// Deleting again: nothing to delete; a failure unless --ignore-not-found.
	r = loopctl(t, home, nil, "delete", "-f", dir, "-R", "--wait", "-o", "json")
	if r.Code != 1 || r.Stdout != "" || strings.Count(r.Stderr, " not found, nothing to delete") != len(loops) {
		t.Errorf("delete -f DIR -R of deleted loops: %s", r)
	}
	r = loopctl(t, home, nil, "delete", "-f", dir, "-R", "--wait", "-o", "json", "--ignore-not-found")
	if r.Code != 0 || r.Stdout != "" || strings.Count(r.Stderr, " not found, nothing to delete\n") != len(loops) {
		t.Errorf("delete -f DIR -R --ignore-not-found of deleted loops: %s", r)
	}
}
