// Package policytest builds candidate policy bundles for tests: the
// default bundle with a new rule and a new revision, as a security team
// would push it.
package policytest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/policy"
)

// PIIRetentionRule tightens PII retention to three days.
const PIIRetentionRule = `package loopgate.loop

deny contains violation(
	"PII_RETENTION_OVER_3D",
	sprintf("pii may be kept at most 3 days under the 2026 data review; spec.retention is %dms", [spec.retentionMs]),
	"spec.retention",
) if {
	changes_spec
	spec.classification == "pii"
	spec.retentionMs > 259200000
}
`

// PIIRetentionTest are PIIRetentionRule's tests (both pass).
const PIIRetentionTest = `package loopgate.loop_test

import data.loopgate.loop

test_pii_over_three_days_denied if {
	"PII_RETENTION_OVER_3D" in ids(loop.deny) with input as with_input({"loop": {"spec": {"classification": "pii", "retentionMs": 604800000}}})
}

test_pii_three_days_allowed if {
	not "PII_RETENTION_OVER_3D" in ids(loop.deny) with input as with_input({"loop": {"spec": {"classification": "pii", "retentionMs": 259200000}}})
}
`

// DefaultBundleDir is the default bundle's directory in the repository.
func DefaultBundleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "policy", "bundles", "default")
}

// PIIRetention is the default bundle plus PIIRetentionRule with tests
// (the given ones), at revision: packed, ready to push. The new rule also
// fires on an existing test's 31-day PII fixture, so that test is updated
// too, as the rule's authors would.
func PIIRetention(t testing.TB, revision, tests string) []byte {
	t.Helper()
	return piiRetention(t, revision, PIIRetentionRule, tests)
}

// PIIRetentionWaivableRule is PIIRetentionRule written as the default
// bundle's own rules are, as a finding (findings.deny), so that a waiver of
// PII_RETENTION_OVER_3D lifts it (PIIRetentionRule adds to deny directly,
// which no waiver lifts).
var PIIRetentionWaivableRule = strings.Replace(PIIRetentionRule, "\ndeny contains", "\nfindings.deny contains", 1)

// PIIRetentionWaivable is PIIRetention with PIIRetentionWaivableRule.
func PIIRetentionWaivable(t testing.TB, revision, tests string) []byte {
	t.Helper()
	return piiRetention(t, revision, PIIRetentionWaivableRule, tests)
}

func piiRetention(t testing.TB, revision, rule, tests string) []byte {
	t.Helper()
	waivers, err := os.ReadFile(filepath.Join(DefaultBundleDir(), "loop", "waivers_test.rego"))
	if err != nil {
		t.Fatal(err)
	}
	updated := strings.Replace(string(waivers), `ids(loop.deny) == {"PII_RETENTION_TOO_LONG"}`,
		`ids(loop.deny) == {"PII_RETENTION_TOO_LONG", "PII_RETENTION_OVER_3D"}`, 1)
	return Candidate(t, revision, map[string]string{
		"loop/pii_retention.rego": rule, "loop/pii_retention_test.rego": tests, "loop/waivers_test.rego": updated,
	})
}

// Candidate writes the default bundle with extra files (path → content,
// replacing files of the same path) and a new revision to a directory and
// packs it.
func Candidate(t testing.TB, revision string, extra map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	src := DefaultBundleDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel == ".manifest" {
			raw = []byte(`{"revision":"` + revision + `","roots":["loopgate"],"rego_version":1}`)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive, err := policy.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	return archive
}
