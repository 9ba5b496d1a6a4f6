package loopgate.loop

# The decision: deny, warn and approval, made from the findings of the rules
# and the loop's waivers.
#
# A waiver is a time-limited exception to one rule for one loop, granted by a
# security reviewer. loopgate passes the waivers of the loop being decided
# that are active at that moment as input.waivers, each
# {"rule": "RULE_ID", "until": "2026-12-01T00:00:00Z", "reason": "why"};
# expired and revoked waivers are not passed, so this bundle does not look at
# the clock.
#
# A deny or approval finding whose rule id is waived neither refuses nor holds
# the request: it is shown as a warning with the same id and field, saying
# until when and why the rule is waived. Warnings are shown whether or not
# they are waived. A waiver for a rule that did not fire changes nothing.
#
# Some rules are never waived, whatever the input says: their ids are listed
# in data.loopgate.config.unwaivable (data.json). A waiver naming one of them
# is ignored, with a WAIVER_IGNORED warning so that the loop's team sees it.
# The default list, and why each rule is on it:
#
#   PII_RESIDENCY            personal data stored outside the regions approved
#                            for it breaks data-protection law (cross-border
#                            transfer rules); no internal exception makes that
#                            lawful.
#   PII_OUTSIDE_HOME_REGION  this approval already is the exception process for
#                            moving personal data to another approved region,
#                            with two security reviewers (four eyes); a waiver,
#                            granted by one person, would bypass it.
#   PII_RETENTION_TOO_LONG   keeping personal data no longer than needed is a
#                            legal duty (storage limitation), not a preference.
#   CLASSIFICATION_UNKNOWN   data of unknown sensitivity has no retention cap:
#                            nothing would bound how long it is kept.
#   CLUSTER_REGION_MISMATCH  the data would land in another jurisdiction than
#                            the one the loop declares; a catalog bug to fix.
#   REGION_UNKNOWN           no cluster serves the region: a waiver cannot make
#                            the loop provisionable.
#   PARTITIONS_SHRINK        Kafka cannot shrink a topic without deleting its
#                            data; loopgate's planner refuses it in any case.
#   OPERATION_UNKNOWN        a guard against loopgate bugs.
#
# Rules of this bundle add to findings.deny, findings.warn and
# findings.approval; only the rules below add to deny, warn and approval.

# unwaivable reports whether the bundle never waives the rule id. (A
# function, not a set: the decision document stays as small as it was.)
unwaivable(id) if id in list(config, "unwaivable")

# waived reports whether the loop has an active waiver for the rule id and
# the rule may be waived.
waived(id) if {
	some w in list(input, "waivers")
	w.rule == id
	not unwaivable(id)
}

# waiver returns the waiver of a rule that lasts longest (loopgate may pass
# several for one rule): the one shown in the warning.
waiver(id) := max([[time.parse_rfc3339_ns(w.until), w] |
	some w in list(input, "waivers")
	w.rule == id
])[1]

deny contains f if {
	some f in findings.deny
	not waived(f.id)
}

approval contains f if {
	some f in findings.approval
	not waived(f.id)
}

warn contains f if {
	some f in findings.warn
}

warn contains violation(
	f.id,
	sprintf("waived until %s (%s); otherwise denied: %s", [w.until, w.reason, f.msg]),
	object.get(f, "field", ""),
) if {
	some f in findings.deny
	waived(f.id)
	w := waiver(f.id)
}

warn contains violation(
	f.id,
	sprintf("waived until %s (%s); otherwise held for approval: %s", [w.until, w.reason, f.msg]),
	object.get(f, "field", ""),
) if {
	some f in findings.approval
	waived(f.id)
	w := waiver(f.id)
}

warn contains violation(
	"WAIVER_IGNORED",
	sprintf("the waiver of %s until %s is ignored: this policy never waives %s; change the spec instead", [w.rule, w.until, w.rule]),
	"",
) if {
	some w in list(input, "waivers")
	unwaivable(w.rule)
}
