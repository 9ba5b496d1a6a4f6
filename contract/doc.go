// Package contract builds a loop contract: the ready-to-use Kafka client
// configuration of one principal of a loop, with every setting chosen from
// the loop's SLO and throughput and carrying a one-line reason.
//
// Start with Build, which turns an Input (the loop, the principal, the
// cluster's bootstrap servers and security, the topics the principal may
// write and read, its group) into a Contract; then Render, which writes a
// Contract for one of Clients: "franz-go" (a Go snippet of kgo options),
// "java" (a client.properties file) or "librdkafka" (a properties file in
// librdkafka names, as kcat -F reads it). Settings are named as the Java
// client names them; each renderer maps them to its client, and says so in a
// comment where its client has no equivalent.
//
// The package is pure: no network, no Kafka. Build never fails and is
// deterministic; it does not validate its Input (the caller takes it from a
// validated loop and the cluster catalog). A contract never invents a
// password: it carries one only when the caller issued it, and renderers
// otherwise write a placeholder (franz-go reads the PasswordEnv variable).
//
// # Rules
//
// p99 is spec.slo.latencyP99Ms (a loop without one, which validation
// refuses, is treated as LooseLatencyMs); freshness is spec.slo.freshnessMs
// (0 = not set); peak = bytesPerSecond × max(peakFactor, 1), the rate each
// producer may write (every producer gets the full loop rate as its quota);
// the per-partition rate is peak / partitions for the produced topic with the
// fewest partitions, where partitions come from Input.Partitions, else from
// the stream's explicit spec.streams[].partitions, else as provisioning
// derives them (for replication factor 1, the fewest it derives):
// clamp(ceil(peak / budget), 1, MaxDerivedPartitions), budget
// PartitionBudgetBytes/s, halved when p99 < TightLatencyMs.
//
// Producer (only when the principal writes a topic):
//
//	acks                                   all
//	enable.idempotence                     true
//	max.in.flight.requests.per.connection  5 (the most idempotence keeps in order)
//	linger.ms                              p99/100 (1% of the budget), at most 5 when p99 < 1s, else at most 20
//	batch.size                             2 × per-partition rate × max(linger, 1ms), at least recordBytes + 1KiB,
//	                                       rounded up to a power of two, within [16KiB, 1MiB]
//	compression.type                       zstd when p99 ≥ 2s and peak ≥ 16MiB/s, else lz4
//	delivery.timeout.ms                    30 × p99 within [30s, 120s]
//	request.timeout.ms                     min(30s, delivery.timeout.ms / 2)
//	max.request.size                       only when recordBytes + 1KiB > 1MiB: that, rounded up to whole MiB
//	                                       (what provisioning sets as the topic's max.message.bytes)
//
// Consumer (only when the principal reads a topic; the last three only with
// a group):
//
//	fetch.min.bytes                        1
//	fetch.max.wait.ms                      p99/10 within [10ms, 100ms]
//	max.poll.records                       100 when p99 < 1s, else 500
//	isolation.level                        read_committed
//	auto.offset.reset                      by_duration:<freshness> when freshness is set, else earliest
//	enable.auto.commit                     false
//	session.timeout.ms                     freshness/2 within [10s, 45s]; 45s when freshness is not set
//	partition.assignment.strategy          cooperative sticky
//
// The fetch wait's 10ms floor is franz-go's minimum; with fetch.min.bytes=1
// a shorter wait would only add idle fetches, not cut latency.
// by_duration needs a Java client ≥ 4.0 (franz-go: LookbackOffset);
// librdkafka has no equivalent and gets latest, which can skip records
// written to a partition added while the group runs.
package contract
