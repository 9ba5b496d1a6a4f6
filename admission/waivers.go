package admission

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/internal/utf8clip"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// Waivers: a security reviewer grants a time-limited exception to one
// policy rule for one loop, with a reason. The loop's active waivers are
// part of the policy input (prepareIn); the bundle decides how they apply.
// Granting or revoking one re-evaluates the loop at once; ExpireWaivers,
// run periodically by the process that reconciles, re-evaluates the loops
// whose waivers expired, so that they are flagged again without anyone
// acting (see docs/policy.md, "Waivers").

// Bounds of a waiver.
const (
	// MaxWaiverDuration is how far ahead a waiver's until may be: an
	// exception lasts at most 180 days, then it is granted again (and
	// reviewed again) or the loop is fixed.
	MaxWaiverDuration = 180 * 24 * time.Hour
	// MaxWaiverReasonBytes bounds a waiver's reason and a revocation's.
	MaxWaiverReasonBytes = 1024
	// MaxRuleIDBytes bounds a waived rule id.
	MaxRuleIDBytes = 64
	// MaxActiveWaiversPerLoop bounds the waivers active at once for one
	// loop: every one is part of the loop's policy input at each
	// evaluation, and a loop needing more exceptions than this should be
	// fixed instead. A grant beyond it is refused (FAILED_PRECONDITION,
	// reason TOO_MANY_WAIVERS) until one expires or is revoked.
	MaxActiveWaiversPerLoop = 50
	// DefaultWaiverPage and MaxWaiverPage bound a ListWaivers page.
	DefaultWaiverPage = 100
	MaxWaiverPage     = 1000
)

// Waiver states (WaiverState).
const (
	WaiverActive  = "ACTIVE"
	WaiverExpired = "EXPIRED"
	WaiverRevoked = "REVOKED"
)

// Audit actions of waivers.
const (
	actionWaiverCreate = "waiver.create"
	actionWaiverRevoke = "waiver.revoke"
	actionWaiverList   = "waiver.list"
)

var (
	ruleIDPattern   = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)
	waiverIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
)

// WaiverState is where w stands at t: WaiverRevoked, WaiverExpired or
// WaiverActive.
func WaiverState(w store.Waiver, t time.Time) string {
	switch {
	case !w.RevokeTime.IsZero():
		return WaiverRevoked
	case !t.Before(w.Until):
		return WaiverExpired
	default:
		return WaiverActive
	}
}

// WaiverName is the resource name of w,
// teams/{team}/loops/{loop}/waivers/{id}.
func WaiverName(w store.Waiver) string {
	return "teams/" + w.Team + "/loops/" + w.Loop + "/waivers/" + w.ID
}

// ParseWaiverName splits "teams/{team}/loops/{loop}/waivers/{id}".
func ParseWaiverName(name string) (team, loopName, id string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "teams" || parts[2] != "loops" || parts[4] != "waivers" ||
		parts[1] == "" || parts[3] == "" || !waiverIDPattern.MatchString(parts[5]) {
		return "", "", "", false
	}
	return parts[1], parts[3], parts[5], true
}

func newWaiverID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "wv-" + hex.EncodeToString(b[:])
}

// WaiverRequest is a waiver to grant.
type WaiverRequest struct {
	Team, Loop string
	Rule       string
	Until      time.Time
	Reason     string
}

// CreateWaiver grants a waiver of one rule for one loop: the rule id is
// UPPER_SNAKE (at most MaxRuleIDBytes), until is in the future and at most
// MaxWaiverDuration ahead, the reason is required (at most
// MaxWaiverReasonBytes), the loop exists, and the active bundle does not
// list the rule as unwaivable (refused with UNWAIVABLE_RULE: the bundle
// would ignore the waiver). The waiver and its audit event are stored in one
// transaction; the loop is then re-evaluated at once.
func (c *Core) CreateWaiver(ctx context.Context, id Identity, r WaiverRequest) (*store.Waiver, error) {
	resource := "teams/" + r.Team + "/loops/" + r.Loop + "/waivers"
	now := c.now()
	var problems loop.FieldErrors
	switch {
	case r.Rule == "":
		problems = append(problems, loop.FieldError{Field: "waiver.rule", Message: "required: the policy rule id to waive, e.g. RETENTION_TOO_LONG"})
	case len(r.Rule) > MaxRuleIDBytes || !ruleIDPattern.MatchString(r.Rule):
		problems = append(problems, loop.FieldError{Field: "waiver.rule", Message: fmt.Sprintf("%q: want an UPPER_SNAKE rule id of at most %d characters, e.g. RETENTION_TOO_LONG",
			clip(r.Rule, MaxRuleIDBytes+1), MaxRuleIDBytes)})
	}
	switch {
	case r.Until.IsZero():
		problems = append(problems, loop.FieldError{Field: "waiver.until", Message: "required: when the waiver stops applying"})
	case !r.Until.After(now):
		problems = append(problems, loop.FieldError{Field: "waiver.until", Message: fmt.Sprintf("%s is not in the future", r.Until.UTC().Format(time.RFC3339))})
	case r.Until.Sub(now) > MaxWaiverDuration:
		problems = append(problems, loop.FieldError{Field: "waiver.until", Message: fmt.Sprintf("%s is more than %d days ahead: a waiver lasts at most %d days (grant a new one when it expires)",
			r.Until.UTC().Format(time.RFC3339), MaxWaiverDuration/(24*time.Hour), MaxWaiverDuration/(24*time.Hour))})
	}
	switch {
	case strings.TrimSpace(r.Reason) == "":
		problems = append(problems, loop.FieldError{Field: "waiver.reason", Message: "required: why the exception is granted (shown in the loop's warnings, audited)"})
	case len(r.Reason) > MaxWaiverReasonBytes:
		problems = append(problems, loop.FieldError{Field: "waiver.reason", Message: fmt.Sprintf("%d bytes: at most %d", len(r.Reason), MaxWaiverReasonBytes)})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, actionWaiverCreate, resource, WriteOptions{}, problems)
	}
	if slices.Contains(c.Policy.Unwaivable(), r.Rule) {
		msg := fmt.Sprintf("policy bundle %s never waives %s (it is listed in data.loopgate.config.unwaivable): a waiver would be ignored; change the loop's spec instead",
			c.Policy.Revision(), r.Rule)
		c.refuse(ctx, id, actionWaiverCreate, resource, audit.OutcomeDenied, "UNWAIVABLE_RULE", msg)
		return nil, &PreconditionError{Reason: "UNWAIVABLE_RULE", Message: msg}
	}
	w := store.Waiver{
		ID: newWaiverID(), Team: r.Team, Loop: r.Loop, Rule: r.Rule, Until: store.Timestamp(r.Until.UTC()),
		Reason: r.Reason, GrantedBy: id.Subject, GrantTime: now,
	}
	var refusal *refusalNote
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		refusal = nil
		l, err := tx.GetLoop(ctx, r.Team, r.Loop)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !l.Metadata.DeleteTime.IsZero()) {
			msg := fmt.Sprintf("loop teams/%s/loops/%s does not exist (or is being deleted): waivers are granted for existing loops", r.Team, r.Loop)
			refusal = &refusalNote{audit.OutcomeDenied, "LOOP_NOT_FOUND", msg}
			return fmt.Errorf("%s: %w", msg, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		// The bound counts the waivers that apply to this loop: active, and
		// not granted for an earlier loop of the same name (activeWaivers).
		active, err := tx.ListWaivers(ctx, store.WaiverFilter{Team: r.Team, Loop: r.Loop, ActiveAt: now})
		if err != nil {
			return err
		}
		if n := countApplying(active, l); n >= MaxActiveWaiversPerLoop {
			msg := fmt.Sprintf("loop teams/%s/loops/%s has %d active waivers, the most a loop may have (%d): revoke one that is no longer needed, or change the loop so that it needs fewer exceptions",
				r.Team, r.Loop, n, MaxActiveWaiversPerLoop)
			refusal = &refusalNote{audit.OutcomeDenied, "TOO_MANY_WAIVERS", msg}
			return &PreconditionError{Reason: "TOO_MANY_WAIVERS", Message: msg}
		}
		if err := tx.PutWaiver(ctx, w); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, eventFor(id, actionWaiverCreate, WaiverName(w), "", audit.OutcomeOK, map[string]any{
			"rule": w.Rule, "until": w.Until.Format(time.RFC3339), "reason": w.Reason, "bundle": c.Policy.Revision(),
		}))
		return err
	})
	if err := c.settleRefusal(ctx, id, actionWaiverCreate, resource, "", "", refusal, err); err != nil {
		return nil, err
	}
	if _, err := c.ReevaluateLoop(ctx, w.Team, w.Loop); err != nil {
		// Granted and on record; the loop's condition catches up at the
		// next re-evaluation (a bundle change or a waiver expiry).
		c.logger().Error("re-evaluating a loop after a waiver was granted failed", "waiver", WaiverName(w), "err", err)
	}
	return &w, nil
}

// RevokeWaiver ends a waiver before it expires, with a required reason;
// audited in the same transaction, then the loop is re-evaluated at once.
// Revoking a revoked or expired waiver is refused (FAILED_PRECONDITION).
func (c *Core) RevokeWaiver(ctx context.Context, id Identity, team, loopName, waiverID, reason string) (*store.Waiver, error) {
	resource := "teams/" + team + "/loops/" + loopName + "/waivers/" + waiverID
	var problems loop.FieldErrors
	switch {
	case strings.TrimSpace(reason) == "":
		problems = append(problems, loop.FieldError{Field: "reason", Message: "required: say why the waiver ends early, it is audited"})
	case len(reason) > MaxWaiverReasonBytes:
		problems = append(problems, loop.FieldError{Field: "reason", Message: fmt.Sprintf("%d bytes: at most %d", len(reason), MaxWaiverReasonBytes)})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, actionWaiverRevoke, resource, WriteOptions{}, problems)
	}
	var (
		out     store.Waiver
		refusal *refusalNote
	)
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		refusal = nil
		now := c.now()
		list, err := tx.ListWaivers(ctx, store.WaiverFilter{Team: team, Loop: loopName})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(w store.Waiver) bool { return w.ID == waiverID })
		if i < 0 {
			msg := fmt.Sprintf("waiver %s does not exist", resource)
			refusal = &refusalNote{audit.OutcomeDenied, "WAIVER_NOT_FOUND", msg}
			return &KindError{Kind: "waiver", Err: fmt.Errorf("%s: %w", msg, store.ErrNotFound)}
		}
		w := list[i]
		if st := WaiverState(w, now); st != WaiverActive {
			msg := fmt.Sprintf("waiver %s is %s already: nothing to revoke", resource, strings.ToLower(st))
			refusal = &refusalNote{audit.OutcomeDenied, "WAIVER_" + st, msg}
			return &PreconditionError{Reason: "WAIVER_" + st, Message: msg}
		}
		if err := tx.RevokeWaiver(ctx, w.ID, id.Subject, now); err != nil {
			return err
		}
		w.RevokedBy, w.RevokeTime = id.Subject, store.Timestamp(now)
		if _, err := tx.AppendAudit(ctx, eventFor(id, actionWaiverRevoke, resource, "", audit.OutcomeOK, map[string]any{
			"rule": w.Rule, "until": w.Until.Format(time.RFC3339), "reason": reason,
		})); err != nil {
			return err
		}
		out = w
		return nil
	})
	if err := c.settleRefusal(ctx, id, actionWaiverRevoke, resource, "", reason, refusal, err); err != nil {
		return nil, err
	}
	if _, err := c.ReevaluateLoop(ctx, team, loopName); err != nil {
		c.logger().Error("re-evaluating a loop after a waiver was revoked failed", "waiver", resource, "err", err)
	}
	return &out, nil
}

// countApplying counts the waivers of list that apply to l: those not
// granted before it was created (for an earlier loop of the same name).
func countApplying(list []store.Waiver, l *loop.Loop) int {
	n := 0
	for _, w := range list {
		if created := l.Metadata.CreateTime; created.IsZero() || !w.GrantTime.Before(store.Timestamp(created)) {
			n++
		}
	}
	return n
}

// WaiverQuery is a ListWaivers page.
type WaiverQuery struct {
	// Team and Loop select a loop's waivers, a team's (Loop ""), or every
	// loop's (Team "").
	Team, Loop string
	// IncludeInactive lists expired and revoked waivers too.
	IncludeInactive bool
	// PageSize is at most how many: 0 means DefaultWaiverPage, at most
	// MaxWaiverPage.
	PageSize int
	// PageToken is the previous page's next token ("" = the first page).
	PageToken string
}

// ListWaivers lists a page of the waivers q selects that id may see; only
// the active ones unless q.IncludeInactive. Ordered by team, loop, rule,
// grant time and id. The page token is a keyset cursor (the key of the
// previous page's last waiver): each page is one bounded store query, and
// waivers expiring or revoked between pages neither skip nor repeat
// others. A page size out of range or a token this server did not issue
// for the listing is refused as invalid, audited.
func (c *Core) ListWaivers(ctx context.Context, id Identity, q WaiverQuery) (list []store.Waiver, next string, err error) {
	resource := "teams/" + cmp.Or(q.Team, "-") + "/loops/" + cmp.Or(q.Loop, "-") + "/waivers"
	size, problems := checkPageSize("page_size", q.PageSize, DefaultWaiverPage, MaxWaiverPage)
	// The token is bound to the listing it was issued for.
	listing := fmt.Sprintf("%s?inactive=%t", resource, q.IncludeInactive)
	f := store.WaiverFilter{Team: q.Team, Loop: q.Loop, Limit: size + 1}
	if q.PageToken != "" {
		if f.After, err = store.DecodeWaiverPageToken(listing, q.PageToken); err != nil {
			problems = append(problems, loop.FieldError{Field: "page_token", Message: "not a token this server returned for this listing: list again without it, and keep the parent and include_expired the same while paging"})
		}
	}
	if len(problems) > 0 {
		return nil, "", c.refuseInvalidList(ctx, id, actionWaiverList, resource, problems)
	}
	if all, teams := c.authz().Visible(id, actionWaiverList); !all {
		// The caller was authorized for the listing; it sees its teams
		// only, selected by the store so that pages stay full.
		switch {
		case q.Team != "" && !slices.Contains(teams, q.Team):
			return nil, "", nil
		case q.Team == "":
			f.Teams = append([]string{}, teams...) // none, not any, if it has no team
		}
	}
	if !q.IncludeInactive {
		f.ActiveAt = c.now()
	}
	if list, err = c.Store.ListWaivers(ctx, f); err != nil {
		return nil, "", err
	}
	if len(list) > size {
		list = list[:size]
		next = store.EncodeWaiverPageToken(listing, list[size-1])
	}
	return list, next, nil
}

// refuseInvalidList audits a listing refused as invalid (a page size out
// of range, a page token not issued for it) as the API audits its own
// checks of a request (AuditInvalid): through the refusal log, so that a
// client repeating it makes one event, not one per call.
func (c *Core) refuseInvalidList(ctx context.Context, id Identity, action, resource string, problems loop.FieldErrors) error {
	err := &InvalidError{Resource: resource, Problems: problems}
	c.AuditInvalid(ctx, id, action, err)
	return err
}

// checkPageSize checks a requested page size (0 = def, at most most) and
// returns the size to list, or the problem with it, named by field: the
// check the List methods share.
func checkPageSize(field string, n, def, most int) (int, loop.FieldErrors) {
	switch {
	case n < 0 || n > most:
		return 0, loop.FieldErrors{{Field: field, Message: fmt.Sprintf("%d: want 0 (%d) to %d", n, def, most)}}
	case n == 0:
		return def, nil
	}
	return n, nil
}

// activeWaivers are the waivers of l active at the time of evaluation, as
// the policy input carries them. Waivers granted before the loop was
// created (for an earlier loop of the same name) do not apply; a loop being
// created has none.
func (c *Core) activeWaivers(ctx context.Context, l, previous *loop.Loop) ([]policy.Waiver, error) {
	if previous == nil {
		return nil, nil
	}
	now := c.now()
	var list []store.Waiver
	if snap, ok := ctx.Value(waiverSnapshotKey{}).(*waiverSnapshot); ok {
		list = snap.byLoop[l.Metadata.Key()]
	} else {
		var err error
		if list, err = c.Store.ListWaivers(ctx, store.WaiverFilter{Team: l.Metadata.Team, Loop: l.Metadata.Name, ActiveAt: now}); err != nil {
			return nil, fmt.Errorf("reading the waivers of %s: %w", l.Metadata.Key(), err)
		}
	}
	var out []policy.Waiver
	for _, w := range list {
		if created := previous.Metadata.CreateTime; !created.IsZero() && w.GrantTime.Before(store.Timestamp(created)) {
			continue
		}
		if !w.Until.After(now) {
			continue // expired since the snapshot was read
		}
		out = append(out, policy.Waiver{Rule: w.Rule, Until: w.Until, Reason: w.Reason})
	}
	return out, nil
}

// waiverSnapshot holds every waiver active when a pass over many loops
// began (ReevaluateAll, PolicyImpact), by loop key: one query for the pass
// instead of one per loop.
type waiverSnapshot struct {
	byLoop map[string][]store.Waiver
}

type waiverSnapshotKey struct{}

// withWaiverSnapshot reads every active waiver once for the evaluations
// under the returned context. A waiver that expires during the pass is
// left out (activeWaivers checks Until); one granted during it is judged
// by its own re-evaluation of its loop.
func (c *Core) withWaiverSnapshot(ctx context.Context) (context.Context, error) {
	list, err := c.Store.ListWaivers(ctx, store.WaiverFilter{ActiveAt: c.now()})
	if err != nil {
		return nil, fmt.Errorf("reading the active waivers: %w", err)
	}
	snap := &waiverSnapshot{byLoop: map[string][]store.Waiver{}}
	for _, w := range list {
		k := loop.Metadata{Team: w.Team, Name: w.Loop}.Key()
		snap.byLoop[k] = append(snap.byLoop[k], w)
	}
	return context.WithValue(ctx, waiverSnapshotKey{}, snap), nil
}

// ReevaluateLoop judges one loop by the active bundle, as ReevaluateAll
// does every loop, and records the verdict in its PolicyCompliant
// condition (audited when it flips). A loop that does not exist or is being
// deleted is left alone. It reports whether the condition changed.
func (c *Core) ReevaluateLoop(ctx context.Context, team, name string) (bool, error) {
	l, err := c.Store.GetLoop(ctx, team, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !l.Metadata.DeleteTime.IsZero() {
		return false, nil
	}
	cond, p, err := c.compliance(ctx, Identity{Subject: PolicyActor, Roles: []string{RoleAdmin}}, l)
	if err != nil {
		return false, err
	}
	return c.recordCompliance(ctx, l, cond, p)
}

// WaiverExpiry is what one ExpireWaivers pass did.
type WaiverExpiry struct {
	// Checked is the time the pass judged expiry at: the next pass's since.
	Checked time.Time
	// Expired counts the waivers that expired in (since, Checked].
	Expired int
	// Loops counts the loops re-evaluated, Changed those whose
	// PolicyCompliant condition changed, Failed those whose re-evaluation
	// failed (ExpireWaivers returns their errors; the next pass from the
	// same since retries them).
	Loops, Changed, Failed int
	// Next is the earliest until of the waivers still active (zero if
	// none): when the next pass is due.
	Next time.Time
}

// ExpireWaivers re-evaluates every loop with a waiver that was active at
// since and has expired by now, so that a loop kept compliant by a waiver is
// flagged again when it ends without anyone acting. Passes are idempotent:
// a loop re-evaluated twice is recorded once. A loop that fails to
// re-evaluate does not hold up the others: every failure is counted in
// Failed and returned, naming its loop (errors.Join, for the caller to
// log); only the end of ctx stops a pass early.
func (c *Core) ExpireWaivers(ctx context.Context, since time.Time) (WaiverExpiry, error) {
	now := c.now()
	res := WaiverExpiry{Checked: now}
	if since.IsZero() || !since.Before(now) {
		since = now.Add(-time.Nanosecond)
	}
	list, err := c.Store.ListWaivers(ctx, store.WaiverFilter{ActiveAt: since})
	if err != nil {
		return res, fmt.Errorf("listing waivers: %w", err)
	}
	type key struct{ team, loop string }
	var due []key // in listing order
	seen := map[key]bool{}
	for _, w := range list {
		if w.Until.After(now) {
			if res.Next.IsZero() || w.Until.Before(res.Next) {
				res.Next = w.Until
			}
			continue
		}
		res.Expired++
		if k := (key{w.Team, w.Loop}); !seen[k] {
			seen[k] = true
			due = append(due, k)
		}
	}
	var errs []error
	for _, k := range due {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		changed, err := c.ReevaluateLoop(ctx, k.team, k.loop)
		if err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("re-evaluating teams/%s/loops/%s: %w", k.team, k.loop, err))
			continue
		}
		res.Loops++
		if changed {
			res.Changed++
		}
	}
	return res, errors.Join(errs...)
}

// clip shortens s to at most n bytes for messages, never inside a UTF-8
// character (a message must stay valid UTF-8 to be sent at all).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return utf8clip.Bytes(s, n) + "…"
}
