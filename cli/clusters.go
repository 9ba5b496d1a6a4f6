package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newClustersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clusters",
		Short: "List the Kafka clusters loops are provisioned on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.clusters.ListClusters(rctx, &loopgatev1.ListClustersRequest{})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			return printClusters(cmd.OutOrStdout(), resp.GetClusters())
		},
	}
}

// printClusters writes the NAME REGION BOOTSTRAP RF LAST-DRIFT-PASS table.
func printClusters(w io.Writer, clusters []*loopgatev1.Cluster) error {
	t := newTable(w, "NAME", "REGION", "BOOTSTRAP", "RF", "LAST DRIFT PASS")
	for _, c := range clusters {
		t.row(c.GetName(), c.GetRegion(), strings.Join(c.GetBootstrapServers(), ","), strconv.Itoa(int(c.GetReplicationFactor())),
			driftSummary(c.GetLastDriftPass()))
	}
	return t.flush()
}

// driftSummary is one line about a drift pass: when, how long, what it
// found ("-" when none ran in the process that answered).
func driftSummary(d *loopgatev1.DriftPass) string {
	if d == nil {
		return "-"
	}
	s := fmt.Sprintf("%s, %s: %d loops, %d drifted", d.GetStartTime().AsTime().Local().Format(time.TimeOnly),
		d.GetDuration().AsDuration().Round(time.Millisecond), d.GetLoops(), d.GetDrifted())
	if names := d.GetDriftedLoops(); len(names) > 0 {
		s += " (" + termSafe(strings.Join(names, ", ")) + ")"
	}
	if d.GetUnsettled() > 0 {
		s += fmt.Sprintf(", %d converging", d.GetUnsettled())
	}
	if e := d.GetError(); e != "" {
		s += "; cannot observe: " + termSafe(e)
	}
	return s
}
