package cli

import (
	"io"
	"strconv"
	"strings"

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

// printClusters writes the NAME REGION BOOTSTRAP RF table.
func printClusters(w io.Writer, clusters []*loopgatev1.Cluster) error {
	t := newTable(w, "NAME", "REGION", "BOOTSTRAP", "RF")
	for _, c := range clusters {
		t.row(c.GetName(), c.GetRegion(), strings.Join(c.GetBootstrapServers(), ","), strconv.Itoa(int(c.GetReplicationFactor())))
	}
	return t.flush()
}
