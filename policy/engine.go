package policy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Query is the document loopgate evaluates; its deny, warn and approval sets
// make the decision.
const Query = "data.loopgate.loop"

// ErrEvaluationFailed is wrapped by every error Evaluate returns: the policy
// could not decide (evaluation error, undefined result, malformed output)
// and the decision was made fail-closed.
var ErrEvaluationFailed = errors.New("policy evaluation failed")

// Engine evaluates loop requests against one prepared bundle at a time. It is
// safe for concurrent use; Swap replaces the bundle without blocking
// evaluations in flight.
type Engine struct {
	current atomic.Pointer[prepared]
}

type prepared struct {
	query    rego.PreparedEvalQuery
	revision string
}

// NewEngine compiles the bundle and prepares Query once.
func NewEngine(ctx context.Context, b *bundle.Bundle) (*Engine, error) {
	p, err := prepare(ctx, b)
	if err != nil {
		return nil, err
	}
	e := &Engine{}
	e.current.Store(p)
	return e, nil
}

// Swap prepares b and then makes it the engine's bundle atomically. If b
// does not compile, the engine keeps its current bundle and Swap returns the
// error.
func (e *Engine) Swap(ctx context.Context, b *bundle.Bundle) error {
	p, err := prepare(ctx, b)
	if err != nil {
		return err
	}
	e.current.Store(p)
	return nil
}

// Revision returns the manifest revision of the active bundle.
func (e *Engine) Revision() string { return e.current.Load().revision }

func prepare(ctx context.Context, b *bundle.Bundle) (*prepared, error) {
	if b == nil {
		return nil, errors.New("policy: preparing the engine: the bundle is nil")
	}
	if b.Manifest.Roots == nil {
		// OPA panics on such bundles; Reader-built ones always have roots.
		return nil, fmt.Errorf("policy: bundle %q has no manifest roots: read bundles with LoadBundle or DefaultBundle", b.Manifest.Revision)
	}
	pq, err := rego.New(regoOptions(b)...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: compiling bundle %q: %w", b.Manifest.Revision, err)
	}
	return &prepared{query: pq, revision: b.Manifest.Revision}, nil
}

// regoOptions are the options the engine prepares a bundle with. Builtin
// errors (e.g. count(null)) fail the evaluation instead of making a rule
// silently undefined, which could let a request through.
func regoOptions(b *bundle.Bundle) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Query(Query),
		rego.ParsedBundle("loopgate", b),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
		// Keep results as AST terms: decode reads them without a round
		// trip through Go maps.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	}
}

// Evaluate decides one request. It always returns a usable Decision with a
// new ID and the bundle revision. When the policy cannot decide, the
// Decision denies with PolicyEvaluationFailed and the returned error (which
// wraps ErrEvaluationFailed and the cause) says why, for the logs.
func (e *Engine) Evaluate(ctx context.Context, in Input) (Decision, error) {
	p := e.current.Load()
	d := Decision{ID: newDecisionID(), BundleRevision: p.revision}
	input, err := inputValue(in)
	if err != nil {
		return failClosed(d, err)
	}
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return failClosed(d, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return failClosed(d, fmt.Errorf("%s is undefined: the bundle has no package loopgate.loop", Query))
	}
	term, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return failClosed(d, fmt.Errorf("%s: unexpected result type %T", Query, rs[0].Expressions[0].Value))
	}
	if err := decode(term.Value, &d); err != nil {
		return failClosed(d, err)
	}
	return d, nil
}

func failClosed(d Decision, cause error) (Decision, error) {
	d.Deny = []Violation{{
		ID: PolicyEvaluationFailed,
		Msg: fmt.Sprintf("policy bundle %q could not decide this request, so it is refused; "+
			"the platform team must fix the bundle (decision %s)", d.BundleRevision, d.ID),
	}}
	d.Warn, d.Approval = []Violation{}, []Violation{}
	return d, fmt.Errorf("%w (decision %s, bundle %q): %w", ErrEvaluationFailed, d.ID, d.BundleRevision, cause)
}

// decode reads the deny, warn and approval sets of the package document.
// deny must be present (a package without it is not a loopgate policy);
// warn and approval may be absent.
func decode(v ast.Value, d *Decision) error {
	obj, ok := v.(ast.Object)
	if !ok {
		return fmt.Errorf("%s is a %s, want an object", Query, ast.ValueName(v))
	}
	sets := []struct {
		key      string
		required bool
		out      *[]Violation
	}{{"deny", true, &d.Deny}, {"warn", false, &d.Warn}, {"approval", false, &d.Approval}}
	for _, s := range sets {
		t := obj.Get(ast.InternedTerm(s.key))
		if t == nil {
			if s.required {
				return fmt.Errorf("%s.%s is undefined: the bundle must define the deny set", Query, s.key)
			}
			*s.out = []Violation{}
			continue
		}
		vs, err := decodeSet(t.Value)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", Query, s.key, err)
		}
		*s.out = vs
	}
	return nil
}

func decodeSet(v ast.Value) ([]Violation, error) {
	var elems []*ast.Term
	switch c := v.(type) {
	case ast.Set:
		elems = c.Slice()
	case *ast.Array: // a bundle may build the list with a comprehension
		elems = make([]*ast.Term, 0, c.Len())
		c.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	default:
		return nil, fmt.Errorf("is a %s, want a set of {id, msg, field} objects", ast.ValueName(v))
	}
	out := make([]Violation, 0, len(elems))
	for _, t := range elems {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("element %v is a %s, want an {id, msg, field} object", t, ast.ValueName(t.Value))
		}
		var viol Violation
		for _, f := range []struct {
			key      string
			required bool
			out      *string
		}{{"id", true, &viol.ID}, {"msg", true, &viol.Msg}, {"field", false, &viol.Field}} {
			ft := obj.Get(ast.InternedTerm(f.key))
			if ft == nil {
				if f.required {
					return nil, fmt.Errorf("element %v has no %q", t, f.key)
				}
				continue
			}
			s, ok := ft.Value.(ast.String)
			if !ok || (f.required && s == "") {
				return nil, fmt.Errorf("element %v: %q must be a non-empty string", t, f.key)
			}
			*f.out = string(s)
		}
		out = append(out, viol)
	}
	sortViolations(out)
	return out, nil
}
