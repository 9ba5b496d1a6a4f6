// Package web is loopgate's portal: server-rendered pages, served by
// `loopgate serve` on its HTTP listener under "/", that answer who owns a
// loop, whether it is compliant, where its topics are, whether it meets its
// SLO, what it costs and what happened to it.
//
// The portal holds no data of its own and never reads the store: every page
// is built from gRPC calls to the server's own gRPC listener (dialled the
// way the REST gateway dials it), each carrying the signed-in person's
// bearer token. So the one Authorizer, the audit of refusals, rate limits
// and team scoping apply to the portal exactly as to the API.
package web

import (
	"context"
	"embed"
	"errors"
	"github.com/loopgate/loopgate/internal/utf8clip"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// Options configure a Portal.
type Options struct {
	// Target is the gRPC address the portal dials (the server's own).
	Target string
	// Dial are the dial options, as the REST gateway uses them (TLS
	// pinning, the gateway marker).
	Dial []grpc.DialOption
	// Secure marks the session cookie Secure (the HTTP listener is TLS).
	Secure bool
	// Refused, when set, records in the audit trail what the portal refuses
	// itself, which never reaches the API (the API audits everything it
	// refuses): action portal.form (a form whose CSRF or origin check
	// failed) or portal.signin (a sign-in form from another origin, an
	// OIDC callback that does not verify), the subject ("" before sign-in),
	// a reason (UPPER_SNAKE) and a message.
	Refused func(r *http.Request, subject, action, reason, msg string)
	// Log receives warnings (CSRF refusals); nil discards.
	Log *slog.Logger
	// MaxSessions bounds the in-memory sessions (0: 10,000).
	MaxSessions int
	// SessionTTL bounds a session's life (0: 8 h); a token that expires
	// sooner ends it sooner.
	SessionTTL time.Duration
	// ListCacheTTL is how long the overview reuses a session's loop list
	// (0: 10 s; negative: never).
	ListCacheTTL time.Duration
	// CheckToken, when set, vets a sign-in's token before the portal calls
	// the API with it: the server authenticates it and counts a failure
	// against the browser's address (the portal's own calls all come from
	// loopback, so the API alone would count every person's failures
	// together). A non-nil error refuses the sign-in with its message.
	CheckToken func(r *http.Request, token string) error
	// OIDC, when set, adds "Sign in with <issuer>" (an OpenID Connect
	// authorization-code flow with PKCE) to the login page; nil = pasted
	// tokens only.
	OIDC *OIDCOptions
}

// Portal is the portal's http.Handler.
type Portal struct {
	checkToken func(r *http.Request, token string) error
	oidc       *oidcLogin // nil: no OIDC sign-in
	refused    func(r *http.Request, subject, action, reason, msg string)
	conn       *grpc.ClientConn
	loops      lgv1.LoopServiceClient
	identity   lgv1.IdentityServiceClient
	audit      lgv1.AuditServiceClient
	policy     lgv1.PolicyServiceClient
	principal  lgv1.PrincipalServiceClient
	waivers    lgv1.WaiverServiceClient
	teams      lgv1.TeamServiceClient
	sessions   *sessions
	lists      *listCache
	secure     bool
	log        *slog.Logger
	pages      map[string]*template.Template
	mux        *http.ServeMux
}

// maxFormBytes bounds a form POST's body.
const maxFormBytes = 64 << 10

// callTimeout bounds each page's API calls.
const callTimeout = 15 * time.Second

// New builds the portal; the connection is made lazily, on the first call.
func New(opts Options) (*Portal, error) {
	conn, err := grpc.NewClient(opts.Target, opts.Dial...)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Portal{
		conn: conn, loops: lgv1.NewLoopServiceClient(conn), identity: lgv1.NewIdentityServiceClient(conn),
		audit: lgv1.NewAuditServiceClient(conn), policy: lgv1.NewPolicyServiceClient(conn),
		principal: lgv1.NewPrincipalServiceClient(conn), waivers: lgv1.NewWaiverServiceClient(conn),
		teams:    lgv1.NewTeamServiceClient(conn),
		sessions: newSessions(opts.MaxSessions, opts.SessionTTL), secure: opts.Secure, log: log,
		checkToken: opts.CheckToken, refused: opts.Refused,
	}
	if opts.OIDC != nil {
		if p.oidc, err = newOIDCLogin(*opts.OIDC, opts.Secure); err != nil {
			conn.Close()
			return nil, err
		}
	}
	ttl := opts.ListCacheTTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	p.lists = newListCache(ttl, 256, defaultListCacheBytes)
	if p.pages, err = parseTemplates(); err != nil {
		conn.Close()
		return nil, err
	}
	p.routes()
	return p, nil
}

// Close closes the portal's connection.
func (p *Portal) Close() { _ = p.conn.Close() }

func (p *Portal) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /login", p.loginPage)
	m.HandleFunc("POST /login", p.login)
	if p.oidc != nil {
		m.HandleFunc("GET /login/oidc", p.oidcStart)
		m.HandleFunc("GET /login/oidc/callback", p.oidcCallback)
	}
	m.HandleFunc("POST /logout", p.authed(p.logout))
	m.HandleFunc("GET /{$}", p.authed(p.overview))
	m.HandleFunc("GET /teams/{team}", p.authed(p.team))
	m.HandleFunc("GET /teams/{team}/loops/{loop}", p.authed(p.loopPage))
	m.HandleFunc("POST /teams/{team}/loops/{loop}/approve", p.authed(p.review(true)))
	m.HandleFunc("POST /teams/{team}/loops/{loop}/reject", p.authed(p.review(false)))
	m.HandleFunc("POST /teams/{team}/loops/{loop}/waive", p.authed(p.waive))
	m.HandleFunc("GET /teams/{team}/principals/{name}", p.authed(p.principalPage))
	m.HandleFunc("GET /policy", p.authed(p.policyPage))
	m.HandleFunc("GET /policy/bundles/{rev}", p.authed(p.impactPage))
	m.HandleFunc("GET /audit", p.authed(p.auditPage))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.render(w, r, http.StatusNotFound, "error", errorView{Title: "Not found", Reason: "There is no page at this address."}, p.sessions.fromRequest(r))
	})
	p.mux = m
}

// ServeHTTP serves the portal with its security headers.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if len(r.URL.RawQuery) > 4096 {
		r.URL.RawQuery = r.URL.RawQuery[:4096]
	}
	p.mux.ServeHTTP(w, r)
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// authed runs h with the request's session, or sends the browser to
// /login. A POST must also pass the CSRF checks.
func (p *Portal) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := p.sessions.fromRequest(r)
		if s != nil && !p.freshen(r, s) {
			// An OIDC session whose token could not be refreshed ends.
			p.sessions.drop(s)
			p.lists.drop(s.id)
			p.clearCookie(w)
			s = nil
		}
		if s == nil {
			if r.Method == http.MethodGet || r.URL.Path == "/logout" { // signed out already
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			p.render(w, r, http.StatusForbidden, "error", errorView{Title: "Not allowed", Reason: "Your session has ended; sign in again."}, nil)
			return
		}
		if r.Method == http.MethodPost {
			p.lists.drop(s.id) // the person changes something: list afresh
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				p.render(w, r, http.StatusRequestEntityTooLarge, "error", errorView{Title: "Not allowed", Reason: "The form could not be read."}, s)
				return
			}
			origin, token := sameOrigin(r), s.checkCSRF(r.PostFormValue("csrf"))
			if !origin || !token {
				reason, msg := "CSRF_TOKEN", "the form's CSRF token does not match the session's"
				if !origin {
					reason, msg = "CROSS_ORIGIN", "the form was sent from another origin (Origin or Referer header)"
				}
				p.log.Warn("portal: form refused", "reason", reason, "path", r.URL.Path, "subject", s.who().GetSubject(), "source", r.RemoteAddr)
				p.refuse(r, s.who().GetSubject(), "portal.form", reason, msg)
				p.render(w, r, http.StatusForbidden, "error", errorView{Title: "Not allowed", Reason: "The form could not be verified (it was not sent from this portal, or the page was too old). Reload the page and try again."}, s)
				return
			}
		}
		h(w, r, s)
	}
}

// sameOrigin refuses a request whose Origin (or, without one, Referer) is
// present and names another host than the one it was sent to.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return hostOf(o) == r.Host
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return hostOf(ref) == r.Host
	}
	return true
}

func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "\x00" // "null" or garbage: never our host
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// ctx is the context of the API calls made for r on behalf of s: the
// person's token, their address as a forwarding hint (the API records it
// next to the peer), the request id.
func (p *Portal) ctx(r *http.Request, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	kv := []string{"authorization", "Bearer " + token}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		kv = append(kv, "x-forwarded-for", host)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		kv = append(kv, "x-request-id", clip(id, 128))
	}
	return metadata.AppendToOutgoingContext(ctx, kv...), cancel
}

// apiError renders the page for an API error: 403 with the API's reason,
// 401 (the session is dropped), 404, or 502.
func (p *Portal) apiError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	st, _ := status.FromError(err)
	v := errorView{Reason: st.Message()}
	code := http.StatusBadGateway
	switch st.Code() {
	case codes.PermissionDenied:
		code, v.Title = http.StatusForbidden, "Not allowed"
	case codes.Unauthenticated:
		code, v.Title = http.StatusUnauthorized, "Sign in again"
		if s != nil {
			p.sessions.drop(s)
			p.lists.drop(s.id)
		}
		s = nil
	case codes.NotFound:
		code, v.Title = http.StatusNotFound, "Not found"
	case codes.InvalidArgument:
		code, v.Title = http.StatusBadRequest, "Bad request"
	default:
		v.Title = "Something went wrong"
		if errors.Is(err, context.DeadlineExceeded) {
			v.Reason = "The API did not answer in time."
		}
	}
	p.render(w, r, code, "error", v, s)
}

// denied tells whether err is a refusal by the API (shown in place).
func denied(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

// errText is an API error's message for a page.
func errText(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// refuse records a refusal of the portal's own (Options.Refused).
func (p *Portal) refuse(r *http.Request, subject, action, reason, msg string) {
	if p.refused != nil {
		p.refused(r, subject, action, reason, msg)
	}
}

// clip bounds a string from a query or form.
func clip(s string, n int) string {
	return utf8clip.Bytes(strings.TrimSpace(s), n)
}
