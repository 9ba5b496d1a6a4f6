package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// Approvals are a workflow. Policy lists the reasons a generation needs
// review, each with the role that may approve it and how many distinct
// approvers it needs (policy.Violation.Role, .Approvals). A reviewer's
// approval counts for every outstanding reason their role may approve; the
// generation is provisioned when every reason has enough approvers. Nobody
// reviews a generation they requested; a review names the etag it was made
// for, so a spec change after the reviewer read the loop fails the review;
// a new generation starts with no reviews. A rejection holds the generation
// as REJECTED, with nothing of it provisioned.

// maxCommentBytes bounds a review comment.
const maxCommentBytes = 2048

// ReasonProgress is one approval reason and who approved it so far.
type ReasonProgress struct {
	loop.Violation
	Required   int
	ApprovedBy []string
}

// Done reports whether the reason has enough approvers.
func (r ReasonProgress) Done() bool { return len(r.ApprovedBy) >= r.Required }

// Progress lists the approval reasons of st's generation with their
// approvers, from the reviews on record.
func Progress(st *loop.Status) []ReasonProgress {
	out := make([]ReasonProgress, 0, len(st.ApprovalReasons))
	for _, v := range st.ApprovalReasons {
		p := ReasonProgress{Violation: v, Required: max(v.Approvals, 1)}
		for _, r := range st.Reviews {
			if r.Verdict == loop.VerdictApproved && slices.Contains(r.Reasons, v.ID) && !slices.Contains(p.ApprovedBy, r.Reviewer) {
				p.ApprovedBy = append(p.ApprovedBy, r.Reviewer)
			}
		}
		out = append(out, p)
	}
	return out
}

// outstandingText says what a generation still waits for.
func outstandingText(ps []ReasonProgress) string {
	var parts []string
	for _, p := range ps {
		if !p.Done() {
			parts = append(parts, fmt.Sprintf("%s needs %d more %s approval(s)", p.ID, p.Required-len(p.ApprovedBy), roleOrDefault(p.Role)))
		}
	}
	if len(parts) == 0 {
		return "every approval reason is approved"
	}
	return "awaiting review: " + strings.Join(parts, "; ")
}

func roleOrDefault(r string) string {
	if r == "" {
		return RoleSecurityReviewer
	}
	return r
}

// MayApproveReason reports whether id's roles may approve reason v of a
// loop of team. A platform admin may approve any reason.
func MayApproveReason(id Identity, team string, v loop.Violation) bool {
	if HasRole(id, RoleAdmin) {
		return true
	}
	switch role := roleOrDefault(v.Role); role {
	case RoleTeamAdmin:
		return HasRole(id, RoleTeamAdmin) && slices.Contains(id.Teams, team)
	case RoleSecurityReviewer:
		return HasRole(id, RoleSecurityReviewer)
	default:
		return false // RoleAdmin (handled above) or a role loopgate does not know
	}
}

// approvable returns the outstanding reasons id may approve now: not yet
// approved by id, still short of approvers, and within id's roles.
func approvable(id Identity, l *loop.Loop) []string {
	var ids []string
	for _, p := range Progress(&l.Status) {
		if !p.Done() && !slices.Contains(p.ApprovedBy, id.Subject) && MayApproveReason(id, l.Metadata.Team, p.Violation) {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// awaitsReview reports whether the loop's current generation is held for
// review (not approved, not rejected, not being deleted).
func awaitsReview(l *loop.Loop) bool {
	return l.Metadata.DeleteTime.IsZero() && l.Status.State == loop.StatePendingApproval &&
		l.Status.NeedsApproval && l.Status.ApprovedGeneration < l.Metadata.Generation
}

// ReviewRequest is an approval or a rejection.
type ReviewRequest struct {
	Team, Name string
	Etag       string // required: the loop as the reviewer read it
	Comment    string
	RequestID  string
}

// Approve records id's approval of the loop's current generation.
func (c *Core) Approve(ctx context.Context, id Identity, r ReviewRequest) (*loop.Loop, error) {
	return c.review(ctx, id, r, loop.VerdictApproved)
}

// Reject records id's rejection of the loop's current generation.
func (c *Core) Reject(ctx context.Context, id Identity, r ReviewRequest) (*loop.Loop, error) {
	return c.review(ctx, id, r, loop.VerdictRejected)
}

func (c *Core) review(ctx context.Context, id Identity, r ReviewRequest, verdict string) (*loop.Loop, error) {
	resource := loop.Metadata{Team: r.Team, Name: r.Name}.ResourceName()
	action := "loop.approve"
	if verdict == loop.VerdictRejected {
		action = "loop.reject"
	}
	var problems loop.FieldErrors
	if r.Etag == "" {
		problems = append(problems, loop.FieldError{Field: "etag", Message: "required: the etag of the loop as you reviewed it (loopctl sends it)"})
	}
	if verdict == loop.VerdictRejected && strings.TrimSpace(r.Comment) == "" {
		problems = append(problems, loop.FieldError{Field: "comment", Message: "required: say why, so the team knows what to change"})
	}
	if len(r.Comment) > maxCommentBytes {
		problems = append(problems, loop.FieldError{Field: "comment", Message: fmt.Sprintf("%d bytes: at most %d", len(r.Comment), maxCommentBytes)})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, action, resource, WriteOptions{RequestID: r.RequestID}, problems)
	}
	var out *loop.Loop
	var refusal *refusalNote
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		refusal = nil
		cur, err := tx.GetLoop(ctx, r.Team, r.Name)
		if err != nil {
			return fmt.Errorf("loop %s/%s: %w", r.Team, r.Name, err)
		}
		gen := cur.Metadata.Generation
		refuse := func(outcome string, e error, reason, msg string) error {
			refusal = &refusalNote{outcome: outcome, reason: reason, msg: msg}
			return e
		}
		if r.Etag != cur.Metadata.Etag {
			msg := fmt.Sprintf("loop %s/%s changed since you read it (now generation %d): review it again", r.Team, r.Name, gen)
			return refuse(audit.OutcomeDenied, fmt.Errorf("%s: %w", msg, store.ErrEtagMismatch), "ETAG_MISMATCH", msg)
		}
		if !awaitsReview(cur) {
			msg := fmt.Sprintf("loop %s/%s is not awaiting review (state %s, generation %d)", r.Team, r.Name, cur.Status.State, gen)
			return refuse(audit.OutcomeDenied, &PreconditionError{Reason: "NOT_PENDING_APPROVAL", Message: msg}, "NOT_PENDING_APPROVAL", msg)
		}
		if cur.Status.RequestedBy == id.Subject {
			msg := fmt.Sprintf("%s requested generation %d of %s/%s and may not review it: another reviewer must", id.Subject, gen, r.Team, r.Name)
			return refuse(audit.OutcomeForbidden, &ForbiddenError{Reason: "SELF_APPROVAL", Message: msg}, "SELF_APPROVAL", msg)
		}
		reasons := approvable(id, cur)
		if len(reasons) == 0 {
			reason, msg := "APPROVER_ROLE_REQUIRED", fmt.Sprintf("%s may not review %s/%s: %s (the caller's roles: %s)",
				id.Subject, r.Team, r.Name, outstandingText(Progress(&cur.Status)), rolesText(id.Roles))
			for _, p := range Progress(&cur.Status) {
				if slices.Contains(p.ApprovedBy, id.Subject) {
					reason, msg = "ALREADY_APPROVED", fmt.Sprintf("%s already approved generation %d of %s/%s; %s", id.Subject, gen, r.Team, r.Name, outstandingText(Progress(&cur.Status)))
				}
			}
			if reason == "ALREADY_APPROVED" {
				return refuse(audit.OutcomeDenied, &PreconditionError{Reason: reason, Message: msg}, reason, msg)
			}
			return refuse(audit.OutcomeForbidden, &ForbiddenError{Reason: reason, Message: msg}, reason, msg)
		}
		now := c.now()
		st := cur.Status
		st.Reviews = append(slices.Clone(st.Reviews), loop.Review{
			Reviewer: id.Subject, Verdict: verdict, Comment: r.Comment, Generation: gen, Reasons: reasons, Time: now,
		})
		progress := Progress(&st)
		complete := !slices.ContainsFunc(progress, func(p ReasonProgress) bool { return !p.Done() })
		switch {
		case verdict == loop.VerdictRejected:
			st.State = loop.StateRejected
			st.SetCondition(loop.Condition{Type: loop.CondApproved, Status: loop.False, Reason: "Rejected",
				Message: fmt.Sprintf("rejected by %s: %s", id.Subject, r.Comment), ObservedGeneration: gen}, now)
		case complete:
			var approvers []string
			for _, rv := range st.Reviews {
				if rv.Verdict == loop.VerdictApproved && !slices.Contains(approvers, rv.Reviewer) {
					approvers = append(approvers, rv.Reviewer)
				}
			}
			st.ApprovedGeneration = gen
			st.ApprovedBy = strings.Join(approvers, ", ")
			st.State = loop.StateProvisioning
			st.SetCondition(loop.Condition{Type: loop.CondApproved, Status: loop.True, Reason: "Approved",
				Message: "approved by " + st.ApprovedBy, ObservedGeneration: gen}, now)
		default:
			st.SetCondition(loop.Condition{Type: loop.CondApproved, Status: loop.False, Reason: "AwaitingApproval",
				Message: outstandingText(progress), ObservedGeneration: gen}, now)
		}
		if err := tx.UpdateStatus(ctx, r.Team, r.Name, st); err != nil {
			return err
		}
		ev := eventFor(id, action, resource, r.RequestID, audit.OutcomeOK, map[string]any{
			"generation": gen, "comment": r.Comment, "requestedBy": cur.Status.RequestedBy,
			"reasons": reasons, "approvalComplete": complete && verdict == loop.VerdictApproved,
			"outstanding": outstandingText(progress),
		})
		ev.DecisionID = cur.Status.DecisionID
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		cur.Status = st
		out = cur
		return nil
	})
	if err := c.settleRefusal(ctx, id, action, resource, r.RequestID, r.Comment, refusal, err); err != nil {
		return nil, err
	}
	c.notify(out)
	return out, nil
}

type refusalNote struct{ outcome, reason, msg string }

// settleRefusal audits the refusal a transaction noted, if any (with the
// caller's comment), and passes the transaction's error on.
func (c *Core) settleRefusal(ctx context.Context, id Identity, action, resource, requestID, comment string, refusal *refusalNote, err error) error {
	if refusal != nil {
		c.auditRefusal(ctx, id, action, resource, requestID, refusal.outcome, refusal.reason, refusal.msg+commentNote(comment))
	}
	return err
}

func commentNote(comment string) string {
	if comment == "" {
		return ""
	}
	return " (comment: " + comment + ")"
}

// ListApprovals returns a page of the loops awaiting a review id may give,
// of team ("" = every team id may approve for).
func (c *Core) ListApprovals(ctx context.Context, id Identity, opts store.ListOptions) ([]*loop.Loop, string, error) {
	all, teams := c.authz().Visible(id, "loop.listApprovals")
	if !all && opts.Team == "" && len(teams) == 1 {
		opts.Team = teams[0]
	}
	loops, next, err := c.Store.ListLoops(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	loops = slices.DeleteFunc(loops, func(l *loop.Loop) bool {
		return (!all && !slices.Contains(teams, l.Metadata.Team)) || !awaitsReview(l) ||
			l.Status.RequestedBy == id.Subject || len(approvable(id, l)) == 0
	})
	return loops, next, nil
}
