package policy_test

import (
	"context"
	"testing"

	"github.com/loopgate/loopgate/policy"
)

// TestDefaultBundleRegoTests runs every *_test.rego of the default bundle, as
// `opa test` would, and fails on any failing, erroring or skipped test.
func TestDefaultBundleRegoTests(t *testing.T) {
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	results, err := policy.RunTests(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 40 {
		t.Errorf("ran %d rego tests, want at least 40: are test files missing from the embedded bundle?", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
	t.Logf("%d rego tests ran", len(results))
}
