package loopgate.loop_test

import data.loopgate.loop

test_owners_required_when_empty if {
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as with_spec({"owners": []})
}

test_owners_required_when_null if {
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as with_spec({"owners": null})
}

test_owners_required_when_only_blank if {
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as with_spec({"owners": ["  "]})
}

test_owners_present_allowed if {
	not "OWNERS_REQUIRED" in ids(loop.deny) with input as with_spec({"owners": ["bo@example.com", "ana@example.com"]})
}

test_no_consumers_warns if {
	has(loop.warn, "NO_CONSUMERS", "spec.consumers") with input as with_spec({"consumers": null})
	count(loop.deny) == 0 with input as with_spec({"consumers": null})
}

test_consumers_present_no_warning if {
	not "NO_CONSUMERS" in ids(loop.warn) with input as base
}

test_no_action_warns if {
	inp := json.remove(base, ["loop/spec/action"])
	has(loop.warn, "NO_ACTION_STREAM", "spec.action") with input as inp
}

test_action_present_no_warning if {
	not "NO_ACTION_STREAM" in ids(loop.warn) with input as base
}

# Go omits empty consumer lists (omitempty): a missing key is no consumers.
test_no_consumers_warns_when_key_missing if {
	has(loop.warn, "NO_CONSUMERS", "spec.consumers") with input as json.remove(base, ["loop/spec/consumers"])
}

test_owners_required_when_key_missing if {
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as json.remove(base, ["loop/spec/owners"])
}
