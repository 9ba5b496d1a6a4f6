package loopgate.loop

# A p99 below the floor needs dedicated capacity and tuning: a platform admin,
# who owns the capacity, confirms the loop really needs it.
findings.approval contains approval_by(
	"LATENCY_BELOW_FLOOR",
	sprintf("a p99 latency SLO of %s is below the %s floor; a platform admin must approve, or raise spec.slo.latencyP99 to %s", [human(p99), human(config.latency_floor_ms), human(config.latency_floor_ms)]),
	"spec.slo.latencyP99",
	"admin",
	1,
) if {
	changes_spec
	p99 := number(spec.slo, "latencyP99Ms")
	p99 < config.latency_floor_ms
}

findings.warn contains violation(
	"FRESHNESS_NOT_SET",
	"spec.slo.freshness is not set, so consumer lag is not monitored; set the maximum acceptable lag (e.g. 30s)",
	"spec.slo.freshness",
) if {
	changes_spec
	number(spec.slo, "freshnessMs") <= 0
}

findings.warn contains violation(
	"FRESHNESS_LOOSER_THAN_LATENCY",
	sprintf("spec.slo.freshness (%s) allows more consumer lag than the p99 latency SLO (%s), so the SLO can be missed without a lag alert; set freshness below the latency", [human(spec.slo.freshnessMs), human(spec.slo.latencyP99Ms)]),
	"spec.slo.freshness",
) if {
	changes_spec
	number(spec.slo, "freshnessMs") > 0
	spec.slo.freshnessMs > number(spec.slo, "latencyP99Ms")
}
