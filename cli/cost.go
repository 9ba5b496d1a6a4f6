package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// money formats an amount of a currency compactly: whole units from 1,000 up
// ($2,431), cents below ($62.13); USD with a $ sign, others with their code.
func money(x float64, currency string) string {
	neg := x < 0
	x = math.Abs(x)
	var s string
	if x >= 1000 {
		s = thousands(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
	} else {
		s = strconv.FormatFloat(x, 'f', 2, 64)
	}
	if currency == "" || currency == "USD" {
		s = "$" + s
	} else {
		s += " " + currency
	}
	if neg {
		s = "-" + s
	}
	return s
}

// thousands puts commas into a string of digits.
func thousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

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
