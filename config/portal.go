package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Portal configures the portal (docs/portal.md).
type Portal struct {
	// OIDC adds "Sign in with <issuer>" to the portal's login page: an
	// OpenID Connect authorization-code flow with PKCE against the issuer
	// of auth.jwt (which it requires), next to the pasted-token sign-in.
	// nil = token sign-in only.
	OIDC *PortalOIDC `yaml:"oidc"`
}

// PortalOIDC is the portal's OpenID Connect client. The issuer is
// auth.jwt.issuer: a person signs in with the identities the API accepts.
//
//	portal:
//	  oidc:
//	    clientID: loopgate-portal
//	    clientSecretFile: /etc/loopgate/portal-client-secret
//	    redirectURL: https://loopgate.example.com/login/oidc/callback
//	    scopes: [openid, profile]
//	    bearer: access_token
type PortalOIDC struct {
	// ClientID is the client registered at the identity provider.
	ClientID string `yaml:"clientID"`
	// ClientSecretFile holds the client's secret (surrounding whitespace
	// trimmed), read at start-up. Leave it out for a public client (PKCE
	// alone).
	ClientSecretFile string `yaml:"clientSecretFile"`
	// RedirectURL is the portal's callback as the browser reaches it, to be
	// registered at the identity provider: an absolute http(s) URL whose
	// path is /login/oidc/callback.
	RedirectURL string `yaml:"redirectURL"`
	// Scopes requested; "openid" is always added (default: [openid]).
	Scopes []string `yaml:"scopes"`
	// Bearer is which token of the sign-in the session calls the API with:
	// "access_token" (the default) or "id_token". Either must be a JWT that
	// auth.jwt accepts: with id_token, auth.jwt.audience is the clientID.
	Bearer string `yaml:"bearer"`
}

// Values of PortalOIDC.Bearer.
const (
	BearerAccessToken = "access_token"
	BearerIDToken     = "id_token"
)

// OIDCCallbackPath is the path of the portal's OIDC callback.
const OIDCCallbackPath = "/login/oidc/callback"

func (p *Portal) setDefaults() {
	o := p.OIDC
	if o == nil {
		return
	}
	if o.Bearer == "" {
		o.Bearer = BearerAccessToken
	}
	if !slices.Contains(o.Scopes, "openid") {
		o.Scopes = append([]string{"openid"}, o.Scopes...)
	}
}

// validatePortal checks the portal block.
func (c *Config) validatePortal() []error {
	o := c.Portal.OIDC
	if o == nil {
		return nil
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("portal.oidc.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Auth.JWT == nil {
		errs = append(errs, fmt.Errorf("portal.oidc: needs auth.jwt: its issuer is the identity provider the portal signs in with, and its verifier accepts the tokens"))
	}
	switch {
	case o.ClientID == "":
		bad("clientID", "required")
	case strings.TrimSpace(o.ClientID) != o.ClientID:
		bad("clientID", "%q has leading or trailing spaces", o.ClientID)
	}
	if o.ClientSecretFile != "" && strings.TrimSpace(o.ClientSecretFile) != o.ClientSecretFile {
		bad("clientSecretFile", "%q has leading or trailing spaces", o.ClientSecretFile)
	}
	if o.RedirectURL == "" {
		bad("redirectURL", "required: the portal's callback as browsers reach it, e.g. https://loopgate.example.com%s (register it at the identity provider)", OIDCCallbackPath)
	} else if err := checkRedirectURL(o.RedirectURL); err != nil {
		bad("redirectURL", "%v", err)
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			bad(fmt.Sprintf("scopes[%d]", i), "%q is not a scope (no spaces, quotes or backslashes)", s)
		}
	}
	switch o.Bearer {
	case "", BearerAccessToken, BearerIDToken:
	default:
		bad("bearer", "%q is not access_token or id_token", o.Bearer)
	}
	return errs
}

func checkRedirectURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q: must be an absolute http or https URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("must not contain credentials")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%q must not have a fragment", raw)
	case u.RawQuery != "":
		return fmt.Errorf("%q must not have a query", raw)
	case u.Path != OIDCCallbackPath:
		return fmt.Errorf("%q: the path must be %s (the portal's callback)", raw, OIDCCallbackPath)
	}
	return nil
}
