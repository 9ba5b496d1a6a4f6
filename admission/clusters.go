package admission

import (
	"slices"
	"strings"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/reconciler"
)

// ClusterView is a cluster of the catalog with what the last drift pass
// found on it, as one caller may see it.
type ClusterView struct {
	catalog.Cluster
	Drift *reconciler.DriftReport // nil: no pass ran in this process
}

// Clusters lists the catalog's clusters with their last drift pass. The
// drifted loops a report names are cut to the teams id may list loops of
// ("loop.list"), and given as resource names (teams/T/loops/N); the counts
// stay whole.
func (c *Core) Clusters(id Identity) []ClusterView {
	reports := map[string]reconciler.DriftReport{}
	if c.Drift != nil {
		for _, r := range c.Drift() {
			reports[r.Cluster] = r
		}
	}
	all, teams := c.authz().Visible(id, "loop.list")
	visible := func(keys []string) []string {
		var out []string
		for _, k := range keys {
			team, name, ok := strings.Cut(k, "/")
			if !ok {
				continue
			}
			if all || slices.Contains(teams, team) {
				out = append(out, "teams/"+team+"/loops/"+name)
			}
		}
		return out
	}
	out := make([]ClusterView, 0, len(c.Catalog.Clusters))
	for _, cl := range c.Catalog.Clusters {
		v := ClusterView{Cluster: cl}
		if r, ok := reports[cl.Name]; ok {
			r.Names = visible(r.Names)
			r.LastDrifted = visible(r.LastDrifted)
			v.Drift = &r
		}
		out = append(out, v)
	}
	return out
}
