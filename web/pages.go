package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/timestamppb"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// maxLoops bounds how many loops the overview and team pages read.
const maxLoops = 5000

// Names in paths: what the API accepts for teams, loops, principals and
// bundle revisions; anything else is a 404 without an API call.
var (
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	validRev  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

func (p *Portal) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	p.render(w, r, http.StatusNotFound, "error", errorView{Title: "Not found", Reason: "There is no page at this address."}, s)
}

// ---- sign-in ----

type loginView struct {
	Error string
	// OIDCHost, when set, is the identity provider's host: the page offers
	// "Sign in with OIDCHost" (GET /login/oidc).
	OIDCHost string
	// OIDCUnavailable: the provider could not be reached the last time.
	OIDCUnavailable bool
}

func (loginView) title() string { return "Sign in" }

// newLoginView is the login page's body with the error msg ("" for none).
func (p *Portal) newLoginView(msg string) loginView {
	v := loginView{Error: msg}
	if p.oidc != nil {
		v.OIDCHost, v.OIDCUnavailable = p.oidc.host, p.oidc.unavailable()
	}
	return v
}

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "login", p.newLoginView(""), nil)
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.render(w, r, http.StatusRequestEntityTooLarge, "error", errorView{Title: "Form too large",
			Reason: "The sign-in form could not be read (at most 64 KiB); paste only the token and send it again."}, nil)
		return
	}
	if !sameOrigin(r) {
		p.log.Warn("portal: sign-in form refused (origin check failed)", "source", r.RemoteAddr)
		p.refuse(r, "", "portal.signin", "CROSS_ORIGIN", "the sign-in form was sent from another origin (Origin or Referer header)")
		p.render(w, r, http.StatusForbidden, "error", errorView{Title: "Not allowed",
			Reason: "The sign-in form was not sent from this portal (its Origin or Referer names another site). Open the portal's own sign-in page and sign in there."}, nil)
		return
	}
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	if token == "" || len(token) > 16<<10 {
		p.render(w, r, http.StatusUnauthorized, "login", p.newLoginView("Enter an API token."), nil)
		return
	}
	if s, msg := p.signIn(w, r, token, nil); s == nil {
		p.render(w, r, http.StatusUnauthorized, "login", p.newLoginView("Sign-in failed: "+msg), nil)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signIn is every sign-in's one path, a pasted token's or OIDC's: the
// server vets the token (CheckToken: failures count against the browser's
// address), the API says who it stands for (GetCaller), and a new session
// with its cookie starts. A refusal returns nil and why.
// signIn vets token (CheckToken), asks the API who it is and starts a
// session; oauth, for an OIDC sign-in, holds the provider's tokens (a
// refresh token keeps the session past the token's expiry).
func (p *Portal) signIn(w http.ResponseWriter, r *http.Request, token string, oauth *oauth2.Token) (*session, string) {
	if p.checkToken != nil {
		if err := p.checkToken(r, token); err != nil {
			return nil, err.Error()
		}
	}
	ctx, cancel := p.ctx(r, token)
	defer cancel()
	caller, err := p.identity.GetCaller(ctx, &lgv1.GetCallerRequest{})
	if err != nil {
		return nil, errText(err)
	}
	if old := p.sessions.fromRequest(r); old != nil {
		p.sessions.drop(old) // a new id at every sign-in
	}
	s := p.sessions.create(token, caller, oauth)
	p.setCookie(w, s)
	return s, ""
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request, s *session) {
	p.sessions.drop(s)
	p.lists.drop(s.id)
	p.clearCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// ---- overview ----

type overviewView struct {
	Counts    counts
	F         filters
	Rows      []loopRow
	States    []count
	Truncated bool
	At        string // when the list was read from the API
	Matching  int    // rows matching the filters, on all pages
	First     int
	Last      int
	Prev      string
	Next      string
}

// overviewPageSize is how many rows the overview's table shows at once.
const overviewPageSize = 200

func pageHref(q url.Values, page int) string {
	v := url.Values{}
	for _, k := range []string{"q", "team", "state", "compliance", "region", "slo"} {
		if x := clip(q.Get(k), 100); x != "" {
			v.Set(k, x)
		}
	}
	v.Set("page", strconv.Itoa(page))
	return "/?" + v.Encode()
}

func (overviewView) title() string { return "Loops" }

// sameIdentity reports whether a and b are the same subject with the same
// teams and roles.
func sameIdentity(a, b *lgv1.Caller) bool {
	return a.GetSubject() == b.GetSubject() && slices.Equal(a.GetTeams(), b.GetTeams()) && slices.Equal(a.GetRoles(), b.GetRoles())
}

// listLoops reads every loop of parent the caller may see, up to maxLoops.
func (p *Portal) listLoops(r *http.Request, s *session, parent string) ([]*lgv1.Loop, bool, error) {
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	var out []*lgv1.Loop
	tok := ""
	for {
		// The overview and team pages show a row per loop: the basic view.
		resp, err := p.loops.ListLoops(ctx, &lgv1.ListLoopsRequest{Parent: parent, PageSize: 1000, PageToken: tok, View: lgv1.LoopView_LOOP_VIEW_BASIC})
		if err != nil {
			return nil, false, err
		}
		out = append(out, resp.GetLoops()...)
		tok = resp.GetNextPageToken()
		if tok == "" {
			return out, false, nil
		}
		if len(out) >= maxLoops {
			return out, true, nil
		}
	}
}

func (p *Portal) overview(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := filters{Q: clip(q.Get("q"), 100), Team: clip(q.Get("team"), 64), State: clip(q.Get("state"), 32),
		Compliance: clip(q.Get("compliance"), 32), Region: clip(q.Get("region"), 32), SLO: clip(q.Get("slo"), 16)}
	var all []loopRow
	var trunc bool
	var at time.Time
	c := p.lists.get(s.id)
	if c != nil && q.Get("fresh") == "" {
		// Rows the API gave this token a few seconds ago: the API is still
		// asked who the token is (a revoked token is refused here, as on
		// every page), and a changed identity reads the list again.
		ctx, cancel := p.ctx(r, s.bearer())
		now, err := p.identity.GetCaller(ctx, &lgv1.GetCallerRequest{})
		cancel()
		if err != nil {
			p.apiError(w, r, s, err)
			return
		}
		if !sameIdentity(now, s.who()) {
			c = nil
		}
	}
	if c != nil && q.Get("fresh") == "" {
		all, trunc, at = c.rows, c.trunc, c.at
	} else {
		loops, tr, err := p.listLoops(r, s, "teams/-")
		if err != nil {
			p.apiError(w, r, s, err)
			return
		}
		all, trunc, at = make([]loopRow, len(loops)), tr, time.Now()
		for i, l := range loops {
			all[i] = rowOf(l)
		}
		p.lists.put(s.id, newListEntry(at, all, trunc))
	}
	v := overviewView{Counts: countRows(all), F: f, Truncated: trunc, At: at.UTC().Format("15:04:05 UTC")}
	for _, st := range loopStates {
		v.States = append(v.States, count{Label: humanState(st), Href: st.String()})
	}
	for i := range all {
		if f.match(&all[i]) {
			v.Rows = append(v.Rows, all[i])
		}
	}
	sortRows(v.Rows)
	// One page of the table at a time: the counts cover every loop.
	v.Matching = len(v.Rows)
	page, _ := strconv.Atoi(clip(q.Get("page"), 6))
	pages := max((len(v.Rows)+overviewPageSize-1)/overviewPageSize, 1)
	page = min(max(page, 1), pages)
	lo, hi := (page-1)*overviewPageSize, min(page*overviewPageSize, len(v.Rows))
	v.Rows, v.First, v.Last = v.Rows[lo:hi], lo+1, hi
	if page > 1 {
		v.Prev = pageHref(q, page-1)
	}
	if page < pages {
		v.Next = pageHref(q, page+1)
	}
	p.render(w, r, http.StatusOK, "overview", v, s)
}

// ---- team ----

type teamView struct {
	Team       string
	Owners     []string
	Rows       []loopRow
	Principals []*lgv1.Principal
	PrincErr   string
	Groups     []*lgv1.ConsumerGroup
	GroupErr   string
	Partitions int64
	Topics     int
	Monthly    float64
	Currency   string
	CostSVG    template.HTML
	// Info is the team's catalog entry and usage (GetTeam); InfoErr says
	// why it is missing.
	Info    *lgv1.Team
	InfoErr string
	Limits  []limitRow
}

// limitRow is one of a team's limits beside what is used of it.
type limitRow struct {
	What, Used, Of string
	By, ByName     string // the loop that uses most, e.g. teams/growth/loops/x and x
	Value, Max     int64  // for the <meter>; Max 0: no limit
	Low, High      int64  // the <meter>'s 70 % and 90 % marks
	Percent        int64
	Over           bool // at or above 90 %
}

func teamLimits(t *lgv1.Team) []limitRow {
	lim, use := t.GetLimits(), t.GetUsage()
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	rate := funcs["rate"].(func(int64) string)
	row := func(what string, used, of int64, format func(int64) string, by string) limitRow {
		r := limitRow{What: what, Used: format(used), Of: "no limit", Value: used, Max: of}
		if by != "" {
			r.By, r.ByName = by, lastSegment(by)
		}
		if of > 0 {
			r.Of, r.Percent = format(of), used*100/of
			r.Low, r.High = of*7/10, of*9/10
			r.Over = r.Percent >= 90
		}
		return r
	}
	return []limitRow{
		row("Partitions, all loops", use.GetPartitions(), int64(lim.GetMaxPartitions()), count, ""),
		row("Partitions, largest loop", int64(use.GetLargestLoopPartitions()), int64(lim.GetMaxPartitionsPerLoop()), count, use.GetLargestLoop()),
		row("Throughput, busiest loop", use.GetHighestBytesPerSecond(), lim.GetMaxBytesPerSecond(), rate, use.GetHighestThroughputLoop()),
	}
}

func (v teamView) title() string { return "Team " + v.Team }

func (p *Portal) team(w http.ResponseWriter, r *http.Request, s *session) {
	team := r.PathValue("team")
	if !validName.MatchString(team) {
		p.notFound(w, r, s)
		return
	}
	loops, _, err := p.listLoops(r, s, "teams/"+team)
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	v := teamView{Team: team}
	owners := map[string]bool{}
	var costs []costPart
	for _, l := range loops {
		row := rowOf(l)
		v.Rows = append(v.Rows, row)
		for _, o := range row.Owners {
			owners[o] = true
		}
		v.Partitions += row.Partitions
		v.Topics += len(l.GetSpec().GetStreams())
		v.Monthly += row.Monthly
		if row.Currency != "" {
			v.Currency = row.Currency
		}
		if row.Monthly > 0 {
			costs = append(costs, costPart{Label: row.Name, Value: row.Monthly})
		}
	}
	for o := range owners {
		v.Owners = append(v.Owners, o)
	}
	sort.Strings(v.Owners)
	sortRows(v.Rows)
	v.CostSVG = stackedBar("Monthly cost of team "+team+" by loop", costs, v.Currency)
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	if info, err := p.teams.GetTeam(ctx, &lgv1.GetTeamRequest{Name: "teams/" + team}); err != nil {
		v.InfoErr = errText(err)
	} else {
		v.Info, v.Limits = info, teamLimits(info)
	}
	if pr, err := p.principal.ListPrincipals(ctx, &lgv1.ListPrincipalsRequest{Parent: "teams/" + team, PageSize: 1000}); err != nil {
		v.PrincErr = errText(err)
	} else {
		v.Principals = pr.GetPrincipals()
	}
	if gr, err := p.principal.ListConsumerGroups(ctx, &lgv1.ListConsumerGroupsRequest{Parent: "teams/" + team, PageSize: 1000}); err != nil {
		v.GroupErr = errText(err)
	} else {
		v.Groups = gr.GetGroups()
	}
	p.render(w, r, http.StatusOK, "team", v, s)
}

// ---- loop ----

type loopView struct {
	Team, Name  string
	L           *lgv1.Loop
	Row         loopRow
	Compliance  string
	Verdict     verdict
	VerdictNote string
	SLOSVG      template.HTML
	LagSVG      template.HTML
	CostSVG     template.HTML
	Windows     []*lgv1.LatencyWindow
	Waivers     []*lgv1.Waiver
	WaiverErr   string
	Events      []*lgv1.AuditEvent
	EventErr    string
	CanReview   bool
	ReviewNote  string // why the review forms are not shown
	CanWaive    bool
	Rules       []string // rule ids a waiver may name
	MinUntil    string
}

// verdict is the policy decision the loop page shows the findings of.
type verdict struct {
	Source, DecisionID, Bundle string
	Deny, Warn, Approval       []*lgv1.Violation
}

func lastSegment(name string) string { return name[strings.LastIndex(name, "/")+1:] }

func (v loopView) title() string { return v.Team + "/" + v.Name }

func (p *Portal) loopPage(w http.ResponseWriter, r *http.Request, s *session) {
	team, name := r.PathValue("team"), r.PathValue("loop")
	if !validName.MatchString(team) || !validName.MatchString(name) {
		p.notFound(w, r, s)
		return
	}
	full := "teams/" + team + "/loops/" + name
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	l, err := p.loops.GetLoop(ctx, &lgv1.GetLoopRequest{Name: full})
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	st := l.GetStatus()
	v := loopView{Team: team, Name: name, L: l, Row: rowOf(l)}
	pv := st.GetPolicy()
	v.Verdict = verdict{Source: "admission", DecisionID: pv.GetDecisionId(), Bundle: pv.GetBundleRevision(),
		Deny: pv.GetDeny(), Warn: pv.GetWarn(), Approval: pv.GetApproval()}
	cond := complianceCondition(l)
	switch {
	case v.Row.Compliant && cond != nil:
		v.Compliance = cond.GetMessage()
	case v.Row.Compliant:
		v.Compliance = "allowed by policy bundle " + pv.GetBundleRevision()
	case cond != nil:
		v.Compliance = cond.GetMessage()
		// Re-evaluated under a newer bundle: show that decision's findings.
		if dr, err := p.policy.ListPolicyDecisions(ctx, &lgv1.ListPolicyDecisionsRequest{Resource: full, PageSize: 20}); err == nil {
			var newest *lgv1.PolicyDecision
			for _, d := range dr.GetDecisions() {
				if len(d.GetDeny()) > 0 && (newest == nil || d.GetTime().AsTime().After(newest.GetTime().AsTime())) {
					newest = d
				}
			}
			if newest != nil {
				v.Verdict = verdict{Source: newest.GetKind(), DecisionID: lastSegment(newest.GetName()), Bundle: newest.GetBundleRevision(),
					Deny: newest.GetDeny(), Warn: newest.GetWarn(), Approval: newest.GetApproval()}
			}
		} else {
			v.VerdictNote = "The findings of the re-evaluation are not shown: " + errText(err)
		}
	default:
		v.Compliance = "no policy verdict allows it"
	}
	if slo := st.GetSlo(); slo != nil {
		v.Windows = slo.GetWindows()
		v.SLOSVG = sloSparkline(slo)
	}
	v.LagSVG = lagBars(st.GetLag())
	if c := st.GetCost(); c != nil {
		parts := make([]costPart, 0, len(c.GetItems()))
		for _, it := range c.GetItems() {
			parts = append(parts, costPart{Label: it.GetComponent(), Value: it.GetMonthly()})
		}
		v.CostSVG = stackedBar("Monthly cost split of "+team+"/"+name, parts, c.GetCurrency())
	}
	if wr, err := p.waivers.ListWaivers(ctx, &lgv1.ListWaiversRequest{Parent: full, IncludeExpired: true, PageSize: 100}); err != nil {
		v.WaiverErr = errText(err)
	} else {
		v.Waivers = wr.GetWaivers()
	}
	if er, err := p.audit.ListAuditEvents(ctx, &lgv1.ListAuditEventsRequest{Resource: full, OrderBy: "seq desc", PageSize: 50}); err != nil {
		v.EventErr = errText(err)
	} else {
		v.Events = er.GetEvents()
	}
	// The review forms: shown when the API lists the loop among those the
	// caller may approve (it decides by role, team and self-approval).
	if st.GetState() == lgv1.Loop_PENDING_APPROVAL {
		v.ReviewNote = "You may not review this request."
		// Every page of the team's pending loops until this one is found
		// (at most maxLoops, as the overview).
		tok := ""
		for read := 0; read < maxLoops && !v.CanReview; {
			ar, err := p.loops.ListApprovals(ctx, &lgv1.ListApprovalsRequest{Parent: "teams/" + team, PageSize: 1000, PageToken: tok})
			if err != nil {
				if denied(err) {
					v.ReviewNote = "You may not review this request: " + errText(err)
				}
				break
			}
			for _, al := range ar.GetLoops() {
				if al.GetName() == full {
					v.CanReview, v.ReviewNote = true, ""
				}
			}
			read += len(ar.GetLoops())
			if tok = ar.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	if s.hasRole("security-reviewer", "admin") {
		v.CanWaive = true
		seen := map[string]bool{}
		for _, list := range [][]*lgv1.Violation{v.Verdict.Deny, v.Verdict.Warn, v.Verdict.Approval} {
			for _, vi := range list {
				if !seen[vi.GetId()] {
					seen[vi.GetId()] = true
					v.Rules = append(v.Rules, vi.GetId())
				}
			}
		}
		v.MinUntil = time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	}
	p.render(w, r, http.StatusOK, "loop", v, s)
}

// review is POST …/approve and …/reject.
func (p *Portal) review(approve bool) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		team, name := r.PathValue("team"), r.PathValue("loop")
		if !validName.MatchString(team) || !validName.MatchString(name) {
			p.notFound(w, r, s)
			return
		}
		full := "teams/" + team + "/loops/" + name
		back := "/teams/" + team + "/loops/" + name
		field := "comment"
		if !approve {
			field = "reject-comment"
		}
		comment := clip(r.PostFormValue(field), 2048)
		if comment == "" {
			comment = clip(r.PostFormValue("comment"), 2048)
		}
		if r.PostFormValue("confirm") == "" {
			s.setFlash("Tick \"I have reviewed this request\" to confirm.", true)
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		etag := clip(r.PostFormValue("etag"), 256)
		ctx, cancel := p.ctx(r, s.bearer())
		defer cancel()
		var err error
		verb := "Approved"
		if approve {
			_, err = p.loops.ApproveLoop(ctx, &lgv1.ApproveLoopRequest{Name: full, Etag: etag, Comment: comment, RequestId: "portal-" + randomID()[:22]})
		} else {
			verb = "Rejected"
			_, err = p.loops.RejectLoop(ctx, &lgv1.RejectLoopRequest{Name: full, Etag: etag, Comment: comment, RequestId: "portal-" + randomID()[:22]})
		}
		if err != nil {
			s.setFlash("Refused: "+errText(err), true)
		} else {
			s.setFlash(verb+" "+team+"/"+name+".", false)
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// waive is POST …/waive.
func (p *Portal) waive(w http.ResponseWriter, r *http.Request, s *session) {
	team, name := r.PathValue("team"), r.PathValue("loop")
	if !validName.MatchString(team) || !validName.MatchString(name) {
		p.notFound(w, r, s)
		return
	}
	back := "/teams/" + team + "/loops/" + name
	if r.PostFormValue("confirm") == "" {
		s.setFlash("Tick the confirmation to grant a waiver.", true)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	until, err := time.Parse("2006-01-02", clip(r.PostFormValue("until"), 32))
	if err != nil {
		s.setFlash("Until must be a date (YYYY-MM-DD).", true)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	wv, err := p.waivers.CreateWaiver(ctx, &lgv1.CreateWaiverRequest{Parent: "teams/" + team + "/loops/" + name, Waiver: &lgv1.Waiver{
		Rule: clip(r.PostFormValue("rule"), 128), Until: timestamppb.New(until.Add(24*time.Hour - time.Second)), Reason: clip(r.PostFormValue("reason"), 1024)}})
	if err != nil {
		s.setFlash("Refused: "+errText(err), true)
	} else {
		s.setFlash("Waiver granted for "+wv.GetRule()+" until "+until.Format("2006-01-02")+".", false)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// ---- principal ----

type grantRow struct {
	Loop    string
	Href    string
	Produce []string
	Consume []string
	Groups  []string
	Err     string // why the grants are not shown ("" when they are)
}

// Bounds of the principal page's loop reads.
const (
	principalGrantLoops = 25 // loops whose grants are read; the rest are listed only
	principalReads      = 5  // GetLoop calls at a time
)

type principalView struct {
	Team, Name string
	P          *lgv1.Principal
	Grants     []grantRow
	More       int
}

func (v principalView) title() string { return "Principal " + v.Name }

func (p *Portal) principalPage(w http.ResponseWriter, r *http.Request, s *session) {
	// Principal names are Kafka's (upper case, '_', '.', up to 128 bytes),
	// not loop names.
	team, name := r.PathValue("team"), loop.PrincipalName(r.PathValue("name"))
	if !validName.MatchString(team) || !loop.ValidPrincipalName(name) {
		p.notFound(w, r, s)
		return
	}
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	pr, err := p.principal.GetPrincipal(ctx, &lgv1.GetPrincipalRequest{Name: "teams/" + team + "/principals/" + name})
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	v := principalView{Team: team, Name: name, P: pr}
	v.Grants = make([]grantRow, len(pr.GetLoops()))
	var wg sync.WaitGroup
	sem := make(chan struct{}, principalReads)
	for i, ln := range pr.GetLoops() {
		lt, lname := splitLoopName(ln)
		v.Grants[i] = grantRow{Loop: lt + "/" + lname, Href: "/teams/" + lt + "/loops/" + lname}
		if i >= principalGrantLoops { // bounded: the rest are listed without their grants
			v.Grants[i].Err = "not read (only the first 25 loops' grants are shown)"
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(g *grantRow) {
			defer func() { <-sem; wg.Done() }()
			l, err := p.loops.GetLoop(ctx, &lgv1.GetLoopRequest{Name: ln})
			if err != nil {
				g.Err = "not shown: " + errText(err)
				return
			}
			for _, pg := range l.GetStatus().GetPrincipals() {
				if pg.GetPrincipal() == pr.GetKafkaPrincipal() || strings.TrimPrefix(pg.GetPrincipal(), "User:") == name {
					g.Produce, g.Consume, g.Groups = pg.GetProduceTopics(), pg.GetConsumeTopics(), pg.GetGroups()
				}
			}
		}(&v.Grants[i])
	}
	wg.Wait()
	p.render(w, r, http.StatusOK, "principal", v, s)
}

// ---- policy ----

type policyView struct {
	Active      *lgv1.PolicyBundle
	ActiveName  string
	Activations []*lgv1.PolicyActivation
	ActErr      string
	Candidates  []*lgv1.PolicyBundle
	Decisions   []*lgv1.PolicyDecision
	DecErr      string
	Rule        string
}

func (policyView) title() string { return "Policy" }

func revOf(name string) string { return strings.TrimPrefix(name, "policy/bundles/") }

func (p *Portal) policyPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	bl, err := p.policy.ListPolicyBundles(ctx, &lgv1.ListPolicyBundlesRequest{})
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	v := policyView{ActiveName: bl.GetActive(), Rule: clip(r.URL.Query().Get("rule"), 128)}
	for _, b := range bl.GetBundles() {
		switch b.GetState() {
		case lgv1.PolicyBundle_ACTIVE:
			v.Active = b
		case lgv1.PolicyBundle_CANDIDATE:
			v.Candidates = append(v.Candidates, b)
		}
	}
	if ar, err := p.policy.ListPolicyActivations(ctx, &lgv1.ListPolicyActivationsRequest{PageSize: 50}); err != nil {
		v.ActErr = errText(err)
	} else {
		v.Activations = ar.GetActivations()
	}
	if dr, err := p.policy.ListPolicyDecisions(ctx, &lgv1.ListPolicyDecisionsRequest{Rule: v.Rule, PageSize: 50}); err != nil {
		v.DecErr = errText(err)
	} else {
		v.Decisions = dr.GetDecisions()
	}
	p.render(w, r, http.StatusOK, "policy", v, s)
}

type impactView struct {
	Rev string
	I   *lgv1.PolicyImpact
}

func (v impactView) title() string { return "Impact of bundle " + v.Rev }

func (p *Portal) impactPage(w http.ResponseWriter, r *http.Request, s *session) {
	rev := r.PathValue("rev")
	if !validRev.MatchString(rev) {
		p.notFound(w, r, s)
		return
	}
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	im, err := p.policy.GetPolicyImpact(ctx, &lgv1.GetPolicyImpactRequest{Name: "policy/bundles/" + rev, RecentDecisions: 100})
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	p.render(w, r, http.StatusOK, "impact", impactView{Rev: rev, I: im}, s)
}

// ---- audit ----

type auditFilters struct{ Team, Loop, Actor, Action, Since, Until string }

type auditView struct {
	F      auditFilters
	Events []*lgv1.AuditEvent
	More   bool // there are older events than the 200 shown
	// Verified: the chain was verified for this view (?verify=1), with
	// the outcome in Chain and ChainOK; VerifyHref asks for it.
	Verified   bool
	VerifyHref string
	Chain      string
	ChainOK    bool
}

func (auditView) title() string { return "Audit" }

func parseDay(s string, end bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if end {
			t = t.Add(24 * time.Hour)
		}
		return t, true
	}
	return time.Time{}, false
}

func (p *Portal) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := auditFilters{Team: clip(q.Get("team"), 64), Loop: clip(q.Get("loop"), 64), Actor: clip(q.Get("actor"), 256),
		Action: clip(q.Get("action"), 64), Since: clip(q.Get("since"), 40), Until: clip(q.Get("until"), 40)}
	if (f.Team != "" && !validName.MatchString(f.Team)) || (f.Loop != "" && !validName.MatchString(f.Loop)) {
		p.render(w, r, http.StatusBadRequest, "error", errorView{Title: "Bad request", Reason: "team and loop are names like growth and checkout-nudge."}, s)
		return
	}
	req := &lgv1.ListAuditEventsRequest{Actor: f.Actor, Action: f.Action, OrderBy: "seq desc", PageSize: 200}
	switch {
	case f.Team != "" && f.Loop != "":
		req.Resource = "teams/" + f.Team + "/loops/" + f.Loop
	case f.Team != "":
		req.Parent = "teams/" + f.Team
	}
	for _, d := range []struct {
		value string
		end   bool
		dst   **timestamppb.Timestamp
	}{{f.Since, false, &req.StartTime}, {f.Until, true, &req.EndTime}} {
		if d.value == "" {
			continue
		}
		t, ok := parseDay(d.value, d.end)
		if !ok {
			p.render(w, r, http.StatusBadRequest, "error", errorView{Title: "Bad request", Reason: "since and until are days like 2026-11-30."}, s)
			return
		}
		*d.dst = timestamppb.New(t)
	}
	ctx, cancel := p.ctx(r, s.bearer())
	defer cancel()
	resp, err := p.audit.ListAuditEvents(ctx, req)
	if err != nil {
		p.apiError(w, r, s, err)
		return
	}
	v := auditView{F: f, Events: resp.GetEvents(), More: resp.GetNextPageToken() != "", Verified: q.Get("verify") != ""}
	// Verifying recomputes the whole chain: on request only, not on every view.
	q.Set("verify", "1")
	v.VerifyHref = "/audit?" + q.Encode()
	if v.Verified {
		if vr, err := p.audit.VerifyAuditChain(ctx, &lgv1.VerifyAuditChainRequest{}); err != nil {
			if denied(err) {
				v.Chain = "Chain verification: not allowed for your role"
			} else {
				v.Chain = "Chain verification failed: " + errText(err)
			}
		} else if vr.GetOk() {
			v.Chain, v.ChainOK = fmt.Sprintf("Chain verified: %d events", vr.GetEventsChecked()), true
		} else {
			fb := vr.GetFirstBroken()
			v.Chain = fmt.Sprintf("Chain broken at event %d (%s): %s", fb.GetSeq(), fb.GetId(), fb.GetReason())
		}
	}
	p.render(w, r, http.StatusOK, "audit", v, s)
}

// loopHref links a resource name to its portal page ("" if none).
func loopHref(resource string) string {
	team, loop := splitLoopName(resource)
	if team == "" {
		return ""
	}
	return "/teams/" + url.PathEscape(team) + "/loops/" + url.PathEscape(loop)
}

func init() {
	funcs["loopHref"] = loopHref
	funcs["rev"] = revOf
	funcs["short"] = func(name string) string {
		if team, loop := splitLoopName(name); team != "" {
			return team + "/" + loop
		}
		return name
	}
	funcs["principalHref"] = func(name string) string {
		// teams/{team}/principals/{name}
		parts := strings.Split(name, "/")
		if len(parts) == 4 {
			return "/teams/" + parts[1] + "/principals/" + parts[3]
		}
		return ""
	}
}
