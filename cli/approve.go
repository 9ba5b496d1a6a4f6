package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newApproveCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "approve TEAM/NAME",
		Short: "Approve a loop that is PENDING_APPROVAL (reviewers only)",
		Long: `Approve the current generation of a loop that policy held for approval, for
every approval reason your role may approve. loopgate provisions the loop
once every reason has as many approvers as it needs; this prints which
reasons your approval counted for and which are still outstanding. Nobody
approves their own request. The approval is for what you see: if the loop
changes after you read it, the approval fails and you review again.

` + "`loopctl approvals`" + ` lists what awaits you; ` + "`loopctl reject`" + ` rejects instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			current, approved, err := a.review(cmd, args[0], func(ctx context.Context, name, etag string) (*loopgatev1.Loop, error) {
				return a.loops.ApproveLoop(ctx, &loopgatev1.ApproveLoopRequest{Name: name, Etag: etag, Comment: comment, RequestId: newRequestID()})
			})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, approved)
			}
			return printApproved(cmd.OutOrStdout(), current, approved)
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why it is approved; recorded in the audit trail")
	return cmd
}

// printApproved reports an ApproveLoop: the loop approved or the approval
// recorded, which reasons it counted for, and which reasons still lack
// approvals, from before (the loop as read) and after (as returned).
func printApproved(w io.Writer, before, after *loopgatev1.Loop) error {
	st := after.GetStatus()
	gen := before.GetGeneration()
	if gen == 0 {
		gen = after.GetGeneration()
	}
	open := outstanding(st.GetApprovals())
	if len(open) == 0 {
		fmt.Fprintf(w, "%s approved (generation %d), state %s\n", termSafe(after.GetName()), gen, st.GetState())
	} else {
		fmt.Fprintf(w, "%s: approval recorded (generation %d), state %s\n", termSafe(after.GetName()), gen, st.GetState())
	}
	if len(st.GetApprovals()) == 0 {
		return nil
	}
	if counted := countedReasons(before.GetStatus(), st); len(counted) > 0 {
		fmt.Fprintf(w, "  your approval counted for: %s\n", termSafe(strings.Join(counted, ", ")))
	}
	if len(open) == 0 {
		fmt.Fprintln(w, "  nothing outstanding: every approval reason has its approvers")
		return nil
	}
	fmt.Fprintln(w, "  still outstanding:")
	var buf strings.Builder
	t := newTable(&buf, "REASON", "ROLE", "APPROVED", "MISSING")
	for _, p := range open {
		t.row(p.GetId(), p.GetRole(), approvalCount(p), fmt.Sprint(required(p)-len(p.GetApprovedBy())))
	}
	if err := t.flush(); err != nil {
		return err
	}
	return writeIndented(w, indentText(buf.String()))
}

// indentText prefixes every line of text with two spaces.
func indentText(text string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		if line != "" {
			b.WriteString("  " + line)
		}
	}
	return b.String()
}

// review reads the loop ref names and sends a review of what it read: the
// etag binds the approval or rejection to the generation the reviewer saw.
// It returns the loop as read and as the review left it.
func (a *app) review(cmd *cobra.Command, ref string, send func(ctx context.Context, name, etag string) (*loopgatev1.Loop, error)) (before, after *loopgatev1.Loop, err error) {
	name, err := parseLoopRef(ref)
	if err != nil {
		return nil, nil, err
	}
	if err := a.connect(); err != nil {
		return nil, nil, err
	}
	rctx, cancel := rpcContext(cmd.Context())
	defer cancel()
	before, err = a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
	if err != nil {
		return nil, nil, err
	}
	after, err = send(rctx, name, before.GetEtag())
	return before, after, err
}
