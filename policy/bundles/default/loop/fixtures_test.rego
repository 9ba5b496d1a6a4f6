# Shared fixtures of the default bundle's tests: a typical compliant loop and
# helpers to vary it. Every test changes one thing and checks one rule.
package loopgate.loop_test

import data.loopgate.loop

base := {
	"operation": "CREATE",
	"loop": {
		"metadata": {"name": "checkout-nudge", "team": "growth"},
		"spec": base_spec,
	},
	"previous": null,
	"derived": {
		"topics": [
			{"name": "growth.checkout-nudge.actions", "partitions": 6, "replicationFactor": 3, "configs": {}},
			{"name": "growth.checkout-nudge.events", "partitions": 12, "replicationFactor": 3, "configs": {}},
		],
		"acls": [],
		"quotas": [],
		"cost": {
			"model": "broker-local",
			"currency": "USD",
			"priceList": "aws-us-east-1",
			"monthlyTotal": 62.13,
			"items": [
				{"component": "storage", "detail": "", "monthly": 62.13},
				{"component": "cross-az", "detail": "", "monthly": 0},
				{"component": "compute", "detail": "", "monthly": 0},
			],
			"replayPerDay": 0,
			"basis": "",
		},
	},
	"team": {
		"name": "growth",
		"allowedRegions": ["eu", "us"],
		"maxPartitionsPerLoop": 64,
		"maxPartitions": 256,
		"maxBytesPerSecond": 10485760,
		"usedPartitions": 40,
		"costApprovalThreshold": 0,
	},
	"cluster": {"name": "eu-1", "region": "eu", "replicationFactor": 3, "bootstrapServers": ["127.0.0.1:9092"]},
	"regions": ["eu", "us"],
	"actor": {"subject": "ana@example.com", "teams": ["growth"], "roles": ["developer"]},
	"waivers": null,
}

base_spec := {
	"owners": ["ana@example.com"],
	"classification": "pii",
	"residency": "eu",
	"retentionMs": 259200000,
	"slo": {"latencyP99Ms": 2000, "freshnessMs": 1000},
	"throughput": {"bytesPerSecond": 2097152, "peakFactor": 3, "recordBytes": 600},
	"streams": [
		{"name": "events", "partitions": 12, "schema": {"format": "avro", "definition": "{\"type\":\"record\",\"name\":\"E\",\"fields\":[]}"}},
		{"name": "actions", "schema": {"format": "avro", "definition": "{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}"}},
	],
	"producers": [{"principal": "User:checkout-api", "streams": ["events"]}],
	"consumers": [{"principal": "User:nudge-engine", "group": "nudge-engine", "streams": ["events"]}],
	"action": {"stream": "actions"},
}

# with_spec returns the base input with spec fields replaced (deep merge).
with_spec(patch) := object.union(base, {"loop": {"spec": patch}})

# with_input returns the base input with top-level fields replaced (deep merge).
with_input(patch) := object.union(base, patch)

# update returns an UPDATE of the base loop to a spec changed by patch.
update(patch) := object.union(with_spec(patch), {"operation": "UPDATE", "previous": base.loop})

# has reports whether a set of violations holds the id at the field.
has(set, id, field) if {
	some v in set
	v.id == id
	v.field == field
	v.msg != ""
}

# has_approval reports whether an approval set holds the id at the field, to
# be approved by n distinct approvers of role.
has_approval(set, id, field, role, n) if {
	some v in set
	v.id == id
	v.field == field
	v.msg != ""
	v.role == role
	v.approvals == n
}

ids(set) := {v.id | some v in set}

# Inputs that trigger every approval rule of the default bundle, with pii
# allowed in us as well as eu.
approval_inputs := [
	update({"retentionMs": 86400000}), # RETENTION_REDUCED
	update({"classification": "internal"}), # CLASSIFICATION_LOWERED
	with_spec({"slo": {"latencyP99Ms": 200, "freshnessMs": 100}}), # LATENCY_BELOW_FLOOR
	with_input({"loop": {"spec": {"residency": "us"}}, "cluster": {"region": "us"}}), # PII_OUTSIDE_HOME_REGION
	with_input({"team": {"costApprovalThreshold": 50}}), # COST_ABOVE_BUDGET
]

test_approval_inputs_trigger_every_approval_rule if {
	got := {id |
		some inp in approval_inputs
		some id in ids(loop.approval) with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
	}
	got == {"RETENTION_REDUCED", "CLASSIFICATION_LOWERED", "LATENCY_BELOW_FLOOR", "PII_OUTSIDE_HOME_REGION", "COST_ABOVE_BUDGET"}
}

# The contract of loop.rego's header: every approval names one of the three
# roles and 1 to 5 approvers, so loopgate can route it.
test_every_approval_names_a_role_and_a_count if {
	every inp in approval_inputs {
		approvals := loop.approval with input as inp with data.loopgate.config.pii_regions as ["eu", "us"]
		count(approvals) > 0
		every v in approvals {
			v.role in {"team-admin", "security-reviewer", "admin"}
			is_number(v.approvals)
			v.approvals == round(v.approvals)
			v.approvals >= 1
			v.approvals <= 5
		}
	}
}

# Deny and warn elements carry no role or approvals: loopgate refuses a
# decision whose deny or warn elements do.
test_deny_and_warn_carry_no_approvers if {
	inp := with_spec({"owners": [], "consumers": [], "retentionMs": -1, "slo": {"freshnessMs": 0}})
	deny := loop.deny with input as inp
	warn := loop.warn with input as inp
	count(deny) > 0
	count(warn) > 0
	every v in deny | warn {
		object.keys(v) == {"id", "msg", "field"}
	}
}

test_approval_by_builds_an_approval_element if {
	loop.approval_by("X", "m", "spec.x", "admin", 3) == {"id": "X", "msg": "m", "field": "spec.x", "role": "admin", "approvals": 3}
}

test_base_loop_is_allowed_without_approval if {
	count(loop.deny) == 0 with input as base
	count(loop.approval) == 0 with input as base
	count(loop.warn) == 0 with input as base
}

test_delete_is_always_allowed if {
	inp := object.union(with_spec({"owners": [], "residency": "mars", "retentionMs": -1}), {"operation": "DELETE"})
	count(loop.deny) == 0 with input as inp
}

test_unknown_operation_denied if {
	has(loop.deny, "OPERATION_UNKNOWN", "operation") with input as with_input({"operation": "PATCH"})
}

test_known_operations_not_refused_as_unknown if {
	every op in ["CREATE", "UPDATE", "DELETE"] {
		not "OPERATION_UNKNOWN" in ids(loop.deny) with input as with_input({"operation": op, "previous": base.loop})
	}
}

test_human_durations if {
	loop.human(2592000000) == "30d"
	loop.human(259200000) == "3d"
	loop.human(129600000) == "36h"
	loop.human(120000) == "2m"
	loop.human(1500) == "1500ms"
	loop.human(30000) == "30s"
	loop.human(-1) == "forever"
}
