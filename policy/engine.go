package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Query is the document loopgate evaluates; its deny, warn and approval sets
// make the decision.
const Query = "data.loopgate.loop"

// DecisionQuery is the query the engine prepares: only the three sets of
// Query. Evaluating the package document itself would also evaluate every
// helper rule a bundle defines
// (the default bundle's regions, partitions, waiver lookups …): a third of
// the time and 40 % of the allocations of a decision. Each set is wrapped in
// a comprehension so that an undefined set gives [] rather than making the
// whole query undefined; decode tells an absent deny set apart.
const DecisionQuery = `{"deny": [x | x := data.loopgate.loop.deny], "warn": [x | x := data.loopgate.loop.warn], "approval": [x | x := data.loopgate.loop.approval]}`

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
	// requiredApprovals is how many approvals a candidate bundle needs to
	// be activated while this bundle is active (RequiredApprovals).
	requiredApprovals int
	// unwaivable are the rule ids the bundle never waives (Unwaivable).
	unwaivable []string
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
	return &prepared{query: pq, revision: b.Manifest.Revision, requiredApprovals: requiredApprovalsOf(b), unwaivable: Unwaivable(b)}, nil
}

// regoOptions are the options the engine prepares a bundle with. Builtin
// errors (e.g. count(null)) fail the evaluation instead of making a rule
// silently undefined, which could let a request through.
func regoOptions(b *bundle.Bundle) []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.Query(DecisionQuery),
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
	return p.decide(ctx, d, input, nil)
}

// EvaluateInput is Evaluate that also returns the input as InputJSON
// encodes it (nil if it cannot be encoded), converting in to the policy
// document once for both: the decision log keeps the input of every
// decision, so encoding it apart doubled that work.
func (e *Engine) EvaluateInput(ctx context.Context, in Input) (Decision, []byte, error) {
	p := e.current.Load()
	d := Decision{ID: newDecisionID(), BundleRevision: p.revision}
	input, err := inputValue(in)
	if err != nil {
		d, err = failClosed(d, err)
		return d, nil, err
	}
	d, err = p.decide(ctx, d, input, nil)
	raw, _ := valueJSON(input)
	return d, raw, err
}

// MaxInputBytes bounds the input JSON EvaluateJSON and Explain accept: two
// loops of the largest size a server may allow (catalog.CeilingLimits) with
// what is derived from them.
const MaxInputBytes = 16 << 20

// EvaluateJSON decides a request from its input as InputJSON encodes it
// (e.g. the input stored with a decision), exactly as Evaluate decides the
// Input it was made from; it fails closed as Evaluate does, also on input
// that is not a JSON object or is larger than MaxInputBytes.
func (e *Engine) EvaluateJSON(ctx context.Context, raw []byte) (Decision, error) {
	p := e.current.Load()
	d := Decision{ID: newDecisionID(), BundleRevision: p.revision}
	input, err := parseInputJSON(raw)
	if err != nil {
		return failClosed(d, err)
	}
	return p.decide(ctx, d, input, nil)
}

// InputJSON returns the policy input of in as JSON: the document the engine
// evaluates (input), with object keys sorted, so that it can be stored with
// the decision and evaluated again (EvaluateJSON) or explained (Explain).
func InputJSON(in Input) ([]byte, error) {
	v, err := inputValue(in)
	if err != nil {
		return nil, fmt.Errorf("policy: encoding the input: %w", err)
	}
	return valueJSON(v)
}

// valueJSON encodes an AST value as compact JSON, leaving <, > and & as they
// are.
func valueJSON(v ast.Value) ([]byte, error) {
	x, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("policy: encoding the input: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, fmt.Errorf("policy: encoding the input: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// parseInputJSON reads an input encoded by InputJSON.
func parseInputJSON(raw []byte) (ast.Value, error) {
	if len(raw) > MaxInputBytes {
		return nil, fmt.Errorf("the input is %d bytes, more than the %d accepted", len(raw), MaxInputBytes)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the input is not JSON: %w", err)
	}
	if _, ok := v.(ast.Object); !ok {
		return nil, fmt.Errorf("the input is a JSON %s, want an object", ast.ValueName(v))
	}
	return v, nil
}

// decide evaluates the prepared query on input into d; tracer, when not
// nil, follows the evaluation (Explain).
func (p *prepared) decide(ctx context.Context, d Decision, input ast.Value, tracer topdown.QueryTracer) (Decision, error) {
	var (
		rs  rego.ResultSet
		err error
	)
	if tracer == nil {
		rs, err = p.query.Eval(ctx, rego.EvalParsedInput(input))
	} else {
		rs, err = p.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalQueryTracer(tracer))
	}
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
		approval bool
		out      *[]Violation
	}{{"deny", true, false, &d.Deny}, {"warn", false, false, &d.Warn}, {"approval", false, true, &d.Approval}}
	for _, s := range sets {
		t := obj.Get(ast.InternedTerm(s.key))
		if t != nil { // DecisionQuery's [x | x := set]: [] or [set]
			if a, ok := t.Value.(*ast.Array); ok {
				switch a.Len() {
				case 0:
					t = nil
				case 1:
					t = a.Elem(0)
				}
			}
		}
		if t == nil {
			if s.required {
				return fmt.Errorf("%s.%s is undefined: the bundle must define the deny set", Query, s.key)
			}
			*s.out = []Violation{}
			continue
		}
		vs, err := decodeSet(t.Value, s.approval)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", Query, s.key, err)
		}
		*s.out = vs
	}
	return nil
}

// decodeSet reads one set of violations. Elements of the approval set may
// carry "role" and "approvals" (defaulting to RoleSecurityReviewer and 1);
// deny and warn elements must not: a bundle that puts them there most likely
// meant an approval, and a warn that should have held the request would let
// it through, so such a set is malformed and the decision fails closed.
func decodeSet(v ast.Value, approval bool) ([]Violation, error) {
	shape := "{id, msg, field}"
	if approval {
		shape = "{id, msg, field, role, approvals}"
	}
	var elems []*ast.Term
	switch c := v.(type) {
	case ast.Set:
		elems = c.Slice()
	case *ast.Array: // a bundle may build the list with a comprehension
		elems = make([]*ast.Term, 0, c.Len())
		c.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	default:
		return nil, fmt.Errorf("is a %s, want a set of %s objects", ast.ValueName(v), shape)
	}
	out := make([]Violation, 0, len(elems))
	for _, t := range elems {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("element %v is a %s, want an %s object", t, ast.ValueName(t.Value), shape)
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
		if err := decodeApprovers(obj, approval, &viol); err != nil {
			return nil, fmt.Errorf("rule %q: %w", viol.ID, err)
		}
		out = append(out, viol)
	}
	sortViolations(out)
	return out, nil
}

// decodeApprovers reads the optional role and approvals of an approval
// element into viol, normalised, and checks that other elements have
// neither.
func decodeApprovers(obj ast.Object, approval bool, viol *Violation) error {
	role, approvals := obj.Get(ast.InternedTerm("role")), obj.Get(ast.InternedTerm("approvals"))
	if !approval {
		for _, k := range []struct {
			key string
			t   *ast.Term
		}{{"role", role}, {"approvals", approvals}} {
			if k.t != nil {
				return fmt.Errorf("%q is only allowed in approval elements, got %v (use the approval set to hold the request for a reviewer)", k.key, k.t)
			}
		}
		return nil
	}
	viol.Role, viol.Approvals = RoleSecurityReviewer, MinApprovals
	if role != nil {
		s, ok := role.Value.(ast.String)
		if !ok {
			return fmt.Errorf("\"role\" is a %s (%v), want a string, one of %s", ast.ValueName(role.Value), role, strings.Join(ApproverRoles(), ", "))
		}
		if !slices.Contains(ApproverRoles(), string(s)) {
			return fmt.Errorf("\"role\" %v is not one of %s", role, strings.Join(ApproverRoles(), ", "))
		}
		viol.Role = string(s)
	}
	if approvals != nil {
		n, ok := approvalCount(approvals.Value)
		if !ok {
			return fmt.Errorf("\"approvals\" is %v, want an integer from %d to %d", approvals, MinApprovals, MaxApprovals)
		}
		viol.Approvals = n
	}
	return nil
}

// approvalCount returns v as a number of approvers when it is an integer
// from MinApprovals to MaxApprovals (2.0 counts as 2).
func approvalCount(v ast.Value) (int, bool) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, false
	}
	f, ok := n.Float64()
	if !ok || f != math.Trunc(f) || f < MinApprovals || f > MaxApprovals {
		return 0, false
	}
	return int(f), true
}
