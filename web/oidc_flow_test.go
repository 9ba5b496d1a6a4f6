package web_test

import (
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/internal/oidctest"
)

// With bearer access_token (the default), the session calls the API with
// the IdP's access token: the portal signs in as its subject. Discovery
// happens on the first click, not at start-up or on the login page, and
// is cached.
func TestPortalOIDCAccessTokenBearer(t *testing.T) {
	idp := oidctest.Start(t, oidctest.Options{})
	httpAddr := oidctest.FreeAddr(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(idp.ClientSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *config.Config) {
		c.HTTPAddr = httpAddr
		c.Auth.JWT = &identity.JWTConfig{Issuer: idp.Issuer(), Audience: idp.ClientID, JWKSURL: idp.JWKSEndpoint()}
		c.Portal.OIDC = &config.PortalOIDC{ClientID: idp.ClientID, ClientSecretFile: secret, RedirectURL: "http://" + httpAddr + "/login/oidc/callback"}
		c.SetDefaults()
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := c.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String(), resp.Header
	}
	if code, body, _ := get("/login"); code != 200 || !strings.Contains(body, `id="oidc-login"`) {
		t.Fatalf("/login: %d, no OIDC button", code)
	}
	if n := idp.Discoveries(); n != 0 {
		t.Errorf("%d discoveries before the first OIDC sign-in, want 0", n)
	}
	for i := range 2 {
		idp.QueueUser(&mockoidc.MockUser{Subject: "grace@example.com"})
		code, body, hdr := get("/login/oidc")
		if code != 200 || hdr.Get("Refresh") != "0; url=/" {
			t.Fatalf("sign-in %d: %d (Refresh %q)\n%s", i, code, hdr.Get("Refresh"), body)
		}
		_, home, _ := get("/")
		if !strings.Contains(home, `<span id="whoami">grace@example.com</span>`) {
			t.Fatalf("sign-in %d: / is not grace's\n%s", i, home)
		}
	}
	if n := idp.Discoveries(); n != 1 {
		t.Errorf("%d discoveries for two sign-ins, want 1 (cached)", n)
	}
}
