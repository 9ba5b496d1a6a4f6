package loopgate.loop_test

import data.loopgate.loop

# base has a forecast of 62.13 USD/month and no threshold.

test_cost_above_threshold_needs_team_admin if {
	inp := with_input({"team": {"costApprovalThreshold": 50}})
	has_approval(loop.approval, "COST_ABOVE_BUDGET", "spec.throughput", "team-admin", 1) with input as inp
	count(loop.approval) == 1 with input as inp
	count(loop.deny) == 0 with input as inp
}

test_cost_message_names_amounts if {
	inp := with_input({"team": {"costApprovalThreshold": 50}})
	some v in loop.approval with input as inp
	v.id == "COST_ABOVE_BUDGET"
	contains(v.msg, "62.13 USD per month on broker-local storage")
	contains(v.msg, "threshold of 50.00 USD")
}

test_cost_at_threshold_no_approval if {
	not "COST_ABOVE_BUDGET" in ids(loop.approval) with input as with_input({"team": {"costApprovalThreshold": 62.13}})
}

test_cost_no_threshold_no_approval if {
	not "COST_ABOVE_BUDGET" in ids(loop.approval) with input as with_input({"derived": {"cost": {"monthlyTotal": 1000000}}})
	not "COST_ABOVE_BUDGET" in ids(loop.approval) with input as json.remove(with_input({"derived": {"cost": {"monthlyTotal": 1000000}}}), ["team/costApprovalThreshold"])
}

test_cost_without_forecast_no_approval if {
	inp := json.remove(with_input({"team": {"costApprovalThreshold": 1}}), ["derived/cost"])
	not "COST_ABOVE_BUDGET" in ids(loop.approval) with input as inp
	count(loop.deny) == 0 with input as inp
}

test_cost_on_update_needs_approval if {
	inp := object.union(update({"description": "more"}), {"team": {"costApprovalThreshold": 10}})
	"COST_ABOVE_BUDGET" in ids(loop.approval) with input as inp
}

test_cost_delete_never_needs_approval if {
	inp := object.union(with_input({"team": {"costApprovalThreshold": 1}}), {"operation": "DELETE", "previous": base.loop})
	count(loop.approval) == 0 with input as inp
}

test_cost_approval_can_be_waived if {
	inp := with_input({
		"team": {"costApprovalThreshold": 50},
		"waivers": [{"rule": "COST_ABOVE_BUDGET", "until": "2099-01-01T00:00:00Z", "reason": "FIN-7"}],
	})
	not "COST_ABOVE_BUDGET" in ids(loop.approval) with input as inp
	"COST_ABOVE_BUDGET" in ids(loop.warn) with input as inp
}

test_cost_currency_from_the_forecast if {
	inp := with_input({"team": {"costApprovalThreshold": 50}, "derived": {"cost": {"currency": "EUR"}}})
	some v in loop.approval with input as inp
	contains(v.msg, "62.13 EUR per month")
}
