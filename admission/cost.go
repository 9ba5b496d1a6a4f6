package admission

import (
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// forecast is l's monthly cost forecast on cl (package cost, docs/cost.md):
// what policy sees as input.derived.cost and plans show.
func forecast(l *loop.Loop, cl catalog.Cluster) *cost.Estimate {
	rf := cl.ReplicationFactor
	if rf < 1 {
		rf = 1
	}
	var parts int32
	for _, st := range l.Spec.Streams {
		p := st.Partitions
		if p == 0 {
			p = provisioning.DerivePartitions(l.Spec.Throughput, l.Spec.SLO, rf)
		}
		parts += p
	}
	e := cost.Forecast(cost.ForLoop(&l.Spec, parts, cl))
	return &e
}

// CostOf is the monthly cost forecast of a stored loop's current spec on
// its cluster, computed when the loop is read (nothing is stored); nil when
// the loop's cluster is not in the catalog.
func (c *Core) CostOf(l *loop.Loop) *cost.Estimate {
	cl, ok := c.clusterOf(l)
	if !ok {
		return nil
	}
	return forecast(l, cl)
}
