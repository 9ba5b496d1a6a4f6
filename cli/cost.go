package cli

import (
	"fmt"
	"math"
	"strings"

	"github.com/loopgate/loopgate/cost"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// money formats an amount as cost.Money does ($2,431, $62.13, 12.50 EUR).
func money(x float64, currency string) string { return cost.Money(x, currency) }

// costSplit is a forecast's components and replay price, e.g.
// "storage $62.13, cross-az $0.00; replay $1.20/day".
func costSplit(c *loopgatev1.CostForecast) string {
	parts := make([]string, 0, len(c.GetItems()))
	for _, it := range c.GetItems() {
		parts = append(parts, it.GetComponent()+" "+money(it.GetMonthly(), c.GetCurrency()))
	}
	return strings.Join(parts, ", ") + "; replay " + money(c.GetReplayPerDay(), c.GetCurrency()) + "/day"
}

// costSummary is one line of a loop's cost forecast:
// "$62.13/month on broker-local (storage $62.13, ...; replay $0.00/day)".
func costSummary(c *loopgatev1.CostForecast) string {
	return fmt.Sprintf("%s/month on %s (%s)", money(c.GetMonthlyTotal(), c.GetCurrency()), c.GetStorageModel(), costSplit(c))
}

// planCostLines are a plan's forecast: the total per month, for an update
// the change from what the loop costs now, then the split.
//
//	cost: $2,431/month → $3,120/month (+$689) on broker-local (prices aws-us-east-1)
//	  storage $2,074, cross-az $1,046, compute $0.00; replay $11.52/day
func planCostLines(p *loopgatev1.PlanLoopResponse) []string {
	c := p.GetCost()
	if c == nil {
		return nil
	}
	cur := c.GetCurrency()
	line := "cost: "
	if prev := p.GetCurrentCost(); prev != nil && prev.GetCurrency() == cur {
		delta := c.GetMonthlyTotal() - prev.GetMonthlyTotal()
		sign := "+"
		if delta < 0 {
			sign = "-"
		}
		line += fmt.Sprintf("%s/month → %s/month (%s%s)", money(prev.GetMonthlyTotal(), cur), money(c.GetMonthlyTotal(), cur),
			sign, money(math.Abs(delta), cur))
	} else {
		line += money(c.GetMonthlyTotal(), cur) + "/month"
	}
	line += " on " + c.GetStorageModel()
	if c.GetPriceList() != "" {
		line += " (prices " + c.GetPriceList() + ")"
	}
	return []string{line, "  " + costSplit(c)}
}
