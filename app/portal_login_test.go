package app_test

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address local (127.0.0.x), so that tests can be two browsers.
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func portalLogin(t *testing.T, c *http.Client, base, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// A flood of bad portal sign-ins is counted against the browser's address,
// not against the loopback address the portal calls the API from: the
// flooding browser is rate limited, another browser still signs in, and
// the API keeps answering; every refusal is audited.
func TestPortalSignInFailuresCountPerBrowser(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := startOps(t, config.Embedded(filepath.Join(t.TempDir(), "data")), false)
	base := "http://" + r.srv.HTTPAddr
	attacker, person := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")

	limited := false
	for i := range 40 {
		code, body := portalLogin(t, attacker, base, "wrong-token-"+string(rune('a'+i%26)))
		if code != http.StatusUnauthorized {
			t.Fatalf("bad sign-in %d: %d, want 401", i, code)
		}
		if strings.Contains(body, "too many failed authentications") {
			limited = true
			break
		}
	}
	if !limited {
		t.Errorf("40 bad sign-ins from one address were never rate limited")
	}
	if code, _ := portalLogin(t, person, base, r.token); code != http.StatusSeeOther {
		t.Errorf("another browser's good sign-in after the flood: %d, want 303 to the overview", code)
	}
	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.ListLoops(r.admin, &lgv1.ListLoopsRequest{Parent: "teams/-"}); err != nil {
		t.Errorf("the API after the flood: %v", err)
	}
	eventually(t, 15*time.Second, func() string {
		page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.admin, &lgv1.ListAuditEventsRequest{PageSize: 200})
		if err != nil {
			return err.Error()
		}
		var rejected, rateLimited bool
		for _, e := range page.GetEvents() {
			if e.GetAction() == "auth.reject" && strings.Contains(e.GetResource(), "/login") {
				switch e.GetOutcome() {
				case "UNAUTHENTICATED":
					rejected = true
				case "RATE_LIMITED":
					rateLimited = true
				}
			}
		}
		if !rejected || !rateLimited {
			return "audit lacks the portal's refused sign-ins (unauthenticated, rate limited)"
		}
		return ""
	})
}

// A portal form the portal refuses itself — a wrong CSRF token, or sent
// from another origin — never reaches the API, so the portal audits it:
// portal.form, FORBIDDEN, by the signed-in subject, with the reason.
func TestPortalFormRefusalsAreAudited(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	base := "http://" + r.http
	jar, _ := cookiejar.New(nil)
	c := clientFrom("127.0.0.1")
	c.Jar = jar
	if code, body := portalLogin(t, c, base, demoToken(t, "growth")); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	post := func(origin, csrf string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/teams/growth/loops/x/approve",
			strings.NewReader(url.Values{"csrf": {csrf}, "etag": {"e"}, "confirm": {"on"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(base, "not-the-token"); code != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %d, want 403", code)
	}
	if code := post("https://evil.example", "not-the-token"); code != http.StatusForbidden {
		t.Errorf("another origin: %d, want 403", code)
	}
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: "portal.form"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, e := range events.GetEvents() {
		if e.GetOutcome() != "FORBIDDEN" || e.GetResource() != "/teams/growth/loops/x/approve" || !strings.HasPrefix(e.GetActor(), "growth") {
			t.Errorf("refusal event %v", e)
		}
		reasons[e.GetDetails().GetFields()["reason"].GetStringValue()] = true
	}
	if !reasons["CSRF_TOKEN"] || !reasons["CROSS_ORIGIN"] {
		t.Errorf("audited reasons %v, want CSRF_TOKEN and CROSS_ORIGIN", reasons)
	}
}
