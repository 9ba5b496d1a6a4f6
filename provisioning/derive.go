package provisioning

import (
	"math"
	"strconv"
	"strings"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// Partition sizing. See DerivePartitions for how they combine.
const (
	// PartitionBudgetBytes is the peak ingress one partition is planned to
	// carry: 1 MiB/s, a rate a single consumer of a latency-sensitive loop
	// can follow with head-room on commodity brokers.
	PartitionBudgetBytes = 1 << 20
	// TightLatencyMs is the p99 latency objective below which a partition is
	// planned at half its budget, so queues stay short at peak.
	TightLatencyMs = 1000
	// MaxDerivedPartitions caps derived partition counts. A stream that
	// needs more sets spec.streams[].partitions explicitly (and policy sees
	// it).
	MaxDerivedPartitions = 64
	// KafkaDefaultMaxMessageBytes is Kafka's default max.message.bytes.
	KafkaDefaultMaxMessageBytes = 1048588
)

// Topic config keys loopgate sets on every topic it derives.
const (
	ConfigRetentionMs       = "retention.ms"
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigMinInsyncReplicas = "min.insync.replicas"
	ConfigMaxMessageBytes   = "max.message.bytes"
)

// TopicName returns the topic of one stream of a loop: <team>.<loop>.<stream>.
func TopicName(team, loopName, stream string) string {
	return team + "." + loopName + "." + stream
}

// Derive computes the resources a loop needs on cluster cl. The result is
// deterministic and sorted (see Resources.Sort); it is not validated — call
// Resources.Validate before sending it anywhere.
//
//   - One topic per stream, named by TopicName, with DerivePartitions
//     partitions, the cluster's replication factor (-1, the broker default,
//     when the catalog leaves it 0) and configs: retention.ms from
//     spec.retentionMs (omitted when 0), cleanup.policy=delete,
//     min.insync.replicas = RF-1 when RF ≥ 3 else 1, and max.message.bytes
//     only when a declared record would not fit Kafka's default.
//   - ACLs (literal, host "*", ALLOW): each producer gets WRITE and DESCRIBE
//     on the topics of its streams only; each consumer gets READ and
//     DESCRIBE on its topics and READ on its group. Streams a producer or
//     consumer names that the loop does not have are skipped (spec
//     validation reports them).
//   - Quotas per principal: producer_byte_rate = ceil(bytesPerSecond ×
//     peakFactor) for every producer and consumer_byte_rate the same for
//     every consumer; a principal that does both gets both. Each principal
//     gets the full loop rate: two producers are not given half each,
//     because the spec does not say how traffic is split between them.
//     Only "User:" principals get quotas (Kafka's "user" entity).
//   - When the cluster has an observer principal (catalog.Cluster.Observer),
//     it gets READ and DESCRIBE on the loop's action topic, so that
//     loopgate can sample producer-to-action latency (docs/slo.md).
func Derive(l *loop.Loop, cl catalog.Cluster) Resources {
	spec := &l.Spec
	rf := cl.ReplicationFactor
	if rf <= 0 {
		rf = -1
	}

	topicOf := make(map[string]string, len(spec.Streams))
	var res Resources
	for _, st := range spec.Streams {
		name := TopicName(l.Metadata.Team, l.Metadata.Name, st.Name)
		topicOf[st.Name] = name
		parts := st.Partitions
		if parts <= 0 {
			parts = DerivePartitions(spec.Throughput, spec.SLO, rf)
		}
		res.Topics = append(res.Topics, Topic{
			Name:              name,
			Partitions:        parts,
			ReplicationFactor: rf,
			Configs:           deriveConfigs(spec, rf),
		})
	}

	acls := map[ACL]struct{}{}
	add := func(principal, resourceType, resourceName, op string) {
		acls[ACL{
			Principal:    principal,
			Host:         "*",
			ResourceType: resourceType,
			ResourceName: resourceName,
			PatternType:  PatternLiteral,
			Operation:    op,
			Permission:   PermissionAllow,
		}] = struct{}{}
	}
	for _, p := range spec.Producers {
		for _, s := range p.Streams {
			if t, ok := topicOf[s]; ok {
				add(p.Principal, ResourceTopic, t, OpWrite)
				add(p.Principal, ResourceTopic, t, OpDescribe)
			}
		}
	}
	for _, c := range spec.Consumers {
		for _, s := range c.Streams {
			if t, ok := topicOf[s]; ok {
				add(c.Principal, ResourceTopic, t, OpRead)
				add(c.Principal, ResourceTopic, t, OpDescribe)
			}
		}
		if c.Group != "" {
			add(c.Principal, ResourceGroup, c.Group, OpRead)
		}
	}
	if cl.Observer != "" && spec.Action != nil {
		if t, ok := topicOf[spec.Action.Stream]; ok {
			add(ObserverPrincipal(cl), ResourceTopic, t, OpRead)
			add(ObserverPrincipal(cl), ResourceTopic, t, OpDescribe)
		}
	}
	for a := range acls {
		res.ACLs = append(res.ACLs, a)
	}
	for _, p := range spec.Principals() {
		if q, ok := QuotaOf(l, p); ok {
			res.Quotas = append(res.Quotas, q)
		}
	}
	res.Sort()
	return res
}

// DerivePartitions returns the partition count of a stream that does not
// set one:
//
//	peak     = bytesPerSecond × max(peakFactor, 1)
//	budget   = PartitionBudgetBytes, halved when slo.latencyP99Ms < TightLatencyMs
//	minimum  = 3 when rf ≥ 3 (one leader per broker of a 3-zone cluster), else 1
//	result   = clamp(ceil(peak / budget), minimum, MaxDerivedPartitions)
//
// For the reference example (2 MiB/s × 3, p99 2 s, RF 3): ceil(6) = 6.
func DerivePartitions(tp loop.Throughput, slo loop.SLO, rf int16) int32 {
	minimum := int32(1)
	if rf >= 3 {
		minimum = 3
	}
	budget := float64(PartitionBudgetBytes)
	if slo.LatencyP99Ms > 0 && slo.LatencyP99Ms < TightLatencyMs {
		budget /= 2
	}
	peak := float64(tp.BytesPerSecond) * math.Max(tp.PeakFactor, 1)
	n := math.Ceil(peak / budget)
	switch {
	case n > MaxDerivedPartitions:
		return MaxDerivedPartitions
	case n < float64(minimum):
		return minimum
	}
	return int32(n)
}

func deriveConfigs(spec *loop.Spec, rf int16) map[string]string {
	cfg := map[string]string{ConfigCleanupPolicy: "delete"}
	if spec.RetentionMs != 0 {
		cfg[ConfigRetentionMs] = strconv.FormatInt(spec.RetentionMs, 10)
	}
	minISR := 1
	if rf >= 3 {
		minISR = int(rf) - 1
	}
	cfg[ConfigMinInsyncReplicas] = strconv.Itoa(minISR)
	// A batch holds at least one record plus ~1 KiB of batch and record
	// overhead; only raise the limit when a declared record needs it.
	if need := spec.Throughput.RecordBytes + 1024; spec.Throughput.RecordBytes > 0 && need > KafkaDefaultMaxMessageBytes {
		const mib = 1 << 20
		cfg[ConfigMaxMessageBytes] = strconv.FormatInt((need+mib-1)/mib*mib, 10)
	}
	return cfg
}

// peakRate is ceil(bytesPerSecond × max(peakFactor, 1)), 0 when no
// throughput is declared.
func peakRate(tp loop.Throughput) int64 {
	if tp.BytesPerSecond <= 0 {
		return 0
	}
	return int64(math.Ceil(float64(tp.BytesPerSecond) * math.Max(tp.PeakFactor, 1)))
}

// QuotaOf is the client quota Derive sets for principal in l: the loop's
// peak rate as producer and/or consumer byte rate, for "User:" principals
// only; ok is false when it gets none.
func QuotaOf(l *loop.Loop, principal string) (q Quota, ok bool) {
	rate := peakRate(l.Spec.Throughput)
	if rate == 0 || !isUserPrincipal(principal) {
		return Quota{}, false
	}
	q.Principal = principal
	for _, p := range l.Spec.Producers {
		if p.Principal == principal {
			q.ProducerByteRate = rate
		}
	}
	for _, c := range l.Spec.Consumers {
		if c.Principal == principal {
			q.ConsumerByteRate = rate
		}
	}
	return q, q.ProducerByteRate > 0 || q.ConsumerByteRate > 0
}

func isUserPrincipal(p string) bool {
	name, ok := strings.CutPrefix(p, "User:")
	return ok && name != ""
}

// ObserverPrincipal is the Kafka principal of cl's observer ("" when none).
func ObserverPrincipal(cl catalog.Cluster) string {
	if cl.Observer == "" {
		return ""
	}
	return "User:" + strings.TrimPrefix(cl.Observer, "User:")
}
