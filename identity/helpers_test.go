package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "loopgate"
)

// t0 is the fake "now" of the JWT tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey is a signing key of the test issuer.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newRSAKey(t *testing.T, kid string) testKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.RS256, priv: priv}
}

func newECKey(t *testing.T, kid string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: priv}
}

// jwk is the public half as the issuer publishes it.
func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// withKid returns the same key published (or claimed) under another kid.
func (k testKey) withKid(kid string) testKey { k.kid = kid; return k }

// sign makes a compact JWT of claims signed by k with k's kid.
func (k testKey) sign(t *testing.T, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// claims returns valid claims for the test issuer at t0, with overrides
// applied (a nil value deletes the claim).
func claims(overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":   testIssuer,
		"aud":   testAudience,
		"sub":   "alice",
		"iat":   t0.Unix(),
		"nbf":   t0.Unix(),
		"exp":   t0.Add(time.Hour).Unix(),
		"teams": []string{"payments", "search"},
		"roles": []string{"admin"},
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// jwksServer is a test issuer's JWKS endpoint on 127.0.0.1 that counts the
// requests it serves.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	keys   []jose.JSONWebKey
	status int // when not 0 and not 200, every request fails with it
	body   []byte
}

func newJWKSServer(t *testing.T, keys ...testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.setKeys(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		set := jose.JSONWebKeySet{Keys: s.keys}
		s.mu.Unlock()
		if status != 0 && status != http.StatusOK {
			http.Error(w, "unavailable", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		if body != nil {
			w.Write(body)
			return
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...testKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
	for _, k := range keys {
		s.keys = append(s.keys, k.jwk())
	}
}

// setStatus makes every request fail with status (0 or 200: serve keys).
func (s *jwksServer) setStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// setBody makes the server answer with body instead of the key set.
func (s *jwksServer) setBody(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *jwksServer) count() int64 { return s.requests.Load() }

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var discardLogger = slog.New(slog.DiscardHandler)

// urlConfig is a valid configuration for the test issuer served by srv.
func urlConfig(srv *jwksServer) JWTConfig {
	return JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL}
}

// newTestVerifier builds a verifier for cfg that fetches from srv (if any)
// and runs on clock.
func newTestVerifier(t *testing.T, cfg JWTConfig, srv *jwksServer, clock *fakeClock) *JWTVerifier {
	t.Helper()
	opts := []Option{WithClock(clock.Now), WithLogger(discardLogger)}
	if srv != nil {
		opts = append(opts, WithHTTPClient(srv.Client()))
	}
	v, err := NewJWTVerifier(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatalf("NewJWTVerifier: %v", err)
	}
	return v
}

// wantUnauthenticated checks that err is an *UnauthenticatedError whose
// message contains want and does not echo the token.
func wantUnauthenticated(t *testing.T, err error, want, token string) {
	t.Helper()
	var ue *UnauthenticatedError
	if !errors.As(err, &ue) {
		t.Fatalf("error = %v (%T), want *UnauthenticatedError", err, err)
	}
	if !strings.Contains(ue.Message, want) {
		t.Errorf("message = %q, want it to contain %q", ue.Message, want)
	}
	if token != "" && len(token) > 16 && strings.Contains(ue.Message, token) {
		t.Errorf("message echoes the token: %q", ue.Message)
	}
}

// gen returns the number of completed key set fetches of v.
func gen(v *JWTVerifier) uint64 {
	v.keys.mu.Lock()
	defer v.keys.mu.Unlock()
	return v.keys.gen
}

// waitGen waits until v has completed at least n key set fetches.
func waitGen(t *testing.T, v *JWTVerifier, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gen(v) < n {
		if time.Now().After(deadline) {
			t.Fatalf("key set fetches = %d, want %d", gen(v), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rsaGenerate(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }
