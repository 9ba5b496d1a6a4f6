package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// maxTokenBytes bounds the size of a JWT Verify accepts.
const maxTokenBytes = 8 << 10

// Option customizes a JWTVerifier.
type Option func(*options)

type options struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
}

// WithHTTPClient sets the client that fetches the JWKS. Its own timeout
// applies in addition to the 10s bound of every fetch.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithClock sets the clock used to check token lifetimes and to schedule
// key set refreshes; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger for key set fetches (failures are logged at
// Warn level); the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// JWTVerifier authenticates callers bearing a JWT from the configured
// issuer. It is safe for concurrent use.
type JWTVerifier struct {
	issuer   string
	audience string
	leeway   time.Duration
	algs     []jose.SignatureAlgorithm
	subject  claimPath
	teams    claimPath
	roles    claimPath
	keys     *keyCache
	now      func() time.Time
	log      *slog.Logger
}

// NewJWTVerifier validates cfg and loads the signing keys.
//
// A JWKS file that cannot be read or holds no usable key is an error. A
// JWKS URL that cannot be fetched is not: the failure is logged and the
// fetch retried when tokens arrive, so the server can start while the
// issuer is down (JWTs are refused until the keys are loaded).
func NewJWTVerifier(ctx context.Context, cfg JWTConfig, opts ...Option) (*JWTVerifier, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid JWT configuration: %w", errors.Join(errs...))
	}
	cfg = cfg.withDefaults()

	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = &http.Client{Timeout: jwksFetchTimeout}
	}
	if o.log == nil {
		o.log = slog.Default()
	}

	v := &JWTVerifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		leeway:   cfg.Leeway,
		subject:  newClaimPath(cfg.SubjectClaim),
		teams:    newClaimPath(cfg.TeamsClaim),
		roles:    newClaimPath(cfg.RolesClaim),
		now:      o.now,
		log:      o.log,
	}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}

	var src keySource = urlSource{url: cfg.JWKSURL, client: o.client}
	if cfg.JWKSFile != "" {
		src = fileSource{path: cfg.JWKSFile}
	}
	v.keys = &keyCache{src: src, refresh: cfg.Refresh, now: o.now, log: o.log}
	if err := v.keys.load(ctx); err != nil {
		if cfg.JWKSFile != "" {
			return nil, fmt.Errorf("jwt.jwksFile: %w", err)
		}
		o.log.Warn("identity: JWKS not available at start-up; JWTs are refused until it is", "url", cfg.JWKSURL, "error", err)
	}
	return v, nil
}

// LooksLikeJWT reports whether token has the shape of a compact JWS: three
// dot-separated base64url segments, the first a JSON object (the header).
// It lets the caller route opaque tokens to the static tokens without
// trying to verify them as JWTs. It does not check anything else.
func LooksLikeJWT(token string) bool {
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header == "" {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || payload == "" || strings.Contains(sig, ".") {
		return false
	}
	for _, seg := range []string{header, payload, sig} {
		if !isBase64URL(seg) {
			return false
		}
	}
	h, err := base64.RawURLEncoding.DecodeString(header)
	return err == nil && strings.HasPrefix(strings.TrimLeft(string(h), " \t\r\n"), "{")
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Verify authenticates raw, a compact JWT. It checks, in this order: the
// size and shape of the token; that its algorithm is allowed (before any
// key is looked up, so "none" and HMAC tokens never reach a key); the
// signature against the key named by "kid"; then iss, aud, exp (required),
// nbf and iat with the configured leeway; and finally the subject, teams
// and roles claims.
//
// Every failure is an *UnauthenticatedError with a reason safe to show to
// the caller.
func (v *JWTVerifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > maxTokenBytes {
		return Identity{}, unauthenticated("token too large (more than %d bytes)", maxTokenBytes)
	}
	if !LooksLikeJWT(raw) {
		return Identity{}, unauthenticated("token is not a JWT")
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			if strings.EqualFold(string(unexpected.Got), "none") {
				return Identity{}, unauthenticated("algorithm none not allowed")
			}
			return Identity{}, unauthenticated("algorithm %s not allowed (accepted: %v)", quote(string(unexpected.Got)), v.algs)
		}
		return Identity{}, unauthenticated("token is not a JWT")
	}
	if len(jws.Signatures) != 1 {
		return Identity{}, unauthenticated("token is not a JWT")
	}
	payload, err := v.verifySignature(ctx, jws)
	if err != nil {
		return Identity{}, err
	}
	return v.identify(payload)
}

// verifySignature finds the key the token names and checks the signature,
// refetching the key set (rate-limited) when the key is unknown.
func (v *JWTVerifier) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	header := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(header.Algorithm)
	kid := header.KeyID

	set, gen := v.keys.current()
	keys := candidateKeys(set, kid, alg)
	if len(keys) == 0 {
		reason := reasonUnknownKid
		if set == nil {
			reason = reasonNoKeys
		}
		set = v.keys.refetch(ctx, gen, reason)
		keys = candidateKeys(set, kid, alg)
	}
	if len(keys) == 0 {
		switch {
		case set == nil:
			return nil, unauthenticated("the issuer's signing keys are not available; try again later")
		case kid == "":
			return nil, unauthenticated("token has no kid and no known signing key supports algorithm %s", alg)
		case len(set.Key(kid)) > 0:
			return nil, unauthenticated("signing key %s does not support algorithm %s", quote(kid), alg)
		default:
			return nil, unauthenticated("signing key %s unknown", quote(kid))
		}
	}
	for _, k := range keys {
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, unauthenticated("signature invalid")
}

// candidateKeys returns the keys of set that may have signed a token with
// the given kid and alg: the key with that kid, or every key when the
// token has no kid, as long as its type (and its "alg", if published)
// matches alg.
func candidateKeys(set *jose.JSONWebKeySet, kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	if set == nil {
		return nil
	}
	var out []jose.JSONWebKey
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if keyFits(k, alg) {
			out = append(out, k)
		}
	}
	return out
}

// keyFits reports whether k can verify signatures made with alg.
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		case jose.ES512:
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// identify checks the verified claims and builds the identity.
func (v *JWTVerifier) identify(payload []byte) (Identity, error) {
	// The registered claims this verifier checks; "sub" is read with the
	// other identity claims, as it may be configured away.
	var std struct {
		Issuer    string           `json:"iss"`
		Audience  jwt.Audience     `json:"aud"`
		Expiry    *jwt.NumericDate `json:"exp"`
		NotBefore *jwt.NumericDate `json:"nbf"`
		IssuedAt  *jwt.NumericDate `json:"iat"`
	}
	var all map[string]any
	if json.Unmarshal(payload, &std) != nil || json.Unmarshal(payload, &all) != nil || all == nil {
		return Identity{}, unauthenticated("token claims are malformed")
	}

	if std.Issuer != v.issuer {
		return Identity{}, unauthenticated("issuer %s not accepted", quote(std.Issuer))
	}
	if !std.Audience.Contains(v.audience) {
		if len(std.Audience) == 0 {
			return Identity{}, unauthenticated("token has no audience (aud)")
		}
		return Identity{}, unauthenticated("audience %s not accepted", quoteList(std.Audience))
	}

	now := v.now()
	if std.Expiry == nil {
		return Identity{}, unauthenticated("token has no expiry (exp)")
	}
	exp := std.Expiry.Time()
	if !now.Before(exp.Add(v.leeway)) {
		return Identity{}, unauthenticated("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if std.NotBefore != nil {
		if nbf := std.NotBefore.Time(); now.Add(v.leeway).Before(nbf) {
			return Identity{}, unauthenticated("token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	if std.IssuedAt != nil {
		if iat := std.IssuedAt.Time(); now.Add(v.leeway).Before(iat) {
			return Identity{}, unauthenticated("token issued in the future (iat %s)", iat.UTC().Format(time.RFC3339))
		}
	}

	subject, err := stringClaim(all, v.subject)
	if err != nil {
		return Identity{}, unauthenticated("%v", err)
	}
	if subject == "" {
		return Identity{}, unauthenticated("token has no subject (claim %q)", v.subject.full)
	}
	if err := checkName(subject, maxSubjectBytes); err != nil {
		return Identity{}, unauthenticated("subject (claim %q) %v", v.subject.full, err)
	}
	teams, err := listClaim(all, v.teams)
	if err != nil {
		return Identity{}, unauthenticated("%v", err)
	}
	roles, err := listClaim(all, v.roles)
	if err != nil {
		return Identity{}, unauthenticated("%v", err)
	}
	return Identity{
		Subject: subject,
		Teams:   teams,
		Roles:   roles,
		Method:  MethodJWT,
		Issuer:  std.Issuer,
		Expiry:  exp,
	}, nil
}

// quoteList renders an untrusted list for an error message, bounded.
func quoteList(list []string) string {
	const max = 4
	parts := make([]string, 0, max+1)
	for i, s := range list {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(list)-max))
			break
		}
		parts = append(parts, quote(s))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
