# The default loopgate policy for analytics loops.
#
# loopgate evaluates data.loopgate.loop for every create, update and delete
# and reads three sets from it. Each element is an object
# {"id": "UPPER_SNAKE", "msg": "what is wrong and what to do", "field": "spec.x"}:
#
#   deny      the request is refused
#   warn      the request is accepted; the warnings are shown to the requester
#   approval  the request is accepted but held as PENDING_APPROVAL until every
#             element has been approved by enough reviewers of its role
#
# The rules of this bundle do not add to those sets directly: each adds its
# finding to findings.deny, findings.warn or findings.approval, and
# waivers.rego makes deny, warn and approval from the findings and the loop's
# waivers (input.waivers): a waived deny or approval finding becomes a
# warning, except for the rule ids listed in data.loopgate.config.unwaivable.
# A new rule follows the same pattern (findings.deny contains violation(...)).
#
# Approval elements (and only they) may also carry who approves, and how many:
#   "role"       "team-admin" (an admin of the loop's team), "security-reviewer"
#                or "admin" (a platform admin); default "security-reviewer"
#   "approvals"  how many distinct approvers are needed, an integer 1 to 5;
#                default 1
# Build them with approval_by(id, msg, field, role, n). Any other role or
# count, or a role or approvals in a deny or warn element, makes the bundle
# unable to decide: loopgate refuses the request (POLICY_EVALUATION_FAILED).
#
# The default bundle routes its approvals as follows:
#   RETENTION_REDUCED        team-admin         1  (the team's own data)
#   CLASSIFICATION_LOWERED   security-reviewer  1
#   LATENCY_BELOW_FLOOR      admin              1  (platform capacity)
#   PII_OUTSIDE_HOME_REGION  security-reviewer  2
#   COST_ABOVE_BUDGET        team-admin         1  (the team's own budget)
#
# input (canonical units: durations in ms, sizes in bytes):
#   input.operation  "CREATE" | "UPDATE" | "DELETE"
#   input.loop       {metadata, spec} of the requested loop: the JSON encoding of loop.Loop
#   input.previous   the current loop on UPDATE and DELETE, else null
#   input.derived    {topics, acls, quotas} that provisioning would create for input.loop;
#                    topics[_].partitions is always set (derived when the spec omits it);
#                    and cost, the loop's monthly cost forecast on the cluster's storage
#                    model: {model, currency, priceList, monthlyTotal, items [{component,
#                    detail, monthly}], replayPerDay, basis} (docs/cost.md)
#   input.team       the owning team's catalog entry: allowedRegions, maxPartitionsPerLoop,
#                    maxPartitions, maxBytesPerSecond, usedPartitions (partitions of the
#                    team's other loops), costApprovalThreshold (per month; 0 = none)
#   input.cluster    the target cluster: name, region, zones, replicationFactor
#   input.regions    every region key of the cluster catalog (the regions that exist)
#   input.actor      {subject, teams, roles} of the caller
#   input.waivers    the waivers of this loop active now, each {rule, until (RFC 3339),
#                    reason}; null when there are none (loopgate leaves out expired and
#                    revoked ones)
#
# Configuration lives in data.loopgate.config (data.json of this bundle):
#   pii_regions                regions where PII may be stored (default ["eu"])
#   pii_home_region            the region PII normally lives in (default "eu"); PII stored
#                              in another of pii_regions needs two security reviewers
#                              (PII_OUTSIDE_HOME_REGION). With the default pii_regions ["eu"]
#                              that never happens; without this key the rule is off
#   retention_max_ms           maximum retention per classification (default public 365d,
#                              internal 180d, confidential 90d, pii 30d); a negative retention
#                              (Kafka's "keep forever") always exceeds the cap
#   latency_floor_ms           a p99 latency SLO below this needs approval (default 500 ms):
#                              tighter SLOs cost dedicated capacity
#   retention_reduction_ratio  an update that cuts retention below this fraction of the
#                              previous value needs approval (default 0.5): data is lost
#   unwaivable                 rule ids no waiver lifts (see waivers.rego for why each)
#
# Team limits of 0 in the catalog mean "not limited".
#
# The rules are grouped by concern: residency.rego, retention.rego, capacity.rego,
# streams.rego (schemas and partitions), slo.rego, cost.rego and ownership.rego; waivers.rego
# makes the decision. Each has a *_test.rego beside it (package loopgate.loop_test).
package loopgate.loop

config := data.loopgate.config

# A request changes the spec on CREATE and UPDATE; those are the operations the
# spec rules judge. Deleting a loop never makes the organisation less compliant,
# so the default bundle allows every DELETE.
changes_spec if input.operation in {"CREATE", "UPDATE"}

is_update if input.operation == "UPDATE"

findings.deny contains violation(
	"OPERATION_UNKNOWN",
	sprintf("operation %v is not one of CREATE, UPDATE, DELETE; this is a loopgate bug, please report it", [input.operation]),
	"operation",
) if {
	not input.operation in {"CREATE", "UPDATE", "DELETE"}
}

spec := input.loop.spec

# violation builds one element of deny or warn, or of approval when one
# security reviewer may approve it.
violation(id, msg, field) := {"id": id, "msg": msg, "field": field}

# approval_by builds one element of approval that n distinct approvers of role
# must approve.
approval_by(id, msg, field, role, n) := {"id": id, "msg": msg, "field": field, "role": role, "approvals": n}

# list returns obj[key] when it is an array and [] otherwise: Go encodes a
# nil slice as null or omits it, and a missing list counts as an empty one.
# (Passing obj.key to a function would make the call undefined when the key
# is missing, silently skipping the rule.)
list(obj, key) := x if {
	x := object.get(obj, key, [])
	is_array(x)
} else := []

# number returns obj[key] when it is a number and 0 otherwise.
number(obj, key) := x if {
	x := object.get(obj, key, 0)
	is_number(x)
} else := 0

# human formats a duration in ms the way loop specs write it (30d, 72h, 90s).
human(ms) := sprintf("%sd", [format_int(ms / 86400000, 10)]) if {
	ms > 0
	ms % 86400000 == 0
} else := sprintf("%sh", [format_int(ms / 3600000, 10)]) if {
	ms > 0
	ms % 3600000 == 0
} else := sprintf("%sm", [format_int(ms / 60000, 10)]) if {
	ms > 0
	ms % 60000 == 0
} else := sprintf("%ss", [format_int(ms / 1000, 10)]) if {
	ms > 0
	ms % 1000 == 0
} else := "forever" if {
	ms < 0
} else := sprintf("%vms", [ms])

# Partitions of every topic the loop would have, as derived by provisioning.
loop_partitions := sum([number(t, "partitions") | some t in list(input.derived, "topics")])

# topic_name is the default topic of a stream: <team>.<loop>.<stream>.
topic_name(stream) := sprintf("%s.%s.%s", [input.loop.metadata.team, input.loop.metadata.name, stream])
