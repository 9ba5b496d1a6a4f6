package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// issuer is a test OIDC issuer on loopback: a real JWKS endpoint and keys
// that sign real tokens.
type issuer struct {
	URL      string
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	stranger *rsa.PrivateKey // signs tokens, but is not in the JWKS
}

const (
	testIssuer   = "https://id.example.test"
	testAudience = "loopgate"
)

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{}
	var err error
	if is.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if is.stranger, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &is.rsa.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &is.ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	}))
	t.Cleanup(srv.Close)
	is.URL = srv.URL + "/jwks.json"
	return is
}

// token signs claims (defaults: the test issuer and audience, an hour of
// validity) with key under kid.
func (is *issuer) token(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": testIssuer, "aud": testAudience, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range claims {
		c[k] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned is a token with "alg": "none" and no signature.
func unsigned(claims map[string]any) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"rsa-1"}`))
	body, _ := json.Marshal(claims)
	return head + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// governedServer runs loopgate with embedded clusters, the demo tokens, an
// OIDC issuer, and the default bundle with pii allowed in us too (so that
// PII_OUTSIDE_HOME_REGION asks two security reviewers).
func governedServer(t *testing.T, home string, is *issuer) *server {
	t.Helper()
	bundle := t.TempDir()
	src := filepath.Join(repoRoot(t), "policy", "bundles", "default")
	if out, err := exec.Command("cp", "-r", src+"/.", bundle).CombinedOutput(); err != nil {
		t.Fatalf("copying the default bundle: %v %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(bundle, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"pii_regions": ["eu"]`), []byte(`"pii_regions": ["eu", "us"]`), 1)
	if !bytes.Contains(data, []byte(`"us"]`)) {
		t.Fatalf("data.json did not widen pii_regions: %s", data)
	}
	if err := os.WriteFile(filepath.Join(bundle, "data.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`dataDir: %s
resync: 2s
devCredentials: true
policy: {bundle: %s}
clusters:
  - {name: eu-embedded, region: eu, embedded: true}
  - {name: us-embedded, region: us, embedded: true}
teams:
  - {name: growth, allowedRegions: [eu, us], maxPartitionsPerLoop: 64, maxPartitions: 256, maxBytesPerSecond: 52428800}
  - {name: risk, allowedRegions: [eu], maxPartitionsPerLoop: 48, maxPartitions: 192, maxBytesPerSecond: 20971520}
auth:
  jwt:
    issuer: %s
    audience: %s
    jwksURL: %s
    teamsClaim: groups
`, filepath.Join(t.TempDir(), "data"), bundle, testIssuer, testAudience, is.URL)
	path := filepath.Join(t.TempDir(), "loopgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, home, filepath.Join(t.TempDir(), "unused"), "--config", path)
}

// A token from the issuer works through loopctl login; tokens with the
// wrong audience, expired, signed by an unknown key or unsigned are
// refused, stored nowhere, and audited.
func TestOIDCTokens(t *testing.T) {
	home := t.TempDir()
	is := newIssuer(t)
	srv := governedServer(t, home, is)
	server := []string{"--server", srv.GRPC}

	good := is.token(t, jose.RS256, is.rsa, "rsa-1", map[string]any{"sub": "carol@example.com", "groups": []string{"growth"}, "roles": []string{"team-admin"}})
	r := loopctlIn(t, home, nil, good+"\n", append([]string{"login", "--with-token"}, server...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "carol@example.com") || strings.Contains(r.Stdout+r.Stderr, good) {
		t.Fatalf("login with a valid token: %s", r)
	}
	if fi, err := os.Stat(filepath.Join(home, ".loopgate", "hosts.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hosts file: %v %v, want mode 0600", fi, err)
	}
	r = loopctl(t, home, nil, append([]string{"whoami"}, server...)...)
	for _, want := range []string{"carol@example.com", "growth", "team-admin", "jwt", testIssuer, "expires in"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Errorf("whoami after login: want %q in\n%s", want, r)
		}
	}
	// The stored login is what other commands use.
	if r = loopctl(t, home, nil, append([]string{"get", "growth/none"}, server...)...); !strings.Contains(r.Stderr, "not found") && !strings.Contains(r.Stderr, "NOT_FOUND") {
		t.Errorf("a growth command with the stored login: %s", r)
	}
	if r = loopctl(t, home, nil, append([]string{"get", "risk/none"}, server...)...); !strings.Contains(r.Stderr, "TEAM_SCOPE") {
		t.Errorf("the OIDC identity reached another team: %s", r)
	}
	ec := is.token(t, jose.ES256, is.ec, "ec-1", map[string]any{"sub": "dave@example.com", "groups": "risk"})
	if r = loopctl(t, home, []string{"LOOPGATE_TOKEN=" + ec}, append([]string{"whoami"}, server...)...); r.Code != 0 || !strings.Contains(r.Stdout, "dave@example.com") {
		t.Errorf("an ES256 token: %s", r)
	}

	refused := map[string]string{
		"wrong audience": is.token(t, jose.RS256, is.rsa, "rsa-1", map[string]any{"sub": "eve@example.com", "aud": "another-api"}),
		"expired":        is.token(t, jose.RS256, is.rsa, "rsa-1", map[string]any{"sub": "eve@example.com", "exp": time.Now().Add(-time.Hour).Unix()}),
		"unknown key":    is.token(t, jose.RS256, is.stranger, "rsa-9", map[string]any{"sub": "eve@example.com"}),
		"forged kid":     is.token(t, jose.RS256, is.stranger, "rsa-1", map[string]any{"sub": "eve@example.com"}),
		"alg none":       unsigned(map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "eve@example.com", "exp": time.Now().Add(time.Hour).Unix()}),
	}
	before, _ := os.ReadFile(filepath.Join(home, ".loopgate", "hosts.json"))
	for name, tok := range refused {
		r := loopctl(t, home, []string{"LOOPGATE_TOKEN=" + tok}, append([]string{"whoami"}, server...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "not authenticated") {
			t.Errorf("%s token: want UNAUTHENTICATED, got %s", name, r)
		}
		if r = loopctlIn(t, home, nil, tok+"\n", append([]string{"login", "--with-token"}, server...)...); r.Code == 0 {
			t.Errorf("login with the %s token succeeded: %s", name, r)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(home, ".loopgate", "hosts.json")); !bytes.Equal(before, after) {
		t.Errorf("a refused login changed the hosts file")
	}
	// Each kind of refusal is in the audit trail (the platform admin reads it).
	r = loopctl(t, home, nil, "--server", srv.GRPC, "--as", "admin", "audit", "--action", "auth.reject", "-o", "json")
	var messages []string
	for _, e := range decodeEvents(t, r.Stdout) {
		if e["outcome"] == "UNAUTHENTICATED" {
			raw, _ := json.Marshal(e["details"])
			messages = append(messages, string(raw))
		}
	}
	all := strings.Join(messages, "\n")
	for _, want := range []string{"audience", "expired", "rsa-9", "signature", "none"} {
		if !strings.Contains(all, want) {
			t.Errorf("no audited refusal mentions %q; refusals:\n%s\n%s", want, all, r)
		}
	}
	if strings.Contains(all, refused["expired"]) {
		t.Error("a refused token reached the audit trail")
	}

	if r = loopctl(t, home, nil, append([]string{"logout"}, server...)...); r.Code != 0 {
		t.Errorf("logout: %s", r)
	}
}

// The approval workflow: two distinct security reviewers for pii outside
// its home region; no self-approval; a spec change voids the reviews;
// a rejection provisions nothing; the loop's audit trail tells it in order.
func TestApprovalWorkflow(t *testing.T) {
	home := t.TempDir()
	srv := governedServer(t, home, newIssuer(t))
	as := func(name string, args ...string) result {
		return loopctl(t, home, nil, append([]string{"--server", srv.GRPC, "--as", name}, args...)...)
	}
	spec, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	usSpec := strings.NewReplacer("residency: eu", "residency: us", "name: checkout-nudge", "name: nudge-us").Replace(string(spec))
	file := writeSpec(t, t.TempDir(), "nudge-us.yaml", usSpec)
	if r := as("growth-lead", "apply", "-f", file); r.Code != 0 || !strings.Contains(r.Stdout, "PENDING_APPROVAL") {
		t.Fatalf("apply: %s", r)
	}
	us := srv.Clusters["us"]
	if st := observe(t, us, "growth.nudge-us."); len(st.Partitions) != 0 {
		t.Fatalf("a loop awaiting approval was provisioned: %v", st.Partitions)
	}

	// The requester may not review it, even as a team admin; a team member
	// may not list or give approvals at all.
	if r := as("growth-lead", "approve", "growth/nudge-us", "--comment", "mine"); r.Code == 0 || !strings.Contains(r.Stderr, "SELF_APPROVAL") {
		t.Errorf("self-approval: %s", r)
	}
	if r := as("growth", "approve", "growth/nudge-us"); r.Code == 0 || !strings.Contains(r.Stderr, "ROLE_REQUIRED") {
		t.Errorf("a team member approved: %s", r)
	}
	if r := as("reviewer", "approvals"); r.Code != 0 || !strings.Contains(r.Stdout, "PII_OUTSIDE_HOME_REGION") || !strings.Contains(r.Stdout, "0/2") {
		t.Errorf("the reviewer's approvals: %s", r)
	}
	if r := as("reviewer", "approve", "growth/nudge-us", "--comment", "DPA signed for us"); r.Code != 0 {
		t.Fatalf("first review: %s", r)
	}
	if r := as("reviewer", "approve", "growth/nudge-us", "--comment", "again"); r.Code == 0 || !strings.Contains(r.Stderr, "ALREADY_APPROVED") {
		t.Errorf("the same reviewer twice: %s", r)
	}
	if l := getLoop(t, home, "growth/nudge-us", "LOOPGATE_SERVER="+srv.GRPC); field(l, "status", "state") != "PENDING_APPROVAL" {
		t.Fatalf("one of two reviewers provisioned it: %v", field(l, "status", "state"))
	}

	// A spec change is a new generation: the first review no longer counts.
	changed := writeSpec(t, t.TempDir(), "nudge-us.yaml", strings.Replace(usSpec, "retention: 72h", "retention: 48h", 1))
	if r := as("growth", "apply", "-f", changed); r.Code != 0 {
		t.Fatalf("update: %s", r)
	}
	if r := as("reviewer2", "approve", "growth/nudge-us", "--comment", "ok"); r.Code != 0 {
		t.Fatalf("review of generation 2: %s", r)
	}
	if l := getLoop(t, home, "growth/nudge-us", "LOOPGATE_SERVER="+srv.GRPC); field(l, "status", "state") != "PENDING_APPROVAL" {
		t.Fatalf("a review of generation 1 counted for generation 2: %v", field(l, "status", "state"))
	}
	if r := as("reviewer", "approve", "growth/nudge-us", "--comment", "48h is fine too"); r.Code != 0 {
		t.Fatalf("second review of generation 2: %s", r)
	}
	waitState(t, home, "growth/nudge-us", "READY")
	if st := observe(t, us, "growth.nudge-us."); st.Partitions["growth.nudge-us.events"] != 12 {
		t.Errorf("approved loop not provisioned: %v", st.Partitions)
	}

	// Its audit trail, in order: request, reviews with actor and comment,
	// the change, reviews, provisioning.
	r := as("admin", "audit", "--loop", "growth/nudge-us", "--limit", "0", "-o", "json")
	var trail []string
	for _, e := range decodeEvents(t, r.Stdout) {
		if e["outcome"] != "OK" && e["outcome"] != "FORBIDDEN" && e["outcome"] != "DENIED" {
			continue
		}
		d, _ := e["details"].(map[string]any)
		entry := fmt.Sprint(e["action"], " ", e["actor"], " ", e["outcome"])
		if c, ok := d["comment"].(string); ok && c != "" {
			entry += " " + c
		}
		trail = append(trail, entry)
	}
	want := []string{
		"loop.create growth-lead@example.com OK",
		"loop.approve growth-lead@example.com FORBIDDEN",
		"loop.approve security-reviewer@loopgate.local OK DPA signed for us",
		"loop.approve security-reviewer@loopgate.local DENIED",
		"loop.update growth-dev@example.com OK",
		"loop.approve second-reviewer@loopgate.local OK ok",
		"loop.approve security-reviewer@loopgate.local OK 48h is fine too",
		"loop.provision",
	}
	got := strings.Join(trail, "\n")
	at := 0
	for _, w := range want {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("audit trail of the loop: %q not found (in order) in\n%s", w, got)
		}
		at += i + len(w)
	}

	// A rejected loop provisions nothing, and says why.
	euSpec := strings.NewReplacer("name: checkout-nudge", "name: nudge-two", "latencyP99: 2s", "latencyP99: 100ms", "freshness: 30s", "freshness: 50ms").Replace(string(spec))
	if r := as("growth", "apply", "-f", writeSpec(t, t.TempDir(), "two.yaml", euSpec)); r.Code != 0 || !strings.Contains(r.Stdout, "PENDING_APPROVAL") {
		t.Fatalf("apply of a loop below the latency floor: %s", r)
	}
	if r := as("admin", "reject", "growth/nudge-two"); r.Code == 0 {
		t.Errorf("reject without a comment succeeded: %s", r)
	}
	if r := as("admin", "reject", "growth/nudge-two", "--comment", "use the shared low-latency loop"); r.Code != 0 || !strings.Contains(r.Stdout, "rejected") {
		t.Fatalf("reject: %s", r)
	}
	time.Sleep(3 * time.Second) // a resync (2s) passes: still nothing
	l := getLoop(t, home, "growth/nudge-two", "LOOPGATE_SERVER="+srv.GRPC)
	if field(l, "status", "state") != "REJECTED" {
		t.Errorf("state after reject: %v", field(l, "status", "state"))
	}
	if st := observe(t, srv.Clusters["eu"], "growth.nudge-two."); len(st.Partitions) != 0 || len(st.ACLs) != 0 {
		t.Errorf("a rejected loop reached the cluster: %v %v", st.Partitions, st.ACLs)
	}
	if r := as("admin", "approve", "growth/nudge-two", "--comment", "changed my mind"); r.Code == 0 || !strings.Contains(r.Stderr, "NOT_PENDING_APPROVAL") {
		t.Errorf("approving a rejected generation: %s", r)
	}
}
