package identity

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// StaticToken binds an opaque bearer token to an identity.
type StaticToken struct {
	Token    string   `yaml:"token"`
	Identity Identity `yaml:"identity"`
}

// StaticTokens resolves opaque bearer tokens from the server configuration.
//
// Tokens are indexed by their SHA-256 digest and the raw tokens are not
// kept, so a heap dump or a debug print does not hand them out. Looking up
// a digest in a map does not leak the token through timing: an attacker
// controls the token, not where its digest lands.
type StaticTokens struct {
	byDigest map[[sha256.Size]byte]Identity
}

// NewStaticTokens indexes tokens. Each token must be non-empty visible
// ASCII (what ParseBearer can return) and unique, and each identity needs a
// subject. The identities' Method is set to "token"; Issuer and Expiry are
// cleared since static tokens have neither.
func NewStaticTokens(tokens []StaticToken) (*StaticTokens, error) {
	s := &StaticTokens{byDigest: make(map[[sha256.Size]byte]Identity, len(tokens))}
	for i, t := range tokens {
		if !validToken(t.Token) {
			return nil, fmt.Errorf("tokens[%d]: token must be non-empty printable ASCII without spaces", i)
		}
		if t.Identity.Subject == "" {
			return nil, fmt.Errorf("tokens[%d]: identity.subject: required", i)
		}
		digest := sha256.Sum256([]byte(t.Token))
		if prev, dup := s.byDigest[digest]; dup {
			return nil, fmt.Errorf("tokens[%d]: same token as the one of %q", i, prev.Subject)
		}
		id := t.Identity.clone()
		id.Method = MethodToken
		id.Issuer = ""
		id.Expiry = time.Time{}
		s.byDigest[digest] = id
	}
	return s, nil
}

// Lookup returns the identity of token, if it is one of the configured
// tokens. The returned identity shares no memory with the configuration.
func (s *StaticTokens) Lookup(token string) (Identity, bool) {
	if s == nil || len(token) > maxAuthorizationHeader {
		return Identity{}, false
	}
	id, ok := s.byDigest[sha256.Sum256([]byte(token))]
	if !ok {
		return Identity{}, false
	}
	return id.clone(), true
}
