package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/loopgate/loopgate/internal/oidctest"
	"github.com/loopgate/loopgate/internal/policytest"
)

// The demo identities' subjects (app/devcreds.go).
const (
	subjectAdmin    = "dev-admin@loopgate.local"
	subjectReviewer = "security-reviewer@loopgate.local"
	subjectAuditor  = "auditor@loopgate.local"
	subjectGrowth   = "growth-dev@example.com"
	subjectRisk     = "risk-dev@example.com"
)

// portalFixture is the estate the browser tests look at.
type portalFixture struct {
	srv       *server
	home      string
	base      string
	bootstrap string // the eu cluster's first bootstrap address
	password  string // checkout-api's SCRAM password, issued once: never on a page
	revision  string // the stricter bundle, active
}

// TestPortal drives the portal (web/, served by `loopgate serve` under "/")
// in Debian's headless Chromium: loops are created through loopctl — a
// compliant one (examples/checkout-nudge.yaml), one that a stricter policy
// bundle, pushed, approved and activated, flags NoLongerCompliant, and one
// held for an admin's approval (examples/fraud-signals-needs-approval.yaml)
// — then people with different roles sign in through the login form and
// read the overview, a compliant and a non-compliant loop page, a principal
// page, the policy and audit pages; another team's loop is refused; a team
// member's refused audit verification shows in the auditor's audit page; an
// admin approves a loop from the browser; axe-core finds no serious or
// critical accessibility violation on the main pages. Every step saves a
// full-page screenshot (scripts/browser/README.md says where).
//
// It runs with LOOPGATE_TEST_BROWSER=1 or CI=true (then a missing Chromium
// is a failure), or when a chromium binary is found; scripts/browser/install.sh
// installs Chromium and axe-core.
func TestPortal(t *testing.T) {
	bin := requireChromium(t)
	f := newPortalFixture(t)
	b := newBrowser(t, bin, f.base)
	t.Logf("portal %s, Chromium %s, screenshots in %s", f.base, bin, b.artifacts)

	tokens := map[string]string{}
	for _, name := range []string{"admin", "reviewer", "auditor", "growth", "risk"} {
		tokens[name] = devToken(t, f.home, name)
	}
	b.tokens = tokens

	t.Run("login", func(t *testing.T) {
		p := b.newTab(t, "anonymous")
		// Signed out, a page leads to the login form.
		p.open("/")
		if !p.exists("form#login-form") {
			t.Errorf("signed out, / does not lead to the login form (at %s)\n%s", p.path(), p.describe())
		}
		p.open("/login")
		if n := p.count("h1"); n != 1 {
			t.Errorf("/login: %d h1 elements, want 1", n)
		}
		if !p.exists("main#main") {
			t.Errorf("/login: no main#main")
		}
		if lbl := p.eval(`(() => { const i = document.querySelector('input#token'); if (!i) return '';
			return (i.labels && i.labels.length ? i.labels[0].innerText : (i.getAttribute('aria-label') || '')).trim(); })()`); lbl == "" {
			t.Errorf("/login: input#token has no label")
		}
		p.shot("login")
		// A bad token is refused with #login-error.
		p.typeInto("input#token", "lg_not_a_token")
		p.submit("form#login-form")
		if e, ok := p.text("#login-error"); !ok || e == "" {
			t.Errorf("a bad token: no #login-error\n%s", p.describe())
		}
		if p.exists("span#whoami") {
			t.Errorf("a bad token signed in")
		}
		p.shot("login-error")
		// Each role signs in and sees who it is.
		for _, who := range []struct{ name, subject string }{
			{"admin", subjectAdmin}, {"auditor", subjectAuditor}, {"growth", subjectGrowth}, {"risk", subjectRisk},
		} {
			q := b.as(t, who.name)
			q.checkChrome(who.subject)
			q.shot("signed-in-" + who.name)
		}
		// Signing out ends the session.
		q := b.as(t, "growth")
		q.submit("form#logout-form")
		q.open("/")
		if q.exists("span#whoami") || !q.exists("form#login-form") {
			t.Errorf("after Sign out, / still shows a signed-in page\n%s", q.describe())
		}
	})

	t.Run("oidc", func(t *testing.T) {
		// A second loopgate whose portal signs in through an OpenID
		// Connect provider (mockoidc on 127.0.0.2): the person clicks
		// "Sign in with …", the provider answers at once for a queued
		// user, and the browser lands on the overview signed in as that
		// user, with the team of the ID token's groups claim.
		// Like a real provider, it first shows a page where the person
		// signs in (here: one button); its form, sent from the provider's
		// site, starts the redirect back. On 127.0.0.2: another site than
		// the portal's 127.0.0.1, so the redirect back is cross-site, as
		// in production.
		idp := oidctest.Start(t, oidctest.Options{Addr: "127.0.0.2:0", Consent: true})
		httpAddr := oidctest.FreeAddr(t)
		dir := t.TempDir()
		secret := filepath.Join(dir, "portal-client-secret")
		if err := os.WriteFile(secret, []byte(idp.ClientSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`dataDir: %s
devCredentials: true
clusters:
  - {name: eu-embedded, region: eu, embedded: true}
teams:
  - {name: growth, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 256, maxBytesPerSecond: 52428800}
auth:
  jwt: {issuer: %q, audience: %q, jwksURL: %q, teamsClaim: groups}
portal:
  oidc:
    clientID: %q
    clientSecretFile: %s
    redirectURL: http://%s/login/oidc/callback
    scopes: [openid, groups]
    bearer: id_token
`, filepath.Join(dir, "data"), idp.Issuer(), idp.ClientID, idp.JWKSEndpoint(), idp.ClientID, secret, httpAddr)
		cfgPath := filepath.Join(dir, "loopgate.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		startServer(t, t.TempDir(), filepath.Join(dir, "unused"), "--config", cfgPath, "--http-addr", httpAddr)
		base := "http://" + httpAddr
		idp.QueueUser(&mockoidc.MockUser{Subject: "ada@example.com", Groups: []string{"growth"}})

		// A browser of its own, allowed to reach the provider on
		// 127.0.0.2 too (and nothing else).
		ob := newBrowser(t, findChromium(), base, "127.0.0.2")
		p := ob.newTab(t, "oidc")
		p.open("/login")
		if !p.exists("a#oidc-login") || !p.exists("form#login-form") {
			t.Fatalf("/login offers no OIDC button (or lost the token form)\n%s", p.describe())
		}
		host := strings.TrimPrefix(idp.Addr(), "http://")
		if txt, _ := p.text("a#oidc-login"); txt != "Sign in with "+host {
			t.Errorf("button %q, want \"Sign in with %s\"", txt, host)
		}
		p.shot("login-oidc")
		if _, err := os.Stat(axePath()); err == nil || browserRequired() {
			p.axe("login-oidc", loadAxe(t))
		}
		p.do("click Sign in with the IdP", clickCSS("a#oidc-login"), chromedp.WaitVisible(chromedp.CSS("button#idp-continue")))
		p.shot("oidc-provider")
		p.do("sign in at the IdP", clickCSS("button#idp-continue"))
		// The callback's page moves on to the overview by itself; the
		// session cookie (SameSite=Strict) must come with that request,
		// though the sign-in was a cross-site navigation from the
		// provider's page (a redirect from the callback would not carry
		// it).
		deadline := time.Now().Add(20 * time.Second)
		for p.eval(`location.href`) != base+"/" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if where := p.eval(`location.href`); where != base+"/" {
			t.Fatalf("after the OIDC sign-in the browser is at %s, want /\n%s", where, p.describe())
		}
		p.checkChrome("ada@example.com")
		p.shot("signed-in-oidc")
		// Her team (from the groups claim) is hers to read.
		p.open("/teams/growth")
		if !p.exists("span#whoami") || p.exists("#login-form") {
			t.Errorf("/teams/growth after the OIDC sign-in\n%s", p.describe())
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		// Sign in with the keyboard alone: Tab to the token field, type,
		// Enter.
		p := b.newTab(t, "growth")
		p.open("/login")
		var path []string
		for i := 0; i < 12; i++ {
			p.do("press Tab", chromedp.KeyEvent(kb.Tab))
			id := p.eval(`(() => { const e = document.activeElement; return e ? (e.id || e.tagName.toLowerCase() + ":" + (e.innerText || "").trim()) : ""; })()`)
			path = append(path, id)
			if id == "token" {
				break
			}
		}
		if path[len(path)-1] != "token" {
			t.Fatalf("Tab never reached input#token; focus went %q", path)
		}
		t.Logf("Tab order to the token field: %q", path)
		p.do("type the token", chromedp.KeyEvent(tokens["growth"]))
		p.step("press Enter", func(ctx context.Context) error {
			resp, err := chromedp.RunResponse(ctx, chromedp.KeyEvent(kb.Enter))
			if err == nil {
				p.last = resp.Status
			}
			return err
		})
		p.checkChrome(subjectGrowth)
		p.shot("keyboard-signed-in-growth")
	})

	t.Run("overview", func(t *testing.T) {
		p := b.as(t, "admin")
		p.wantPage("/", subjectAdmin, "Loops")
		if c, ok := p.text("#counts"); !ok || c == "" {
			t.Errorf("no #counts")
		}
		heads := p.texts("table#loops thead th")
		for _, want := range []string{"Team", "Loop", "State", "Compliance", "Region", "SLO"} {
			if indexOf(heads, want) < 0 {
				t.Errorf("table#loops columns %q lack %s", heads, want)
			}
		}
		p.shot("overview-admin")
		for key, want := range map[string]string{
			"growth/checkout-nudge": "Compliant",
			"growth/pii-week":       "Not compliant",
			"risk/fraud-signals":    "",
		} {
			row := `table#loops tr[data-loop="` + key + `"]`
			if !p.exists(row) {
				t.Errorf("overview as admin: no row %s; rows %q", row, p.attrs("table#loops tr[data-loop]", "data-loop"))
				continue
			}
			cells := p.texts(row + ` > td, ` + row + ` > th`)
			if i := indexOf(heads, "Compliance"); want != "" && i >= 0 && i < len(cells) && cells[i] != want {
				t.Errorf("%s: Compliance %q, want %q (row %q)", key, cells[i], want, cells)
			}
			if i := indexOf(heads, "Region"); i >= 0 && i < len(cells) && !strings.Contains(cells[i], "eu") {
				t.Errorf("%s: Region %q, want eu", key, cells[i])
			}
		}
		if !p.exists(`table#loops a[href="/teams/growth/loops/checkout-nudge"]`) {
			t.Errorf("the overview does not link to /teams/growth/loops/checkout-nudge")
		}

		// Filters: team=growth shows growth's loops only.
		for _, name := range []string{"q", "team", "state", "compliance", "region", "slo"} {
			if !p.exists(`form#filters [name="` + name + `"]`) {
				t.Errorf("form#filters has no control named %s", name)
			}
		}
		if m := p.attrs("form#filters", "method"); len(m) == 1 && m[0] != "" && !strings.EqualFold(m[0], "get") {
			t.Errorf("form#filters method %q, want GET", m[0])
		}
		if bt := p.buttonText("form#filters"); bt != "Filter" {
			t.Errorf("filter button %q, want Filter", bt)
		}
		p.setValue(`form#filters [name="team"]`, "growth")
		if st := p.submit("form#filters"); st != 200 {
			t.Fatalf("filtering: HTTP %d\n%s", st, p.describe())
		}
		if q := p.path(); !strings.Contains(q, "team=growth") {
			t.Errorf("after filtering the URL is %s, want team=growth in it", q)
		}
		rows := p.attrs("table#loops tr[data-loop]", "data-loop")
		if len(rows) == 0 {
			t.Errorf("team=growth: no rows")
		}
		for _, r := range rows {
			if !strings.HasPrefix(r, "growth/") {
				t.Errorf("team=growth shows %s", r)
			}
		}
		p.shot("overview-admin-team-growth")

		// compliance filter: only the non-compliant loop.
		// The contract leaves the values open: the option labelled "Not
		// compliant", when the control is a select.
		if v := urlValue(p, `form#filters [name="compliance"]`, "Not compliant", ""); v == "" {
			t.Errorf("form#filters compliance has no option labelled \"Not compliant\"")
		} else {
			p.open("/?compliance=" + url.QueryEscape(v))
			rows = p.attrs("table#loops tr[data-loop]", "data-loop")
			if len(rows) != 1 || rows[0] != "growth/pii-week" {
				t.Errorf("compliance=%s: rows %q, want [growth/pii-week]", v, rows)
			}
			p.shot("overview-admin-noncompliant")
		}

		// An auditor sees every team's loops.
		a := b.as(t, "auditor")
		a.open("/")
		for _, key := range []string{"growth/checkout-nudge", "growth/pii-week", "risk/fraud-signals"} {
			if !a.exists(`table#loops tr[data-loop="` + key + `"]`) {
				t.Errorf("overview as auditor: no row for %s", key)
			}
		}
		a.shot("overview-auditor")
	})

	t.Run("team", func(t *testing.T) {
		p := b.as(t, "admin")
		p.wantPage("/teams/growth", subjectAdmin, "Team growth")
		for _, s := range []string{"#owners", "#team-loops", "#principals", "#groups", "#usage", "#team-cost"} {
			if !p.exists(s) {
				t.Errorf("/teams/growth has no %s", s)
			}
		}
		if s, _ := p.text("#team-loops"); !strings.Contains(s, "checkout-nudge") {
			t.Errorf("#team-loops %q does not name checkout-nudge", s)
		}
		if s, _ := p.text("#principals"); !strings.Contains(s, "checkout-api") {
			t.Errorf("#principals %q does not name checkout-api", s)
		}
		if s, _ := p.text("#team-cost"); !money.MatchString(s) {
			t.Errorf("#team-cost %q shows no amount ($N or N USD)", clip(s))
		}
		p.shot("team-growth-admin")
	})

	t.Run("compliant-loop", func(t *testing.T) {
		p := b.as(t, "growth")
		p.wantPage("/teams/growth/loops/checkout-nudge", subjectGrowth, "growth/checkout-nudge")
		for _, s := range []string{"#summary", "#owners", "#slo", "#lag", "#cost", "#resources", "#conditions", "#policy", "#policy p#compliance", "#waivers", "#approvals", "#timeline"} {
			if !p.exists(s) {
				t.Errorf("the loop page has no %s", s)
			}
		}
		if c, _ := p.text("p#compliance"); !strings.HasPrefix(c, "Compliant") {
			t.Errorf("#compliance %q, want it to start with Compliant", c)
		}
		res, _ := p.text("#resources")
		if !strings.Contains(res, "growth.checkout-nudge.events") {
			t.Errorf("#resources does not name the topic growth.checkout-nudge.events: %q", clip(res))
		}
		if !strings.Contains(res, f.bootstrap) {
			t.Errorf("#resources does not name the bootstrap server %s: %q", f.bootstrap, clip(res))
		}
		if o, _ := p.text("#owners"); !strings.Contains(o, "ana@example.com") {
			t.Errorf("#owners %q does not name ana@example.com", o)
		}
		if c, _ := p.text("#cost"); !money.MatchString(firstLineOf(p, "#cost")) {
			t.Errorf("#cost %q shows no amount ($N or N USD) at its start", clip(c))
		}
		if s, _ := p.text("#slo"); !regexp.MustCompile(`(^|[^0-9.])2(\.0+)? ?s\b|\b2000 ?ms\b`).MatchString(s) {
			t.Errorf("#slo %q does not show the 2s p99 target", clip(s))
		}
		if n := p.count("#timeline li, #timeline tbody tr"); n < 1 {
			t.Errorf("#timeline has no rows")
		}
		if s, _ := p.text("#summary"); !strings.Contains(strings.ToLower(s), "pii") {
			t.Errorf("#summary %q does not show the classification pii", clip(s))
		}
		if p.exists("form#approve-form") {
			t.Errorf("a READY loop's page offers form#approve-form to a team member")
		}
		p.shot("loop-compliant-growth")
	})

	t.Run("non-compliant-loop", func(t *testing.T) {
		p := b.as(t, "admin")
		p.mustOpen("/teams/growth/loops/pii-week")
		p.checkChrome(subjectAdmin)
		if c, _ := p.text("p#compliance"); !strings.HasPrefix(c, "Not compliant") {
			t.Errorf("#compliance %q, want it to start with \"Not compliant\"", c)
		}
		if s, _ := p.text("#policy"); !strings.Contains(s, "PII_RETENTION_OVER_3D") {
			t.Errorf("#policy does not name the rule PII_RETENTION_OVER_3D: %q", clip(s))
		} else if !strings.Contains(s, "at most 3 days") {
			t.Errorf("#policy names the rule but not its message: %q", clip(s))
		}
		p.shot("loop-noncompliant-admin")
	})

	t.Run("principal", func(t *testing.T) {
		p := b.as(t, "growth")
		p.wantPage("/teams/growth/principals/checkout-api", subjectGrowth, "Principal checkout-api")
		if s, _ := p.text("#owner"); !strings.Contains(s, "growth") {
			t.Errorf("#owner %q does not name growth", s)
		}
		if s, _ := p.text("#principal-loops"); !strings.Contains(s, "checkout-nudge") {
			t.Errorf("#principal-loops %q does not name checkout-nudge", s)
		}
		if s, ok := p.text("#credentials"); !ok {
			t.Errorf("no #credentials")
		} else if !strings.Contains(s, subjectGrowth) {
			t.Errorf("#credentials %q does not say who issued them (%s)", clip(s), subjectGrowth)
		}
		if strings.Contains(p.html(), f.password) || strings.Contains(p.bodyText(), f.password) {
			t.Errorf("the principal page contains checkout-api's password")
		}
		p.shot("principal-growth")
	})

	t.Run("team-scoping", func(t *testing.T) {
		p := b.as(t, "risk")
		st := p.open("/teams/growth/loops/checkout-nudge")
		if st != http.StatusForbidden {
			t.Errorf("risk opening growth/checkout-nudge: HTTP %d, want 403", st)
		}
		if h := p.h1(); h != "Not allowed" {
			t.Errorf("risk opening growth/checkout-nudge: h1 %q, want \"Not allowed\"", h)
		}
		if r, ok := p.text("p#reason"); !ok || r == "" {
			t.Errorf("the denied page has no p#reason")
		}
		if body := p.bodyText(); strings.Contains(body, "ana@example.com") || strings.Contains(body, "growth.checkout-nudge.events") {
			t.Errorf("the denied page shows growth's loop details")
		}
		p.checkChrome(subjectRisk)
		p.shot("denied-risk-growth-loop")

		// And the other way round: growth may not read risk's confidential
		// loop.
		g := b.as(t, "growth")
		if st := g.open("/teams/risk/loops/fraud-signals"); st != http.StatusForbidden || g.h1() != "Not allowed" {
			t.Errorf("growth opening risk/fraud-signals: HTTP %d, h1 %q; want 403 \"Not allowed\"", st, g.h1())
		}
		if body := g.bodyText(); strings.Contains(body, "omar@example.com") || strings.Contains(body, "risk.fraud-signals.payments") {
			t.Errorf("the denied page shows risk's loop details")
		}
		g.shot("denied-growth-risk-loop")
	})

	t.Run("audit", func(t *testing.T) {
		// A team member may not read the whole trail (denied, and the
		// refusal is audited), reads its own team's, and may not verify
		// the chain: the page says so.
		g := b.as(t, "growth")
		if st := g.open("/audit"); st != http.StatusForbidden || g.h1() != "Not allowed" {
			t.Errorf("/audit as growth: HTTP %d, h1 %q; want 403 Not allowed", st, g.h1())
		}
		g.mustOpen("/audit?team=growth")
		if n := g.count("table#events tbody tr"); n == 0 {
			t.Errorf("/audit?team=growth: no events")
		}
		for _, res := range g.texts("table#events tbody tr td:nth-child(5)") {
			if res != "teams/growth" && !strings.HasPrefix(res, "teams/growth/") {
				t.Errorf("team growth's trail shows %q", res)
			}
		}
		if st := g.follow("#chain-verify a"); st != 200 {
			t.Fatalf("verify as growth: HTTP %d", st)
		}
		if chain, _ := g.text("p#chain"); !regexp.MustCompile(`(?i)not allowed`).MatchString(chain) {
			t.Errorf("/audit verify as growth: #chain %q, want the verification refused for the role", chain)
		}
		g.shot("audit-growth-denied")

		a := b.as(t, "auditor")
		a.wantPage("/audit", subjectAuditor, "Audit")
		if n := a.count("table#events tbody tr"); n == 0 {
			t.Errorf("/audit as auditor: table#events has no rows")
		}
		if a.exists("p#chain") {
			t.Errorf("/audit verifies the whole chain on every view")
		}
		if st := a.follow("#chain-verify a"); st != 200 {
			t.Fatalf("verify as auditor: HTTP %d", st)
		}
		if c, _ := a.text("p#chain"); !regexp.MustCompile(`^Chain verified: \d+ events`).MatchString(c) {
			t.Errorf("/audit as auditor: #chain %q does not say the chain verifies", c)
		}
		for _, name := range []string{"team", "loop", "actor", "action", "since", "until"} {
			if !a.exists(`form#audit-filters [name="` + name + `"]`) {
				t.Errorf("form#audit-filters has no control named %s", name)
			}
		}
		a.shot("audit-auditor")
		refusal := func() []string {
			var hits []string
			for _, r := range a.texts("table#events tbody tr") {
				if strings.Contains(r, subjectGrowth) && (strings.Contains(r, "audit.verify") || strings.Contains(r, "FORBIDDEN")) {
					hits = append(hits, r)
				}
			}
			return hits
		}
		if len(refusal()) == 0 {
			t.Logf("the unfiltered /audit page does not show growth's refused verification among its rows; filtering by actor")
		}
		a.setValue(`form#audit-filters [name="actor"]`, subjectGrowth)
		if st := a.submit("form#audit-filters"); st != 200 {
			t.Fatalf("filtering /audit: HTTP %d\n%s", st, a.describe())
		}
		if hits := refusal(); len(hits) == 0 {
			t.Errorf("/audit?actor=%s as auditor: no row with audit.verify or FORBIDDEN by %s; rows:\n  %s", subjectGrowth, subjectGrowth, strings.Join(a.texts("table#events tbody tr"), "\n  "))
		} else {
			t.Logf("the refusal as the auditor sees it: %s", hits[0])
		}
		for _, r := range a.texts("table#events tbody tr") {
			if !strings.Contains(r, subjectGrowth) {
				t.Errorf("actor filter %s shows a row by someone else: %s", subjectGrowth, r)
			}
		}
		a.shot("audit-auditor-actor-growth")
	})

	t.Run("policy", func(t *testing.T) {
		p := b.as(t, "reviewer")
		p.wantPage("/policy", subjectReviewer, "Policy")
		for _, s := range []string{"#active", "#history", "#candidates", "#decisions"} {
			if !p.exists(s) {
				t.Errorf("/policy has no %s", s)
			}
		}
		if s, _ := p.text("#active"); !strings.Contains(s, f.revision) {
			t.Errorf("#active %q does not name the active revision %s", clip(s), f.revision)
		}
		if s, _ := p.text("#decisions"); !strings.Contains(s, "PII_RETENTION_OVER_3D") {
			t.Errorf("#decisions does not name PII_RETENTION_OVER_3D: %q", clip(s))
		}
		p.shot("policy-reviewer")
	})

	t.Run("approval", func(t *testing.T) {
		const page, comment = "/teams/risk/loops/fraud-signals", "capacity reserved (portal e2e)"
		// An auditor can change nothing: no approval form.
		a := b.as(t, "auditor")
		if st := a.open(page); st != 200 || !a.exists("p#compliance") {
			t.Fatalf("%s as auditor: HTTP %d (or not the loop page)\n%s", page, st, a.describe())
		}
		for _, form := range []string{"form#approve-form", "form#reject-form", "form#waive-form"} {
			if a.exists(form) {
				t.Errorf("%s as auditor offers %s", page, form)
			}
		}
		a.shot("approval-auditor-no-form")
		// The requester (team risk) cannot approve its own loop either.
		r := b.as(t, "risk")
		if st := r.open(page); st != 200 || !r.exists("p#compliance") {
			t.Fatalf("%s as risk: HTTP %d (or not the loop page)\n%s", page, st, r.describe())
		}
		if r.exists("form#approve-form") {
			t.Errorf("%s as risk (the requester) offers form#approve-form", page)
		}

		p := b.as(t, "admin")
		p.mustOpen(page)
		p.checkChrome(subjectAdmin)
		for _, s := range []string{"form#approve-form", "form#approve-form textarea#comment", "form#approve-form input#confirm[type=checkbox]", "form#reject-form", "form#reject-form textarea#reject-comment"} {
			if !p.exists(s) {
				t.Fatalf("%s as admin has no %s\n%s", page, s, p.describe())
			}
		}
		for _, hidden := range []string{"csrf", "etag"} {
			if !p.exists(`form#approve-form input[type=hidden][name="` + hidden + `"]`) {
				t.Errorf("form#approve-form has no hidden %s field", hidden)
			}
		}
		if req := p.attrs("input#confirm", "required"); len(req) != 1 || p.eval(`String(document.querySelector('input#confirm').required)`) != "true" {
			t.Errorf("#confirm is not required")
		}
		if bt := p.buttonText("form#approve-form"); bt != "Approve" {
			t.Errorf("approve button %q, want Approve", bt)
		}
		if bt := p.buttonText("form#reject-form"); bt != "Reject" {
			t.Errorf("reject button %q, want Reject", bt)
		}
		p.shot("approval-admin-before")
		p.typeInto("textarea#comment", comment)
		p.do("tick #confirm", clickCSS("input#confirm"))
		if p.eval(`String(document.querySelector('input#confirm').checked)`) != "true" {
			t.Fatalf("#confirm is not ticked after a click")
		}
		if st := p.submit("form#approve-form"); st >= 400 {
			t.Errorf("approving: HTTP %d\n%s", st, p.describe())
		}
		if e, ok := p.text("p#flash-error"); ok {
			t.Fatalf("approving: #flash-error %q", e)
		}
		if fl, ok := p.text("p#flash"); !ok || fl == "" {
			t.Errorf("after approving: no p#flash\n%s", p.describe())
		} else if role := p.attrs("p#flash", "role"); len(role) != 1 || role[0] != "status" {
			t.Errorf("p#flash role %q, want status", role)
		}
		p.shot("approval-admin-after")
		var state any
		if !within(30*time.Second, func() bool {
			state = field(getLoop(t, f.home, "risk/fraud-signals"), "status", "state")
			return state != "PENDING_APPROVAL"
		}) {
			t.Errorf("risk/fraud-signals still %v 30s after the approval from the browser", state)
		}
		t.Logf("risk/fraud-signals after the approval: %v", state)
		p.open(page)
		seen := ""
		for _, s := range []string{"#approvals", "#timeline"} {
			if txt, _ := p.text(s); strings.Contains(txt, comment) || strings.Contains(txt, subjectAdmin) {
				seen = s
				break
			}
		}
		if seen == "" {
			a, _ := p.text("#approvals")
			tl, _ := p.text("#timeline")
			t.Errorf("the approval (by %s, %q) shows neither in #approvals %q nor in #timeline %q", subjectAdmin, comment, clip(a), clip(tl))
		}
		if p.exists("form#approve-form") {
			t.Errorf("after the approval the page still offers form#approve-form")
		}
		p.shot("approval-admin-reloaded")
	})

	t.Run("accessibility", func(t *testing.T) {
		script := loadAxe(t)
		anon := b.newTab(t, "anonymous")
		anon.open("/login")
		anon.axe("login", script)
		p := b.as(t, "admin")
		for _, pg := range []struct{ name, path string }{
			{"overview", "/"},
			{"team", "/teams/growth"},
			{"loop-compliant", "/teams/growth/loops/checkout-nudge"},
			{"loop-noncompliant", "/teams/growth/loops/pii-week"},
			{"principal", "/teams/growth/principals/checkout-api"},
			{"policy", "/policy"},
			{"audit", "/audit"},
		} {
			t.Run(pg.name, func(t *testing.T) {
				q := &tab{b: b, t: t, ctx: p.ctx, who: "admin"}
				q.mustOpen(pg.path)
				q.axe(pg.name, script)
				q.checkReflow(pg.name)
			})
		}
		d := b.as(t, "risk")
		d.open("/teams/growth/loops/checkout-nudge")
		d.axe("denied", script)
	})
}

// newPortalFixture starts loopgate on its embedded default and creates the
// loops the browser tests read, through loopctl.
func newPortalFixture(t *testing.T) *portalFixture {
	t.Helper()
	home := t.TempDir()
	srv := startServer(t, home, filepath.Join(t.TempDir(), "data"))
	base, err := portalBase(srv)
	if err != nil {
		t.Fatal(err)
	}
	f := &portalFixture{srv: srv, home: home, base: base, revision: "pii-3d-portal"}
	if eu, ok := srv.Clusters["eu"]; ok && len(eu.Bootstrap) > 0 {
		f.bootstrap = eu.Bootstrap[0]
	} else {
		t.Fatalf("no eu cluster in the banner:\n%s", srv.output())
	}

	// The portal must be served (web/ wired into `loopgate serve`).
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/login")
	if err != nil {
		t.Fatalf("GET %s/login: %v", base, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "login-form") {
		t.Fatalf("the portal is not served: GET /login is HTTP %d without form#login-form:\n%s", resp.StatusCode, clip(string(body)))
	}

	growth := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "growth")}
	risk := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "risk")}

	// 1. A compliant loop (growth).
	if r := loopctl(t, home, growth, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait"); r.Code != 0 || !strings.Contains(r.Stdout, "READY") {
		t.Fatalf("apply checkout-nudge as growth: %s", r)
	}
	// 2. A PII loop kept for a week: allowed by the default bundle, flagged
	// NoLongerCompliant once a bundle that allows PII for 3 days at most is
	// active.
	spec, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	week := strings.NewReplacer(
		"name: checkout-nudge", "name: pii-week",
		"retention: 72h", "retention: 168h",
		"checkout-api", "pii-week-api",
		"nudge-engine", "pii-week-engine",
	).Replace(string(spec))
	if r := loopctl(t, home, growth, "apply", "-f", writeSpec(t, t.TempDir(), "pii-week.yaml", week), "--wait"); r.Code != 0 || !strings.Contains(r.Stdout, "READY") {
		t.Fatalf("apply pii-week as growth: %s", r)
	}
	// 3. A loop held for an admin's approval (risk).
	if r := loopctl(t, home, risk, "apply", "-f", examplePath(t, "fraud-signals-needs-approval.yaml"), "--wait"); r.Code != 0 || !strings.Contains(r.Stdout, "PENDING_APPROVAL") {
		t.Fatalf("apply fraud-signals as risk: %s", r)
	}
	// 4. Credentials for checkout-api: the password is shown once, here, and
	// must never appear on a page.
	f.password = issueCredentials(t, home, growth, "growth/checkout-api", false).Password

	// 5. The stricter bundle: pushed by a reviewer, approved by a second,
	// activated; pii-week no longer complies, checkout-nudge (72h) does.
	tarball := writeSpec(t, t.TempDir(), "bundle.tar.gz", string(policytest.PIIRetention(t, f.revision, policytest.PIIRetentionTest)))
	for _, step := range [][]string{
		{"--as", "reviewer", "policy", "push", tarball},
		{"--as", "reviewer2", "policy", "approve", f.revision, "--comment", "reviewed the diff"},
		{"--as", "reviewer", "policy", "activate", f.revision, "--comment", "2026 data review"},
	} {
		if r := loopctl(t, home, nil, step...); r.Code != 0 {
			t.Fatalf("loopctl %v: %s", step, r)
		}
	}
	if !within(30*time.Second, func() bool { return compliance(t, home, "growth/pii-week") == "NoLongerCompliant" }) {
		t.Fatalf("growth/pii-week is not flagged NoLongerCompliant under %s: %v", f.revision, field(getLoop(t, home, "growth/pii-week"), "status", "conditions"))
	}
	if c := compliance(t, home, "growth/checkout-nudge"); c != "Allowed" {
		t.Fatalf("growth/checkout-nudge: PolicyCompliant reason %q under %s, want Allowed", c, f.revision)
	}
	return f
}

// compliance is the reason of the loop's PolicyCompliant condition.
func compliance(t *testing.T, home, key string) string {
	t.Helper()
	conds, _ := field(getLoop(t, home, key), "status", "conditions").([]any)
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "PolicyCompliant" {
			s, _ := m["reason"].(string)
			return s
		}
	}
	return ""
}

// urlValue is the value of the option of the select sel whose text is
// label (the form's own encoding of a filter), else fallback.
func urlValue(p *tab, sel, label, fallback string) string {
	p.t.Helper()
	v := p.eval(`(() => { const s = document.querySelector(` + jsString(sel) + `); if (!s || !s.options) return "";
		for (const o of s.options) { if (o.text.trim() === ` + jsString(label) + `) return o.value; } return ""; })()`)
	if v == "" {
		return fallback
	}
	return v
}

// money is an amount of money as the portal may print it: $62.12 or
// 62.12 USD.
var money = regexp.MustCompile(`\$\s?[0-9][0-9,]*(\.[0-9]+)?|[0-9][0-9,]*(\.[0-9]+)?\s?USD`)

// firstLineOf is the text of sel up to its first table (the headline, not
// the price list a detail table may quote).
func firstLineOf(p *tab, sel string) string {
	p.t.Helper()
	return collapse(p.eval(`(() => { const e = document.querySelector(` + jsString(sel) + `); if (!e) return "";
		const c = e.cloneNode(true); c.querySelectorAll("table, details").forEach(x => x.remove()); return c.innerText || c.textContent || ""; })()`))
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}
