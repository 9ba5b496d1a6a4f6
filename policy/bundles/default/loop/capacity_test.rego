package loopgate.loop_test

import data.loopgate.loop

# base derives 12 + 6 = 18 partitions.

test_partitions_per_loop_over_limit_denied if {
	inp := with_input({"team": {"maxPartitionsPerLoop": 17}})
	has(loop.deny, "PARTITIONS_PER_LOOP_EXCEEDED", "spec.streams") with input as inp
}

test_partitions_per_loop_at_limit_allowed if {
	not "PARTITIONS_PER_LOOP_EXCEEDED" in ids(loop.deny) with input as with_input({"team": {"maxPartitionsPerLoop": 18}})
}

test_partitions_per_loop_unlimited_when_zero if {
	not "PARTITIONS_PER_LOOP_EXCEEDED" in ids(loop.deny) with input as with_input({"team": {"maxPartitionsPerLoop": 0}})
}

test_partitions_per_team_over_budget_denied if {
	inp := with_input({"team": {"usedPartitions": 239}}) # 239 + 18 > 256
	has(loop.deny, "PARTITIONS_PER_TEAM_EXCEEDED", "spec.streams") with input as inp
}

test_partitions_per_team_at_budget_allowed if {
	not "PARTITIONS_PER_TEAM_EXCEEDED" in ids(loop.deny) with input as with_input({"team": {"usedPartitions": 238}})
}

test_partitions_counted_from_derived_topics if {
	inp := with_input({"derived": {"topics": [{"name": "growth.checkout-nudge.events", "partitions": 100}]}})
	has(loop.deny, "PARTITIONS_PER_LOOP_EXCEEDED", "spec.streams") with input as inp
}

test_throughput_over_team_limit_denied if {
	inp := with_spec({"throughput": {"bytesPerSecond": 10485761}})
	has(loop.deny, "THROUGHPUT_EXCEEDS_TEAM_LIMIT", "spec.throughput.bytesPerSecond") with input as inp
}

test_throughput_at_team_limit_allowed if {
	not "THROUGHPUT_EXCEEDS_TEAM_LIMIT" in ids(loop.deny) with input as with_spec({"throughput": {"bytesPerSecond": 10485760}})
}

test_partitions_per_team_counts_when_used_missing if {
	inp := json.remove(with_input({"team": {"maxPartitions": 10}}), ["team/usedPartitions"])
	has(loop.deny, "PARTITIONS_PER_TEAM_EXCEEDED", "spec.streams") with input as inp
}
