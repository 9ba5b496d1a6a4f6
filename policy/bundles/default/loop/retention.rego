package loopgate.loop

retention_cap := config.retention_max_ms[spec.classification]

exceeds_cap(ms, cap) if ms > cap

exceeds_cap(ms, _) if ms < 0

findings.deny contains violation(
	"CLASSIFICATION_UNKNOWN",
	sprintf("classification %q has no retention cap in this policy; use one of: %s", [spec.classification, concat(", ", sort(object.keys(config.retention_max_ms)))]),
	"spec.classification",
) if {
	changes_spec
	not retention_cap
}

findings.deny contains violation(
	"PII_RETENTION_TOO_LONG",
	sprintf("pii may be kept at most %s; spec.retention is %s: lower it to %s or less", [human(retention_cap), human(spec.retentionMs), human(retention_cap)]),
	"spec.retention",
) if {
	changes_spec
	spec.classification == "pii"
	exceeds_cap(spec.retentionMs, retention_cap)
}

findings.deny contains violation(
	"RETENTION_EXCEEDS_CAP",
	sprintf("%s data may be kept at most %s; spec.retention is %s: lower it to %s or less", [spec.classification, human(retention_cap), human(spec.retentionMs), human(retention_cap)]),
	"spec.retention",
) if {
	changes_spec
	spec.classification != "pii"
	exceeds_cap(spec.retentionMs, retention_cap)
}

# Cutting retention sharply deletes data consumers may still need: it is the
# team's own data, so an admin of the team confirms it.
findings.approval contains approval_by(
	"RETENTION_REDUCED",
	sprintf("retention drops from %s to %s, so older records are deleted; an admin of the loop's team must approve", [human(prev), human(spec.retentionMs)]),
	"spec.retention",
	"team-admin",
	1,
) if {
	is_update
	prev := input.previous.spec.retentionMs
	retention_cut(prev, spec.retentionMs)
}

retention_cut(prev, now) if {
	prev > 0
	now >= 0
	now < prev * config.retention_reduction_ratio
}

# From "forever" to any finite retention.
retention_cut(prev, now) if {
	prev < 0
	now >= 0
}

# Lowering the classification of existing data is a governance decision for
# security.
sensitivity := {"public": 0, "internal": 1, "confidential": 2, "pii": 3}

findings.approval contains approval_by(
	"CLASSIFICATION_LOWERED",
	sprintf("classification drops from %s to %s; a security reviewer must confirm the data is no longer that sensitive", [input.previous.spec.classification, spec.classification]),
	"spec.classification",
	"security-reviewer",
	1,
) if {
	is_update
	sensitivity[spec.classification] < sensitivity[input.previous.spec.classification]
}
