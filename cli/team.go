package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newTeamCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "team TEAM",
		Short: "Show a team's limits beside what its loops use",
		Long: `Show what the platform allows a team (regions, partitions per loop and in
all, throughput per loop, the monthly cost above which a loop needs approval)
beside what its loops use now. Team members see their own teams; security
reviewers, auditors and admins every team.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !strings.HasPrefix(name, "teams/") {
				name = "teams/" + name
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			t, err := a.teams.GetTeam(rctx, &loopgatev1.GetTeamRequest{Name: name})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, t)
			}
			return printTeam(cmd.OutOrStdout(), t)
		},
	}
}

// printTeam writes a team's limits and usage, one line per limit:
//
//	partitions (all loops)   40 of 256   16%
func printTeam(w io.Writer, t *loopgatev1.Team) error {
	lim, use := t.GetLimits(), t.GetUsage()
	fmt.Fprintf(w, "Team:     %s\n", termSafe(t.GetName()))
	fmt.Fprintf(w, "Regions:  %s\n", termSafe(orDash(strings.Join(t.GetAllowedRegions(), ", "))))
	fmt.Fprintf(w, "Loops:    %d\n", use.GetLoops())
	var costs []string
	for _, c := range use.GetMonthlyCost() {
		costs = append(costs, money(c.GetAmount(), c.GetCurrency())+"/month")
	}
	fmt.Fprintf(w, "Cost:     %s\n\n", orDash(strings.Join(costs, " + ")))
	tb := newTable(w, "LIMIT", "USED", "OF", "USE", "BY")
	limit := func(what string, used, of int64, format func(int64) string, by string) {
		if of <= 0 {
			tb.row(what, format(used), "no limit", "-", shortName(by))
			return
		}
		tb.row(what, format(used), format(of), fmt.Sprintf("%d%%", used*100/of), shortName(by))
	}
	count := func(n int64) string { return fmt.Sprint(n) }
	rate := func(n int64) string { return sizeString(n) + "/s" }
	limit("partitions, all loops", use.GetPartitions(), int64(lim.GetMaxPartitions()), count, "")
	limit("partitions, largest loop", int64(use.GetLargestLoopPartitions()), int64(lim.GetMaxPartitionsPerLoop()), count, use.GetLargestLoop())
	limit("throughput, busiest loop", use.GetHighestBytesPerSecond(), lim.GetMaxBytesPerSecond(), rate, use.GetHighestThroughputLoop())
	if err := tb.flush(); err != nil {
		return err
	}
	if th := lim.GetCostApprovalThreshold(); th > 0 {
		fmt.Fprintf(w, "\nLoops forecast above the cost approval threshold (%g a month, in each cluster's currency): %d\n", th, use.GetLoopsAboveCostThreshold())
	}
	return nil
}
