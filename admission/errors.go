package admission

import (
	"errors"
	"fmt"
	"strings"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
)

// The domain errors of admission. They say what went wrong in the domain's
// words; the API adapters (package server) map each to one gRPC status with
// google.rpc.ErrorInfo, so that gRPC and REST callers see the same reason.

// InvalidError is bad input: every problem found, each with its field path.
type InvalidError struct {
	Resource string
	Problems loop.FieldErrors
	// Recorded is set once the refusal is in the audit trail (or, for a
	// validate-only request, deliberately not): the API's interceptor
	// audits every InvalidError that is not.
	Recorded bool
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s: invalid request: %v", e.Resource, e.Problems)
}

// DeniedError is a policy denial carrying every violation.
type DeniedError struct {
	Resource string
	Decision policy.Decision
}

func (e *DeniedError) Error() string {
	ids := make([]string, len(e.Decision.Deny))
	for i, v := range e.Decision.Deny {
		ids[i] = v.ID
	}
	return fmt.Sprintf("%s: denied by policy (decision %s, bundle %s): %s",
		e.Resource, e.Decision.ID, e.Decision.BundleRevision, strings.Join(ids, ", "))
}

// ForbiddenError means the identity may not do this.
type ForbiddenError struct {
	Reason  string // UPPER_SNAKE, e.g. TEAM_SCOPE
	Message string
	// Metadata says more for machines, e.g. which item of a batch request
	// was refused ("item", "resource"); may be nil.
	Metadata map[string]string
}

func (e *ForbiddenError) Error() string { return e.Message }

// PreconditionError is a request that is valid but cannot be done in the
// loop's current state (e.g. approving a loop that needs no approval).
type PreconditionError struct {
	Reason  string
	Message string
}

func (e *PreconditionError) Error() string { return e.Message }

// KindError says which kind of resource a store error (not found, already
// exists) is about, when it is not a loop.
type KindError struct {
	Kind string // store.KindPrincipal, store.KindGroup
	Err  error
}

func (e *KindError) Error() string { return e.Err.Error() }
func (e *KindError) Unwrap() error { return e.Err }

// Kinds of the governance resources KindError names (see ResourceKind).
const (
	KindPolicyBundle = "policy_bundle"
	KindDecision     = "decision"
)

// ResourceKind is the UPPER_SNAKE kind of the resource err is about.
func ResourceKind(err error) string {
	var k *KindError
	if errors.As(err, &k) {
		return strings.ToUpper(k.Kind)
	}
	return "LOOP"
}
