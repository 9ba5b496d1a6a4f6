package admission

import (
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// forecast is l's monthly cost forecast on cl with partitions partitions
// (package cost, docs/cost.md): what policy sees as input.derived.cost and
// plans show.
func forecast(l *loop.Loop, cl catalog.Cluster, partitions int32) *cost.Estimate {
	e := cost.Forecast(cost.ForLoop(&l.Spec, partitions, cl))
	return &e
}

// CostOf is the monthly cost forecast of a stored loop's current spec on
// its cluster, computed when the loop is read (nothing is stored), with the
// partitions admission recorded (derived again for a loop stored before it
// recorded them); nil when the loop's cluster is not in the catalog.
func (c *Core) CostOf(l *loop.Loop) *cost.Estimate {
	cl, ok := c.clusterOf(l)
	if !ok {
		return nil
	}
	parts := l.Status.Partitions
	if parts <= 0 {
		derived := provisioning.Derive(l, cl)
		parts = derived.Partitions()
	}
	return forecast(l, cl, parts)
}
