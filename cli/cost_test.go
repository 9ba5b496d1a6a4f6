package cli

import (
	"strings"
	"testing"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		x        float64
		currency string
		want     string
	}{
		{0, "USD", "$0.00"},
		{62.126, "", "$62.13"},
		{999.994, "USD", "$999.99"},
		{2431.4, "USD", "$2,431"},
		{1234567.8, "USD", "$1,234,568"},
		{-689, "USD", "-$689.00"},
		{12.5, "EUR", "12.50 EUR"},
	} {
		if got := money(tc.x, tc.currency); got != tc.want {
			t.Errorf("money(%v, %q) = %q, want %q", tc.x, tc.currency, got, tc.want)
		}
	}
}

func TestPlanCostLines(t *testing.T) {
	forecast := func(total float64) *loopgatev1.CostForecast {
		return &loopgatev1.CostForecast{StorageModel: "broker-local", Currency: "USD", MonthlyTotal: total, PriceList: "aws-us-east-1",
			ReplayPerDay: 11.52, Items: []*loopgatev1.CostItem{{Component: "storage", Monthly: total - 10}, {Component: "cross-az", Monthly: 10}}}
	}
	if got := planCostLines(&loopgatev1.PlanLoopResponse{}); got != nil {
		t.Errorf("no forecast: %q", got)
	}
	got := strings.Join(planCostLines(&loopgatev1.PlanLoopResponse{Cost: forecast(2431)}), "\n")
	if want := "cost: $2,431/month on broker-local (prices aws-us-east-1)\n  storage $2,421, cross-az $10.00; replay $11.52/day"; got != want {
		t.Errorf("create:\n%s\nwant\n%s", got, want)
	}
	got = planCostLines(&loopgatev1.PlanLoopResponse{Cost: forecast(3120), CurrentCost: forecast(2431)})[0]
	if want := "cost: $2,431/month → $3,120/month (+$689.00) on broker-local (prices aws-us-east-1)"; got != want {
		t.Errorf("update: %q, want %q", got, want)
	}
	got = planCostLines(&loopgatev1.PlanLoopResponse{Cost: forecast(2431), CurrentCost: forecast(3120)})[0]
	if !strings.Contains(got, "(-$689.00)") {
		t.Errorf("a cheaper update: %q", got)
	}
	// A current cost in another currency is not compared.
	cur := forecast(10)
	cur.Currency = "EUR"
	if got := planCostLines(&loopgatev1.PlanLoopResponse{Cost: forecast(20), CurrentCost: cur})[0]; strings.Contains(got, "→") {
		t.Errorf("currencies compared: %q", got)
	}
}
