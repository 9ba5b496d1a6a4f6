package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newDeleteCmd() *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete TEAM/NAME",
		Short: "Delete a loop and, with it, its topics, ACLs and quotas",
		Long: `Request the deletion of a loop. The loop turns DELETING; loopgate then removes
its topics (and their data), ACLs and quotas from the cluster, and the loop
disappears. With --wait, loopctl waits until it is gone.`,
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
			// The etag of what we just read guards against deleting a loop
			// that someone changed in between.
			current, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
			if err != nil {
				return err
			}
			deleted, err := a.loops.DeleteLoop(rctx, &loopgatev1.DeleteLoopRequest{
				Name: name, Etag: current.GetEtag(), RequestId: newRequestID(),
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output != FormatTable {
				if err := printMessage(out, a.output, deleted); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "%s deletion requested\n", termSafe(deleted.GetName()))
			}
			if wait {
				err := a.waitGone(cmd.Context(), out, deleted, timeout)
				var exit *ExitError
				if errors.As(err, &exit) && exit.Err != nil {
					// Run prints nothing for an ExitError: say why here.
					fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", termSafeText(exit.Err.Error()))
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the loop and its resources are gone")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}
