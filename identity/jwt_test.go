package identity

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestVerifyValidTokens(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t, "rsa-a"), newECKey(t, "ec-a")
	srv := newJWKSServer(t, rsaKey, ecKey)
	v := newTestVerifier(t, urlConfig(srv), srv, newFakeClock())

	for _, key := range []testKey{rsaKey, ecKey} {
		t.Run(string(key.alg), func(t *testing.T) {
			id, err := v.Verify(t.Context(), key.sign(t, claims(nil)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{
				Subject: "alice",
				Teams:   []string{"payments", "search"},
				Roles:   []string{"admin"},
				Method:  MethodJWT,
				Issuer:  testIssuer,
				Expiry:  t0.Add(time.Hour),
			}
			if !identityEqual(id, want) {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
		})
	}
	t.Run("no kid", func(t *testing.T) {
		// Every key that fits the algorithm is tried.
		for _, key := range []testKey{rsaKey, ecKey} {
			if _, err := v.Verify(t.Context(), key.withKid("").sign(t, claims(nil))); err != nil {
				t.Errorf("%s token without kid: %v", key.alg, err)
			}
		}
	})
	if n := srv.count(); n != 1 {
		t.Errorf("JWKS requests = %d, want 1 (the start-up fetch)", n)
	}
}

func identityEqual(a, b Identity) bool {
	return a.Subject == b.Subject && slices.Equal(a.Teams, b.Teams) && slices.Equal(a.Roles, b.Roles) &&
		a.Method == b.Method && a.Issuer == b.Issuer && a.Expiry.Equal(b.Expiry)
}

func TestVerifyCustomClaims(t *testing.T) {
	key := newECKey(t, "ec-a")
	srv := newJWKSServer(t, key)
	cfg := urlConfig(srv)
	cfg.SubjectClaim = "preferred_username"
	cfg.TeamsClaim = "https://acme.example/teams" // a namespaced claim: the dots are part of its name
	cfg.RolesClaim = "realm_access.roles"
	v := newTestVerifier(t, cfg, srv, newFakeClock())

	tests := []struct {
		name   string
		claims map[string]any
		want   Identity
	}{
		{
			name: "nested roles, single-string team, audience array",
			claims: claims(map[string]any{
				"aud":                        []string{"other", testAudience},
				"preferred_username":         "bob",
				"https://acme.example/teams": "payments",
				"realm_access":               map[string]any{"roles": []string{"operator", "viewer", "operator"}},
			}),
			want: Identity{Subject: "bob", Teams: []string{"payments"}, Roles: []string{"operator", "viewer"}},
		},
		{
			name: "claims absent",
			claims: claims(map[string]any{
				"preferred_username": "carol",
			}),
			want: Identity{Subject: "carol"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), key.sign(t, tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Subject != tt.want.Subject || !slices.Equal(id.Teams, tt.want.Teams) || !slices.Equal(id.Roles, tt.want.Roles) {
				t.Errorf("identity = %+v, want subject %q teams %q roles %q", id, tt.want.Subject, tt.want.Teams, tt.want.Roles)
			}
		})
	}

	// The standard "sub" is not consulted any more.
	_, err := v.Verify(t.Context(), key.sign(t, claims(nil)))
	wantUnauthenticated(t, err, `token has no subject (claim "preferred_username")`, "")
}

func TestVerifyRefusals(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t, "rsa-a"), newECKey(t, "ec-a")
	stranger := newRSAKey(t, "rsa-stranger") // not in the JWKS
	srv := newJWKSServer(t, rsaKey, ecKey)
	clock := newFakeClock()
	v := newTestVerifier(t, urlConfig(srv), srv, clock)

	b64 := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	valid := rsaKey.sign(t, claims(nil))
	parts := strings.Split(valid, ".")

	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "rsa-a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hsToken, err := jwt.Signed(hsSigner).Claims(claims(nil)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	ps256 := rsaKey
	ps256.alg = jose.PS256

	tooManyTeams := make([]string, maxGroupEntries+1)
	for i := range tooManyTeams {
		tooManyTeams[i] = fmt.Sprintf("team-%d", i)
	}

	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"wrong audience", rsaKey.sign(t, claims(map[string]any{"aud": []string{"billing", "search"}})), `audience ["billing", "search"] not accepted`},
		{"no audience", rsaKey.sign(t, claims(map[string]any{"aud": nil})), "token has no audience"},
		{"wrong issuer", rsaKey.sign(t, claims(map[string]any{"iss": "https://evil.test"})), `issuer "https://evil.test" not accepted`},
		{"expired beyond leeway", rsaKey.sign(t, claims(map[string]any{"exp": t0.Add(-61 * time.Second).Unix()})), "token expired at " + t0.Add(-61*time.Second).Format(time.RFC3339)},
		{"no exp", rsaKey.sign(t, claims(map[string]any{"exp": nil})), "token has no expiry (exp)"},
		{"nbf in the future", ecKey.sign(t, claims(map[string]any{"nbf": t0.Add(5 * time.Minute).Unix()})), "token not valid before " + t0.Add(5*time.Minute).Format(time.RFC3339)},
		{"iat in the future", ecKey.sign(t, claims(map[string]any{"iat": t0.Add(5 * time.Minute).Unix()})), "token issued in the future"},
		{"unknown kid", stranger.sign(t, claims(nil)), `signing key "rsa-stranger" unknown`},
		{"known kid, wrong key", stranger.withKid("rsa-a").sign(t, claims(nil)), "signature invalid"},
		{"EC signature with an RSA kid", ecKey.withKid("rsa-a").sign(t, claims(nil)), `signing key "rsa-a" does not support algorithm ES256`},
		{"alg none", b64(map[string]string{"alg": "none"}) + "." + parts[1] + ".", "algorithm none not allowed"},
		{"alg NONE", b64(map[string]string{"alg": "NONE", "kid": "rsa-a"}) + "." + parts[1] + ".", "algorithm none not allowed"},
		{"HS256", hsToken, `algorithm "HS256" not allowed`},
		{"PS256 not configured", ps256.sign(t, claims(nil)), `algorithm "PS256" not allowed`},
		{"tampered payload", parts[0] + "." + b64(claims(map[string]any{"sub": "root"})) + "." + parts[2], "signature invalid"},
		{"tampered header", b64(map[string]string{"alg": "RS256", "kid": "rsa-a", "typ": "at+jwt"}) + "." + parts[1] + "." + parts[2], "signature invalid"},
		{"signature stripped", parts[0] + "." + parts[1] + ".", "signature invalid"},
		{"opaque token", "lg_0123456789abcdef0123456789abcdef", "token is not a JWT"},
		{"three segments, header not JSON", "abc.def.ghi", "token is not a JWT"},
		{"JWE shape", parts[0] + ".a.b.c." + parts[2], "token is not a JWT"},
		{"empty", "", "token is not a JWT"},
		{"oversize", rsaKey.sign(t, claims(map[string]any{"pad": strings.Repeat("x", maxTokenBytes)})), "token too large"},
		{"no subject", rsaKey.sign(t, claims(map[string]any{"sub": nil})), `token has no subject (claim "sub")`},
		{"subject not a string", rsaKey.sign(t, claims(map[string]any{"sub": 42})), `claim "sub" must be a string`},
		{"subject too long", rsaKey.sign(t, claims(map[string]any{"sub": strings.Repeat("s", maxSubjectBytes+1)})), "longer than 256 bytes"},
		{"subject with control characters", rsaKey.sign(t, claims(map[string]any{"sub": "alice\nadmin"})), "control characters"},
		{"too many teams", rsaKey.sign(t, claims(map[string]any{"teams": tooManyTeams})), "more than 64"},
		{"team too long", rsaKey.sign(t, claims(map[string]any{"teams": []string{strings.Repeat("t", maxGroupBytes+1)}})), "longer than 128 bytes"},
		{"roles not strings", rsaKey.sign(t, claims(map[string]any{"roles": []any{"admin", 7}})), `claim "roles" must be a string or an array of strings`},
		{"roles an object", rsaKey.sign(t, claims(map[string]any{"roles": map[string]any{"admin": true}})), `claim "roles" must be a string or an array of strings`},
		{"exp not a number", rsaKey.sign(t, claims(map[string]any{"exp": "tomorrow"})), "token claims are malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.advance(31 * time.Second) // let every unknown kid through the refetch limit
			before := srv.count()
			_, err := v.Verify(t.Context(), tt.token)
			wantUnauthenticated(t, err, tt.want, tt.token)
			if strings.Contains(tt.want, "not allowed") && srv.count() != before {
				t.Errorf("a refused algorithm caused a JWKS fetch")
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	key := newECKey(t, "ec-a")
	srv := newJWKSServer(t, key)

	tests := []struct {
		name   string
		leeway time.Duration
		claims map[string]any
		ok     bool
	}{
		{"expired inside the default leeway", 0, map[string]any{"exp": t0.Add(-59 * time.Second).Unix()}, true},
		{"expired at the edge of the default leeway", 0, map[string]any{"exp": t0.Add(-60 * time.Second).Unix()}, false},
		{"nbf inside the default leeway", 0, map[string]any{"nbf": t0.Add(50 * time.Second).Unix()}, true},
		{"iat inside the default leeway", 0, map[string]any{"iat": t0.Add(50 * time.Second).Unix()}, true},
		{"expired inside a 5m leeway", 5 * time.Minute, map[string]any{"exp": t0.Add(-4 * time.Minute).Unix()}, true},
		{"expired beyond a 1s leeway", time.Second, map[string]any{"exp": t0.Add(-2 * time.Second).Unix()}, false},
		{"nbf beyond a 1s leeway", time.Second, map[string]any{"nbf": t0.Add(2 * time.Second).Unix()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := urlConfig(srv)
			cfg.Leeway = tt.leeway
			v := newTestVerifier(t, cfg, srv, newFakeClock())
			id, err := v.Verify(t.Context(), key.sign(t, claims(tt.claims)))
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok {
				wantUnauthenticated(t, err, "token ", "")
			}
			if tt.ok && id.Subject != "alice" {
				t.Errorf("subject = %q", id.Subject)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	keyA, keyB := newRSAKey(t, "key-a"), newECKey(t, "key-b")
	srv := newJWKSServer(t, keyA)
	v := newTestVerifier(t, urlConfig(srv), srv, newFakeClock())

	if _, err := v.Verify(t.Context(), keyA.sign(t, claims(nil))); err != nil {
		t.Fatalf("token of key A: %v", err)
	}
	srv.setKeys(keyA, keyB) // the issuer rotates in key B
	for i := range 3 {
		if _, err := v.Verify(t.Context(), keyB.sign(t, claims(nil))); err != nil {
			t.Fatalf("token %d of key B: %v", i, err)
		}
	}
	if n := srv.count(); n != 2 {
		t.Errorf("JWKS requests = %d, want 2 (start-up, then one refetch for key B)", n)
	}
	if _, err := v.Verify(t.Context(), keyA.sign(t, claims(nil))); err != nil {
		t.Errorf("token of key A after the refetch: %v", err)
	}
}

func TestUnknownKidsAreRateLimited(t *testing.T) {
	key, stranger := newRSAKey(t, "key-a"), newECKey(t, "")
	srv := newJWKSServer(t, key)
	clock := newFakeClock()
	v := newTestVerifier(t, urlConfig(srv), srv, clock)

	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = stranger.withKid(fmt.Sprintf("random-%d-%d", i, time.Now().UnixNano())).sign(t, claims(nil))
	}
	before := srv.count()
	var wg sync.WaitGroup
	errs := make([]error, len(tokens))
	for i, tok := range tokens {
		wg.Go(func() {
			_, errs[i] = v.Verify(t.Context(), tok)
		})
	}
	wg.Wait()
	for i, err := range errs {
		wantUnauthenticated(t, err, "unknown", tokens[i])
	}
	if n := srv.count() - before; n < 1 || n > 2 {
		t.Errorf("JWKS requests for 100 unknown kids = %d, want 1 or 2", n)
	}

	// Within 30s of that refetch no unknown kid causes another one ...
	clock.advance(29 * time.Second)
	before = srv.count()
	v.Verify(t.Context(), tokens[0])
	if n := srv.count() - before; n != 0 {
		t.Errorf("JWKS requests 29s later = %d, want 0", n)
	}
	// ... after it, one may.
	clock.advance(2 * time.Second)
	v.Verify(t.Context(), tokens[1])
	if n := srv.count() - before; n != 1 {
		t.Errorf("JWKS requests 31s later = %d, want 1", n)
	}
	// A known key still verifies throughout.
	if _, err := v.Verify(t.Context(), key.sign(t, claims(nil))); err != nil {
		t.Errorf("valid token: %v", err)
	}
}

func TestPeriodicRefresh(t *testing.T) {
	keyA, keyB := newRSAKey(t, "key-a"), newRSAKey(t, "key-b")
	srv := newJWKSServer(t, keyA)
	clock := newFakeClock()
	cfg := urlConfig(srv)
	cfg.Refresh = 10 * time.Minute
	v := newTestVerifier(t, cfg, srv, clock)
	tokenA := keyA.sign(t, claims(map[string]any{"exp": t0.Add(24 * time.Hour).Unix()}))
	tokenB := keyB.sign(t, claims(map[string]any{"exp": t0.Add(24 * time.Hour).Unix()}))

	// Before the interval the key set is not refetched.
	clock.advance(9 * time.Minute)
	if _, err := v.Verify(t.Context(), tokenA); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("JWKS requests = %d, want 1", n)
	}

	// After it, the first token triggers a background refresh and is still
	// verified with the keys at hand.
	srv.setKeys(keyB)
	clock.advance(2 * time.Minute)
	if _, err := v.Verify(t.Context(), tokenA); err != nil {
		t.Fatalf("token A during the refresh: %v", err)
	}
	waitGen(t, v, 2)
	if _, err := v.Verify(t.Context(), tokenB); err != nil {
		t.Fatalf("token B after the refresh: %v", err)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("JWKS requests = %d, want 2", n)
	}

	// A failed refresh keeps the last good keys.
	srv.setStatus(http.StatusServiceUnavailable)
	clock.advance(11 * time.Minute)
	if _, err := v.Verify(t.Context(), tokenB); err != nil {
		t.Fatalf("token B while the issuer is down: %v", err)
	}
	waitGen(t, v, 3)
	if _, err := v.Verify(t.Context(), tokenB); err != nil {
		t.Errorf("token B after a failed refresh: %v", err)
	}
}

func TestIssuerDownAtStart(t *testing.T) {
	key := newECKey(t, "key-a")
	srv := newJWKSServer(t, key)
	srv.setStatus(http.StatusServiceUnavailable)
	clock := newFakeClock()
	v := newTestVerifier(t, urlConfig(srv), srv, clock) // must not fail
	token := key.sign(t, claims(nil))

	_, err := v.Verify(t.Context(), token)
	wantUnauthenticated(t, err, "signing keys are not available", token)

	clock.advance(retryBackoff)
	_, err = v.Verify(t.Context(), token)
	wantUnauthenticated(t, err, "signing keys are not available", token)
	if n := srv.count(); n != 2 {
		t.Errorf("JWKS requests = %d, want 2 (start-up and one retry)", n)
	}

	// The issuer comes back: the next attempt after the back-off succeeds.
	srv.setStatus(http.StatusOK)
	clock.advance(retryBackoff)
	id, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify after the issuer came back: %v", err)
	}
	if id.Subject != "alice" {
		t.Errorf("subject = %q", id.Subject)
	}
}

func TestIssuerUnreachableAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	cfg := JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "http://" + addr + "/jwks.json"}
	v := newTestVerifier(t, cfg, nil, newFakeClock())
	key := newECKey(t, "key-a")
	token := key.sign(t, claims(nil))
	_, err = v.Verify(t.Context(), token)
	wantUnauthenticated(t, err, "signing keys are not available", token)
}

func TestJWKSResponseRefused(t *testing.T) {
	key := newECKey(t, "key-a")
	tests := []struct {
		name  string
		setup func(*jwksServer)
	}{
		{"non-2xx", func(s *jwksServer) { s.setStatus(http.StatusNotFound) }},
		{"larger than 1 MiB", func(s *jwksServer) {
			s.setBody([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`))
		}},
		{"not JSON", func(s *jwksServer) { s.setBody([]byte("<html>login</html>")) }},
		{"no keys array", func(s *jwksServer) { s.setBody([]byte(`{"kty":"RSA"}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, key)
			tt.setup(srv)
			v := newTestVerifier(t, urlConfig(srv), srv, newFakeClock())
			_, err := v.Verify(t.Context(), key.sign(t, claims(nil)))
			wantUnauthenticated(t, err, "signing keys are not available", "")
		})
	}
}

func TestParseJWKSKeepsOnlyPublicSigningKeys(t *testing.T) {
	good := newECKey(t, "good")
	private := newRSAKey(t, "private")
	small, err := rsaGenerate(1024)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(k jose.JSONWebKey) string {
		data, err := k.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	doc := `{"keys":[` + strings.Join([]string{
		marshal(good.jwk()),
		marshal(jose.JSONWebKey{Key: private.priv, KeyID: "private", Algorithm: "RS256"}),
		marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256"}),
		marshal(jose.JSONWebKey{Key: good.priv.Public(), KeyID: "enc", Use: "enc"}),
		marshal(jose.JSONWebKey{Key: small.Public(), KeyID: "small", Algorithm: "RS256"}),
		`{"kty":"FUTURE","kid":"future"}`,
	}, ",") + `]}`
	set, err := parseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			t.Errorf("key %q kept its private part", k.KeyID)
		}
	}
	if want := []string{"good", "private"}; !slices.Equal(kids, want) {
		t.Errorf("kept keys %q, want %q", kids, want)
	}

	if _, err := parseJWKS([]byte(`{"keys":[` + marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"}) + `]}`)); err == nil {
		t.Error("a key set of only an HMAC key was accepted")
	}
}

func TestJWKSFile(t *testing.T) {
	key := newRSAKey(t, "file-key")
	dir := t.TempDir()
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.jwk()}})
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, data, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSFile: good}
	v := newTestVerifier(t, cfg, nil, newFakeClock())
	id, err := v.Verify(t.Context(), key.sign(t, claims(nil)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Subject != "alice" || id.Method != MethodJWT {
		t.Errorf("identity = %+v", id)
	}

	invalid := filepath.Join(dir, "invalid.json")
	if err := os.WriteFile(invalid, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing": filepath.Join(dir, "missing.json"),
		"invalid": invalid,
		"empty":   empty,
		"a dir":   dir,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSFile: path}
			_, err := NewJWTVerifier(t.Context(), cfg, WithLogger(discardLogger))
			if err == nil || !strings.Contains(err.Error(), "jwt.jwksFile") {
				t.Errorf("NewJWTVerifier = %v, want a jwt.jwksFile error", err)
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"}`))
	tests := []struct {
		token string
		want  bool
	}{
		{header + ".eyJzdWIiOiJhIn0.c2ln", true},
		{header + ".eyJzdWIiOiJhIn0.", true}, // unsigned: still routed to the verifier, which refuses it
		{"lg_0123456789abcdef", false},
		{"abc.def.ghi", false},            // header is not JSON
		{header + ".e30", false},          // two segments
		{header + ".e30.c2ln.x.y", false}, // JWE-like
		{header + "..c2ln", false},        // empty payload
		{header + ".e30+.c2ln", false},    // not base64url
		{header + ".e30.c2ln=", false},    // padding
		{"", false},
	}
	for _, tt := range tests {
		if got := LooksLikeJWT(tt.token); got != tt.want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", tt.token, got, tt.want)
		}
	}
}

func TestNewJWTVerifierRejectsInvalidConfig(t *testing.T) {
	_, err := NewJWTVerifier(t.Context(), JWTConfig{Algorithms: []string{"HS256"}}, WithLogger(discardLogger))
	if err == nil {
		t.Fatal("NewJWTVerifier accepted an invalid configuration")
	}
	for _, want := range []string{"jwt.issuer: required", "jwt.audience: required", "jwt.jwksURL: required", "jwt.algorithms[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
