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

test_cluster_in_other_region_denied if {
	has(loop.deny, "CLUSTER_REGION_MISMATCH", "spec.residency") with input as with_input({"cluster": {"region": "us"}})
}

test_cluster_in_same_region_allowed if {
	not "CLUSTER_REGION_MISMATCH" in ids(loop.deny) with input as base
}
