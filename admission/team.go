package admission

import (
	"context"
	"fmt"
	"sort"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/store"
)

// KindTeam is the kind KindError names for an unknown team.
const KindTeam = "team"

// TeamReport is a team's catalog entry beside what its loops use: what the
// portal's team page and `GetTeam` show.
type TeamReport struct {
	Team catalog.Team
	// Loops counts every loop of the team, deleting ones included.
	Loops int
	// Partitions is the figure policy compares with Team.MaxPartitions
	// (Store.TeamPartitions: the loops not being deleted).
	Partitions int64
	// LargestLoop has the most partitions (LargestPartitions) and
	// HighestThroughputLoop the highest declared steady throughput
	// (HighestBytesPerSecond), both among the loops not being deleted.
	LargestLoop           string
	LargestPartitions     int32
	HighestThroughputLoop string
	HighestBytesPerSecond int64
	// MonthlyCost is the forecast of the team's loops per currency, and
	// AboveCostThreshold how many loops are forecast above
	// Team.CostApprovalThreshold (0 when it is not set).
	MonthlyCost        []Money
	AboveCostThreshold int
}

// Money is an amount in one currency.
type Money struct {
	Currency string
	Amount   float64
}

// Team reports team's limits and usage. The caller was authorized for it
// ("team.get"). A team that is not in the catalog is not found.
func (c *Core) Team(ctx context.Context, team string) (*TeamReport, error) {
	t, ok := c.Catalog.Team(team)
	if !ok {
		return nil, &KindError{Kind: KindTeam, Err: fmt.Errorf("teams/%s: %w", team, store.ErrNotFound)}
	}
	t.UsedPartitions = 0
	r := &TeamReport{Team: t}
	var err error
	if r.Partitions, err = c.Store.TeamPartitions(ctx, team, ""); err != nil {
		return nil, err
	}
	costs := map[string]float64{}
	opts := store.ListOptions{Team: team, PageSize: store.MaxPageSize}
	for {
		loops, next, err := c.Store.ListLoops(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, l := range loops {
			r.Loops++
			if !l.Metadata.DeleteTime.IsZero() { // as TeamPartitions counts
				continue
			}
			name := l.Metadata.ResourceName()
			if l.Status.Partitions > r.LargestPartitions {
				r.LargestLoop, r.LargestPartitions = name, l.Status.Partitions
			}
			if bps := l.Spec.Throughput.BytesPerSecond; bps > r.HighestBytesPerSecond {
				r.HighestThroughputLoop, r.HighestBytesPerSecond = name, bps
			}
			if e := c.CostOf(l); e != nil {
				costs[e.Currency] += e.MonthlyTotal
				if t.CostApprovalThreshold > 0 && e.MonthlyTotal > t.CostApprovalThreshold {
					r.AboveCostThreshold++
				}
			}
		}
		if next == "" {
			break
		}
		opts.PageToken = next
	}
	for cur, amount := range costs {
		r.MonthlyCost = append(r.MonthlyCost, Money{Currency: cur, Amount: amount})
	}
	sort.Slice(r.MonthlyCost, func(i, j int) bool { return r.MonthlyCost[i].Currency < r.MonthlyCost[j].Currency })
	return r, nil
}
