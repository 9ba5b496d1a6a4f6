package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newApprovalsCmd() *cobra.Command {
	var team string
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List the loops awaiting an approval you may give",
		Long: `List the loops in PENDING_APPROVAL that wait for an approval your role may
give and that you neither requested nor approved yet (of every team, or of
--team), with each approval reason: the rule, the role that may approve it
and how many approvals it has of how many it needs.

Review one with ` + "`loopctl get TEAM/NAME`" + `, then ` + "`loopctl approve TEAM/NAME`" + ` or
` + "`loopctl reject TEAM/NAME --comment WHY`" + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			loops, err := a.listApprovals(cmd.Context(), team)
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListApprovalsResponse{Loops: loops})
			}
			if len(loops) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no loops await your approval")
				return nil
			}
			return printApprovals(cmd.OutOrStdout(), loops, time.Now())
		},
	}
	cmd.Flags().StringVar(&team, "team", "", "only the loops of this team")
	return cmd
}

// listApprovals pages through ListApprovals until the last page.
func (a *app) listApprovals(ctx context.Context, team string) ([]*loopgatev1.Loop, error) {
	return pageAll(ctx, func(ctx context.Context, token string) ([]*loopgatev1.Loop, string, error) {
		resp, err := a.loops.ListApprovals(ctx, &loopgatev1.ListApprovalsRequest{Parent: teamParent(team), PageSize: listPageSize, PageToken: token})
		return resp.GetLoops(), resp.GetNextPageToken(), err
	})
}

// printApprovals writes the NAME GENERATION REQUESTED BY UPDATED APPROVALS
// table: one row per loop, its reasons as "ID role approved/required",
// joined by "; ".
func printApprovals(w io.Writer, loops []*loopgatev1.Loop, now time.Time) error {
	t := newTable(w, "NAME", "GENERATION", "REQUESTED BY", "UPDATED", "APPROVALS")
	for _, l := range loops {
		reasons := make([]string, 0, len(l.GetStatus().GetApprovals()))
		for _, p := range l.GetStatus().GetApprovals() {
			reasons = append(reasons, p.GetId()+" "+orDash(p.GetRole())+" "+approvalCount(p))
		}
		t.row(shortName(l.GetName()), strconv.FormatInt(l.GetGeneration(), 10), orDash(l.GetStatus().GetRequestedBy()),
			age(l.GetUpdateTime(), now), strings.Join(reasons, "; "))
	}
	return t.flush()
}

// required is how many distinct approvers a reason needs; at least one.
func required(p *loopgatev1.ApprovalProgress) int {
	return max(int(p.GetRequired()), 1)
}

// approvalCount renders a reason's progress as "approved/required", e.g. 1/2.
func approvalCount(p *loopgatev1.ApprovalProgress) string {
	return fmt.Sprintf("%d/%d", len(p.GetApprovedBy()), required(p))
}

// outstanding returns the reasons that still lack approvals.
func outstanding(ps []*loopgatev1.ApprovalProgress) []*loopgatev1.ApprovalProgress {
	var out []*loopgatev1.ApprovalProgress
	for _, p := range ps {
		if len(p.GetApprovedBy()) < required(p) {
			out = append(out, p)
		}
	}
	return out
}

// countedReasons returns the reasons an approval counted for, from the
// loop before (what the reviewer read) and after ApproveLoop: the reasons of
// the review the call added when the server lists reviews, else the reasons
// whose approvers grew.
func countedReasons(before, after *loopgatev1.LoopStatus) []string {
	if rs := after.GetReviews(); len(rs) > len(before.GetReviews()) && rs[len(rs)-1].GetVerdict() == "APPROVED" {
		return rs[len(rs)-1].GetReasons()
	}
	prev := map[string][]string{}
	for _, p := range before.GetApprovals() {
		prev[p.GetId()] = p.GetApprovedBy()
	}
	var ids []string
	for _, p := range after.GetApprovals() {
		for _, who := range p.GetApprovedBy() {
			if !slices.Contains(prev[p.GetId()], who) {
				ids = append(ids, p.GetId())
				break
			}
		}
	}
	return ids
}

// printApprovalProgress writes the Approvals table (every reason with its
// role and approvers) and the Reviews table of a loop's status, indented;
// nothing for a status without them.
func printApprovalProgress(w io.Writer, st *loopgatev1.LoopStatus) error {
	if len(st.GetApprovals()) > 0 {
		fmt.Fprintln(w, "\nApprovals:")
		var buf strings.Builder
		t := newTable(&buf, "REASON", "ROLE", "APPROVED", "APPROVED BY", "FIELD", "MESSAGE")
		for _, p := range st.GetApprovals() {
			t.row(p.GetId(), p.GetRole(), approvalCount(p), strings.Join(p.GetApprovedBy(), ","), p.GetField(), p.GetMsg())
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := writeIndented(w, buf.String()); err != nil {
			return err
		}
	}
	if len(st.GetReviews()) > 0 {
		fmt.Fprintln(w, "\nReviews:")
		var buf strings.Builder
		t := newTable(&buf, "TIME", "REVIEWER", "VERDICT", "GENERATION", "REASONS", "COMMENT")
		for _, r := range st.GetReviews() {
			t.row(shortTime(r.GetTime()), r.GetReviewer(), r.GetVerdict(), strconv.FormatInt(r.GetGeneration(), 10),
				strings.Join(r.GetReasons(), ","), r.GetComment())
		}
		if err := t.flush(); err != nil {
			return err
		}
		return writeIndented(w, buf.String())
	}
	return nil
}
