package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// CookieName is the session cookie's name.
const CookieName = "loopgate_session"

// session is one signed-in person. The token lives here only: never in a
// cookie, a log or the store.
type session struct {
	id      string
	csrf    string
	expires time.Time // the session's end (the cookie's expiry)
	created time.Time

	// refreshMu serialises refreshes of an OIDC session's tokens.
	refreshMu sync.Mutex

	mu     sync.Mutex
	token  string       // the bearer the API is called with
	caller *lgv1.Caller // who the API says token is
	// oauth holds an OIDC session's tokens, its refresh token included,
	// when the provider gave one; tokenExp is when token expires. Such a
	// session outlives its token: it is refreshed before it expires,
	// until expires.
	oauth    *oauth2.Token
	tokenExp time.Time
	flash    string // one-shot message for the next page
	fail     bool   // the flash is a refusal
}

// bearer is the session's current token.
func (s *session) bearer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// who is whom the API says the session's token stands for.
func (s *session) who() *lgv1.Caller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caller
}

func (s *session) checkCSRF(v string) bool {
	return v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.csrf)) == 1
}

func (s *session) setFlash(msg string, fail bool) {
	s.mu.Lock()
	s.flash, s.fail = msg, fail
	s.mu.Unlock()
}

func (s *session) takeFlash() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, f := s.flash, s.fail
	s.flash, s.fail = "", false
	return m, f
}

// hasRole tells whether the API said the caller holds role.
func (s *session) hasRole(roles ...string) bool {
	for _, have := range s.who().GetRoles() {
		for _, r := range roles {
			if have == r {
				return true
			}
		}
	}
	return false
}

// sessions is the in-memory session table: bounded, expiring.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	max int
	ttl time.Duration
	now func() time.Time
}

func newSessions(max int, ttl time.Duration) *sessions {
	if max <= 0 {
		max = 10000
	}
	if ttl <= 0 {
		ttl = 8 * time.Hour
	}
	return &sessions{m: map[string]*session{}, max: max, ttl: ttl, now: time.Now}
}

// randomID is 256 random bits, URL-safe.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a session for a verified caller; when the table is full,
// expired sessions go first, then the oldest. A session ends when its
// token expires, unless oauth holds a refresh token: then it lasts the
// session's whole life, its token refreshed as it nears expiry.
func (t *sessions) create(token string, caller *lgv1.Caller, oauth *oauth2.Token) *session {
	now := t.now()
	exp := now.Add(t.ttl)
	var tokenExp time.Time
	if et := caller.GetExpireTime(); et != nil {
		tokenExp = et.AsTime()
	}
	refreshable := oauth != nil && oauth.RefreshToken != ""
	if !refreshable {
		oauth = nil
		if !tokenExp.IsZero() && tokenExp.After(now) && tokenExp.Before(exp) {
			exp = tokenExp
		}
	}
	s := &session{id: randomID(), token: token, csrf: randomID(), caller: caller, expires: exp, created: now, oauth: oauth, tokenExp: tokenExp}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		for id, o := range t.m {
			if !now.Before(o.expires) {
				delete(t.m, id)
			}
		}
		for len(t.m) >= t.max {
			var oldest *session
			for _, o := range t.m {
				if oldest == nil || o.created.Before(oldest.created) {
					oldest = o
				}
			}
			delete(t.m, oldest.id)
		}
	}
	t.m[s.id] = s
	return s
}

func (t *sessions) get(id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil {
		return nil
	}
	if !t.now().Before(s.expires) {
		delete(t.m, id)
		return nil
	}
	return s
}

func (t *sessions) drop(s *session) {
	if s == nil {
		return
	}
	t.mu.Lock()
	delete(t.m, s.id)
	t.mu.Unlock()
}

func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *sessions) fromRequest(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) > 64 {
		return nil
	}
	return t.get(c.Value)
}

func (p *Portal) setCookie(w http.ResponseWriter, s *session) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: s.id, Path: "/", HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode, Expires: s.expires,
	})
}

func (p *Portal) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}
