package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Bounds of an explanation.
const (
	// MaxTraceLines bounds Explanation.Trace.
	MaxTraceLines = 200
	// maxTraceEvents bounds the trace events an explanation keeps while
	// evaluating; the rules that fired are found whatever the number.
	maxTraceEvents = 20000
	// maxTraceLineBytes bounds a line of the trace (values can be large).
	maxTraceLineBytes = 400
)

// Explanation is a decision with, for each of its elements, the Rego rule
// that produced it.
type Explanation struct {
	Decision Decision `json:"decision"`
	// Rules has one entry per element of the decision's deny, warn and
	// approval sets, in that order (each sorted as the decision is).
	Rules []FiredRule `json:"rules"`
	// Trace is OPA's trace (with locations) of the bodies of the rules that
	// fired: each expression evaluated, failed and the rule's exit, at most
	// MaxTraceLines lines of at most 400 bytes; a last line says how many
	// more there were.
	Trace []string `json:"trace"`
}

// FiredRule is one element of a decision and the rule that produced it.
type FiredRule struct {
	Kind  string `json:"kind"` // "deny", "warn" or "approval": where the element is in the decision
	ID    string `json:"id"`
	Msg   string `json:"msg"`
	Field string `json:"field"`
	// Rule is the rule's path, e.g. data.loopgate.loop.findings.deny.
	Rule string `json:"rule"`
	// Location is file:row of the rule in the bundle; empty when the element
	// was not produced by a rule of the package (none in practice).
	Location string `json:"location"`
}

// Explain evaluates a stored input (InputJSON) against bundle b, as an Engine
// of b would, and says which rule produced each element of the decision,
// using OPA's tracer. For an element that a rule derives from another rule's
// result (the default bundle makes deny from findings.deny, and a waived
// finding a warning), it names the rule that found it first: the one to read
// or change.
func Explain(ctx context.Context, b *bundle.Bundle, raw []byte) (Explanation, error) {
	if b == nil {
		return Explanation{}, fmt.Errorf("policy: explaining: the bundle is nil")
	}
	cp := b.Copy()
	e, err := NewEngine(ctx, &cp)
	if err != nil {
		return Explanation{}, err
	}
	return e.Explain(ctx, raw)
}

// Explain is Explain with the engine's active bundle. The decision fails
// closed as EvaluateJSON's does; the error says why.
func (e *Engine) Explain(ctx context.Context, raw []byte) (Explanation, error) {
	p := e.current.Load()
	d := Decision{ID: newDecisionID(), BundleRevision: p.revision}
	input, err := parseInputJSON(raw)
	if err != nil {
		d, err = failClosed(d, err)
		return Explanation{Decision: d, Rules: []FiredRule{}, Trace: []string{}}, err
	}
	t := &explainTracer{}
	d, err = p.decide(ctx, d, input, t)
	x := Explanation{Decision: d, Rules: []FiredRule{}, Trace: t.trace(d)}
	for _, k := range []struct {
		kind string
		vs   []Violation
	}{{"deny", d.Deny}, {"warn", d.Warn}, {"approval", d.Approval}} {
		for _, v := range k.vs {
			fr := FiredRule{Kind: k.kind, ID: v.ID, Msg: v.Msg, Field: v.Field}
			if o := t.origin(v); o != nil {
				fr.Rule, fr.Location = o.rule, o.location
			}
			x.Rules = append(x.Rules, fr)
		}
	}
	return x, err
}

// explainTracer records, as the evaluation goes, every value a multi-value
// rule of package loopgate.loop (or below) adds to its set, with the rule,
// and the trace events of the queries that added them.
type explainTracer struct {
	exits  []ruleExit
	events []*topdown.Event
	capped bool
}

// ruleExit is one element a rule added to its set.
type ruleExit struct {
	id, field      string
	rule, location string
	queryID        uint64
}

var loopPackage = ast.MustParseRef("data.loopgate.loop")

func (*explainTracer) Enabled() bool { return true }

func (*explainTracer) Config() topdown.TraceConfig {
	return topdown.TraceConfig{PlugLocalVars: true}
}

func (t *explainTracer) TraceEvent(evt topdown.Event) {
	if len(t.events) < maxTraceEvents {
		t.events = append(t.events, &evt)
	} else {
		t.capped = true
	}
	if evt.Op != topdown.ExitOp {
		return
	}
	r, ok := evt.Node.(*ast.Rule)
	if !ok || r.Module == nil || len(r.Head.Args) > 0 || r.Head.RuleKind() != ast.MultiValue {
		return
	}
	ref := r.Module.Package.Path.Extend(r.Head.Ref())
	if !ref.HasPrefix(loopPackage) {
		return
	}
	// The bindings are only valid now: plug the element the rule adds.
	obj, ok := evt.Plug(r.Head.Key).Value.(ast.Object)
	if !ok {
		return
	}
	ex := ruleExit{rule: ref.String(), queryID: evt.QueryID}
	for key, out := range map[string]*string{"id": &ex.id, "field": &ex.field} {
		if ft := obj.Get(ast.InternedTerm(key)); ft != nil {
			if s, ok := ft.Value.(ast.String); ok {
				*out = string(s)
			}
		}
	}
	if ex.id == "" {
		return
	}
	if r.Location != nil {
		ex.location = fmt.Sprintf("%s:%d", strings.TrimPrefix(r.Location.File, "/"), r.Location.Row)
	}
	t.exits = append(t.exits, ex)
}

// origin returns the first rule that added an element with v's id and
// field. A rule that derives its elements from another rule's (deny from
// findings.deny, a warning from a waived finding) exits after it, so the
// first is where the element was found.
func (t *explainTracer) origin(v Violation) *ruleExit {
	for i := range t.exits {
		if ex := &t.exits[i]; ex.id == v.ID && ex.field == v.Field {
			return ex
		}
	}
	return nil
}

// trace renders, with OPA's pretty tracer, the events of the queries of the
// rules that produced the decision's elements, bounded by MaxTraceLines.
func (t *explainTracer) trace(d Decision) []string {
	queries := map[uint64]bool{}
	for _, vs := range [][]Violation{d.Deny, d.Warn, d.Approval} {
		for _, v := range vs {
			if o := t.origin(v); o != nil {
				queries[o.queryID] = true
			}
		}
	}
	var events []*topdown.Event
	for _, evt := range t.events {
		// Enter, Eval, Fail and Exit say how the rule fired; Redo, Unify
		// and Index are the evaluator's bookkeeping.
		switch evt.Op {
		case topdown.EnterOp, topdown.EvalOp, topdown.FailOp, topdown.ExitOp, topdown.NoteOp:
			if queries[evt.QueryID] {
				events = append(events, evt)
			}
		}
	}
	var b strings.Builder
	topdown.PrettyTraceWithLocation(&b, events)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	for i, l := range lines {
		lines[i] = truncate(strings.TrimPrefix(l, "/"), maxTraceLineBytes)
	}
	if len(lines) > MaxTraceLines-1 {
		more := len(lines) - (MaxTraceLines - 1)
		lines = append(lines[:MaxTraceLines-1], fmt.Sprintf("... %d more trace lines", more))
	} else if t.capped {
		lines = append(lines, fmt.Sprintf("... the trace was cut after %d events", maxTraceEvents))
	}
	if lines == nil {
		lines = []string{}
	}
	return lines
}
