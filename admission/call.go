package admission

import (
	"context"

	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/policy"
)

// Identity is an authenticated caller (see package identity for how one is
// established: static tokens, OIDC tokens, client certificates).
type Identity = identity.Identity

// actor is the identity as policy sees it.
func actor(id Identity) policy.Actor {
	return policy.Actor{Subject: id.Subject, Teams: id.Teams, Roles: id.Roles}
}

// Call is what the API adapters know about a request beyond its message:
// the client's request id header and where it came from.
type Call struct {
	Method    string // the full RPC method, e.g. /loopgate.v1.LoopService/CreateLoop
	RequestID string // the x-request-id header
	Source    string // the client's address, as far as it can be known
}

type callKey struct{}

// WithCall returns ctx carrying c.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the Call of ctx (zero when none was set).
func CallFrom(ctx context.Context) Call {
	c, _ := ctx.Value(callKey{}).(Call)
	return c
}

func requestIDFrom(ctx context.Context) string { return CallFrom(ctx).RequestID }
