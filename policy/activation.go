package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// Governance data a bundle may carry, in its data.json (under the
// bundle's root, loopgate):
//
//	{"loopgate": {"governance": {"requiredApprovals": 2}}}
//
// requiredApprovals is how many security reviewers other than the uploader
// must approve a candidate before it replaces this bundle (1 to 5; default
// 1). The active bundle decides it, so loosening it takes the approvals the
// stricter bundle demands.
const (
	DefaultRequiredApprovals = 1
	MaxRequiredApprovals     = 5
)

// RequiredApprovals is how many approvals, from reviewers other than its
// uploader, a candidate bundle needs before it may replace the active one.
func (e *Engine) RequiredApprovals() int { return e.current.Load().requiredApprovals }

// Unwaivable returns the rule ids the active bundle never waives (see the
// function Unwaivable), sorted; nil when it lists none. A server refuses to
// grant a waiver the bundle would ignore. The slice is new on every call.
func (e *Engine) Unwaivable() []string { return slices.Clone(e.current.Load().unwaivable) }

// requiredApprovalsOf reads data.loopgate.governance.requiredApprovals of b; a
// missing or malformed value is the default, an out-of-range one is
// clamped (fail closed: never fewer than one).
func requiredApprovalsOf(b *bundle.Bundle) int {
	root, _ := b.Data["loopgate"].(map[string]any)
	gov, ok := root["governance"].(map[string]any)
	if !ok {
		return DefaultRequiredApprovals
	}
	var n int
	switch v := gov["requiredApprovals"].(type) {
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return DefaultRequiredApprovals
		}
		n = int(i)
	case float64:
		n = int(v)
	case int:
		n = v
	default:
		return DefaultRequiredApprovals
	}
	return min(max(n, 1), MaxRequiredApprovals)
}

// Archive writes b as a gzipped tarball in OPA's bundle format.
func Archive(b *bundle.Bundle) ([]byte, error) {
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		return nil, fmt.Errorf("policy: writing bundle %q: %w", b.Manifest.Revision, err)
	}
	return buf.Bytes(), nil
}
