package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/server"
	"github.com/loopgate/loopgate/web"
)

// Bounds of the REST listener. A body is never read before its caller is
// authenticated and its size is known to be within MaxRESTBody; a slow
// client is cut off by the timeouts.
const (
	// MaxRESTBody is the largest REST request body: the gRPC message limit
	// the gateway forwards to (4 MiB).
	MaxRESTBody        = 4 << 20
	restMaxHeaderBytes = 64 << 10
)

// How long a REST client may take to send its headers and its whole
// request, to read the response, and how long an idle keep-alive
// connection is kept. Variables so that tests can shorten them.
var (
	restReadHeaderTimeout = 10 * time.Second
	restReadTimeout       = 30 * time.Second
	restWriteTimeout      = 60 * time.Second
	restIdleTimeout       = 120 * time.Second
)

// guardREST wraps the REST API: it refuses a declared body over
// MaxRESTBody with 413 before anything else, authenticates the caller from
// the headers alone (401, audited, without reading the body), and reads an
// undeclared (chunked) body only up to the limit. Authentication is checked
// again by the gRPC interceptor the gateway calls: this is the early, cheap
// refusal that keeps unauthenticated uploads out of memory.
func guardREST(next http.Handler, authn *server.Authenticator, core *admission.Core, lim *server.Limiters) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRESTBody {
			w.Header().Set("Connection", "close")
			restError(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
				fmt.Sprintf("request body of %d bytes is over the limit of %d bytes", r.ContentLength, MaxRESTBody))
			return
		}
		if _, err := authenticateHTTP(r, "REST "+r.Method+" "+r.URL.Path, r.Header.Get("Authorization"), authn, core, lim); err != nil {
			if err.retryAfter > 0 {
				w.Header().Set("Retry-After", fmt.Sprint(max(int(err.retryAfter.Seconds()+0.5), 1)))
				restError(w, http.StatusTooManyRequests, "RATE_LIMITED", err.msg)
				return
			}
			w.Header().Set("Connection", "close")
			restError(w, http.StatusUnauthorized, "UNAUTHENTICATED", err.msg)
			return
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength < 0 {
			// Chunked: read at most the limit, then decide.
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxRESTBody+1))
			if err != nil {
				restError(w, http.StatusBadRequest, "INVALID_REQUEST", "reading the request body: "+err.Error())
				return
			}
			if len(body) > MaxRESTBody {
				w.Header().Set("Connection", "close")
				restError(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE",
					fmt.Sprintf("request body is over the limit of %d bytes", MaxRESTBody))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		} else if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxRESTBody)
		}
		next.ServeHTTP(w, r)
	})
}

// httpAuthError is why authenticateHTTP refused a request.
type httpAuthError struct {
	msg        string
	retryAfter time.Duration // > 0: rate limited, not unauthenticated
}

// authenticateHTTP is the API's authentication for a request that arrives
// over HTTP before any gRPC call (REST, the portal's sign-in, /metrics):
// the credentials in authorization ("Bearer …") are checked against the
// client's own address's budget of failures, a failure is counted there
// and audited (auth.reject, floods collapsed), exactly as the gRPC
// interceptor does for its peers. Counting here matters because the calls
// these requests then make come from loopback: there every person's
// failures would land on one address.
func authenticateHTTP(r *http.Request, method, authorization string, authn *server.Authenticator, core *admission.Core, lim *server.Limiters) (admission.Identity, *httpAuthError) {
	host := clientHost(r)
	ctx := admission.WithCall(r.Context(), admission.Call{Method: method, Source: host})
	if limited, wait := lim.AuthFailures.Exhausted(host); limited {
		msg := fmt.Sprintf("rate limited: too many failed authentications from this address; retry in %s", wait.Round(time.Second))
		core.AuditRateLimited(ctx, admission.Identity{}, "auth.reject", method, msg)
		return admission.Identity{}, &httpAuthError{msg: msg, retryAfter: wait}
	}
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
	id, err := authn.Authenticate(ctx)
	if err != nil {
		lim.AuthFailures.Take(host)
		core.AuditRejected(ctx, method, err)
		return admission.Identity{}, &httpAuthError{msg: err.Error()}
	}
	return id, nil
}

// checkPortalToken vets a portal sign-in's token with authenticateHTTP
// before the portal calls the API with it: only good tokens reach the API.
// The sign-in's route names the method in the audit: "HTTP POST /login"
// for a pasted token, "HTTP GET /login/oidc/callback" for OIDC.
func checkPortalToken(authn *server.Authenticator, core *admission.Core, lim *server.Limiters) func(*http.Request, string) error {
	return func(r *http.Request, token string) error {
		// The request that brought the token: the sign-in form, the OIDC
		// callback, or any page whose OIDC session refreshed its token.
		method := "HTTP " + r.Method + " " + r.URL.Path
		_, err := authenticateHTTP(r, method, "Bearer "+token, authn, core, lim)
		switch {
		case err == nil:
			return nil
		case err.retryAfter > 0:
			return errors.New(err.msg)
		case r.URL.Path == config.OIDCCallbackPath:
			// The reason (issuer, audience, expiry...) is in the audit
			// trail; the person can do nothing about it but tell the
			// operator.
			return errors.New("this server does not accept the identity provider's token (auth.jwt and portal.oidc.bearer must agree: issuer, audience, signing keys); the reason is in the audit trail")
		case r.URL.Path == "/login":
			// The API's reason speaks of loopctl and --token; it is in
			// the audit trail. A browser gets what to do here.
			return errors.New("the token is unknown, expired or not accepted by this server; paste a current API token (the reason is in the audit trail)")
		default: // an OIDC session's refreshed token (logged, not shown)
			return errors.New(err.msg)
		}
	}
}

// auditPortalRefusal records what the portal refuses itself (web.Options
// Refused): action portal.form or portal.signin on the request's path,
// outcome FORBIDDEN, by the subject (anonymous before sign-in).
func auditPortalRefusal(core *admission.Core) func(*http.Request, string, string, string, string) {
	return func(r *http.Request, subject, action, reason, msg string) {
		ctx := admission.WithCall(context.WithoutCancel(r.Context()), admission.Call{Method: "HTTP " + r.Method + " " + r.URL.Path, Source: clientHost(r)})
		core.AuditForbidden(ctx, admission.Identity{Subject: subject}, action, r.URL.Path, reason, msg)
	}
}

func clientHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// restError writes an error the way grpc-gateway does (a google.rpc.Status
// as JSON, with an ErrorInfo), so clients parse every error alike.
func restError(w http.ResponseWriter, code int, reason, msg string) {
	grpcCode := map[int]int{http.StatusRequestEntityTooLarge: 8, http.StatusUnauthorized: 16, http.StatusBadRequest: 3, http.StatusTooManyRequests: 8}[code]
	body, _ := json.Marshal(map[string]any{"code": grpcCode, "message": msg, "details": []map[string]any{{
		"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "loopgate.dev",
	}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// newHTTPServer is the REST listener's server with every timeout set.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: restReadHeaderTimeout,
		ReadTimeout:       restReadTimeout,
		WriteTimeout:      restWriteTimeout,
		IdleTimeout:       restIdleTimeout,
		MaxHeaderBytes:    restMaxHeaderBytes,
	}
}

// portalOIDCOptions is the portal's OIDC sign-in (portal.oidc), nil when
// not configured. The client secret is read here, once: it is kept in
// memory only, never logged, audited or stored.
func portalOIDCOptions(cfg *config.Config, log *slog.Logger) (*web.OIDCOptions, error) {
	o := cfg.Portal.OIDC
	if o == nil {
		return nil, nil
	}
	if cfg.Auth.JWT == nil {
		return nil, errors.New("portal.oidc: needs auth.jwt")
	}
	opts := &web.OIDCOptions{Issuer: cfg.Auth.JWT.Issuer, ClientID: o.ClientID, RedirectURL: o.RedirectURL,
		Scopes: o.Scopes, Bearer: o.Bearer}
	if o.ClientSecretFile != "" {
		fi, err := os.Stat(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("portal.oidc.clientSecretFile: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			log.Warn("portal.oidc.clientSecretFile is readable by other users; consider chmod 600", "file", o.ClientSecretFile, "mode", fi.Mode().Perm().String())
		}
		raw, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("portal.oidc.clientSecretFile: %w", err)
		}
		if opts.ClientSecret = strings.TrimSpace(string(raw)); opts.ClientSecret == "" {
			return nil, fmt.Errorf("portal.oidc.clientSecretFile: %s is empty", o.ClientSecretFile)
		}
	}
	return opts, nil
}
