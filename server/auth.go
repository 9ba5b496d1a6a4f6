package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/internal/utf8clip"
)

// Identity is an authenticated caller.
type Identity = admission.Identity

// Authenticator establishes who calls: a verified client certificate that
// maps to an identity (mTLS), else the bearer token — an OIDC JWT when an
// issuer is configured and the token looks like one, else a static token.
type Authenticator struct {
	Static *identity.StaticTokens
	JWT    *identity.JWTVerifier       // nil: no OIDC issuer configured
	Certs  *identity.CertificateMapper // nil: no client certificates mapped
}

// Authenticate resolves the caller of ctx.
func (a *Authenticator) Authenticate(ctx context.Context) (Identity, error) {
	if a.Certs != nil {
		if p, ok := peer.FromContext(ctx); ok {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				if id, ok := a.Certs.Identify(&info.State); ok {
					return id, nil
				}
			}
		}
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	tok, err := identity.ParseBearer(header)
	if err != nil {
		return Identity{}, err
	}
	if a.JWT != nil && identity.LooksLikeJWT(tok) {
		return a.JWT.Verify(ctx, tok)
	}
	if a.Static != nil {
		if id, ok := a.Static.Lookup(tok); ok {
			return id, nil
		}
	}
	if identity.LooksLikeJWT(tok) {
		return Identity{}, &identity.UnauthenticatedError{Message: "unknown token: it looks like a JWT, but this server accepts no OIDC tokens (auth.jwt is not configured); use a token from its tokens: list, or ask its operator to configure the issuer"}
	}
	return Identity{}, &identity.UnauthenticatedError{Message: "unknown token: it matches no token this server knows (it may have been rotated); log in again with `loopctl login --with-token`, or check --token / LOOPGATE_TOKEN"}
}

type identityKey struct{}

// identityFrom returns the caller set by the interceptor.
func identityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// withIdentity stores the caller in the context.
func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// maxRequestIDHeader bounds the x-request-id header kept for the request.
const maxRequestIDHeader = 128

// callOf reads what the request's metadata and peer say about it.
func callOf(ctx context.Context, method string) admission.Call {
	c := admission.Call{Method: method}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		c.Source = p.Addr.String()
		if host, _, err := net.SplitHostPort(c.Source); err == nil {
			c.Source = host
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			c.RequestID = clipTo(v[0], maxRequestIDHeader)
		}
		// REST requests arrive from the gateway; it forwards the client's
		// address. Kept as a hint next to the peer, never instead of it.
		if v := md.Get("x-forwarded-for"); len(v) > 0 {
			first, _, _ := strings.Cut(v[0], ",")
			c.Source += " via " + clipTo(strings.TrimSpace(first), 64)
		}
	}
	return c
}

// Interceptor is the request path's front door, for gRPC and (through
// grpc-gateway, which dials the gRPC listener) REST alike: authenticate,
// authorize with the one Authorizer, then run the handler, and map every
// error to one status. Nothing runs before authorization but reading the
// resource name from the request (for a batch request, every item's, each
// authorized as its single RPC; see batchMethods); every refusal is audited
// by core.
func Interceptor(a *Authenticator, core *admission.Core, lim *Limiters) grpc.UnaryServerInterceptor {
	if lim == nil {
		lim = &Limiters{}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if Unauthenticated(info.FullMethod) {
			return handler(ctx, req) // health and reflection only (observe.go)
		}
		call := callOf(ctx, info.FullMethod)
		ctx = admission.WithCall(ctx, call)
		peerHost, _, _ := strings.Cut(call.Source, " via ") // never the forwarded hint: clients set it
		if limited, wait := lim.AuthFailures.Exhausted(peerHost); limited {
			err := rateLimited("too many failed authentications from this address", wait)
			core.AuditRateLimited(ctx, Identity{}, "auth.reject", info.FullMethod, err.Error())
			return nil, toStatus(err)
		}
		id, err := a.Authenticate(ctx)
		if err != nil {
			lim.AuthFailures.Take(peerHost)
			core.AuditRejected(ctx, info.FullMethod, err)
			return nil, toStatus(err)
		}
		noteActor(ctx, id.Subject)
		action, ok := MethodActions[info.FullMethod]
		if !ok {
			action = info.FullMethod // no rule: the authorizer refuses it
		}
		res, err := resourceOf(req)
		if err != nil {
			auditInvalid(ctx, core, id, action, err)
			return nil, toStatus(err)
		}
		// A batch request is authorized item by item (each as its single
		// RPC); what it costs against the rate limit: see
		// rateLimitedActions.
		cost := 1
		bm, batch := batchMethods[info.FullMethod]
		if batch {
			res.Name = bm.resource
			items, err := batchResourcesOf(req, bm.resource)
			if err != nil {
				auditInvalid(ctx, core, id, action, err)
				return nil, toStatus(err)
			}
			if err := core.AuthorizeItems(ctx, id, bm.actions, items); err != nil {
				return nil, toStatus(err)
			}
			if info.FullMethod == lgv1.LoopService_BatchPlanLoops_FullMethodName {
				cost = max((len(items)+planItemsPerToken-1)/planItemsPerToken, 1)
			}
		} else if err := core.Authorize(ctx, id, action, res); err != nil {
			return nil, toStatus(err)
		}
		limited := rateLimitedActions[action]
		if limited {
			if ok, wait := lim.Mutations.TakeN(id.Subject, min(cost, max(lim.Mutations.Burst(), 1))); !ok {
				what := fmt.Sprintf("%s sent too many changes", id.Subject)
				if cost > 1 {
					what += fmt.Sprintf(" (a plan of %d loops counts as %d)", cost*planItemsPerToken, cost)
				}
				err := rateLimited(what, wait)
				core.AuditRateLimited(ctx, id, action, res.Name, err.Error())
				return nil, toStatus(err)
			}
		}
		resp, err := handler(withIdentity(ctx, id), req)
		if limited && batch {
			if r, ok := resp.(*lgv1.BatchApplyLoopsResponse); ok && !req.(*lgv1.BatchApplyLoopsRequest).GetValidateOnly() {
				lim.Mutations.Charge(id.Subject, changedItems(r)-1) // the first was taken to let it in
			}
		}
		auditInvalid(ctx, core, id, action, err)
		return resp, toStatus(err)
	}
}

// auditInvalid records an invalid request the admission path has not
// recorded itself (the adapters' checks of names, masks, page sizes).
func auditInvalid(ctx context.Context, core *admission.Core, id Identity, action string, err error) {
	var invalid *admission.InvalidError
	if errors.As(err, &invalid) && !invalid.Recorded {
		core.AuditInvalid(ctx, id, action, invalid)
	}
}

// RateLimitedError is a request refused by a rate limit.
type RateLimitedError struct {
	Message    string
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string { return e.Message }

func rateLimited(what string, wait time.Duration) *RateLimitedError {
	wait = max(wait.Round(time.Second), time.Second)
	return &RateLimitedError{RetryAfter: wait, Message: fmt.Sprintf("rate limited: %s; retry in %s", what, wait)}
}

// clipTo cuts s to at most n bytes (at a rune boundary).
func clipTo(s string, n int) string { return utf8clip.Bytes(s, n) }
