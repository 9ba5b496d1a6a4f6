package web

// OpenID Connect sign-in: the authorization-code flow with PKCE against
// the issuer whose JWTs the API accepts (docs/portal.md). The flow ends
// where a pasted token's sign-in does: the chosen token is vetted by
// CheckToken, the API says who it is (GetCaller), a session starts.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Values of OIDCOptions.Bearer.
const (
	BearerAccessToken = "access_token"
	BearerIDToken     = "id_token"
)

// OIDCCookieName is the cookie that ties a browser to its pending OIDC
// sign-in (Path=/login/oidc, 10 minutes).
const OIDCCookieName = "loopgate_oidc"

// oidcDiscoveryTimeout bounds reading the provider's discovery document
// and keys (a variable so that tests can shorten it).
var oidcDiscoveryTimeout = 5 * time.Second

// Bounds of the OIDC flow.
const (
	oidcExchangeTimeout = 10 * time.Second
	// oidcRetryAfter is how long a failed discovery is remembered: the
	// login page says the provider is unavailable and a click within it
	// does not wait for the provider again.
	oidcRetryAfter = 15 * time.Second
	oidcPendingTTL = 10 * time.Minute
	oidcPendingMax = 10000
	// oidcPendingPerAddr bounds one client address's pending sign-ins, so
	// that one address starting sign-ins in a loop pushes out only its
	// own, never other people's.
	oidcPendingPerAddr = 20
	oidcMaxParamSize   = 4096
)

// OIDCOptions configure the portal's OpenID Connect sign-in.
type OIDCOptions struct {
	// Issuer is the identity provider (the API's JWT issuer); its
	// discovery document is read on first use, not at start-up.
	Issuer string
	// ClientID and ClientSecret are the portal's client at the provider;
	// an empty secret is a public client (PKCE alone).
	ClientID     string
	ClientSecret string
	// RedirectURL is the callback as the browser reaches it
	// (…/login/oidc/callback), registered at the provider.
	RedirectURL string
	// Scopes requested ("openid" is added when missing).
	Scopes []string
	// Bearer is the token the session calls the API with: BearerAccessToken
	// (the default) or BearerIDToken.
	Bearer string
	// HTTPClient talks to the provider (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
}

// oidcLogin is the portal's OIDC client: the provider, discovered lazily
// and cached, and the pending sign-ins.
type oidcLogin struct {
	opts    OIDCOptions
	host    string // the issuer's host, for the button
	client  *http.Client
	secure  bool // the pending cookie is Secure
	pending *pendingLogins

	discover sync.Mutex // one discovery at a time
	mu       sync.Mutex // guards the fields below (never held while discovering)
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	failedAt time.Time // the last failed discovery, while none succeeded
	now      func() time.Time
}

func newOIDCLogin(o OIDCOptions, secure bool) (*oidcLogin, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("OIDC issuer %q is not an absolute http(s) URL", o.Issuer)
	}
	ru, err := url.Parse(o.RedirectURL)
	if err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return nil, fmt.Errorf("OIDC redirect URL %q is not an absolute http(s) URL", o.RedirectURL)
	}
	if o.ClientID == "" {
		return nil, errors.New("OIDC client id is empty")
	}
	switch o.Bearer {
	case "":
		o.Bearer = BearerAccessToken
	case BearerAccessToken, BearerIDToken:
	default:
		return nil, fmt.Errorf("OIDC bearer %q is not %s or %s", o.Bearer, BearerAccessToken, BearerIDToken)
	}
	hasOpenID := false
	for _, s := range o.Scopes {
		hasOpenID = hasOpenID || s == oidc.ScopeOpenID
	}
	if !hasOpenID {
		o.Scopes = append([]string{oidc.ScopeOpenID}, o.Scopes...)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: oidcExchangeTimeout}
	}
	return &oidcLogin{
		opts: o, host: u.Host, client: client, secure: secure || ru.Scheme == "https",
		pending: newPendingLogins(oidcPendingMax, oidcPendingTTL), now: time.Now,
	}, nil
}

// provider returns the OAuth2 configuration and the ID token verifier,
// discovering the provider on first use (bounded by 5 s). A failure is
// remembered for oidcRetryAfter, during which it is returned at once.
func (o *oidcLogin) provider(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	// cached answers without discovering: done says whether it did.
	cached := func() (cfg *oauth2.Config, v *oidc.IDTokenVerifier, done bool, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.oauth != nil {
			return o.oauth, o.verifier, true, nil
		}
		if !o.failedAt.IsZero() && o.now().Sub(o.failedAt) < oidcRetryAfter {
			return nil, nil, true, errors.New("the identity provider could not be reached a moment ago")
		}
		return nil, nil, false, nil
	}
	if c, v, done, err := cached(); done {
		return c, v, err
	}
	o.discover.Lock()
	defer o.discover.Unlock()
	if c, v, done, err := cached(); done { // another request discovered meanwhile
		return c, v, err
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.client), oidcDiscoveryTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, o.opts.Issuer)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failedAt = o.now()
		return nil, nil, err
	}
	o.failedAt = time.Time{}
	o.oauth = &oauth2.Config{
		ClientID: o.opts.ClientID, ClientSecret: o.opts.ClientSecret, RedirectURL: o.opts.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.opts.Scopes,
	}
	// The key set is fetched with the same client, outside any request.
	o.verifier = p.VerifierContext(oidc.ClientContext(context.Background(), o.client), &oidc.Config{ClientID: o.opts.ClientID})
	return o.oauth, o.verifier, nil
}

// unavailable tells whether the last discovery failed and none succeeded.
func (o *oidcLogin) unavailable() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.oauth == nil && !o.failedAt.IsZero()
}

// pendingLogin is one started sign-in, kept server-side until its
// callback (or 10 minutes).
type pendingLogin struct {
	state, nonce, verifier string
	addr                   string // the client address that started it
	created                time.Time
}

// pendingLogins is the table of started sign-ins: bounded, expiring, each
// entry used once.
type pendingLogins struct {
	mu      sync.Mutex
	m       map[string]*pendingLogin
	max     int
	perAddr int // 0: no bound per address
	ttl     time.Duration
	now     func() time.Time
}

func newPendingLogins(max int, ttl time.Duration) *pendingLogins {
	return &pendingLogins{m: map[string]*pendingLogin{}, max: max, perAddr: oidcPendingPerAddr, ttl: ttl, now: time.Now}
}

// add stores pl under a new random id. When pl's address already has
// perAddr pending sign-ins, its oldest goes; when the table is full,
// expired entries go first, then the oldest.
func (t *pendingLogins) add(pl *pendingLogin) string {
	id := randomID()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	pl.created = now
	if t.perAddr > 0 && pl.addr != "" {
		n, oldest := 0, ""
		for k, o := range t.m {
			if o.addr != pl.addr {
				continue
			}
			n++
			if oldest == "" || o.created.Before(t.m[oldest].created) {
				oldest = k
			}
		}
		if n >= t.perAddr {
			delete(t.m, oldest)
		}
	}
	if len(t.m) >= t.max {
		for k, o := range t.m {
			if now.Sub(o.created) >= t.ttl {
				delete(t.m, k)
			}
		}
		for len(t.m) >= t.max {
			var oldest string
			for k, o := range t.m {
				if oldest == "" || o.created.Before(t.m[oldest].created) {
					oldest = k
				}
			}
			delete(t.m, oldest)
		}
	}
	t.m[id] = pl
	return id
}

// take removes and returns the entry id, or nil when it is unknown,
// used already or expired.
func (t *pendingLogins) take(id string) *pendingLogin {
	t.mu.Lock()
	defer t.mu.Unlock()
	pl := t.m[id]
	delete(t.m, id)
	if pl == nil || t.now().Sub(pl.created) >= t.ttl {
		return nil
	}
	return pl
}

func (t *pendingLogins) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// clientAddr is r's client host (without the port).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (p *Portal) setOIDCCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: OIDCCookieName, Value: id, Path: "/login/oidc", HttpOnly: true, Secure: p.oidc.secure,
		// Lax, not Strict: the cookie must come back on the provider's
		// cross-site redirect to the callback.
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcPendingTTL / time.Second),
	})
}

func (p *Portal) clearOIDCCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: OIDCCookieName, Value: "", Path: "/login/oidc", HttpOnly: true,
		Secure: p.oidc.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// oidcStart (GET /login/oidc) starts a sign-in: state, nonce and PKCE
// verifier are kept server-side under a random id in the loopgate_oidc
// cookie, and the browser goes to the provider. A plain link starts it:
// there is no session (hence no CSRF token) yet, and starting a flow
// changes nothing.
func (p *Portal) oidcStart(w http.ResponseWriter, r *http.Request) {
	cfg, _, err := p.oidc.provider(r.Context())
	if err != nil {
		p.log.Warn("portal: OIDC provider unavailable", "issuer", p.oidc.opts.Issuer, "err", err)
		p.oidcRefuse(w, r, http.StatusServiceUnavailable, "", "Sign-in with "+p.oidc.host+" is unavailable: the identity provider could not be reached. Sign in with an API token below, or try again in a minute.")
		return
	}
	if c, err := r.Cookie(OIDCCookieName); err == nil && len(c.Value) <= 64 {
		p.oidc.pending.take(c.Value) // a sign-in started again: forget the old one
	}
	pl := &pendingLogin{state: randomID(), nonce: randomID(), verifier: oauth2.GenerateVerifier(), addr: clientAddr(r)}
	id := p.oidc.pending.add(pl)
	p.setOIDCCookie(w, id)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, cfg.AuthCodeURL(pl.state, oidc.Nonce(pl.nonce), oauth2.S256ChallengeOption(pl.verifier)), http.StatusFound)
}

// oidcCallback (GET /login/oidc/callback) ends a sign-in: the pending
// entry is consumed (once), the state compared, the code exchanged with
// the PKCE verifier, the ID token verified (issuer, audience = client id,
// expiry, signature, nonce); then the configured token signs in exactly as
// a pasted one does.
func (p *Portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := p.oidc
	q := r.URL.Query()
	c, err := r.Cookie(OIDCCookieName)
	p.clearOIDCCookie(w)
	if err != nil || len(c.Value) > 64 {
		p.oidcRefuse(w, r, http.StatusBadRequest, "OIDC_NO_PENDING_SIGNIN", "This sign-in was not started in this browser (or its cookie was lost). Start again with the button below.")
		return
	}
	pl := o.pending.take(c.Value)
	if pl == nil {
		p.oidcRefuse(w, r, http.StatusBadRequest, "OIDC_SIGNIN_EXPIRED_OR_USED", "This sign-in has expired or was already completed. Start again with the button below.")
		return
	}
	state := q.Get("state")
	if len(state) > oidcMaxParamSize || subtle.ConstantTimeCompare([]byte(state), []byte(pl.state)) != 1 {
		p.log.Warn("portal: OIDC callback refused (state mismatch)", "source", r.RemoteAddr)
		p.oidcRefuse(w, r, http.StatusBadRequest, "OIDC_STATE_MISMATCH", "The identity provider's answer does not belong to this sign-in (its state does not match). Start again with the button below.")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The identity provider refused the sign-in (" + clip(e, 64) + ")"
		if d := clip(q.Get("error_description"), 200); d != "" {
			msg += ": " + d
		}
		code := http.StatusUnauthorized
		if e == "access_denied" {
			code = http.StatusForbidden
		}
		p.oidcRefuse(w, r, code, "OIDC_PROVIDER_REFUSED", msg+".")
		return
	}
	authCode := q.Get("code")
	if authCode == "" || len(authCode) > oidcMaxParamSize {
		p.oidcRefuse(w, r, http.StatusBadRequest, "OIDC_NO_CODE", "The identity provider's answer has no authorization code. Start again with the button below.")
		return
	}
	cfg, verifier, err := o.provider(r.Context())
	if err != nil {
		p.log.Warn("portal: OIDC provider unavailable", "issuer", o.opts.Issuer, "err", err)
		p.oidcRefuse(w, r, http.StatusServiceUnavailable, "", "Sign-in with "+o.host+" is unavailable: the identity provider could not be reached. Sign in with an API token below, or try again in a minute.")
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), o.client), oidcExchangeTimeout)
	defer cancel()
	tok, err := cfg.Exchange(ctx, authCode, oauth2.VerifierOption(pl.verifier))
	if err != nil {
		p.logExchangeError(err)
		p.oidcRefuse(w, r, http.StatusBadGateway, "OIDC_CODE_EXCHANGE_FAILED", "The identity provider did not complete the sign-in (the authorization code could not be exchanged for tokens). Start again with the button below.")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		p.oidcRefuse(w, r, http.StatusBadGateway, "OIDC_NO_ID_TOKEN", "The identity provider sent no ID token (is the openid scope allowed for this client?).")
		return
	}
	idt, err := verifier.Verify(ctx, rawID)
	if err != nil {
		p.log.Warn("portal: OIDC ID token refused", "err", err, "source", r.RemoteAddr)
		p.oidcRefuse(w, r, http.StatusUnauthorized, "OIDC_ID_TOKEN_INVALID", "The identity provider's ID token could not be verified; the reason is in the server log.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.nonce)) != 1 {
		p.log.Warn("portal: OIDC ID token refused (nonce mismatch)", "source", r.RemoteAddr)
		p.oidcRefuse(w, r, http.StatusUnauthorized, "OIDC_NONCE_MISMATCH", "The identity provider's ID token does not belong to this sign-in (its nonce does not match). Start again with the button below.")
		return
	}
	bearer, err := o.bearerOf(tok, rawID, idt)
	if err != nil {
		p.log.Warn("portal: OIDC tokens refused", "err", err, "source", r.RemoteAddr)
		p.oidcRefuse(w, r, http.StatusUnauthorized, "OIDC_TOKENS_UNUSABLE", "The identity provider's tokens could not be used: "+err.Error()+".")
		return
	}
	s, msg := p.signIn(w, r, bearer, tok)
	if s == nil {
		p.oidcRefuse(w, r, http.StatusUnauthorized, "", "Sign-in with "+o.host+" failed: "+msg)
		return
	}
	// The session cookie is SameSite=Strict, and this response ends a
	// redirect chain that started at the provider (cross-site): a redirect
	// from here would still be cross-site, and the browser would not send
	// the new cookie. A page that moves on by itself is a same-site
	// navigation.
	w.Header().Set("Refresh", "0; url=/")
	p.render(w, r, http.StatusOK, "error", errorView{Title: "Signed in", Reason: "You are signed in as " + s.who().GetSubject() + ". Continuing to the portal…"}, s)
}

// bearerOf picks the token the session calls the API with: the ID token
// (BearerIDToken), or the access token, checked against the ID token's
// at_hash when it has one.
func (o *oidcLogin) bearerOf(tok *oauth2.Token, rawID string, idt *oidc.IDToken) (string, error) {
	bearer := tok.AccessToken
	if o.opts.Bearer == BearerIDToken {
		bearer = rawID
	} else if idt != nil && idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return "", errors.New("the access token does not match the ID token (at_hash)")
		}
	}
	if bearer == "" || len(bearer) > 16<<10 {
		return "", fmt.Errorf("no usable %s", o.opts.Bearer)
	}
	return bearer, nil
}

// refreshEarly is how long before its token expires an OIDC session is
// refreshed.
const refreshEarly = 30 * time.Second

// refresh trades the session's refresh token for new tokens (10 s bound)
// and returns the new bearer and tokens. An ID token in the answer is
// verified (issuer, audience, expiry, signature; a refresh has no nonce);
// the caller checks that the new bearer is the same person (GetCaller).
func (o *oidcLogin) refresh(ctx context.Context, old *oauth2.Token) (string, *oauth2.Token, error) {
	cfg, verifier, err := o.provider(ctx)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.client), oidcExchangeTimeout)
	defer cancel()
	// A token without an access token and expiry: the source refreshes.
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken}).Token()
	if err != nil {
		return "", nil, err
	}
	rawID, _ := tok.Extra("id_token").(string)
	var idt *oidc.IDToken
	if rawID != "" {
		if idt, err = verifier.Verify(ctx, rawID); err != nil {
			return "", nil, fmt.Errorf("the refreshed ID token: %w", err)
		}
	}
	if o.opts.Bearer == BearerIDToken && rawID == "" {
		return "", nil, errors.New("the refresh answer has no ID token")
	}
	bearer, err := o.bearerOf(tok, rawID, idt)
	if err != nil {
		return "", nil, err
	}
	return bearer, tok, nil
}

// freshen refreshes an OIDC session whose token expires within
// refreshEarly (or has expired), and asks the API who the new token is: it
// must be the same subject. It reports whether the session may go on; a
// session without a refresh token, or whose token is still fresh, may.
func (p *Portal) freshen(r *http.Request, s *session) bool {
	s.mu.Lock()
	due := s.oauth != nil && !s.tokenExp.IsZero() && !p.sessions.now().Before(s.tokenExp.Add(-refreshEarly))
	s.mu.Unlock()
	if !due || p.oidc == nil {
		return true
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.mu.Lock()
	old, subject := s.oauth, s.caller.GetSubject()
	due = s.oauth != nil && !p.sessions.now().Before(s.tokenExp.Add(-refreshEarly))
	s.mu.Unlock()
	if !due {
		return true // refreshed by a request that held refreshMu first
	}
	bearer, tok, err := p.oidc.refresh(r.Context(), old)
	if err != nil {
		// The provider's error code and description only: never a body.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			p.log.Warn("portal: refreshing an OIDC session failed; it ends", "subject", subject,
				"error", clip(re.ErrorCode, 64), "description", clip(re.ErrorDescription, 200))
		} else {
			p.log.Warn("portal: refreshing an OIDC session failed; it ends", "subject", subject, "err", err)
		}
		return false
	}
	if p.checkToken != nil {
		if err := p.checkToken(r, bearer); err != nil {
			p.log.Warn("portal: the refreshed OIDC token was refused; the session ends", "subject", subject, "err", err)
			return false
		}
	}
	ctx, cancel := p.ctx(r, bearer)
	defer cancel()
	caller, err := p.identity.GetCaller(ctx, &lgv1.GetCallerRequest{})
	if err != nil || caller.GetSubject() != subject {
		p.log.Warn("portal: the refreshed OIDC token is not the session's subject; the session ends", "subject", subject, "now", caller.GetSubject(), "err", err)
		return false
	}
	s.mu.Lock()
	s.token, s.caller, s.oauth = bearer, caller, tok
	s.tokenExp = time.Time{}
	if et := caller.GetExpireTime(); et != nil {
		s.tokenExp = et.AsTime()
	}
	s.mu.Unlock()
	return true
}

// oidcRefuse shows the login page (both ways to sign in) with why the
// OIDC sign-in did not happen.
//
// reason, when not "", names a refusal of the callback (an answer that
// does not verify, or the provider's refusal), audited as portal.signin.
func (p *Portal) oidcRefuse(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	if reason != "" {
		p.refuse(r, "", "portal.signin", reason, msg)
	}
	p.render(w, r, code, "login", p.newLoginView(msg), nil)
}

// logExchangeError logs a failed code exchange: the provider's error code
// and description, never a response body that might hold a token.
func (p *Portal) logExchangeError(err error) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		p.log.Warn("portal: OIDC code exchange refused by the identity provider", "status", status, "error", clip(re.ErrorCode, 64), "description", clip(re.ErrorDescription, 200))
		return
	}
	p.log.Warn("portal: OIDC code exchange failed", "err", err)
}
