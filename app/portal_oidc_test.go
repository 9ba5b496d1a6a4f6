package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/internal/oidctest"
)

// startOIDCServer starts the embedded default with auth.jwt and
// portal.oidc against issuer (clientID, secret), the HTTP listener on a
// free port known in advance; mutate adjusts the config.
func startOIDCServer(t *testing.T, issuer, jwksURL, clientID, secret string, mutate func(*config.Config)) (*opsServer, string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := oidctest.FreeAddr(t)
	cfg := config.Embedded(filepath.Join(dir, "data"))
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", httpAddr
	cfg.Auth.JWT = &identity.JWTConfig{Issuer: issuer, Audience: clientID, JWKSURL: jwksURL}
	cfg.Portal.OIDC = &config.PortalOIDC{ClientID: clientID, ClientSecretFile: secretFile,
		RedirectURL: "http://" + httpAddr + "/login/oidc/callback", Bearer: config.BearerIDToken}
	if mutate != nil {
		mutate(cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	return serveOps(t, cfg, buf, slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "http://" + httpAddr
}

// browserClient is a browser: a cookie jar, redirects followed (or not),
// connections from the loopback address local.
func browserClient(t *testing.T, local string, follow bool) *http.Client {
	t.Helper()
	c := clientFrom(local)
	c.Jar, _ = cookiejar.New(nil)
	if follow {
		c.CheckRedirect = nil
	}
	return c
}

type resp struct {
	code int
	body string
	url  *url.URL
	hdr  http.Header
}

func fetch(t *testing.T, c *http.Client, u string, hdr ...string) resp {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, string(b), r.Request.URL, r.Header}
}

// startFlow starts a sign-in without following the redirects: it returns
// the IdP's answer (the callback URL, with code and state) and the
// loopgate_oidc cookie.
func startFlow(t *testing.T, c *http.Client, base string) (callback *url.URL, cookie string) {
	t.Helper()
	r := fetch(t, c, base+"/login/oidc")
	if r.code != http.StatusFound {
		t.Fatalf("GET /login/oidc: %d, want 302 to the IdP\n%s", r.code, r.body)
	}
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "http", Host: u.Host, Path: "/login/oidc/callback"}) {
		if ck.Name == "loopgate_oidc" {
			cookie = ck.Value
		}
	}
	if cookie == "" {
		t.Fatalf("GET /login/oidc set no loopgate_oidc cookie: %v", r.hdr["Set-Cookie"])
	}
	authz := fetch(t, c, r.hdr.Get("Location"))
	if authz.code != http.StatusFound {
		t.Fatalf("IdP authorize: %d\n%s", authz.code, authz.body)
	}
	callback, err := url.Parse(authz.hdr.Get("Location"))
	if err != nil || callback.Path != "/login/oidc/callback" {
		t.Fatalf("IdP redirected to %q, want the callback", authz.hdr.Get("Location"))
	}
	return callback, cookie
}

func whoami(body string) string {
	_, after, ok := strings.Cut(body, `<span id="whoami">`)
	if !ok {
		return ""
	}
	who, _, _ := strings.Cut(after, "<")
	return who
}

// The portal's OIDC sign-in against a real (mock) identity provider: the
// whole authorization-code flow with PKCE in a cookie-jar client, the
// session it starts is the API's identity of the ID token (subject and
// teams from its claims; the API records that identity), and the flow's
// refusals: a state that does not match, a missing one, a replayed
// callback, a callback without the browser's cookie, the IdP's
// access_denied. The client secret and the tokens never reach the log.
func TestPortalOIDCSignIn(t *testing.T) {
	idp := oidctest.Start(t, oidctest.Options{})
	r, base := startOIDCServer(t, idp.Issuer(), idp.JWKSEndpoint(), idp.ClientID, idp.ClientSecret, nil)
	idpHost := strings.TrimPrefix(idp.Addr(), "http://")

	t.Run("login page offers the IdP", func(t *testing.T) {
		p := fetch(t, browserClient(t, "127.0.0.2", true), base+"/login")
		if p.code != 200 || !strings.Contains(p.body, `id="oidc-login"`) || !strings.Contains(p.body, "Sign in with "+idpHost) || !strings.Contains(p.body, `href="/login/oidc"`) {
			t.Errorf("/login (%d) has no \"Sign in with %s\" link to /login/oidc\n%s", p.code, idpHost, p.body)
		}
		if !strings.Contains(p.body, `id="login-form"`) {
			t.Errorf("/login lost the token form")
		}
	})

	t.Run("signs in as the ID token's identity", func(t *testing.T) {
		idp.QueueUser(oidctest.User{Subject: "ada@example.com", Teams: []string{"growth"}})
		c := browserClient(t, "127.0.0.2", true)
		done := fetch(t, c, base+"/login/oidc")
		if done.code != http.StatusOK || done.url.Path != "/login/oidc/callback" {
			t.Fatalf("the flow ended at %s with %d, want 200 at the callback\n%s", done.url, done.code, done.body)
		}
		if got := done.hdr.Get("Refresh"); got != "0; url=/" {
			t.Errorf("callback Refresh %q, want \"0; url=/\" (a same-site navigation to the overview)", got)
		}
		for _, ck := range done.hdr.Values("Set-Cookie") {
			if strings.HasPrefix(ck, "loopgate_session=") && (!strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict")) {
				t.Errorf("session cookie %q", ck)
			}
		}
		home := fetch(t, c, base+"/")
		if home.code != 200 || whoami(home.body) != "ada@example.com" {
			t.Fatalf("after the OIDC sign-in, / is %d as %q, want ada@example.com\n%s", home.code, whoami(home.body), home.body)
		}
		// The API sees the ID token's teams: the team page is hers
		// (growth), another team's is refused by the API.
		if g := fetch(t, c, base+"/teams/growth"); g.code != 200 {
			t.Errorf("/teams/growth as a growth member via OIDC: %d", g.code)
		}
		if rk := fetch(t, c, base+"/teams/risk/loops/anything"); rk.code != http.StatusForbidden && rk.code != http.StatusNotFound {
			t.Errorf("another team's loop via OIDC: %d, want 403 or 404", rk.code)
		}
		// An API call made by the portal as her is recorded as her: the
		// audit page's chain verification is refused for a team member,
		// and the API audits that refusal with her as the actor.
		fetch(t, c, base+"/audit?team=growth")
		eventually(t, 15*time.Second, func() string {
			page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.admin, &lgv1.ListAuditEventsRequest{PageSize: 200})
			if err != nil {
				return err.Error()
			}
			for _, e := range page.GetEvents() {
				if e.GetActor() == "ada@example.com" {
					return ""
				}
			}
			return "no audit event with actor ada@example.com"
		})
	})

	t.Run("a session outlives its token by refreshing it, and ends when the provider refuses", func(t *testing.T) {
		// Tokens that live 20 s: within the 30 s refresh margin at once.
		ttl := idp.AccessTTL
		idp.AccessTTL = 20 * time.Second
		t.Cleanup(func() { idp.AccessTTL = ttl })
		idp.QueueUser(oidctest.User{Subject: "rita@example.com", Teams: []string{"growth"}})
		c := browserClient(t, "127.0.0.4", true)
		if done := fetch(t, c, base+"/login/oidc"); done.code != http.StatusOK {
			t.Fatalf("sign-in: %d\n%s", done.code, done.body)
		}
		before := idp.Refreshes()
		home := fetch(t, c, base+"/")
		if home.code != 200 || whoami(home.body) != "rita@example.com" {
			t.Fatalf("after a refresh, / is %d as %q\n%s", home.code, whoami(home.body), home.body)
		}
		if n := idp.Refreshes() - before; n != 1 {
			t.Errorf("%d refreshes for one page of a session whose token expires in 20 s, want 1", n)
		}
		// The provider refuses: the session ends, the browser is sent to sign in.
		idp.FailRefresh(true)
		t.Cleanup(func() { idp.FailRefresh(false) })
		if p := fetch(t, c, base+"/"); !(p.url.Path == "/login") || !strings.Contains(p.body, `id="login-form"`) {
			t.Errorf("a refused refresh: / ended at %s (%d), want the sign-in page", p.url, p.code)
		}
		idp.FailRefresh(false)
		if p := fetch(t, c, base+"/"); !(p.url.Path == "/login") {
			t.Errorf("the ended session came back: / ended at %s", p.url)
		}
		if logs := r.log.String(); !strings.Contains(logs, "refreshing an OIDC session failed") {
			t.Errorf("the failed refresh is not logged")
		}
	})

	t.Run("an identity without teams or roles signs in as the API says", func(t *testing.T) {
		idp.QueueUser(oidctest.User{Subject: "nobody@example.com"})
		c := browserClient(t, "127.0.0.2", true)
		if done := fetch(t, c, base+"/login/oidc"); done.code != http.StatusOK {
			t.Fatalf("sign-in without teams: %d\n%s", done.code, done.body)
		}
		home := fetch(t, c, base+"/")
		if whoami(home.body) != "nobody@example.com" {
			t.Fatalf("signed in as %q, want nobody@example.com\n%s", whoami(home.body), home.body)
		}
		if g := fetch(t, c, base+"/teams/growth/loops/anything"); g.code != http.StatusForbidden && g.code != http.StatusNotFound {
			t.Errorf("a teamless identity reading a growth loop: %d, want 403 or 404", g.code)
		}
	})

	t.Run("state mismatch, missing state, replay, no cookie", func(t *testing.T) {
		c := browserClient(t, "127.0.0.3", false)
		cb, _ := startFlow(t, c, base)
		q := cb.Query()
		q.Set("state", "forged")
		cb.RawQuery = q.Encode()
		if p := fetch(t, c, cb.String()); p.code != http.StatusBadRequest || !strings.Contains(p.body, "does not belong to this sign-in") || !strings.Contains(p.body, `id="login-error"`) {
			t.Errorf("a forged state: %d, want 400 with #login-error\n%s", p.code, p.body)
		}
		// The portal's own refusal is audited (it never reached the API).
		page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.admin, &lgv1.ListAuditEventsRequest{Action: "portal.signin"})
		if err != nil {
			t.Fatal(err)
		}
		audited := false
		for _, e := range page.GetEvents() {
			audited = audited || e.GetOutcome() == "FORBIDDEN" && e.GetResource() == config.OIDCCallbackPath &&
				e.GetDetails().GetFields()["reason"].GetStringValue() == "OIDC_STATE_MISMATCH"
		}
		if !audited {
			t.Errorf("the forged state's refusal is not audited: %v", page.GetEvents())
		}
		if p := fetch(t, c, base+"/"); p.code != http.StatusSeeOther {
			t.Errorf("a forged state signed in: / is %d", p.code)
		}

		cb, _ = startFlow(t, c, base)
		q = cb.Query()
		q.Del("state")
		cb.RawQuery = q.Encode()
		if p := fetch(t, c, cb.String()); p.code != http.StatusBadRequest || !strings.Contains(p.body, "does not belong to this sign-in") {
			t.Errorf("no state: %d, want 400\n%s", p.code, p.body)
		}

		// A good callback, then the same callback again with the same
		// cookie (an attacker who copied both): refused, used once.
		cb, cookie := startFlow(t, c, base)
		if p := fetch(t, c, cb.String()); p.code != http.StatusOK {
			t.Fatalf("a good callback: %d\n%s", p.code, p.body)
		}
		other := browserClient(t, "127.0.0.3", false)
		if p := fetch(t, other, cb.String(), "Cookie", "loopgate_oidc="+cookie); p.code != http.StatusBadRequest || !strings.Contains(p.body, "expired or was already completed") {
			t.Errorf("a replayed callback: %d, want 400\n%s", p.code, p.body)
		}
		if p := fetch(t, other, base+"/"); p.code != http.StatusSeeOther {
			t.Errorf("a replayed callback signed in: / is %d", p.code)
		}

		// A callback in a browser that did not start the flow.
		cb, _ = startFlow(t, c, base)
		fresh := browserClient(t, "127.0.0.4", false)
		if p := fetch(t, fresh, cb.String()); p.code != http.StatusBadRequest || !strings.Contains(p.body, "not started in this browser") {
			t.Errorf("a callback without the cookie: %d, want 400\n%s", p.code, p.body)
		}
	})

	t.Run("the IdP refuses", func(t *testing.T) {
		idp.DenyNext()
		c := browserClient(t, "127.0.0.2", true)
		p := fetch(t, c, base+"/login/oidc")
		if p.code != http.StatusForbidden || !strings.Contains(p.body, "refused the sign-in (access_denied): The person declined") {
			t.Errorf("access_denied: %d, want 403 saying so\n%s", p.code, p.body)
		}
		if !strings.Contains(p.body, `id="login-form"`) || !strings.Contains(p.body, `id="oidc-login"`) {
			t.Errorf("the refusal page does not offer both ways to sign in again")
		}
	})

	t.Run("a code the IdP never issued", func(t *testing.T) {
		c := browserClient(t, "127.0.0.5", false)
		cb, _ := startFlow(t, c, base)
		q := cb.Query()
		q.Set("code", "not-a-code")
		cb.RawQuery = q.Encode()
		if p := fetch(t, c, cb.String()); p.code != http.StatusBadGateway || !strings.Contains(p.body, "could not be exchanged") {
			t.Errorf("an unknown code: %d, want 502\n%s", p.code, p.body)
		}
	})

	t.Run("a token the API refuses", func(t *testing.T) {
		// A valid ID token without a subject: the IdP and go-oidc accept
		// it, the API does not (auth.jwt needs "sub"). The refusal goes
		// through the same check as a pasted token: audited against
		// the callback, counted against the browser's address.
		idp.QueueUser(oidctest.User{})
		c := browserClient(t, "127.0.0.6", true)
		p := fetch(t, c, base+"/login/oidc")
		if p.code != http.StatusUnauthorized || !strings.Contains(p.body, "does not accept the identity provider") {
			t.Errorf("a token the API refuses: %d, want 401\n%s", p.code, p.body)
		}
		if h := fetch(t, c, base+"/"); whoami(h.body) != "" || h.url.Path != "/login" {
			t.Errorf("a refused token signed in (%s as %q)", h.url.Path, whoami(h.body))
		}
		eventually(t, 15*time.Second, func() string {
			page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.admin, &lgv1.ListAuditEventsRequest{PageSize: 200})
			if err != nil {
				return err.Error()
			}
			for _, e := range page.GetEvents() {
				if e.GetAction() == "auth.reject" && strings.Contains(e.GetResource(), "/login/oidc/callback") {
					return ""
				}
			}
			return "no auth.reject for the OIDC callback"
		})
	})

	// Neither the client secret nor any token reaches the log.
	logs := r.log.String()
	if strings.Contains(logs, idp.ClientSecret) {
		t.Errorf("the client secret is in the log")
	}
	if strings.Contains(logs, "eyJ") {
		t.Errorf("a JWT is in the log")
	}
}

// With the identity provider unreachable, the server starts, the login
// page still signs in with a token, and the OIDC button answers that the
// provider is unavailable (503) instead of hanging or failing the page.
func TestPortalOIDCProviderUnreachable(t *testing.T) {
	dead := "http://" + oidctest.FreeAddr(t) + "/oidc" // nothing listens there
	r, base := startOIDCServer(t, dead, dead+"/jwks", "loopgate-portal", "s3cret-value", nil)
	c := browserClient(t, "127.0.0.2", false)

	p := fetch(t, c, base+"/login/oidc") // the client gives up after 10 s: a hang fails here
	if p.code != http.StatusServiceUnavailable || !strings.Contains(p.body, "could not be reached") || !strings.Contains(p.body, `id="login-form"`) {
		t.Errorf("/login/oidc with the IdP down: %d, want 503 with the token form\n%s", p.code, p.body)
	}
	if lp := fetch(t, c, base+"/login"); lp.code != 200 || !strings.Contains(lp.body, `id="oidc-unavailable"`) {
		t.Errorf("/login after a failed discovery (%d) does not say OIDC is unavailable\n%s", lp.code, lp.body)
	}
	if code, _ := portalLogin(t, c, base, r.token); code != http.StatusSeeOther {
		t.Errorf("token sign-in with the IdP down: %d, want 303", code)
	}
	if strings.Contains(r.log.String(), "s3cret-value") {
		t.Errorf("the client secret is in the log")
	}
}

// A client secret file that is missing or empty stops the start-up with
// the field's name; the secret itself is never in the message.
func TestPortalOIDCClientSecretFile(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(dir, "missing"), empty} {
		cfg := config.Embedded(filepath.Join(dir, "data"))
		cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Auth.JWT = &identity.JWTConfig{Issuer: "http://127.0.0.1:1/oidc", Audience: "x", JWKSURL: "http://127.0.0.1:1/jwks"}
		cfg.Portal.OIDC = &config.PortalOIDC{ClientID: "x", ClientSecretFile: file, RedirectURL: "http://127.0.0.1:8080/login/oidc/callback"}
		cfg.SetDefaults()
		srv, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			srv.Close()
			t.Errorf("%s: the server started", file)
			continue
		}
		if !strings.Contains(err.Error(), "portal.oidc.clientSecretFile") {
			t.Errorf("%s: error %q does not name portal.oidc.clientSecretFile", file, err)
		}
	}
}
