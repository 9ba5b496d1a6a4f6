package loopgate.loop

# What a loop costs comes out of its team's budget: when the cost forecast
# (input.derived.cost.monthlyTotal, per month in the forecast's currency) is
# above the team's threshold (input.team.costApprovalThreshold, from the team
# catalog), an admin of the loop's team confirms the team means to spend it.
# A threshold of 0 (or none) and a missing forecast turn the rule off.
findings.approval contains approval_by(
	"COST_ABOVE_BUDGET",
	sprintf("the loop is forecast to cost %s %s per month on %s storage, above team %q's approval threshold of %s %s; an admin of the loop's team must approve, or lower spec.throughput or spec.retention", [money(total), forecast.currency, forecast.model, input.team.name, money(threshold), forecast.currency]),
	"spec.throughput",
	"team-admin",
	1,
) if {
	changes_spec
	threshold := number(input.team, "costApprovalThreshold")
	threshold > 0
	forecast := cost_forecast
	total := number(forecast, "monthlyTotal")
	total > threshold
}

# cost_forecast is input.derived.cost, with its currency and model defaulted
# so the message never makes the rule undefined.
cost_forecast := object.union({"currency": "USD", "model": "unknown"}, c) if {
	c := object.get(object.get(input, "derived", {}), "cost", null)
	is_object(c)
}

# money formats an amount with two decimals (OPA's sprintf prints a whole
# number given to %.2f as an integer error).
money(x) := sprintf("%d.%02d", [(c - (c % 100)) / 100, c % 100]) if {
	c := round(x * 100)
}
