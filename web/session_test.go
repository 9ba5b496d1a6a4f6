package web

import (
	"golang.org/x/oauth2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// A session ends when its token expires, unless it holds a refresh token:
// then it lasts its whole life (the token is refreshed on the way).
func TestSessionLifeFollowsTheToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := newSessions(10, 8*time.Hour)
	tab.now = func() time.Time { return now }
	caller := &lgv1.Caller{Subject: "c", ExpireTime: timestamppb.New(now.Add(5 * time.Minute))}
	plain := tab.create("tok", caller, &oauth2.Token{AccessToken: "a"}) // no refresh token
	refreshable := tab.create("tok", caller, &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	if !plain.expires.Equal(now.Add(5*time.Minute)) || plain.oauth != nil {
		t.Errorf("without a refresh token: ends %v (oauth kept %v), want with its token", plain.expires, plain.oauth != nil)
	}
	if !refreshable.expires.Equal(now.Add(8*time.Hour)) || !refreshable.tokenExp.Equal(now.Add(5*time.Minute)) {
		t.Errorf("with a refresh token: ends %v, token %v; want the session's 8 h and the token's 5 min", refreshable.expires, refreshable.tokenExp)
	}
}

func TestSessionsAreBoundedAndExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tab := newSessions(3, 8*time.Hour)
	tab.now = func() time.Time { return now }
	var ids []string
	for i := 0; i < 5; i++ {
		s := tab.create("tok", &lgv1.Caller{Subject: "a"}, nil)
		if len(s.id) != 43 || len(s.csrf) != 43 {
			t.Fatalf("id/csrf lengths %d/%d, want 256 bits", len(s.id), len(s.csrf))
		}
		ids = append(ids, s.id)
		now = now.Add(time.Second)
	}
	if tab.len() != 3 || tab.get(ids[0]) != nil || tab.get(ids[1]) != nil || tab.get(ids[4]) == nil {
		t.Fatalf("eviction: %d sessions", tab.len())
	}
	// A token that expires in a minute ends its session in a minute.
	s := tab.create("tok", &lgv1.Caller{Subject: "b", ExpireTime: timestamppb.New(now.Add(time.Minute))}, nil)
	if !s.expires.Equal(now.Add(time.Minute)) {
		t.Errorf("expires %v", s.expires)
	}
	now = now.Add(2 * time.Minute)
	if tab.get(s.id) != nil {
		t.Error("a session outlived its token")
	}
	now = now.Add(8 * time.Hour)
	if tab.get(ids[4]) != nil {
		t.Error("a session outlived 8 hours")
	}
	if !s.checkCSRF(s.csrf) || s.checkCSRF("") || s.checkCSRF(s.csrf[:42]) {
		t.Error("CSRF comparison")
	}
}

func TestCookieIsSecureOnTLS(t *testing.T) {
	p := &Portal{secure: true}
	w := httptest.NewRecorder()
	p.setCookie(w, &session{id: "x", expires: time.Now().Add(time.Hour)})
	c := w.Header().Get("Set-Cookie")
	for _, want := range []string{"loopgate_session=x", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(c, want) {
			t.Errorf("%q lacks %s", c, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		origin, referer string
		ok              bool
	}{
		{"", "", true}, {"http://portal.test", "", true}, {"https://portal.test", "", true},
		{"http://evil.test", "", false}, {"null", "", false}, {"", "http://portal.test/teams/x", true},
		{"", "http://evil.test/portal.test", false}, {"http://portal.test.evil.test", "", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "http://portal.test/logout", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.referer != "" {
			r.Header.Set("Referer", c.referer)
		}
		if got := sameOrigin(r); got != c.ok {
			t.Errorf("origin %q referer %q: %v, want %v", c.origin, c.referer, got, c.ok)
		}
	}
}

func TestPicturesSayWhatTheyShow(t *testing.T) {
	svg := string(stackedBar("Cost <x>", []costPart{{"storage", 30}, {"network", 10}, {"compute", 0}}, "USD"))
	for _, want := range []string{`role="img"`, `<title>Cost &lt;x&gt;: $40.00 per month; storage 75%, network 25%</title>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("stacked bar lacks %s: %s", want, svg)
		}
	}
	spark := string(sloSparkline(&lgv1.SloStatus{TargetP99Ms: 500, Windows: []*lgv1.LatencyWindow{
		{Window: "1m", P99Ms: 700, Records: 10}, {Window: "1h", P99Ms: 300, Records: 100}, {Window: "28d", P99Ms: 200, Records: 1000}}}))
	if !strings.Contains(spark, "28d 200 ms, 1h 300 ms, 1m 700 ms") || !strings.Contains(spark, "<title>") {
		t.Errorf("sparkline: %s", spark)
	}
	daily := string(sloSparkline(&lgv1.SloStatus{TargetP99Ms: 500, Days: []*lgv1.LatencyDay{
		{Day: "2026-11-28", P99Ms: 400, Records: 10}, {Day: "2026-11-29", P99Ms: 900, Records: 10}, {Day: "2026-11-30", P99Ms: 300, Records: 5}}}))
	for _, want := range []string{"p99 latency by day against the 500 ms target: 2026-11-28 400 ms, 2026-11-29 900 ms, 2026-11-30 300 ms",
		`fill="#a3352f"><title>2026-11-29 p99 900 ms</title>`, ">11-28</text>", ">11-30</text>"} {
		if !strings.Contains(daily, want) {
			t.Errorf("daily sparkline lacks %s: %s", want, daily)
		}
	}
	if stackedBar("x", nil, "USD") != "" || sloSparkline(&lgv1.SloStatus{}) != "" || lagBars(nil) != "" {
		t.Error("empty pictures are drawn")
	}
}
