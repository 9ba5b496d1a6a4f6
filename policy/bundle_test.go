package policy_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/policy"
)

var customBundle = map[string]string{
	".manifest": `{"revision":"acme-7","roots":["loopgate"]}`,
	"data.json": `{"loopgate":{"config":{"owner_domain":"acme.com"}}}`,
	"loop/owners.rego": `package loopgate.loop

deny contains {"id": "OWNER_DOMAIN", "msg": sprintf("owner %s is not an %s address", [o, data.loopgate.config.owner_domain]), "field": sprintf("spec.owners[%d]", [i])} if {
	some i, o in input.loop.spec.owners
	not endswith(o, concat("@", ["", data.loopgate.config.owner_domain]))
}
`,
	"loop/owners_test.rego": `package loopgate.loop_test

test_foreign_owner_denied if {
	count(data.loopgate.loop.deny) == 1 with input as {"loop": {"spec": {"owners": ["x@example.com"]}}}
}
`,
}

func writeTarGz(t *testing.T, files map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// A bundle loaded from a directory or a tarball reads its manifest, data and
// Rego, runs its own tests, and decides with its data.
func TestLoadBundle(t *testing.T) {
	ctx := context.Background()
	for name, path := range map[string]string{
		"directory": writeBundle(t, customBundle),
		"tar.gz":    writeTarGz(t, customBundle),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := policy.LoadBundle(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest.Revision != "acme-7" {
				t.Errorf("revision = %q, want acme-7", b.Manifest.Revision)
			}
			results, err := policy.RunTests(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 1 || !results[0].Pass || results[0].Name != "test_foreign_owner_denied" {
				t.Errorf("rego tests = %v, want test_foreign_owner_denied passing", results)
			}
			e, err := policy.NewEngine(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Evaluate(ctx, typicalInput()) // owner ana@example.com
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Deny) != 1 || d.Deny[0].ID != "OWNER_DOMAIN" || d.Deny[0].Field != "spec.owners[0]" ||
				!strings.Contains(d.Deny[0].Msg, "acme.com") || d.BundleRevision != "acme-7" {
				t.Errorf("decision = %+v, want OWNER_DOMAIN at spec.owners[0] from acme-7", d)
			}
		})
	}
}

func TestLoadBundleErrors(t *testing.T) {
	notBundle := filepath.Join(t.TempDir(), "policy.rego")
	if err := os.WriteFile(notBundle, []byte("package x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ path, want string }{
		"missing path":   {filepath.Join(t.TempDir(), "nope"), "no such file"},
		"not a tarball":  {notBundle, "not a directory or a .tar.gz bundle"},
		"syntax error":   {writeBundle(t, map[string]string{"p.rego": "package loopgate.loop\ndeny contains if {"}), "p.rego"},
		"rego v0 syntax": {writeBundle(t, map[string]string{"p.rego": "package loopgate.loop\ndeny[msg] { msg := 1 }"}), "p.rego"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := policy.LoadBundle(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadBundle(%s) error = %v, want one mentioning %q", tc.path, err, tc.want)
			}
		})
	}
}

// Failing Rego tests are results, not errors, and say where they are.
func TestRunTestsReportsFailures(t *testing.T) {
	b := loadBundle(t, map[string]string{
		".manifest": manifest,
		"p.rego":    "package loopgate.loop\ndeny contains {\"id\": \"A\", \"msg\": \"a\", \"field\": \"\"} if input.x\n",
		"p_test.rego": `package loopgate.loop_test
test_passes if count(data.loopgate.loop.deny) == 1 with input as {"x": true}
test_fails if count(data.loopgate.loop.deny) == 1 with input as {"x": false}
`})
	results, err := policy.RunTests(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].Name != "test_fails" || results[0].Pass || !results[1].Pass {
		t.Fatalf("results = %v, want test_fails failing then test_passes passing", results)
	}
	if !strings.Contains(results[0].String(), "FAIL") || !strings.Contains(results[0].Location, "p_test.rego:3") {
		t.Errorf("failure %q should say FAIL and where", results[0])
	}
	// The bundle is still usable after its tests ran.
	if _, err := policy.NewEngine(context.Background(), b); err != nil {
		t.Errorf("NewEngine after RunTests: %v", err)
	}
}
