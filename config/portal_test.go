package config

import (
	"slices"
	"strings"
	"testing"
)

const portalJWT = `
clusters:
  - {name: eu-1, region: eu, bootstrapServers: [kafka-1:9092]}
auth:
  jwt: {issuer: "https://login.example.com/realms/acme", audience: loopgate, jwksURL: "https://login.example.com/realms/acme/certs"}
`

func TestPortalOIDCLoadsWithDefaults(t *testing.T) {
	c, err := Load(write(t, portalJWT+`
portal:
  oidc:
    clientID: loopgate-portal
    clientSecretFile: /etc/loopgate/portal-secret
    redirectURL: https://loopgate.example.com/login/oidc/callback
    scopes: [profile]
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Portal.OIDC
	if o == nil || o.ClientID != "loopgate-portal" || o.ClientSecretFile != "/etc/loopgate/portal-secret" || o.RedirectURL != "https://loopgate.example.com/login/oidc/callback" {
		t.Fatalf("portal.oidc not loaded: %+v", o)
	}
	if o.Bearer != BearerAccessToken {
		t.Errorf("bearer default %q, want access_token", o.Bearer)
	}
	if !slices.Equal(o.Scopes, []string{"openid", "profile"}) {
		t.Errorf("scopes %v, want openid added to [profile]", o.Scopes)
	}
	c, err = Load(write(t, portalJWT+`
portal: {oidc: {clientID: x, redirectURL: "http://127.0.0.1:8080/login/oidc/callback", bearer: id_token}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Portal.OIDC.Scopes, []string{"openid"}) || c.Portal.OIDC.Bearer != BearerIDToken || c.Portal.OIDC.ClientSecretFile != "" {
		t.Errorf("a public client with id_token: %+v", c.Portal.OIDC)
	}
	if e := Embedded("data"); e.Portal.OIDC != nil {
		t.Errorf("the embedded default configures OIDC: %+v", e.Portal.OIDC)
	}
	// Unknown keys are refused like everywhere else.
	if _, err := Load(write(t, portalJWT+"portal: {oidc: {clientID: x, redirectURL: \"https://a/login/oidc/callback\", issuer: y}}\n")); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("an unknown key under portal.oidc: %v", err)
	}
}

func TestPortalOIDCValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"needs auth.jwt", `
clusters:
  - {name: eu-1, region: eu, bootstrapServers: [kafka-1:9092]}
portal: {oidc: {clientID: x, redirectURL: "https://a.example/login/oidc/callback"}}
`, []string{"portal.oidc: needs auth.jwt"}},
		{"required fields", portalJWT + `
portal: {oidc: {}}
`, []string{"portal.oidc.clientID: required", "portal.oidc.redirectURL: required"}},
		{"bad values", portalJWT + `
portal:
  oidc:
    clientID: " x"
    clientSecretFile: " /etc/secret"
    redirectURL: "ftp://a.example/login/oidc/callback"
    scopes: ["openid", "a b", ""]
    bearer: refresh_token
`, []string{
			`portal.oidc.clientID: " x" has leading or trailing spaces`,
			`portal.oidc.clientSecretFile: " /etc/secret" has leading or trailing spaces`,
			`portal.oidc.redirectURL: "ftp://a.example/login/oidc/callback": must be an absolute http or https URL`,
			`portal.oidc.scopes[1]: "a b" is not a scope`,
			`portal.oidc.scopes[2]: "" is not a scope`,
			`portal.oidc.bearer: "refresh_token" is not access_token or id_token`,
		}},
		{"relative redirect", portalJWT + `
portal: {oidc: {clientID: x, redirectURL: "/login/oidc/callback"}}
`, []string{`portal.oidc.redirectURL: "/login/oidc/callback": must be an absolute http or https URL`}},
		{"wrong path", portalJWT + `
portal: {oidc: {clientID: x, redirectURL: "https://a.example/callback"}}
`, []string{`portal.oidc.redirectURL: "https://a.example/callback": the path must be /login/oidc/callback`}},
		{"credentials", portalJWT + `
portal: {oidc: {clientID: x, redirectURL: "https://u:p@a.example/login/oidc/callback"}}
`, []string{`portal.oidc.redirectURL: must not contain credentials`}},
		{"query", portalJWT + `
portal: {oidc: {clientID: x, redirectURL: "https://a.example/login/oidc/callback?x=1"}}
`, []string{`must not have a query`}},
		{"fragment", portalJWT + `
portal: {oidc: {clientID: x, redirectURL: "https://a.example/login/oidc/callback#x"}}
`, []string{`must not have a fragment`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.yaml))
			if err == nil {
				t.Fatalf("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
