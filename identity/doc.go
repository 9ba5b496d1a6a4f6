// Package identity authenticates loopgate API callers.
//
// A caller is identified in one of three ways, each producing an [Identity]
// whose Method records how it was established:
//
//   - mTLS ("mtls"): the connection presented a client certificate that the
//     TLS handshake verified against the configured client CA, and the
//     verified leaf's subject is listed in the server configuration.
//     [CertificateMapper] maps it; [ServerTLSConfig] builds the listener's
//     TLS configuration.
//   - JWT ("jwt"): the caller sent "authorization: Bearer <jwt>" with a token
//     minted by the configured OIDC issuer. [JWTVerifier] checks the
//     signature against the issuer's JWKS (fetched over HTTP(S) and cached,
//     or read from a file), the issuer, audience and validity window, and
//     reads subject, teams and roles from configurable claims.
//   - Static token ("token"): the caller sent "authorization: Bearer <token>"
//     with an opaque token from the server configuration. [StaticTokens]
//     keeps only SHA-256 digests of the tokens.
//
// The server should try them in this order:
//
//  1. If the connection carries a verified client certificate whose subject
//     the CertificateMapper knows, that is the identity; the authorization
//     header is not consulted.
//  2. Otherwise parse the authorization header with [ParseBearer]. A missing
//     or malformed header is an [UnauthenticatedError].
//  3. If a JWT verifier is configured and the token [LooksLikeJWT], the
//     verifier decides: a token that looks like a JWT but does not verify is
//     refused, it never falls through to the static tokens.
//  4. Otherwise look the token up in the static tokens; an unknown token is
//     refused.
//
// A sketch of the server side:
//
//	func authenticate(ctx context.Context, state *tls.ConnectionState, header string) (identity.Identity, error) {
//		if id, ok := certs.Identify(state); ok {
//			return id, nil
//		}
//		token, err := identity.ParseBearer(header)
//		if err != nil {
//			return identity.Identity{}, err
//		}
//		if jwts != nil && identity.LooksLikeJWT(token) {
//			return jwts.Verify(ctx, token)
//		}
//		if id, ok := static.Lookup(token); ok {
//			return id, nil
//		}
//		return identity.Identity{}, &identity.UnauthenticatedError{Message: "unknown token"}
//	}
//
// Every authentication failure is an *[UnauthenticatedError] whose Message
// is safe to return to the caller: it explains what was wrong (expired,
// wrong audience, unknown signing key, ...) without echoing the credential.
package identity
