package loopgate.loop

findings.deny contains violation(
	"PARTITIONS_PER_LOOP_EXCEEDED",
	sprintf("the loop's streams need %d partitions in total but team %q may use at most %d per loop; set fewer partitions or lower the declared throughput", [loop_partitions, input.team.name, max_per_loop]),
	"spec.streams",
) if {
	changes_spec
	max_per_loop := number(input.team, "maxPartitionsPerLoop")
	max_per_loop > 0
	loop_partitions > max_per_loop
}

findings.deny contains violation(
	"PARTITIONS_PER_TEAM_EXCEEDED",
	sprintf("team %q already uses %d of its %d partitions and this loop needs %d more; free partitions elsewhere or ask the platform team for a larger budget", [input.team.name, used, max_team, loop_partitions]),
	"spec.streams",
) if {
	changes_spec
	max_team := number(input.team, "maxPartitions")
	max_team > 0
	used := number(input.team, "usedPartitions")
	used + loop_partitions > max_team
}

findings.deny contains violation(
	"THROUGHPUT_EXCEEDS_TEAM_LIMIT",
	sprintf("declared throughput %d B/s exceeds team %q's limit of %d B/s per loop; split the loop or ask the platform team for a larger limit", [spec.throughput.bytesPerSecond, input.team.name, limit]),
	"spec.throughput.bytesPerSecond",
) if {
	changes_spec
	limit := number(input.team, "maxBytesPerSecond")
	limit > 0
	number(spec.throughput, "bytesPerSecond") > limit
}
