package loopgate.loop_test

import data.loopgate.loop

test_schema_definition_missing_denied_with_index if {
	streams := [base_spec.streams[0], {"name": "actions", "schema": {"format": "avro", "definition": " "}}]
	has(loop.deny, "SCHEMA_REQUIRED", "spec.streams[1].schema") with input as with_spec({"streams": streams})
	not has(loop.deny, "SCHEMA_REQUIRED", "spec.streams[0].schema") with input as with_spec({"streams": streams})
}

test_schema_missing_entirely_denied if {
	streams := [{"name": "events", "partitions": 12}]
	has(loop.deny, "SCHEMA_REQUIRED", "spec.streams[0].schema") with input as with_spec({"streams": streams})
}

test_schema_present_allowed if {
	not "SCHEMA_REQUIRED" in ids(loop.deny) with input as base
}

test_partitions_shrink_denied_with_index if {
	prev := object.union(base.loop, {"spec": {"streams": [
		{"name": "events", "partitions": 24, "schema": base_spec.streams[0].schema},
		base_spec.streams[1],
	]}})
	inp := object.union(update({}), {"previous": prev})
	has(loop.deny, "PARTITIONS_SHRINK", "spec.streams[0].partitions") with input as inp
}

test_partitions_shrink_to_derived_count_denied if {
	# actions had 8 explicit partitions; the new spec omits them and
	# provisioning derives 6.
	prev := object.union(base.loop, {"spec": {"streams": [
		base_spec.streams[0],
		{"name": "actions", "partitions": 8, "schema": base_spec.streams[1].schema},
	]}})
	inp := object.union(update({}), {"previous": prev})
	has(loop.deny, "PARTITIONS_SHRINK", "spec.streams[1].partitions") with input as inp
}

test_partitions_grow_allowed if {
	streams := [object.union(base_spec.streams[0], {"partitions": 24}), base_spec.streams[1]]
	not "PARTITIONS_SHRINK" in ids(loop.deny) with input as update({"streams": streams})
}

test_partitions_unchanged_allowed if {
	count(loop.deny) == 0 with input as update({})
}

test_new_stream_on_update_allowed if {
	streams := array.concat(base_spec.streams, [{"name": "audit", "partitions": 1, "schema": base_spec.streams[1].schema}])
	not "PARTITIONS_SHRINK" in ids(loop.deny) with input as update({"streams": streams})
}

test_partitions_shrink_only_checked_on_update if {
	streams := [object.union(base_spec.streams[0], {"partitions": 1}), base_spec.streams[1]]
	not "PARTITIONS_SHRINK" in ids(loop.deny) with input as with_spec({"streams": streams})
}
