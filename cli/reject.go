package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newRejectCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "reject TEAM/NAME --comment WHY",
		Short: "Reject a loop that is PENDING_APPROVAL (reviewers only)",
		Long: `Reject the current generation of a loop that policy held for approval: the
loop becomes REJECTED and nothing of that generation is provisioned. The team
changes the spec (the new generation is reviewed afresh) or deletes the loop.
Whoever may approve one of its reasons may reject it, except the requester.
--comment is required: the team sees it. As with approve, the rejection is
for what you see: if the loop changed after you read it, it fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(comment) == "" {
				return errors.New("--comment is required: say why the loop is rejected, the team sees it (see `loopctl reject --help`)")
			}
			current, rejected, err := a.review(cmd, args[0], func(ctx context.Context, name, etag string) (*loopgatev1.Loop, error) {
				return a.loops.RejectLoop(ctx, &loopgatev1.RejectLoopRequest{Name: name, Etag: etag, Comment: comment, RequestId: newRequestID()})
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output != FormatTable {
				return printMessage(out, a.output, rejected)
			}
			gen := current.GetGeneration()
			if gen == 0 {
				gen = rejected.GetGeneration()
			}
			fmt.Fprintf(out, "%s rejected (generation %d): nothing of it will be provisioned\n", termSafe(rejected.GetName()), gen)
			fmt.Fprintln(out, "  the team changes the spec (it is reviewed afresh) or deletes the loop")
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why it is rejected (required); shown to the team and recorded in the audit trail")
	return cmd
}
