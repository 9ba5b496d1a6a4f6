package server

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/loopgate/loopgate/policy"
)

// RoleAdmin may act for any team and approve loops.
const RoleAdmin = "admin"

// Identity is an authenticated caller.
type Identity struct {
	Subject string
	Teams   []string
	Roles   []string
}

// IsAdmin reports whether the identity has the admin role.
func (id Identity) IsAdmin() bool { return slices.Contains(id.Roles, RoleAdmin) }

// CanActFor reports whether the identity may change loops of team.
func (id Identity) CanActFor(team string) bool {
	return id.IsAdmin() || slices.Contains(id.Teams, team)
}

// Actor is the identity as policy sees it.
func (id Identity) Actor() policy.Actor {
	return policy.Actor{Subject: id.Subject, Teams: id.Teams, Roles: id.Roles}
}

// Token binds a bearer token to an identity.
type Token struct {
	Token    string
	Identity Identity
}

// Authenticator resolves bearer tokens. Tokens are kept as SHA-256 digests
// so that a heap dump does not hand them out.
type Authenticator struct {
	byDigest map[[32]byte]Identity
}

// NewAuthenticator indexes the configured tokens.
func NewAuthenticator(tokens []Token) *Authenticator {
	a := &Authenticator{byDigest: make(map[[32]byte]Identity, len(tokens))}
	for _, t := range tokens {
		a.byDigest[sha256.Sum256([]byte(t.Token))] = t.Identity
	}
	return a
}

// Authenticate resolves "Bearer <token>" from the authorization header.
func (a *Authenticator) Authenticate(header string) (Identity, error) {
	if header == "" {
		return Identity{}, &UnauthenticatedError{Message: "no credentials: send \"authorization: Bearer <token>\" (loopctl: --token or LOOPGATE_TOKEN)"}
	}
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(header, "bearer ")
	}
	if !ok || tok == "" {
		return Identity{}, &UnauthenticatedError{Message: "malformed authorization header: want \"Bearer <token>\""}
	}
	id, found := a.byDigest[sha256.Sum256([]byte(tok))]
	if !found {
		return Identity{}, &UnauthenticatedError{Message: "unknown token"}
	}
	return id, nil
}

type identityKey struct{}

// identityFrom returns the caller set by the auth interceptor.
func identityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// withIdentity stores the caller in the context.
func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// authInterceptor authenticates every RPC. REST requests reach the gRPC
// server through grpc-gateway with the same metadata, so this is the one
// place that authenticates both. Failures are audited by onReject.
func authInterceptor(a *Authenticator, onReject func(ctx context.Context, method string, err error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var header string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				header = v[0]
			}
		}
		id, err := a.Authenticate(header)
		if err != nil {
			onReject(ctx, info.FullMethod, err)
			return nil, toStatus(err)
		}
		resp, err := handler(withIdentity(ctx, id), req)
		return resp, toStatus(err)
	}
}

// requestIDFrom returns the x-request-id metadata, if any.
func requestIDFrom(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
