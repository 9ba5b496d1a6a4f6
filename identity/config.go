package identity

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Defaults and bounds of JWTConfig.
const (
	DefaultLeeway       = 60 * time.Second
	MaxLeeway           = 5 * time.Minute
	DefaultRefresh      = 15 * time.Minute
	MinRefresh          = time.Minute
	DefaultSubjectClaim = "sub"
	DefaultTeamsClaim   = "teams"
	DefaultRolesClaim   = "roles"
)

// DefaultAlgorithms are the signature algorithms accepted when
// JWTConfig.Algorithms is empty.
var DefaultAlgorithms = []string{string(jose.RS256), string(jose.ES256)}

// asymmetricAlgorithms are the algorithms JWTConfig.Algorithms may list.
var asymmetricAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// JWTConfig configures a JWTVerifier: which issuer's tokens, for which
// audience, checked against which keys. It is meant to be embedded in the
// server configuration (under "jwt"). Zero values mean the defaults.
type JWTConfig struct {
	// Issuer is required and must match the "iss" claim exactly.
	Issuer string `yaml:"issuer"`
	// Audience is required; the "aud" claim (a string or an array) must
	// contain it.
	Audience string `yaml:"audience"`
	// JWKSURL is the issuer's key set, fetched over HTTP(S) and cached.
	JWKSURL string `yaml:"jwksURL"`
	// JWKSFile is a local key set file, the alternative to JWKSURL.
	// Exactly one of the two is required. The file is re-read on the same
	// schedule as a URL is refetched, so keys can be rotated in place.
	JWKSFile string `yaml:"jwksFile"`
	// Algorithms lists the accepted signature algorithms; default RS256
	// and ES256. Only asymmetric algorithms are accepted: "none" and the
	// HMAC algorithms (HS*) are refused.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the allowed clock skew when checking exp, nbf and iat;
	// default (and when 0) 60s, at most 5m.
	Leeway time.Duration `yaml:"leeway"`
	// Refresh is how often the key set is refetched; default 15m, at least 1m.
	Refresh time.Duration `yaml:"refresh"`
	// SubjectClaim names the claim holding the caller's subject; default "sub".
	SubjectClaim string `yaml:"subjectClaim"`
	// TeamsClaim names the claim holding the caller's teams; default
	// "teams". The value is an array of strings or a single string. A
	// dotted path such as "realm_access.roles" reaches into nested
	// objects; a top-level claim whose name is the whole path (for example
	// "https://acme.example/teams") takes precedence.
	TeamsClaim string `yaml:"teamsClaim"`
	// RolesClaim names the claim holding the caller's roles; default
	// "roles". Same rules as TeamsClaim.
	RolesClaim string `yaml:"rolesClaim"`
}

// withDefaults returns a copy of c with the zero fields set to the defaults.
func (c JWTConfig) withDefaults() JWTConfig {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.SubjectClaim == "" {
		c.SubjectClaim = DefaultSubjectClaim
	}
	if c.TeamsClaim == "" {
		c.TeamsClaim = DefaultTeamsClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	c.Algorithms = append([]string(nil), c.Algorithms...)
	return c
}

// Validate reports every problem of the configuration at once, each error
// naming the field, like "jwt.audience: required". Zero values stand for
// the defaults and are valid.
func (c *JWTConfig) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("jwt.%s: %s", field, fmt.Sprintf(format, args...)))
	}

	switch {
	case c.Issuer == "":
		bad("issuer", "required")
	case strings.TrimSpace(c.Issuer) != c.Issuer:
		bad("issuer", "%q has leading or trailing spaces; it must match the token's iss exactly", c.Issuer)
	}
	switch {
	case c.Audience == "":
		bad("audience", "required")
	case strings.TrimSpace(c.Audience) != c.Audience:
		bad("audience", "%q has leading or trailing spaces", c.Audience)
	}

	switch {
	case c.JWKSURL == "" && c.JWKSFile == "":
		bad("jwksURL", "required (or jwksFile)")
	case c.JWKSURL != "" && c.JWKSFile != "":
		bad("jwksFile", "set jwksURL or jwksFile, not both")
	case c.JWKSURL != "":
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			bad("jwksURL", "%v", err)
		}
	}

	for i, a := range c.Algorithms {
		if err := checkAlgorithm(a); err != nil {
			bad(fmt.Sprintf("algorithms[%d]", i), "%v", err)
		}
	}

	switch {
	case c.Leeway < 0:
		bad("leeway", "must not be negative")
	case c.Leeway > MaxLeeway:
		bad("leeway", "%v exceeds the maximum of %v", c.Leeway, MaxLeeway)
	}
	switch {
	case c.Refresh < 0:
		bad("refresh", "must not be negative")
	case c.Refresh > 0 && c.Refresh < MinRefresh:
		bad("refresh", "%v is below the minimum of %v", c.Refresh, MinRefresh)
	}

	for _, f := range []struct{ field, path string }{
		{"subjectClaim", c.SubjectClaim},
		{"teamsClaim", c.TeamsClaim},
		{"rolesClaim", c.RolesClaim},
	} {
		if f.path == "" {
			continue
		}
		if err := checkClaimPath(f.path); err != nil {
			bad(f.field, "%v", err)
		}
	}
	return errs
}

// checkJWKSURL accepts absolute http and https URLs without credentials.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https or http", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials")
	}
	return nil
}

// checkAlgorithm accepts the asymmetric JWS algorithms go-jose verifies.
func checkAlgorithm(a string) error {
	switch {
	case strings.EqualFold(a, "none"):
		return fmt.Errorf(`"none" is never allowed`)
	case strings.HasPrefix(strings.ToUpper(a), "HS"):
		return fmt.Errorf("%q is a symmetric (HMAC) algorithm; only asymmetric algorithms are accepted", a)
	}
	for _, known := range asymmetricAlgorithms {
		if a == string(known) {
			return nil
		}
	}
	return fmt.Errorf("%q is not a supported algorithm (want one of %v)", a, asymmetricAlgorithms)
}
