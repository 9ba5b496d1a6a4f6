package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule (test_*) of a bundle.
type TestResult struct {
	Package  string        `json:"package"`  // e.g. "data.loopgate.loop_test"
	Name     string        `json:"name"`     // e.g. "test_owners_required_denied"
	Location string        `json:"location"` // file:row of the rule
	Pass     bool          `json:"pass"`
	Skip     bool          `json:"skip,omitempty"`  // todo_ tests
	Error    string        `json:"error,omitempty"` // the test could not run to the end
	Duration time.Duration `json:"duration"`
}

// String returns "package.name: PASS" (or FAIL/ERROR/SKIP with the reason).
func (r TestResult) String() string {
	outcome := "PASS"
	switch {
	case r.Skip:
		outcome = "SKIP"
	case r.Error != "":
		outcome = "ERROR: " + r.Error
	case !r.Pass:
		outcome = "FAIL"
	}
	return fmt.Sprintf("%s.%s (%s): %s", r.Package, r.Name, r.Location, outcome)
}

// RunTests runs every test rule of the bundle with OPA's tester, the way
// `opa test` does, with builtin errors raised as the engine raises them.
// Results are sorted by package and name. An error means the tests could not
// run (e.g. the bundle does not compile); failing tests are results.
func RunTests(ctx context.Context, b *bundle.Bundle) ([]TestResult, error) {
	if b == nil {
		return nil, fmt.Errorf("policy: running tests: the bundle is nil")
	}
	// Activation writes into the bundle's parsed state; test a copy so the
	// caller's bundle can still be handed to an Engine.
	cp := b.Copy()
	store := inmem.New()
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, fmt.Errorf("policy: running tests: %w", err)
	}
	defer store.Abort(ctx, txn)

	ch, err := tester.NewRunner().
		SetStore(store).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetBundles(map[string]*bundle.Bundle{"loopgate": &cp}).
		RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("policy: running tests of bundle %q: %w", b.Manifest.Revision, err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{
			Package:  r.Package,
			Name:     r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", strings.TrimPrefix(r.Location.File, "/"), r.Location.Row)
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
