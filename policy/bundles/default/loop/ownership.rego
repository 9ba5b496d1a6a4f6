package loopgate.loop

# Every loop has at least one accountable person.
findings.deny contains violation(
	"OWNERS_REQUIRED",
	"a loop needs at least one owner: list the accountable people in spec.owners (e.g. [ana@example.com])",
	"spec.owners",
) if {
	changes_spec
	count([o | some o in list(spec, "owners"); trim_space(o) != ""]) == 0
}

# Warnings: a loop nobody consumes, or that never names where it closes, is
# probably unfinished.
findings.warn contains violation(
	"NO_CONSUMERS",
	"the loop has no consumers, so no one reads its streams; add spec.consumers or remove the loop",
	"spec.consumers",
) if {
	changes_spec
	count(list(spec, "consumers")) == 0
}

findings.warn contains violation(
	"NO_ACTION_STREAM",
	"spec.action is not set, so producer-to-action latency cannot be measured against the SLO; name the stream where the loop closes",
	"spec.action",
) if {
	changes_spec
	not spec.action.stream
}
