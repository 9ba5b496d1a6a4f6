package loopgate.loop_test

import data.loopgate.loop

test_region_unknown_denied if {
	inp := with_spec({"residency": "mars", "classification": "internal"})
	has(loop.deny, "REGION_UNKNOWN", "spec.residency") with input as inp
	not "REGION_NOT_ALLOWED" in ids(loop.deny) with input as inp
}

test_region_unknown_when_catalog_has_no_regions if {
	has(loop.deny, "REGION_UNKNOWN", "spec.residency") with input as with_input({"regions": null})
}

test_region_known_allowed if {
	not "REGION_UNKNOWN" in ids(loop.deny) with input as base
}

test_region_not_allowed_for_team_denied if {
	inp := with_input({
		"loop": {"spec": {"residency": "us", "classification": "internal"}},
		"cluster": {"region": "us"},
		"team": {"allowedRegions": ["eu"]},
	})
	has(loop.deny, "REGION_NOT_ALLOWED", "spec.residency") with input as inp
	count(loop.deny) == 1 with input as inp
}

test_region_allowed_for_team if {
	inp := with_input({"loop": {"spec": {"residency": "us", "classification": "internal"}}, "cluster": {"region": "us"}})
	count(loop.deny) == 0 with input as inp
}

test_pii_outside_pii_regions_denied if {
	inp := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})
	has(loop.deny, "PII_RESIDENCY", "spec.residency") with input as inp
}

test_pii_in_pii_region_allowed if {
	not "PII_RESIDENCY" in ids(loop.deny) with input as base
}

test_non_pii_outside_pii_regions_allowed if {
	inp := with_input({"loop": {"spec": {"residency": "us", "classification": "confidential"}}, "cluster": {"region": "us"}})
	not "PII_RESIDENCY" in ids(loop.deny) with input as inp
}

test_pii_regions_come_from_data if {
	inp := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})
	not "PII_RESIDENCY" in ids(loop.deny) with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
}

# pii in us, on the us cluster.
pii_in_us := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})

test_pii_outside_home_region_needs_two_security_reviewers if {
	inp := pii_in_us
	has_approval(loop.approval, "PII_OUTSIDE_HOME_REGION", "spec.residency", "security-reviewer", 2) with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
	count(loop.approval) == 1 with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
	count(loop.deny) == 0 with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
}

test_pii_outside_home_region_message_names_both_regions if {
	some v in loop.approval with input as pii_in_us with data.loopgate.config.pii_regions as ["eu", "us"]
	v.id == "PII_OUTSIDE_HOME_REGION"
	contains(v.msg, `home region "eu"`)
	contains(v.msg, `"us"`)
}

test_pii_outside_home_region_on_update_needs_review if {
	inp := object.union(pii_in_us, {"operation": "UPDATE", "previous": pii_in_us.loop})
	has_approval(loop.approval, "PII_OUTSIDE_HOME_REGION", "spec.residency", "security-reviewer", 2) with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
}

test_pii_outside_home_region_not_checked_on_delete if {
	inp := object.union(pii_in_us, {"operation": "DELETE", "previous": pii_in_us.loop})
	count(loop.approval) == 0 with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
}

# With the default pii_regions ["eu"] pii outside eu is denied, never held.
test_pii_outside_home_region_never_fires_by_default if {
	not "PII_OUTSIDE_HOME_REGION" in ids(loop.approval) with input as pii_in_us
	has(loop.deny, "PII_RESIDENCY", "spec.residency") with input as pii_in_us
	not "PII_OUTSIDE_HOME_REGION" in ids(loop.approval) with input as base
}

test_pii_in_home_region_no_review if {
	count(loop.approval) == 0 with input as base with data.loopgate.config.pii_regions as ["eu", "us"]
}

test_non_pii_outside_home_region_no_review if {
	inp := with_input({"loop": {"spec": {"residency": "us", "classification": "confidential"}}, "cluster": {"region": "us"}})
	count(loop.approval) == 0 with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
}

test_pii_home_region_comes_from_data if {
	has_approval(loop.approval, "PII_OUTSIDE_HOME_REGION", "spec.residency", "security-reviewer", 2) with input as base
		with data.loopgate.config.pii_regions as ["eu", "us"]
		with data.loopgate.config.pii_home_region as "us"
	count(loop.approval) == 0 with input as pii_in_us
		with data.loopgate.config.pii_regions as ["eu", "us"]
		with data.loopgate.config.pii_home_region as "us"
}

# A bundle whose data.json predates pii_home_region keeps its old behaviour.
test_pii_outside_home_region_off_without_home_region if {
	cfg := object.union(object.remove(data.loopgate.config, {"pii_home_region"}), {"pii_regions": ["eu", "us"]})
	count(loop.approval) == 0 with input as pii_in_us with data.loopgate.config as cfg
	count(loop.deny) == 0 with input as pii_in_us with data.loopgate.config as cfg
}

test_cluster_in_other_region_denied if {
	has(loop.deny, "CLUSTER_REGION_MISMATCH", "spec.residency") with input as with_input({"cluster": {"region": "us"}})
}

test_cluster_in_same_region_allowed if {
	not "CLUSTER_REGION_MISMATCH" in ids(loop.deny) with input as base
}
