package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newApproveCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "approve TEAM/NAME",
		Short: "Approve a loop that is PENDING_APPROVAL (reviewers only)",
		Long: `Approve the current generation of a loop that policy held for approval, so
that loopgate provisions it. Only reviewers may approve, and never their own
requests. The approval is for what you see: if the loop changes after you
read it, the approval fails and you review again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseLoopRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			current, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
			if err != nil {
				return err
			}
			approved, err := a.loops.ApproveLoop(rctx, &loopgatev1.ApproveLoopRequest{
				Name: name, Etag: current.GetEtag(), Comment: comment, RequestId: newRequestID(),
			})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, approved)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s approved (generation %d), state %s\n",
				approved.GetName(), approved.GetStatus().GetApprovedGeneration(), approved.GetStatus().GetState())
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why it is approved; recorded in the audit trail")
	return cmd
}
