package loopgate.loop_test

import data.loopgate.loop

waiver(rule) := {"rule": rule, "until": "2026-12-01T00:00:00Z", "reason": "migration INC-42"}

waived(inp, ws) := object.union(inp, {"waivers": ws})

no_owners := with_spec({"owners": []})

test_waived_deny_becomes_a_warning if {
	inp := waived(no_owners, [waiver("OWNERS_REQUIRED")])
	count(loop.deny) == 0 with input as inp
	has(loop.warn, "OWNERS_REQUIRED", "spec.owners") with input as inp
}

test_waived_warning_says_until_when_and_why if {
	some v in loop.warn with input as waived(no_owners, [waiver("OWNERS_REQUIRED")])
	v.id == "OWNERS_REQUIRED"
	startswith(v.msg, "waived until 2026-12-01T00:00:00Z (migration INC-42); otherwise denied: a loop needs at least one owner")
	object.keys(v) == {"id", "msg", "field"}
}

test_waiver_lifts_only_its_rule if {
	inp := waived(with_spec({"owners": [], "retentionMs": 2678400000}), [waiver("OWNERS_REQUIRED")]) # pii for 31d
	ids(loop.deny) == {"PII_RETENTION_TOO_LONG"} with input as inp
}

test_waiver_for_a_rule_that_did_not_fire_changes_nothing if {
	inp := waived(base, [waiver("OWNERS_REQUIRED")])
	count(loop.deny) == 0 with input as inp
	count(loop.warn) == 0 with input as inp
	count(loop.approval) == 0 with input as inp
}

test_waived_approval_becomes_a_warning if {
	inp := waived(with_spec({"slo": {"latencyP99Ms": 200, "freshnessMs": 100}}), [waiver("LATENCY_BELOW_FLOOR")])
	count(loop.approval) == 0 with input as inp
	some v in loop.warn with input as inp
	v.id == "LATENCY_BELOW_FLOOR"
	v.field == "spec.slo.latencyP99"
	contains(v.msg, "otherwise held for approval")
	object.keys(v) == {"id", "msg", "field"} # no role or approvals on a warning
}

test_every_waived_finding_of_a_rule_becomes_a_warning if {
	streams := [{"name": "a", "schema": {"format": "avro", "definition": ""}}, {"name": "b", "schema": {"format": "avro", "definition": ""}}]
	inp := waived(with_spec({"streams": streams, "action": null}), [waiver("SCHEMA_REQUIRED")])
	not "SCHEMA_REQUIRED" in ids(loop.deny) with input as inp
	has(loop.warn, "SCHEMA_REQUIRED", "spec.streams[0].schema") with input as inp
	has(loop.warn, "SCHEMA_REQUIRED", "spec.streams[1].schema") with input as inp
}

test_unwaivable_rule_still_denies if {
	pii_us := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})
	inp := waived(pii_us, [waiver("PII_RESIDENCY")])
	has(loop.deny, "PII_RESIDENCY", "spec.residency") with input as inp
	has(loop.warn, "WAIVER_IGNORED", "") with input as inp
	not has(loop.warn, "PII_RESIDENCY", "spec.residency") with input as inp
}

test_unwaivable_approval_still_needs_two_reviewers if {
	pii_us := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})
	inp := waived(pii_us, [waiver("PII_OUTSIDE_HOME_REGION")])
	has_approval(loop.approval, "PII_OUTSIDE_HOME_REGION", "spec.residency", "security-reviewer", 2) with input as inp
		with data.loopgate.config.pii_regions as ["eu", "us"]
}

test_pii_rules_are_unwaivable if {
	every id in ["PII_RESIDENCY", "PII_OUTSIDE_HOME_REGION", "PII_RETENTION_TOO_LONG"] {
		loop.unwaivable(id)
	}
}

test_unwaivable_comes_from_data if {
	pii_us := with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}})
	inp := waived(pii_us, [waiver("PII_RESIDENCY")])
	count(loop.deny) == 0 with input as inp with data.loopgate.config.unwaivable as []
}

test_longest_waiver_is_shown if {
	ws := [
		waiver("OWNERS_REQUIRED"),
		{"rule": "OWNERS_REQUIRED", "until": "2027-01-31T12:00:00.5+01:00", "reason": "longer"},
		{"rule": "OWNERS_REQUIRED", "until": "2026-06-01T00:00:00Z", "reason": "shorter"},
	]
	warns := [v | some v in loop.warn with input as waived(no_owners, ws); v.id == "OWNERS_REQUIRED"]
	count(warns) == 1
	startswith(warns[0].msg, "waived until 2027-01-31T12:00:00.5+01:00 (longer)")
}

test_no_waivers_key_is_no_waivers if {
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as json.remove(no_owners, ["waivers"])
	has(loop.deny, "OWNERS_REQUIRED", "spec.owners") with input as waived(no_owners, [])
}

test_findings_are_the_decision_without_waivers if {
	inp := with_spec({"owners": [], "consumers": [], "slo": {"latencyP99Ms": 200, "freshnessMs": 0}})
	loop.deny == loop.findings.deny with input as inp
	loop.warn == loop.findings.warn with input as inp
	loop.approval == loop.findings.approval with input as inp
}
