package e2e

// The portal's browser harness: Debian's Chromium driven headless through
// chromedp, one isolated browser context (own cookie jar) per signed-in
// person, every step bounded in time, full-page screenshots saved as test
// artefacts, and axe-core run inside the page. scripts/browser/install.sh
// installs Chromium and caches axe-core; scripts/browser/README.md says how
// to run the tests and where the screenshots go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	// stepTimeout bounds every browser step (a navigation, a form post, a
	// query, an axe run).
	stepTimeout = 60 * time.Second
	// axeVersion is the axe-core release scripts/browser/install.sh caches.
	axeVersion  = "4.14.1"
	installHint = "scripts/browser/install.sh"
)

// browserRequired reports whether the browser tests must run (and fail when
// Chromium is missing): LOOPGATE_TEST_BROWSER=1 or CI=true.
func browserRequired() bool {
	return os.Getenv("LOOPGATE_TEST_BROWSER") == "1" || os.Getenv("CI") == "true"
}

// findChromium is the Chromium binary: $LOOPGATE_CHROMIUM, else chromium or
// chromium-browser on PATH, else /usr/bin/chromium.
func findChromium() string {
	if p := os.Getenv("LOOPGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if st, err := os.Stat("/usr/bin/chromium"); err == nil && !st.IsDir() {
		return "/usr/bin/chromium"
	}
	return ""
}

// requireChromium gates a browser test: with LOOPGATE_TEST_BROWSER=1 or
// CI=true a missing Chromium fails the test; otherwise the test runs when a
// chromium binary is found and is skipped when not.
func requireChromium(t *testing.T) string {
	t.Helper()
	if !browserRequired() && (os.Getenv("LOOPGATE_TEST_POSTGRES") == "1" || os.Getenv("LOOPGATE_TEST_KAFKA") == "1") {
		// The portal runs on the embedded default whatever the leg: the
		// browser leg of scripts/test.sh runs these tests once.
		t.Skip("browser tests skipped in the PostgreSQL and Apache Kafka legs: the browser leg runs them")
	}
	bin := findChromium()
	if bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	if browserRequired() {
		t.Fatalf("browser tests required (LOOPGATE_TEST_BROWSER=1 or CI=true) but no Chromium binary was found (LOOPGATE_CHROMIUM, chromium, chromium-browser, /usr/bin/chromium): run %s as root", installHint)
	}
	t.Skipf("browser tests skipped: no Chromium binary found; run %s (as root) to install Debian's Chromium and axe-core, or set LOOPGATE_TEST_BROWSER=1 to make this a failure", installHint)
	return ""
}

// axePath is the cached axe.min.js: $LOOPGATE_AXE_JS, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/loopgate/axe-core-VERSION/axe.min.js.
func axePath() string {
	if p := os.Getenv("LOOPGATE_AXE_JS"); p != "" {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "loopgate", "axe-core-"+axeVersion, "axe.min.js")
}

// loadAxe reads axe.min.js. Missing: a failure when the browser tests are
// required, else a skip of the calling (sub)test, naming the script.
func loadAxe(t *testing.T) string {
	t.Helper()
	p := axePath()
	b, err := os.ReadFile(p)
	if err == nil && len(b) > 0 {
		return string(b)
	}
	if browserRequired() {
		t.Fatalf("axe-core not found at %s (%v): run %s", p, err, installHint)
	}
	t.Skipf("accessibility check skipped: axe-core not found at %s; run %s", p, installHint)
	return ""
}

// artifactsDir is where the screenshots go: $LOOPGATE_ARTIFACTS/portal, or
// os.TempDir()/loopgate-artifacts/portal (never inside the repository).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "loopgate-artifacts", "portal")
	if a := os.Getenv("LOOPGATE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "portal")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artefacts directory: %v", err)
	}
	return dir
}

// browser is one headless Chromium process.
type browser struct {
	t         *testing.T
	ctx       context.Context   // the browser's (first tab's) context
	base      string            // http://127.0.0.1:PORT
	tokens    map[string]string // API tokens by demo identity, for as
	artifacts string
	shots     []string
}

// newBrowser starts Chromium (headless, no sandbox, no GPU, a temporary
// profile, 1280×900) for the portal at base, able to reach 127.0.0.1 and
// the loopback addresses in also, nothing else. It is stopped at cleanup.
func newBrowser(t *testing.T, bin, base string, also ...string) *browser {
	t.Helper()
	hosts := "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
	for _, h := range also {
		hosts += " , EXCLUDE " + h
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), // headless, no first run, ...
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// Talk to nothing but the servers under test on loopback.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", hosts),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	// The first run starts the browser, which lives as long as the context
	// of that run: run it on ctx itself, bounded by a watchdog.
	if err := first(ctx, cancel); err != nil {
		cancelAlloc()
		t.Fatalf("starting Chromium (%s): %v", bin, err)
	}
	b := &browser{t: t, ctx: ctx, base: base, artifacts: artifactsDir(t)}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if len(b.shots) > 0 {
			t.Logf("screenshots (%d) in %s", len(b.shots), b.artifacts)
		}
	})
	return b
}

// as opens a tab signed in as the demo identity who (b.tokens).
func (b *browser) as(t *testing.T, who string) *tab {
	t.Helper()
	p := b.newTab(t, who)
	p.signIn(b.tokens[who])
	return p
}

// tab is one page in its own browser context: its own cookies, so one
// person's session never leaks into another's.
type tab struct {
	b    *browser
	t    *testing.T
	ctx  context.Context
	who  string // for messages and screenshot names
	last int64  // HTTP status of the last document loaded
}

// newTab opens a fresh, signed-out tab in a new browser context.
func (b *browser) newTab(t *testing.T, who string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := first(ctx, cancel); err != nil {
		t.Fatalf("[%s] opening a tab: %v", who, err)
	}
	return &tab{b: b, t: t, ctx: ctx, who: who}
}

// first runs the first action on a new chromedp context — which creates its
// browser or tab, tied to the context of that run, so it must be ctx itself
// and not a shorter-lived one — bounded by stepTimeout: past that, cancel
// ends the browser or tab.
func first(ctx context.Context, cancel context.CancelFunc) error {
	timer := time.AfterFunc(stepTimeout, cancel)
	defer timer.Stop()
	err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("not within %v: %w", stepTimeout, err)
	}
	return err
}

// step runs f with a context bounded by stepTimeout.
func (p *tab) step(what string, f func(ctx context.Context) error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		p.t.Fatalf("[%s] %s: %v\n%s", p.who, what, err, p.describe())
	}
}

func (p *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	p.step(what, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// describe is where the tab is and the start of its text, for failures.
func (p *tab) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " (HTTP `+fmt.Sprint(p.last)+`)\n" + (document.body ? document.body.innerText : "").slice(0, 1500)`))
	if err != nil {
		return "(page not readable: " + err.Error() + ")"
	}
	return "--- page: " + s
}

// open loads path (relative to the portal) and returns the HTTP status.
func (p *tab) open(path string) int64 {
	p.t.Helper()
	p.step("open "+path, func(ctx context.Context) error {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(p.b.base+path))
		if err != nil {
			return err
		}
		p.last = resp.Status
		return nil
	})
	return p.last
}

// mustOpen opens path and stops the test unless the page loads (200).
func (p *tab) mustOpen(path string) {
	p.t.Helper()
	if st := p.open(path); st != 200 {
		p.t.Fatalf("[%s] GET %s: HTTP %d\n%s", p.who, path, st, p.describe())
	}
}

// wantPage opens path (it must load), checks the page's chrome names
// subject, and that its h1 is h1.
func (p *tab) wantPage(path, subject, h1 string) {
	p.t.Helper()
	p.mustOpen(path)
	p.checkChrome(subject)
	if got := p.h1(); got != h1 {
		p.t.Errorf("[%s] %s: h1 %q, want %q", p.who, path, got, h1)
	}
}

// submit clicks the submit button of form (a CSS selector) — as a person
// would, so the browser's own validation applies — and waits for the page
// the form leads to; it returns that page's HTTP status.
func (p *tab) submit(form string) int64 {
	p.t.Helper()
	button := form + ` button:not([type]), ` + form + ` button[type=submit], ` + form + ` input[type=submit]`
	if !p.exists(button) {
		p.t.Fatalf("[%s] %s has no submit button\n%s", p.who, form, p.describe())
	}
	p.step("submit "+form, func(ctx context.Context) error {
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button), chromedp.NodeVisible))
		if err != nil {
			return err
		}
		p.last = resp.Status
		return nil
	})
	return p.last
}

// follow clicks the link sel as a person would and waits for the page it
// leads to; it returns that page's HTTP status.
func (p *tab) follow(sel string) int64 {
	p.t.Helper()
	if !p.exists(sel) {
		p.t.Fatalf("[%s] no link %s\n%s", p.who, sel, p.describe())
	}
	p.step("follow "+sel, func(ctx context.Context) error {
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		if err != nil {
			return err
		}
		p.last = resp.Status
		return nil
	})
	return p.last
}

// buttonText is the text of form's submit button.
func (p *tab) buttonText(form string) string {
	p.t.Helper()
	return p.eval(`(() => { const b = document.querySelector(` + jsString(form) + `)?.querySelector('button:not([type]), button[type=submit], input[type=submit]');
		return b ? (b.innerText || b.value || "").trim() : ""; })()`)
}

// clickCSS clicks the first visible element matching sel, as a mouse would.
func clickCSS(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}

// typeInto types s into the input matching sel (clearing it first).
func (p *tab) typeInto(sel, s string) {
	p.t.Helper()
	p.do("type into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		// Clear: chromedp's own Clear refuses an empty textarea.
		_, err := chromedp.Evaluate[bool](`(() => { const e = document.querySelector(`+jsString(sel)+`); e.value = ""; return true; })()`)(ctx, t)
		return err
	}), chromedp.SendKeys(chromedp.CSS(sel), s))
}

// setValue sets a form control's value directly (for selects and long text).
func (p *tab) setValue(sel, s string) {
	p.t.Helper()
	p.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), s))
}

// eval evaluates a JS expression that yields a string.
func (p *tab) eval(expr string) string {
	p.t.Helper()
	var out string
	p.step("evaluate", func(ctx context.Context) error {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		out = s
		return err
	})
	return out
}

// exists reports whether sel matches an element.
func (p *tab) exists(sel string) bool {
	p.t.Helper()
	return p.count(sel) > 0
}

// count is how many elements match sel.
func (p *tab) count(sel string) int {
	p.t.Helper()
	var n int
	p.step("count "+sel, func(ctx context.Context) error {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
		n = v
		return err
	})
	return n
}

// text is the rendered text of the first element matching sel, with
// whitespace collapsed; ok is false when nothing matches.
func (p *tab) text(sel string) (s string, ok bool) {
	p.t.Helper()
	var r struct {
		Found bool   `json:"found"`
		Text  string `json:"text"`
	}
	p.step("text of "+sel, func(ctx context.Context) error {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector(`+jsString(sel)+`);
			return JSON.stringify(e ? {found: true, text: (e.innerText || e.textContent || "")} : {found: false, text: ""}); })()`))
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &r)
	})
	return collapse(r.Text), r.Found
}

// texts is the rendered text of every element matching sel.
func (p *tab) texts(sel string) []string {
	p.t.Helper()
	var out []string
	p.step("texts of "+sel, func(ctx context.Context) error {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(`+jsString(sel)+`), e => e.innerText || e.textContent || "")`))
		out = v
		return err
	})
	for i := range out {
		out[i] = collapse(out[i])
	}
	return out
}

// attrs is attribute name of every element matching sel.
func (p *tab) attrs(sel, name string) []string {
	p.t.Helper()
	var out []string
	p.step("attributes of "+sel, func(ctx context.Context) error {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(`+jsString(sel)+`), e => e.getAttribute(`+jsString(name)+`) || "")`))
		out = v
		return err
	})
	return out
}

// bodyText is the whole page's rendered text; html its markup.
func (p *tab) bodyText() string {
	p.t.Helper()
	return p.eval(`document.body ? document.body.innerText : ""`)
}
func (p *tab) html() string { p.t.Helper(); return p.eval(`document.documentElement.outerHTML`) }

// path is the current location's path and query.
func (p *tab) path() string { p.t.Helper(); return p.eval(`location.pathname + location.search`) }

// shot saves a full-page PNG screenshot named NAME.png in the artefacts
// directory and logs its path.
func (p *tab) shot(name string) string {
	p.t.Helper()
	file := filepath.Join(p.b.artifacts, safeName(name)+".png")
	p.step("screenshot "+name, func(ctx context.Context) error {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			return err
		}
		return os.WriteFile(file, png, 0o644)
	})
	p.b.shots = append(p.b.shots, file)
	p.t.Logf("screenshot: %s", file)
	return file
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return strings.Trim(unsafeName.ReplaceAllString(s, "-"), "-") }

// collapse trims s and turns every run of white space into one space.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// signIn signs in through the login form with token and returns the tab
// on the page the form led to (the overview).
func (p *tab) signIn(token string) {
	p.t.Helper()
	if st := p.open("/login"); st != 200 {
		p.t.Fatalf("[%s] GET /login: HTTP %d, want 200\n%s", p.who, st, p.describe())
	}
	for _, sel := range []string{"form#login-form", "input#token"} {
		if !p.exists(sel) {
			p.t.Fatalf("[%s] /login has no %s\n%s", p.who, sel, p.describe())
		}
	}
	if got := p.attrs("input#token", "name"); len(got) != 1 || got[0] != "token" {
		p.t.Errorf("[%s] input#token name %q, want token", p.who, got)
	}
	if m := p.attrs("form#login-form", "method"); len(m) != 1 || !strings.EqualFold(m[0], "post") {
		p.t.Errorf("[%s] form#login-form method %q, want POST", p.who, m)
	}
	if b := p.buttonText("form#login-form"); b != "Sign in" {
		p.t.Errorf("[%s] login button %q, want \"Sign in\"", p.who, b)
	}
	p.typeInto("input#token", token)
	if st := p.submit("form#login-form"); st >= 400 {
		p.t.Fatalf("[%s] signing in: HTTP %d\n%s", p.who, st, p.describe())
	}
	if p.exists("#login-error") {
		e, _ := p.text("#login-error")
		p.t.Fatalf("[%s] signing in refused: %s", p.who, e)
	}
}

// checkChrome checks the page contract every signed-in page keeps: whoami,
// the sign-out form, the main navigation with /, /policy and /audit, the
// main landmark and exactly one h1.
func (p *tab) checkChrome(subject string) {
	p.t.Helper()
	where := p.path()
	if who, ok := p.text("span#whoami"); !ok || !strings.Contains(who, subject) {
		p.t.Errorf("[%s] %s: span#whoami %q (found %v), want %s", p.who, where, who, ok, subject)
	}
	if !p.exists("form#logout-form") {
		p.t.Errorf("[%s] %s: no form#logout-form", p.who, where)
	} else if b := p.buttonText("form#logout-form"); b != "Sign out" {
		p.t.Errorf("[%s] %s: sign-out button %q, want \"Sign out\"", p.who, where, b)
	}
	links := p.attrs(`nav[aria-label="Main"] a`, "href")
	for _, want := range []string{"/", "/policy", "/audit"} {
		found := false
		for _, h := range links {
			if h == want {
				found = true
			}
		}
		if !found {
			p.t.Errorf("[%s] %s: nav[aria-label=Main] links %q lack %s", p.who, where, links, want)
		}
	}
	if !p.exists("main#main") {
		p.t.Errorf("[%s] %s: no main#main", p.who, where)
	}
	if n := p.count("h1"); n != 1 {
		p.t.Errorf("[%s] %s: %d h1 elements, want 1", p.who, where, n)
	}
}

// h1 is the page's heading text.
func (p *tab) h1() string {
	p.t.Helper()
	s, _ := p.text("h1")
	return s
}

// checkReflow fails when the page is wider than the window: content that
// forces horizontal scrolling at 1280 px (a line that does not wrap, a
// table that does not fit) — axe-core does not check that.
func (p *tab) checkReflow(name string) {
	p.t.Helper()
	var r struct {
		Scroll int      `json:"scroll"`
		Client int      `json:"client"`
		Wide   []string `json:"wide"`
	}
	p.step("measure "+name, func(ctx context.Context) error {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
			const d = document.documentElement, w = d.clientWidth, wide = [];
			for (const e of document.querySelectorAll("body *")) {
				const b = e.getBoundingClientRect();
				if (b.right > w + 1 && wide.length < 5) {
					const c = Array.from(e.children).some(x => x.getBoundingClientRect().right > w + 1);
					if (!c) wide.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + String(e.className).trim().split(/\s+/).join(".") : "") + ": " + (e.innerText || "").trim().slice(0, 80));
				}
			}
			return JSON.stringify({scroll: d.scrollWidth, client: w, wide});
		})()`))
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &r)
	})
	if r.Scroll > r.Client+1 {
		p.t.Errorf("%s (%s) is %d px wide in a %d px window (horizontal scrolling); widest elements: %q", name, p.path(), r.Scroll, r.Client, r.Wide)
	}
}

// axeViolation is one axe-core violation, as axe.run reports it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var targets []string
	for _, n := range v.Nodes {
		targets = append(targets, fmt.Sprint(n.Target...))
	}
	return fmt.Sprintf("%s (%s): %s — %s", v.ID, v.Impact, v.Help, strings.Join(targets, ", "))
}

// axe injects axe-core into the current page, runs it, fails the test on
// every serious or critical violation (id, impact, help, target selectors)
// and logs the others.
func (p *tab) axe(name, script string) {
	p.t.Helper()
	var vs []axeViolation
	p.step("axe on "+name, func(ctx context.Context) error {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](script+"\n;typeof axe === 'object'")); err != nil {
			return fmt.Errorf("injecting axe-core: %w", err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			return fmt.Errorf("axe.run: %w", err)
		}
		return json.Unmarshal([]byte(raw), &vs)
	})
	var bad, other []string
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v.String())
		} else {
			other = append(other, v.String())
		}
	}
	for _, o := range other {
		p.t.Logf("axe %s (minor/moderate, not failing): %s", name, o)
	}
	if len(bad) > 0 {
		p.t.Errorf("axe %s (%s): %d serious or critical violation(s):\n  %s", name, p.path(), len(bad), strings.Join(bad, "\n  "))
	} else {
		p.t.Logf("axe %s: no serious or critical violations (%d other)", name, len(other))
	}
}

// within polls cond every 200ms until it is true or d has passed.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var errNotHTTP = errors.New("the server printed no REST address")

// portalBase is the portal's base URL on the server's HTTP listener.
func portalBase(s *server) (string, error) {
	if s.REST == "" {
		return "", errNotHTTP
	}
	return "http://" + s.REST, nil
}
