package admission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loopgate/loopgate/audit"
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

// ListWaivers lists the waivers of a loop (team and loopName), of a team's
// loops (loopName "") or of every loop (team ""), that id may see; only the
// active ones unless includeInactive. Ordered by team, loop, rule and grant
// time.
func (c *Core) ListWaivers(ctx context.Context, id Identity, team, loopName string, includeInactive bool) ([]store.Waiver, error) {
	all, teams := c.authz().Visible(id, actionWaiverList)
	f := store.WaiverFilter{Team: team, Loop: loopName}
	if team == "" && !all && len(teams) == 1 {
		f.Team = teams[0]
	}
	if !includeInactive {
		f.ActiveAt = c.now()
	}
	list, err := c.Store.ListWaivers(ctx, f)
	if err != nil {
		return nil, err
	}
	if !all {
		// The caller was authorized for the listing; it sees its teams only.
		list = slices.DeleteFunc(list, func(w store.Waiver) bool { return !slices.Contains(teams, w.Team) })
	}
	return list, nil
}

// activeWaivers are the waivers of l active at the time of evaluation, as
// the policy input carries them. Waivers granted before the loop was
// created (for an earlier loop of the same name) do not apply; a loop being
// created has none.
func (c *Core) activeWaivers(ctx context.Context, l, previous *loop.Loop) ([]policy.Waiver, error) {
	if previous == nil {
		return nil, nil
	}
	list, err := c.Store.ListWaivers(ctx, store.WaiverFilter{Team: l.Metadata.Team, Loop: l.Metadata.Name, ActiveAt: c.now()})
	if err != nil {
		return nil, fmt.Errorf("reading the waivers of %s: %w", l.Metadata.Key(), err)
	}
	var out []policy.Waiver
	for _, w := range list {
		if created := previous.Metadata.CreateTime; !created.IsZero() && w.GrantTime.Before(store.Timestamp(created)) {
			continue
		}
		out = append(out, policy.Waiver{Rule: w.Rule, Until: w.Until, Reason: w.Reason})
	}
	return out, nil
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
	// PolicyCompliant condition changed.
	Loops, Changed int
	// Next is the earliest until of the waivers still active (zero if
	// none): when the next pass is due.
	Next time.Time
}

// ExpireWaivers re-evaluates every loop with a waiver that was active at
// since and has expired by now, so that a loop kept compliant by a waiver is
// flagged again when it ends without anyone acting. Passes are idempotent:
// a loop re-evaluated twice is recorded once.
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
	var due []key
	for _, w := range list {
		if w.Until.After(now) {
			if res.Next.IsZero() || w.Until.Before(res.Next) {
				res.Next = w.Until
			}
			continue
		}
		res.Expired++
		if k := (key{w.Team, w.Loop}); !slices.Contains(due, k) {
			due = append(due, k)
		}
	}
	for _, k := range due {
		changed, err := c.ReevaluateLoop(ctx, k.team, k.loop)
		if err != nil {
			return res, err
		}
		res.Loops++
		if changed {
			res.Changed++
		}
	}
	return res, nil
}

// clip shortens s to at most n bytes for messages, never inside a UTF-8
// character (a message must stay valid UTF-8 to be sent at all).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
