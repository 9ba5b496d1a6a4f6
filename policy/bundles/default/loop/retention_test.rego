package loopgate.loop_test

import data.loopgate.loop

days(n) := n * 86400000

test_pii_retention_over_30d_denied if {
	has(loop.deny, "PII_RETENTION_TOO_LONG", "spec.retention") with input as with_spec({"retentionMs": days(31)})
	not "RETENTION_EXCEEDS_CAP" in ids(loop.deny) with input as with_spec({"retentionMs": days(31)})
}

test_pii_retention_forever_denied if {
	has(loop.deny, "PII_RETENTION_TOO_LONG", "spec.retention") with input as with_spec({"retentionMs": -1})
}

test_pii_retention_30d_allowed if {
	not "PII_RETENTION_TOO_LONG" in ids(loop.deny) with input as with_spec({"retentionMs": days(30)})
}

test_pii_retention_message_names_the_cap if {
	some v in loop.deny with input as with_spec({"retentionMs": days(45)})
	v.id == "PII_RETENTION_TOO_LONG"
	contains(v.msg, "30d")
	contains(v.msg, "45d")
}

test_retention_cap_per_classification_denied if {
	every c in ["public", "internal", "confidential"] {
		cap := data.loopgate.config.retention_max_ms[c]
		has(loop.deny, "RETENTION_EXCEEDS_CAP", "spec.retention") with input as with_spec({"classification": c, "retentionMs": cap + 1})
	}
}

test_retention_at_cap_allowed if {
	every c in ["public", "internal", "confidential"] {
		cap := data.loopgate.config.retention_max_ms[c]
		count(loop.deny) == 0 with input as with_spec({"classification": c, "retentionMs": cap})
	}
}

test_retention_forever_exceeds_cap if {
	has(loop.deny, "RETENTION_EXCEEDS_CAP", "spec.retention") with input as with_spec({"classification": "public", "retentionMs": -1})
}

test_unknown_classification_denied if {
	has(loop.deny, "CLASSIFICATION_UNKNOWN", "spec.classification") with input as with_spec({"classification": "secret"})
}

test_retention_halved_on_update_needs_approval if {
	inp := update({"retentionMs": days(1)}) # from 72h to 24h
	has_approval(loop.approval, "RETENTION_REDUCED", "spec.retention", "team-admin", 1) with input as inp
	count(loop.approval) == 1 with input as inp
	count(loop.deny) == 0 with input as inp
}

test_retention_reduced_by_half_or_less_no_approval if {
	not "RETENTION_REDUCED" in ids(loop.approval) with input as update({"retentionMs": 129600000}) # 36h: exactly half
}

test_retention_increase_no_approval if {
	not "RETENTION_REDUCED" in ids(loop.approval) with input as update({"retentionMs": days(10)})
}

test_retention_from_forever_needs_approval if {
	inp := object.union(update({"classification": "internal", "retentionMs": days(7)}), {"previous": {"spec": {"classification": "internal", "retentionMs": -1}}})
	has_approval(loop.approval, "RETENTION_REDUCED", "spec.retention", "team-admin", 1) with input as inp
}

test_retention_reduced_on_create_no_approval if {
	not "RETENTION_REDUCED" in ids(loop.approval) with input as with_spec({"retentionMs": 1000})
}

test_classification_lowered_needs_approval if {
	inp := update({"classification": "internal"})
	has_approval(loop.approval, "CLASSIFICATION_LOWERED", "spec.classification", "security-reviewer", 1) with input as inp
	count(loop.approval) == 1 with input as inp
}

test_classification_lowered_and_retention_cut_route_to_their_roles if {
	inp := update({"classification": "internal", "retentionMs": days(1)})
	has_approval(loop.approval, "CLASSIFICATION_LOWERED", "spec.classification", "security-reviewer", 1) with input as inp
	has_approval(loop.approval, "RETENTION_REDUCED", "spec.retention", "team-admin", 1) with input as inp
	count(loop.approval) == 2 with input as inp
}

test_classification_raised_no_approval if {
	inp := object.union(update({}), {"previous": {"spec": {"classification": "internal"}}})
	not "CLASSIFICATION_LOWERED" in ids(loop.approval) with input as inp
}
