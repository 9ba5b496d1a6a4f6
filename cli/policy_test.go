package cli

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// policyBundle is a small bundle: owners must be acme.com addresses.
var policyBundle = map[string]string{
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

test_acme_owner_allowed if {
	count(data.loopgate.loop.deny) == 0 with input as {"loop": {"spec": {"owners": ["x@acme.com"]}}}
}
`,
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func withFiles(files, changes map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	for k, v := range changes {
		out[k] = v
	}
	return out
}

func TestPolicyTestPasses(t *testing.T) {
	code, stdout, stderr := run(t, "policy", "test", writeFiles(t, policyBundle))
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"bundle acme-7: 4 file(s), sha256 ", "not signed",
		"PASS     data.loopgate.loop_test.test_acme_owner_allowed", "loop/owners_test.rego:7",
		"PASS     data.loopgate.loop_test.test_foreign_owner_denied", "loop/owners_test.rego:3",
		"2 test(s): 2 passed, 0 failed, 0 error(s), 0 skipped",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

// Failing tests come first, each named, and the exit code is 1.
func TestPolicyTestFails(t *testing.T) {
	dir := writeFiles(t, withFiles(policyBundle, map[string]string{"loop/more_test.rego": `package loopgate.loop_test

test_wrong if count(data.loopgate.loop.deny) == 5 with input as {"loop": {"spec": {"owners": ["x@example.com"]}}}

test_broken if to_number("x") == 1
`}))
	code, stdout, stderr := run(t, "policy", "test", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := strings.Split(stdout, "\n")
	var results []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && (f[0] == "PASS" || f[0] == "FAIL" || f[0] == "ERROR") {
			results = append(results, f[0]+" "+strings.TrimPrefix(f[1], "data.loopgate.loop_test."))
		}
	}
	want := []string{"ERROR test_broken", "FAIL test_wrong", "PASS test_acme_owner_allowed", "PASS test_foreign_owner_denied"}
	if strings.Join(results, "|") != strings.Join(want, "|") {
		t.Errorf("results = %v, want %v (failing first)\n%s", results, want, stdout)
	}
	for _, want := range []string{"4 test(s): 2 passed, 1 failed, 1 error(s)", "test_broken: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, want := range []string{"(TESTS_FAILED): 2 of 4 tests fail", "failing: data.loopgate.loop_test.test_broken", "failing: data.loopgate.loop_test.test_wrong"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestPolicyTestCompileError(t *testing.T) {
	dir := writeFiles(t, withFiles(policyBundle, map[string]string{"loop/bad.rego": "package loopgate.loop\n\nwarn contains x if {\n\tx := nope(1)\n}\n"}))
	code, stdout, stderr := run(t, "policy", "test", dir)
	if code != 1 || !strings.Contains(stderr, "(COMPILE_ERROR)") || !strings.Contains(stderr, "loop/bad.rego:4: rego_type_error: undefined function nope") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 naming loop/bad.rego:4", code, stdout, stderr)
	}
}

func TestPolicyTestJSON(t *testing.T) {
	code, stdout, stderr := run(t, "policy", "test", writeFiles(t, policyBundle), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Accepted bool `json:"accepted"`
		Checked  struct {
			Revision string   `json:"revision"`
			Files    []string `json:"files"`
		} `json:"checked"`
		Tests []struct{ Test, Result string } `json:"tests"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !r.Accepted || r.Checked.Revision != "acme-7" || len(r.Checked.Files) != 4 || len(r.Tests) != 2 || r.Tests[0].Result != "PASS" {
		t.Errorf("report = %+v", r)
	}
}

// signBundleDir writes the .signatures.json `opa sign --bundle .` writes,
// with OPA's signing functions, and returns the public key's PEM file.
func signBundleDir(t *testing.T, dir string, files map[string]string, kid string) (pubFile string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	h, err := bundle.NewSignatureHasher(bundle.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var infos []bundle.FileInfo
	for name, content := range files {
		var v any = []byte(content)
		if bundle.IsStructuredDoc(name) {
			if err := json.Unmarshal([]byte(content), &v); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := h.HashFile(v)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, bundle.NewFile(name, hex.EncodeToString(sum), string(bundle.SHA256)))
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	token, err := bundle.GenerateSignedToken(infos, bundle.NewSigningConfig(string(priv), "RS256", ""), kid)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := json.Marshal(bundle.SignaturesConfig{Signatures: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".signatures.json"), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	return pubFile
}

func TestPolicyTestVerifiesSignatures(t *testing.T) {
	dir := writeFiles(t, policyBundle)
	pub := signBundleDir(t, dir, policyBundle, "security-2026")

	code, stdout, stderr := run(t, "policy", "test", dir, "--verification-key", pub, "--key-id", "security-2026")
	if code != 0 || !strings.Contains(stdout, "signature verified: signed by security-2026") {
		t.Errorf("signed: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "policy", "test", dir)
	if code != 0 || !strings.Contains(stdout, "signed, signature not checked") {
		t.Errorf("signed, no key: exit %d\n%s", code, stdout)
	}

	otherDir := writeFiles(t, policyBundle)
	otherPub := signBundleDir(t, otherDir, policyBundle, "security-2026")
	code, _, stderr = run(t, "policy", "test", dir, "--verification-key", otherPub, "--key-id", "security-2026")
	if code != 1 || !strings.Contains(stderr, "(BAD_SIGNATURE)") {
		t.Errorf("wrong key: exit %d\n%s", code, stderr)
	}

	if err := os.WriteFile(filepath.Join(dir, "loop/owners.rego"), []byte(policyBundle["loop/owners.rego"]+"# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "policy", "test", dir, "--verification-key", pub, "--key-id", "security-2026")
	if code != 1 || !strings.Contains(stderr, "(MODIFIED_AFTER_SIGNING)") || !strings.Contains(stderr, "loop/owners.rego was modified after signing") {
		t.Errorf("modified: exit %d\n%s", code, stderr)
	}

	code, _, stderr = run(t, "policy", "test", writeFiles(t, policyBundle), "--verification-key", pub, "--key-id", "security-2026")
	if code != 1 || !strings.Contains(stderr, "(UNSIGNED)") {
		t.Errorf("unsigned: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "policy", "test", dir, "--key-id", "x"); code != 1 || !strings.Contains(stderr, "need --verification-key") {
		t.Errorf("--key-id alone: exit %d\n%s", code, stderr)
	}
}

func TestPolicyEvalVerdicts(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		code int
		want []string
	}{
		"allowed": {[]string{"-f", "../examples/checkout-nudge.yaml"}, 0, []string{
			"growth/checkout-nudge: CREATE on cluster eu-embedded", "verdict: ALLOWED (bundle default-",
			"0 of 1 loop(s) would be denied"}},
		"denied": {[]string{"-f", "../examples/denied-pii-in-us.yaml"}, 1, []string{
			"growth/clickstream-us: CREATE on cluster us-embedded", "verdict: DENIED",
			"deny  PII_RESIDENCY", "spec.residency", "1 of 1 loop(s) would be denied"}},
		"needs approval": {[]string{"-f", "../examples/fraud-signals-needs-approval.yaml"}, 0, []string{
			"verdict: ALLOWED, NEEDS APPROVAL", "needs approval  LATENCY_BELOW_FLOOR", "(approved by 1 admin)"}},
		"approval waived": {[]string{"-f", "../examples/fraud-signals-needs-approval.yaml", "--waive", "LATENCY_BELOW_FLOOR"}, 0, []string{
			"verdict: ALLOWED (bundle", "warning  LATENCY_BELOW_FLOOR", "otherwise held for approval"}},
		"unwaivable": {[]string{"-f", "../examples/denied-pii-in-us.yaml", "--waive", "PII_RESIDENCY"}, 1, []string{
			"deny     PII_RESIDENCY", "WAIVER_IGNORED"}},
		"team limit from a flag": {[]string{"-f", "../examples/checkout-nudge.yaml", "--team-max-bytes-per-second", "1024"}, 1, []string{
			"THROUGHPUT_EXCEEDS_TEAM_LIMIT"}},
		"cost threshold from a flag": {[]string{"-f", "../examples/checkout-nudge.yaml", "--team-cost-approval-threshold", "50"}, 0, []string{
			"verdict: ALLOWED, NEEDS APPROVAL", "needs approval  COST_ABOVE_BUDGET", "forecast to cost 62.12 USD per month on broker-local storage", "(approved by 1 team-admin)"}},
		"another bundle": {[]string{"-f", "../examples/checkout-nudge.yaml", "--bundle", writeFiles(t, policyBundle)}, 1, []string{
			"verdict: DENIED (bundle acme-7)", "OWNER_DOMAIN", "owner ana@example.com is not an acme.com address"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"policy", "eval"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestPolicyEvalUpdateCatalogAndJSON(t *testing.T) {
	current, err := os.ReadFile("../examples/checkout-nudge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{
		"current.yaml": string(current),
		"next.yaml":    strings.Replace(string(current), "retention: 72h", "retention: 12h", 1),
		"catalog.yaml": `teams:
  - {name: growth, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 256, maxBytesPerSecond: 104857600}
clusters:
  - {name: eu-prod, region: eu, replicationFactor: 3, bootstrapServers: ["kafka-eu:9092"]}
store: {driver: postgres}   # other keys of a configuration file are ignored
`,
	})
	code, stdout, stderr := run(t, "policy", "eval", "-f", filepath.Join(dir, "next.yaml"), "--previous", filepath.Join(dir, "current.yaml"),
		"--catalog", filepath.Join(dir, "catalog.yaml"), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var results []struct {
		Loop, Operation, Cluster string
		Decision                 struct {
			BundleRevision string `json:"bundleRevision"`
			Approval       []struct{ ID, Role string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &results); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(results) != 1 || results[0].Operation != "UPDATE" || results[0].Cluster != "eu-prod" ||
		len(results[0].Decision.Approval) != 1 || results[0].Decision.Approval[0].ID != "RETENTION_REDUCED" || results[0].Decision.Approval[0].Role != "team-admin" {
		t.Errorf("results = %+v\nwant an UPDATE on eu-prod held for RETENTION_REDUCED (team-admin)", results)
	}

	// A team the catalog does not have: the loop is invalid, not evaluated.
	code, stdout, _ = run(t, "policy", "eval", "-f", "../examples/fraud-signals-needs-approval.yaml", "--catalog", filepath.Join(dir, "catalog.yaml"))
	if code != 1 || !strings.Contains(stdout, `unknown team "risk" (teams in the catalog: growth; use --catalog)`) {
		t.Errorf("unknown team: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := run(t, "policy", "eval", "-f", "../examples/checkout-nudge.yaml", "--waive", "not-a-rule"); code != 1 || !strings.Contains(stderr, "UPPER_SNAKE") {
		t.Errorf("--waive not-a-rule: exit %d\n%s", code, stderr)
	}
}
