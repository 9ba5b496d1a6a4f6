// Package oidctest runs an OpenID Connect provider for tests: mockoidc on
// a loopback address, whose ID tokens carry loopgate's "teams" and "roles"
// claims. It can refuse the next sign-in (as a person clicking "Deny"
// would), show a page with a button before answering (as a real provider
// shows its sign-in page), and counts discovery requests. Test code only.
package oidctest

import (
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// User is a person at the provider, with loopgate's claims.
type User struct {
	Subject      string
	Teams, Roles []string
}

type claims struct {
	*mockoidc.IDTokenClaims
	Teams []string `json:"teams,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// ID implements mockoidc.User.
func (u User) ID() string { return u.Subject }

// Userinfo implements mockoidc.User.
func (u User) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": u.Subject})
}

// Claims implements mockoidc.User: the base claims with teams and roles.
func (u User) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &claims{IDTokenClaims: base, Teams: u.Teams, Roles: u.Roles}, nil
}

// Options configure Start.
type Options struct {
	// Addr is the loopback address to listen on; "" is 127.0.0.1:0.
	Addr string
	// Consent makes the authorization endpoint show a page with a
	// "Continue" button (id idp-continue) before it answers.
	Consent bool
}

// Provider is a running provider; it stops when the test ends.
type Provider struct {
	*mockoidc.MockOIDC
	deny        atomic.Bool
	failRefresh atomic.Bool
	discoveries atomic.Int32
	refreshes   atomic.Int32
}

// Start runs a provider until t ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{MockOIDC: m}
	_ = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, mockoidc.DiscoveryEndpoint):
				p.discoveries.Add(1)
			case strings.HasSuffix(r.URL.Path, mockoidc.TokenEndpoint) && r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token":
				p.refreshes.Add(1)
				if p.failRefresh.Load() {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprint(w, `{"error":"invalid_grant","error_description":"the refresh token was revoked"}`)
					return
				}
			case strings.HasSuffix(r.URL.Path, mockoidc.AuthorizationEndpoint) && p.deny.CompareAndSwap(true, false):
				u, _ := url.Parse(r.URL.Query().Get("redirect_uri"))
				u.RawQuery = url.Values{"error": {"access_denied"}, "error_description": {"The person declined"}, "state": {r.URL.Query().Get("state")}}.Encode()
				http.Redirect(w, r, u.String(), http.StatusFound)
				return
			case opts.Consent && strings.HasSuffix(r.URL.Path, mockoidc.AuthorizationEndpoint) && r.URL.Query().Get("consent") == "":
				consentPage(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// consentPage is the provider's own page: one button, whose form (sent
// from the provider's site) continues the authorization.
func consentPage(w http.ResponseWriter, r *http.Request) {
	var hidden strings.Builder
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			fmt.Fprintf(&hidden, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Test IdP</title></head><body><main><h1>Test identity provider</h1>
<form method="get" action="%s">%s<input type="hidden" name="consent" value="1"><button id="idp-continue" type="submit">Continue</button></form></main></body></html>`,
		html.EscapeString(r.URL.Path), hidden.String())
}

// DenyNext makes the next authorization answer error=access_denied.
func (p *Provider) DenyNext() { p.deny.Store(true) }

// FailRefresh makes refresh_token grants fail (invalid_grant), as after
// the person's session at the provider was revoked.
func (p *Provider) FailRefresh(fail bool) { p.failRefresh.Store(fail) }

// Refreshes counts the refresh_token grants asked for so far.
func (p *Provider) Refreshes() int { return int(p.refreshes.Load()) }

// Discoveries counts the discovery requests served so far.
func (p *Provider) Discoveries() int { return int(p.discoveries.Load()) }

// FreeAddr is a free 127.0.0.1 port: a redirect URL must name the portal's
// address before the server starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
