package loopgate.loop_test

import data.loopgate.loop

test_latency_below_floor_needs_approval if {
	inp := with_spec({"slo": {"latencyP99Ms": 200, "freshnessMs": 100}})
	has_approval(loop.approval, "LATENCY_BELOW_FLOOR", "spec.slo.latencyP99", "admin", 1) with input as inp
	count(loop.approval) == 1 with input as inp
	count(loop.deny) == 0 with input as inp
}

test_latency_at_floor_no_approval if {
	inp := with_spec({"slo": {"latencyP99Ms": 500, "freshnessMs": 100}})
	not "LATENCY_BELOW_FLOOR" in ids(loop.approval) with input as inp
}

test_latency_floor_comes_from_data if {
	inp := with_spec({"slo": {"latencyP99Ms": 200, "freshnessMs": 100}})
	not "LATENCY_BELOW_FLOOR" in ids(loop.approval) with input as inp with data.loopgate.config.latency_floor_ms as 100
}

test_freshness_not_set_warns if {
	inp := json.remove(base, ["loop/spec/slo/freshnessMs"])
	has(loop.warn, "FRESHNESS_NOT_SET", "spec.slo.freshness") with input as inp
	count(loop.deny) == 0 with input as inp
}

test_freshness_set_no_warning if {
	not "FRESHNESS_NOT_SET" in ids(loop.warn) with input as base
}

test_freshness_looser_than_latency_warns if {
	has(loop.warn, "FRESHNESS_LOOSER_THAN_LATENCY", "spec.slo.freshness") with input as with_spec({"slo": {"freshnessMs": 60000}})
}

test_freshness_tighter_than_latency_no_warning if {
	not "FRESHNESS_LOOSER_THAN_LATENCY" in ids(loop.warn) with input as base
}
