package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/loopgate/loopgate/app"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
	"github.com/loopgate/loopgate/internal/policytest"
)

// env is a whole loopgate (embedded default) served in-process on free
// loopback ports, with the demo tokens by name.
type env struct {
	base   string // http://127.0.0.1:port
	tokens map[string]string
	conn   *grpc.ClientConn
}

func start(tb testing.TB, mutate func(*config.Config)) *env {
	tb.Helper()
	tb.Setenv("HOME", tb.TempDir())
	cfg := config.Embedded(filepath.Join(tb.TempDir(), "data"))
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	conn, err := grpc.NewClient(srv.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(); cancel(); <-done; srv.Close() })
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil || creds == nil {
		tb.Fatalf("dev credentials: %v", err)
	}
	e := &env{base: "http://" + srv.HTTPAddr, tokens: creds.Tokens, conn: conn}
	// Wait until the HTTP listener answers.
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(e.base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// as is a context authenticated as the demo identity name.
func (e *env) as(name string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.tokens[name])
}

// browser is a signed-in (or not) client that follows no redirects.
type browser struct {
	t      testing.TB
	e      *env
	c      *http.Client
	cookie *http.Cookie
}

func (e *env) browser(t testing.TB) *browser {
	return &browser{t: t, e: e, c: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}}
}

type page struct {
	code int
	loc  string
	body string
	hdr  http.Header
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "loopgate_session" {
			if c.MaxAge < 0 || c.Value == "" {
				b.cookie = nil
			} else {
				b.cookie = c
			}
		}
	}
	return page{code: resp.StatusCode, loc: resp.Header.Get("Location"), body: string(data), hdr: resp.Header}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil, nil) }

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.do("POST", path, form, map[string]string{"Origin": b.e.base})
}

func (b *browser) login(name string) *browser {
	b.t.Helper()
	p := b.post("/login", url.Values{"token": {b.e.tokens[name]}})
	if p.code != http.StatusSeeOther || b.cookie == nil {
		b.t.Fatalf("signing in as %s: %d %s", name, p.code, p.body)
	}
	return b
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf(path string) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(b.get(path).body)
	if m == nil {
		b.t.Fatalf("no csrf field on %s", path)
	}
	return m[1]
}

func h1(body string) string {
	m := regexp.MustCompile(`(?s)<h1>(.*?)</h1>`).FindAllStringSubmatch(body, -1)
	if len(m) != 1 {
		return "<" + string(rune('0'+len(m))) + " h1>"
	}
	return m[0][1]
}

// checkoutLoop is examples/checkout-nudge.yaml, named name in team team.
func checkoutLoop(team, name string) *lgv1.Loop {
	return &lgv1.Loop{
		Name: "teams/" + team + "/loops/" + name,
		Spec: &lgv1.LoopSpec{
			Description: "Nudge shoppers who abandon checkout", Owners: []string{"ana@example.com"},
			Classification: "pii", Residency: "eu", RetentionMs: 72 * 3600 * 1000,
			Slo:        &lgv1.Slo{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput: &lgv1.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams: []*lgv1.Stream{
				{Name: "events", Partitions: 12, Schema: &lgv1.StreamSchema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}`}},
				{Name: "actions", Schema: &lgv1.StreamSchema{Format: "avro", Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []*lgv1.Producer{{Principal: "User:" + name + "-api", Streams: []string{"events"}}, {Principal: "User:" + name + "-engine", Streams: []string{"actions"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:" + name + "-engine", Group: name + "-engine", Streams: []string{"events"}}},
			Action:    &lgv1.LoopAction{Stream: "actions"},
		},
	}
}

func (e *env) create(t testing.TB, as string, l *lgv1.Loop) *lgv1.Loop {
	t.Helper()
	team, _, _ := strings.Cut(strings.TrimPrefix(l.Name, "teams/"), "/")
	id := l.Name[strings.LastIndex(l.Name, "/")+1:]
	got, err := lgv1.NewLoopServiceClient(e.conn).CreateLoop(e.as(as), &lgv1.CreateLoopRequest{Parent: "teams/" + team, LoopId: id, Loop: l})
	if err != nil {
		t.Fatalf("creating %s: %v", l.Name, err)
	}
	return got
}

func TestPortal(t *testing.T) {
	e := start(t, nil)
	e.create(t, "growth", checkoutLoop("growth", "checkout-nudge"))
	fast := checkoutLoop("risk", "fraud-signals")
	fast.Spec.Description = "Score card payments for fraud"
	fast.Spec.Classification = "confidential"
	fast.Spec.Slo = &lgv1.Slo{LatencyP99Ms: 100, FreshnessMs: 80} // below the policy floor: needs approval
	if got := e.create(t, "risk", fast); got.GetStatus().GetState() != lgv1.Loop_PENDING_APPROVAL {
		t.Fatalf("fraud-signals: %v", got.GetStatus().GetState())
	}

	t.Run("sign-in, session cookie, sign-out", func(t *testing.T) {
		b := e.browser(t)
		if p := b.get("/"); p.code != http.StatusSeeOther || p.loc != "/login" {
			t.Fatalf("unauthenticated GET /: %d %q", p.code, p.loc)
		}
		p := b.get("/login")
		for _, want := range []string{`<h1>Sign in</h1>`, `<form id="login-form" method="post" action="/login"`, `<label for="token">API token</label>`,
			`<input type="password" id="token" name="token"`, `<button type="submit">Sign in</button>`, `<main id="main"`, `<nav aria-label="Main">`, `href="#main"`} {
			if !strings.Contains(p.body, want) {
				t.Errorf("login page lacks %s", want)
			}
		}
		if p := b.post("/login", url.Values{"token": {"not-a-token"}}); p.code != http.StatusUnauthorized || !strings.Contains(p.body, `<p id="login-error" role="alert"`) {
			t.Errorf("bad token: %d", p.code)
		}
		if b.cookie != nil {
			t.Fatal("a bad token created a session")
		}
		req, _ := http.NewRequest("POST", e.base+"/login", strings.NewReader(url.Values{"token": {e.tokens["growth"]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		sc := resp.Header.Get("Set-Cookie")
		for _, want := range []string{"loopgate_session=", "Path=/", "HttpOnly", "SameSite=Strict"} {
			if !strings.Contains(sc, want) {
				t.Errorf("Set-Cookie %q lacks %s", sc, want)
			}
		}
		if strings.Contains(sc, "Secure") {
			t.Errorf("Secure on a plain-HTTP listener: %q", sc)
		}
		if strings.Contains(sc, e.tokens["growth"]) {
			t.Fatal("the token is in the cookie")
		}
		b.cookie = resp.Cookies()[0]
		if len(b.cookie.Value) < 43 {
			t.Errorf("session id too short: %d chars", len(b.cookie.Value))
		}
		home := b.get("/")
		if home.code != 200 || !strings.Contains(home.body, `<span id="whoami">growth-dev@example.com</span>`) || h1(home.body) != "Loops" {
			t.Fatalf("home after sign-in: %d %s", home.code, h1(home.body))
		}
		csrf := csrfRE.FindStringSubmatch(home.body)[1]
		// Sign-out without the CSRF token is refused; with it, it works.
		if p := b.post("/logout", url.Values{}); p.code != http.StatusForbidden {
			t.Errorf("logout without csrf: %d", p.code)
		}
		old := *b.cookie
		if p := b.post("/logout", url.Values{"csrf": {csrf}}); p.code != http.StatusSeeOther || p.loc != "/login" {
			t.Fatalf("logout: %d %q", p.code, p.loc)
		}
		b.cookie = &old // the old cookie is worthless now
		if p := b.get("/"); p.code != http.StatusSeeOther {
			t.Errorf("GET / after sign-out: %d", p.code)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		b := e.browser(t).login("admin")
		csrf := b.csrf("/teams/risk/loops/fraud-signals")
		form := url.Values{"csrf": {"wrong"}, "confirm": {"on"}, "comment": {"x"}}
		if p := b.post("/teams/risk/loops/fraud-signals/approve", form); p.code != http.StatusForbidden || h1(p.body) != "Not allowed" {
			t.Errorf("wrong csrf: %d %s", p.code, h1(p.body))
		}
		form.Set("csrf", csrf)
		if p := b.do("POST", "/teams/risk/loops/fraud-signals/approve", form, map[string]string{"Origin": "http://evil.example"}); p.code != http.StatusForbidden {
			t.Errorf("foreign origin: %d", p.code)
		}
		if p := b.do("POST", "/teams/risk/loops/fraud-signals/approve", form, map[string]string{"Referer": "http://evil.example/x"}); p.code != http.StatusForbidden {
			t.Errorf("foreign referer: %d", p.code)
		}
		if p := b.do("POST", "/login", url.Values{"token": {e.tokens["admin"]}}, map[string]string{"Origin": "http://evil.example"}); p.code != http.StatusForbidden {
			t.Errorf("login from a foreign origin: %d", p.code)
		}
		l, _ := lgv1.NewLoopServiceClient(e.conn).GetLoop(e.as("admin"), &lgv1.GetLoopRequest{Name: "teams/risk/loops/fraud-signals"})
		if l.GetStatus().GetState() != lgv1.Loop_PENDING_APPROVAL {
			t.Fatalf("a refused form changed the loop: %v", l.GetStatus().GetState())
		}
	})

	t.Run("another team's loop is refused by the API", func(t *testing.T) {
		b := e.browser(t).login("risk")
		p := b.get("/teams/growth/loops/checkout-nudge")
		if p.code != http.StatusForbidden || h1(p.body) != "Not allowed" || !strings.Contains(p.body, `<p id="reason">`) {
			t.Fatalf("risk opening growth's loop: %d %s", p.code, h1(p.body))
		}
		if strings.Contains(p.body, "ana@example.com") {
			t.Error("the refusal page shows the loop's details")
		}
		if p := b.get("/teams/growth"); p.code != http.StatusForbidden {
			t.Errorf("risk opening team growth: %d", p.code)
		}
		// The overview lists only the caller's loops.
		home := b.get("/")
		if strings.Contains(home.body, `data-loop="growth/checkout-nudge"`) || !strings.Contains(home.body, `data-loop="risk/fraud-signals"`) {
			t.Errorf("risk's overview is not scoped")
		}
		if p := b.get("/teams/risk/loops/nope"); p.code != http.StatusNotFound || h1(p.body) != "Not found" {
			t.Errorf("missing loop: %d %s", p.code, h1(p.body))
		}
		// The whole audit trail is refused for a team member.
		if p := b.get("/audit"); p.code != http.StatusForbidden || !strings.Contains(p.body, `<p id="reason">`) {
			t.Errorf("team member on /audit: %d", p.code)
		}
		// Its own team's trail, filtered by the API (no other team's event).
		if p := b.get("/audit?team=risk"); p.code != 200 || !strings.Contains(p.body, "teams/risk/loops/fraud-signals") || strings.Contains(p.body, "teams/growth") {
			t.Errorf("team member on its team's audit: %d %s", p.code, p.body)
		}
		if p := b.get("/audit?team=growth"); p.code != http.StatusForbidden {
			t.Errorf("team member on another team's audit: %d", p.code)
		}
		if p := b.get("/audit?team=risk&loop=fraud-signals&verify=1"); p.code != 200 || !strings.Contains(p.body, "Chain verification: not allowed for your role") {
			t.Errorf("team member on its loop's audit: %d %s", p.code, p.body)
		}
	})

	t.Run("auditor sees all and changes nothing", func(t *testing.T) {
		b := e.browser(t).login("auditor")
		home := b.get("/")
		for _, k := range []string{"growth/checkout-nudge", "risk/fraud-signals"} {
			if !strings.Contains(home.body, `data-loop="`+k+`"`) {
				t.Errorf("auditor's overview lacks %s", k)
			}
		}
		p := b.get("/teams/risk/loops/fraud-signals")
		if p.code != 200 || h1(p.body) != "risk/fraud-signals" {
			t.Fatalf("auditor on the loop page: %d %s", p.code, h1(p.body))
		}
		for _, id := range []string{`id="approve-form"`, `id="reject-form"`, `id="waive-form"`} {
			if strings.Contains(p.body, id) {
				t.Errorf("auditor is shown %s", id)
			}
		}
		csrf := csrfRE.FindStringSubmatch(p.body)[1]
		etag := e.etag(t, "teams/risk/loops/fraud-signals")
		r := b.post("/teams/risk/loops/fraud-signals/approve", url.Values{"csrf": {csrf}, "etag": {etag}, "confirm": {"on"}, "comment": {"me too"}})
		if r.code != http.StatusSeeOther {
			t.Fatalf("auditor's POST: %d", r.code)
		}
		after := b.get("/teams/risk/loops/fraud-signals")
		if !strings.Contains(after.body, `<p id="flash-error" role="alert"`) || !strings.Contains(after.body, "Refused") {
			t.Errorf("the API's refusal is not shown")
		}
		if a := b.get("/audit"); a.code != 200 || strings.Contains(a.body, `id="chain"`) || !strings.Contains(a.body, `href="/audit?verify=1"`) {
			t.Errorf("auditor's audit page verifies on every view, or offers no verification: %d", a.code)
		}
		if a := b.get("/audit?verify=1"); a.code != 200 || !regexp.MustCompile(`<p id="chain"[^>]*>Chain verified: \d+ events`).MatchString(a.body) {
			t.Errorf("auditor's audit page: %d", a.code)
		}
		if a := b.get("/audit?actor=auditor@loopgate.local&action=loop.approve"); !strings.Contains(a.body, "DENIED") && !strings.Contains(a.body, "FORBIDDEN") {
			t.Errorf("the auditor's refused approval is not in the trail")
		}
	})

	t.Run("overview filters", func(t *testing.T) {
		b := e.browser(t).login("admin")
		has := func(q string, want ...string) {
			t.Helper()
			body := b.get("/?" + q).body
			n := strings.Count(body, "<tr data-loop=")
			if n != len(want) {
				t.Errorf("/?%s: %d rows, want %v", q, n, want)
			}
			for _, k := range want {
				if !strings.Contains(body, `data-loop="`+k+`"`) {
					t.Errorf("/?%s lacks %s", q, k)
				}
			}
		}
		has("", "growth/checkout-nudge", "risk/fraud-signals")
		has("q=fraud", "risk/fraud-signals")
		has("q=ana%40example", "growth/checkout-nudge", "risk/fraud-signals")
		has("team=growth", "growth/checkout-nudge")
		has("state=PENDING_APPROVAL", "risk/fraud-signals")
		has("region=us")
		has("compliance=compliant", "growth/checkout-nudge", "risk/fraud-signals")
		has("compliance=noncompliant")
		home := b.get("/")
		for _, want := range []string{`<section id="counts"`, `<form id="filters" role="search" method="get" action="/"`, `name="q"`, `name="team"`, `name="state"`,
			`name="compliance"`, `name="region"`, `name="slo"`, `<button type="submit">Filter</button>`, `<table id="loops">`, `<caption>`} {
			if !strings.Contains(home.body, want) {
				t.Errorf("overview lacks %s", want)
			}
		}
	})

	t.Run("approval from the form", func(t *testing.T) {
		b := e.browser(t).login("admin")
		p := b.get("/teams/risk/loops/fraud-signals")
		for _, want := range []string{`<form id="approve-form" method="post" action="/teams/risk/loops/fraud-signals/approve"`, `<label for="comment">Comment</label><textarea id="comment" name="comment"`,
			`<input type="checkbox" id="confirm" name="confirm" required>`, `<button type="submit">Approve</button>`, `id="reject-form"`, `id="reject-comment"`, `id="waive-form"`, `<p id="compliance"`} {
			if !strings.Contains(p.body, want) {
				t.Errorf("admin's loop page lacks %s", want)
			}
		}
		csrf := csrfRE.FindStringSubmatch(p.body)[1]
		etag := regexp.MustCompile(`name="etag" value="([^"]+)"`).FindStringSubmatch(p.body)[1]
		// Without the confirmation nothing is sent to the API.
		b.post("/teams/risk/loops/fraud-signals/approve", url.Values{"csrf": {csrf}, "etag": {etag}, "comment": {"capacity reserved"}})
		if got := b.get("/teams/risk/loops/fraud-signals"); !strings.Contains(got.body, `id="flash-error"`) {
			t.Error("an unconfirmed approval is not refused")
		}
		r := b.post("/teams/risk/loops/fraud-signals/approve", url.Values{"csrf": {csrf}, "etag": {etag}, "comment": {"capacity reserved"}, "confirm": {"on"}})
		if r.code != http.StatusSeeOther || r.loc != "/teams/risk/loops/fraud-signals" {
			t.Fatalf("approve: %d %q", r.code, r.loc)
		}
		after := b.get("/teams/risk/loops/fraud-signals")
		if !strings.Contains(after.body, `<p id="flash" role="status"`) {
			t.Errorf("no confirmation shown: %s", regexp.MustCompile(`id="flash-error"[^<]*`).FindString(after.body))
		}
		tl := after.body[strings.Index(after.body, `id="timeline"`):]
		if !strings.Contains(tl, "loop.approve") || !strings.Contains(tl, "dev-admin@loopgate.local") {
			t.Errorf("the approval is not in the timeline")
		}
		if !strings.Contains(after.body, "capacity reserved") {
			t.Errorf("the review comment is not shown")
		}
		if strings.Contains(after.body, `id="approve-form"`) {
			t.Errorf("the approve form is still shown after approval")
		}
	})

	t.Run("waiver from the form", func(t *testing.T) {
		until := time.Now().UTC().AddDate(0, 0, 30).Format("2006-01-02")
		form := func(csrf string) url.Values {
			return url.Values{"csrf": {csrf}, "rule": {"FRESHNESS_LOOSER_THAN_LATENCY"}, "until": {until}, "reason": {"lag alert tuned separately"}, "confirm": {"on"}}
		}
		aud := e.browser(t).login("auditor")
		aud.post("/teams/growth/loops/checkout-nudge/waive", form(aud.csrf("/teams/growth/loops/checkout-nudge")))
		if p := aud.get("/teams/growth/loops/checkout-nudge"); !strings.Contains(p.body, `id="flash-error"`) {
			t.Error("the auditor's waiver is not refused")
		}
		b := e.browser(t).login("reviewer")
		r := b.post("/teams/growth/loops/checkout-nudge/waive", form(b.csrf("/teams/growth/loops/checkout-nudge")))
		if r.code != http.StatusSeeOther {
			t.Fatalf("waive: %d", r.code)
		}
		p := b.get("/teams/growth/loops/checkout-nudge")
		if !strings.Contains(p.body, `<p id="flash" role="status"`) {
			t.Fatalf("waiver refused: %s", regexp.MustCompile(`id="flash-error"[^<]*<`).FindString(p.body))
		}
		w := p.body[strings.Index(p.body, `<section id="waivers"`):]
		if !strings.Contains(w, "FRESHNESS_LOOSER_THAN_LATENCY") || !strings.Contains(w, "security-reviewer@loopgate.local") {
			t.Errorf("the waiver is not listed")
		}
	})

	t.Run("every page has its landmarks and one h1", func(t *testing.T) {
		b := e.browser(t).login("admin")
		for path, title := range map[string]string{
			"/": "Loops", "/teams/growth": "Team growth", "/teams/growth/loops/checkout-nudge": "growth/checkout-nudge",
			"/teams/growth/principals/checkout-nudge-api": "Principal checkout-nudge-api", "/policy": "Policy", "/audit": "Audit",
			"/nowhere": "Not found",
		} {
			p := b.get(path)
			if h1(p.body) != title {
				t.Errorf("%s: h1 %q, want %q (status %d)", path, h1(p.body), title, p.code)
			}
			for _, want := range []string{"<header>", `<nav aria-label="Main">`, `<main id="main"`, "<footer>", `href="/policy"`, `href="/audit"`, `<form id="logout-form" method="post" action="/logout">`} {
				if !strings.Contains(p.body, want) {
					t.Errorf("%s lacks %s", path, want)
				}
			}
		}
		team := b.get("/teams/growth").body
		for _, id := range []string{"owners", "team-loops", "principals", "groups", "usage", "team-cost"} {
			if !strings.Contains(team, `<section id="`+id+`"`) {
				t.Errorf("team page lacks section %s", id)
			}
		}
		// Usage against the catalog's limits (the embedded growth team:
		// 64 partitions per loop, 256 in all, 50 MiB/s per loop).
		if !regexp.MustCompile(`<th scope="row">Partitions, all loops</th><td class="num">\d+</td><td class="num">256</td>\s*<td><meter min="0" max="256"`).MatchString(team) ||
			!strings.Contains(team, `<td class="num">50MiB/s</td>`) || !strings.Contains(team, `>checkout-nudge</a>`) {
			t.Errorf("team page shows no usage against its limits:\n%s", team)
		}
		loop := b.get("/teams/growth/loops/checkout-nudge").body
		if !regexp.MustCompile(`<table id="quotas">[\s\S]*<th scope="row">User:[^<]+</th><td class="num">\d+MiB/s</td>`).MatchString(loop) {
			t.Errorf("loop page shows no quota rows")
		}
		for _, id := range []string{"summary", "owners", "slo", "lag", "cost", "resources", "conditions", "policy", "waivers", "approvals", "timeline"} {
			if !strings.Contains(loop, `<section id="`+id+`"`) {
				t.Errorf("loop page lacks section %s", id)
			}
		}
		if !regexp.MustCompile(`<p id="compliance"[^>]*><span[^>]*>Compliant`).MatchString(loop) {
			t.Errorf("compliance text")
		}
		if !strings.Contains(loop, `<svg class="chart" role="img"`) {
			t.Errorf("no cost picture")
		}
		pr := b.get("/teams/growth/principals/checkout-nudge-api").body
		for _, id := range []string{"owner", "principal-loops", "credentials"} {
			if !strings.Contains(pr, `<section id="`+id+`"`) {
				t.Errorf("principal page lacks section %s", id)
			}
		}
		pol := b.get("/policy").body
		for _, id := range []string{"active", "history", "candidates", "decisions"} {
			if !strings.Contains(pol, `<section id="`+id+`"`) {
				t.Errorf("policy page lacks section %s", id)
			}
		}
	})
}

func (e *env) etag(t testing.TB, name string) string {
	l, err := lgv1.NewLoopServiceClient(e.conn).GetLoop(e.as("admin"), &lgv1.GetLoopRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return l.GetEtag()
}

// A loop that a newly activated bundle no longer allows is shown as not
// compliant, with the new decision's rule id and message; the policy page
// names the new active revision and its activation.
func TestPortalNonCompliantLoop(t *testing.T) {
	e := start(t, nil)
	e.create(t, "growth", checkoutLoop("growth", "checkout-nudge"))
	week := checkoutLoop("growth", "pii-week")
	week.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	e.create(t, "growth", week)
	policies := lgv1.NewPolicyServiceClient(e.conn)
	const rev = "pii-3d-2026.12.1"
	pushed, err := policies.PushPolicyBundle(e.as("reviewer"), &lgv1.PushPolicyBundleRequest{Archive: policytest.PIIRetention(t, rev, policytest.PIIRetentionTest)})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser(t).login("reviewer")
	if p := b.get("/policy"); !strings.Contains(p.body, `href="/policy/bundles/`+pushed.GetRevision()+`"`) {
		t.Errorf("the candidate is not linked from /policy")
	}
	if p := b.get("/policy/bundles/" + pushed.GetRevision()); p.code != 200 || !strings.Contains(p.body, "growth/pii-week") {
		t.Errorf("impact page: %d, pii-week not named\n%s", p.code, p.body[strings.Index(p.body, "<main"):])
	}
	if _, err := policies.ApprovePolicyBundle(e.as("reviewer2"), &lgv1.ApprovePolicyBundleRequest{Name: pushed.GetName(), Digest: pushed.GetDigest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.ActivatePolicyBundle(e.as("reviewer"), &lgv1.ActivatePolicyBundleRequest{Name: pushed.GetName(), Comment: "data review"}); err != nil {
		t.Fatal(err)
	}
	g := e.browser(t).login("growth")
	deadline := time.Now().Add(30 * time.Second)
	var p page
	for {
		p = g.get("/teams/growth/loops/pii-week")
		if regexp.MustCompile(`<p id="compliance"[^>]*><span[^>]*>Not compliant`).MatchString(p.body) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !regexp.MustCompile(`<p id="compliance"[^>]*><span[^>]*>Not compliant`).MatchString(p.body) {
		t.Fatalf("pii-week is not shown as not compliant")
	}
	pol := p.body[strings.Index(p.body, `<section id="policy"`):strings.Index(p.body, `<section id="waivers"`)]
	if !strings.Contains(pol, "<code>PII_RETENTION_OVER_3D</code>") || !strings.Contains(pol, "at most 3 days") {
		t.Errorf("the policy section lacks the rule and its message: %s", pol)
	}
	if c := g.get("/teams/growth/loops/checkout-nudge"); !regexp.MustCompile(`<p id="compliance"[^>]*><span[^>]*>Compliant`).MatchString(c.body) {
		t.Errorf("checkout-nudge is not compliant")
	}
	home := g.get("/?fresh=1&compliance=noncompliant")
	if !strings.Contains(home.body, `data-loop="growth/pii-week"`) || strings.Count(home.body, "<tr data-loop=") != 1 {
		t.Errorf("compliance=noncompliant does not list exactly pii-week")
	}
	pp := b.get("/policy")
	act := pp.body[strings.Index(pp.body, `<section id="active"`):strings.Index(pp.body, `<section id="history"`)]
	if !strings.Contains(act, rev) {
		t.Errorf("#active does not name %s: %s", rev, act)
	}
	if !strings.Contains(pp.body, "data review") {
		t.Errorf("the activation is not in the history")
	}
}
