package admission

import (
	"context"
	"time"

	"github.com/loopgate/loopgate/policy"
)

type decisionKindKey struct{}

// withDecisionKind makes the policy evaluations under ctx count as kind
// (DecisionRequest when unset) for Core.ObserveDecision.
func withDecisionKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, decisionKindKey{}, kind)
}

func decisionKindOf(ctx context.Context) string {
	if k, ok := ctx.Value(decisionKindKey{}).(string); ok {
		return k
	}
	return DecisionRequest
}

// observeDecision reports one policy evaluation to Core.ObserveDecision.
func (c *Core) observeDecision(ctx context.Context, took time.Duration, err error) {
	if c.ObserveDecision != nil {
		c.ObserveDecision(decisionKindOf(ctx), took, err != nil)
	}
}

// evaluateCandidate evaluates a stored input with a candidate bundle's
// engine (impact analysis), observed as DecisionImpact.
func (c *Core) evaluateCandidate(ctx context.Context, candidate *policy.Engine, input []byte) (policy.Decision, error) {
	began := time.Now()
	d, err := candidate.EvaluateJSON(ctx, input)
	c.observeDecision(withDecisionKind(ctx, DecisionImpact), time.Since(began), err)
	return d, err
}
