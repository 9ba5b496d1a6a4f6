package contract

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/loopgate/loopgate/loop"
)

// Thresholds and bounds of the rules (see the package doc).
const (
	// TightLatencyMs is the p99 below which a loop is latency-tight: short
	// linger, small polls. Provisioning uses the same threshold to halve a
	// partition's budget.
	TightLatencyMs = 1000
	// LooseLatencyMs is the p99 from which a loop is latency-loose enough
	// to spend CPU on zstd.
	LooseLatencyMs = 2000
	// HighThroughputBytes is the peak ingress (bytes/s) from which a loose
	// loop compresses with zstd.
	HighThroughputBytes = 16 << 20
	// PartitionBudgetBytes is the peak rate (bytes/s) provisioning plans
	// per derived partition; used when a topic's partitions are unknown.
	PartitionBudgetBytes = 1 << 20
	// MaxDerivedPartitions is provisioning's cap on derived partition
	// counts.
	MaxDerivedPartitions = 64
	// MinBatchBytes and MaxBatchBytes bound batch.size: Kafka's default
	// and the default topic max.message.bytes.
	MinBatchBytes = 16 << 10
	MaxBatchBytes = 1 << 20
	// PasswordEnv is the environment variable the franz-go snippet reads
	// the password from when the contract carries none.
	PasswordEnv = "LOOPGATE_KAFKA_PASSWORD"
)

// recordOverhead is the room one record needs beyond its value in a batch
// (batch header, record header, key), as provisioning assumes.
const recordOverhead = 1024

// Input is what Build needs to know about one principal of a loop.
type Input struct {
	// Loop is the loop (its spec and metadata).
	Loop *loop.Loop
	// Principal is the Kafka principal, "User:name".
	Principal string
	// Bootstrap are the bootstrap servers of the loop's cluster.
	Bootstrap []string
	// SecurityProtocol is SASL_PLAINTEXT, SASL_SSL, SSL or PLAINTEXT.
	SecurityProtocol string
	// Mechanism is SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN; "" when the
	// principal is authenticated otherwise (e.g. a TLS client certificate).
	Mechanism string
	// Produce and Consume are the topics the principal may write and read.
	Produce []string
	Consume []string
	// Group is the principal's consumer group id ("" if it has none).
	Group string
	// Partitions optionally gives the partition count of topics (for
	// example from provisioning.Derive); a topic missing here is sized
	// from the spec.
	Partitions map[string]int32
	// Password is set only when the caller has just issued credentials.
	Password string
}

// Setting is one client property. Key and Value are in Java client naming
// ("linger.ms", "lz4"); Reason says in one line why the value was chosen.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// Contract is the client configuration of one principal of a loop.
type Contract struct {
	// Loop is the loop's "team/name".
	Loop      string `json:"loop"`
	Principal string `json:"principal"`
	// Username is the principal's name without "User:" (the SASL user).
	Username         string   `json:"username"`
	Bootstrap        []string `json:"bootstrap"`
	SecurityProtocol string   `json:"securityProtocol,omitempty"`
	Mechanism        string   `json:"mechanism,omitempty"`
	// Produce and Consume are sorted and free of duplicates.
	Produce []string `json:"produce,omitempty"`
	Consume []string `json:"consume,omitempty"`
	Group   string   `json:"group,omitempty"`
	// Basis states, in one line, the loop figures the settings follow from.
	Basis string `json:"basis"`
	// Producer is empty when Produce is; Consumer is empty when Consume is.
	Producer []Setting `json:"producer,omitempty"`
	Consumer []Setting `json:"consumer,omitempty"`
	// Password is empty unless Input.Password was given.
	Password string `json:"password,omitempty"`
	// OriginHeader is set when the principal writes the loop's action
	// stream: the header to put on every action record (origin.go).
	OriginHeader *OriginHeader `json:"originHeader,omitempty"`
}

// Build returns the contract of in.Principal. See the package doc for the
// rules; Build is deterministic and does not fail.
func Build(in Input) Contract {
	l := in.Loop
	if l == nil {
		l = &loop.Loop{}
	}
	f := figuresOf(l, in)
	c := Contract{
		Loop:             l.Metadata.Key(),
		Principal:        in.Principal,
		Username:         username(in.Principal),
		Bootstrap:        slices.Clone(in.Bootstrap),
		SecurityProtocol: strings.ToUpper(strings.TrimSpace(in.SecurityProtocol)),
		Mechanism:        strings.ToUpper(strings.TrimSpace(in.Mechanism)),
		Produce:          sortedSet(in.Produce),
		Consume:          sortedSet(in.Consume),
		Group:            in.Group,
		Basis:            f.basis(),
		Password:         in.Password,
	}
	if len(c.Produce) > 0 {
		c.Producer = producerSettings(f)
	}
	c.OriginHeader = originHeaderOf(f)
	if len(c.Consume) > 0 {
		c.Consumer = consumerSettings(f, in.Group != "")
	}
	return c
}

// Setting returns the value of the producer or consumer setting key, and
// whether the contract has it. A key in both lists (none today) returns the
// producer's.
func (c Contract) Setting(key string) (string, bool) {
	for _, list := range [][]Setting{c.Producer, c.Consumer} {
		for _, s := range list {
			if s.Key == key {
				return s.Value, true
			}
		}
	}
	return "", false
}

// figures are the loop numbers the rules read.
type figures struct {
	p99Ms       int64 // > 0
	p99Declared bool
	freshnessMs int64 // 0 = not set
	bytesPerSec int64
	peakFactor  float64
	peak        int64  // bytes/s
	recordBytes int64  // 0 = not declared
	partRate    int64  // peak bytes/s of the busiest produced partition
	partitions  int32  // partitions of the topic partRate is from; 0 = derived
	actionTopic string // the action stream's topic, when produced
}

func figuresOf(l *loop.Loop, in Input) figures {
	sp := &l.Spec
	f := figures{
		p99Ms:       sp.SLO.LatencyP99Ms,
		p99Declared: sp.SLO.LatencyP99Ms > 0,
		freshnessMs: max(sp.SLO.FreshnessMs, 0),
		bytesPerSec: max(sp.Throughput.BytesPerSecond, 0),
		peakFactor:  max(sp.Throughput.PeakFactor, 1),
		recordBytes: max(sp.Throughput.RecordBytes, 0),
	}
	if !f.p99Declared {
		f.p99Ms = LooseLatencyMs
	}
	f.peak = int64(math.Ceil(float64(f.bytesPerSec) * f.peakFactor))

	explicit := map[string]int32{}
	prefix := l.Metadata.Team + "." + l.Metadata.Name + "."
	for _, st := range sp.Streams {
		if st.Partitions > 0 {
			explicit[prefix+st.Name] = st.Partitions
		}
	}
	if sp.Action != nil && sp.Action.Stream != "" {
		at := prefix + sp.Action.Stream
		if slices.Contains(in.Produce, at) {
			f.actionTopic = at
		}
	}
	for _, t := range sortedSet(in.Produce) {
		n := in.Partitions[t]
		if n <= 0 {
			n = explicit[t]
		}
		known := n > 0
		if !known {
			n = f.derivedPartitions()
		}
		if rate := ceilDiv(f.peak, int64(n)); rate > f.partRate {
			f.partRate, f.partitions = rate, 0
			if known {
				f.partitions = n
			}
		}
	}
	return f
}

// derivedPartitions is the partition count provisioning derives for a
// topic of this loop on a cluster with replication factor 1 (fewer
// partitions, so a higher rate per partition, than with the 3 partitions
// provisioning keeps for replication factor 3):
// clamp(ceil(peak / budget), 1, MaxDerivedPartitions) with budget
// PartitionBudgetBytes, halved when p99 < TightLatencyMs.
func (f figures) derivedPartitions() int32 {
	budget := int64(PartitionBudgetBytes)
	if f.p99Ms < TightLatencyMs {
		budget /= 2
	}
	return int32(min(max(ceilDiv(f.peak, budget), 1), MaxDerivedPartitions))
}

func (f figures) p99() string { return loop.FormatDuration(f.p99Ms) }

// basis is the one-line summary of the figures, for headers.
func (f figures) basis() string {
	var b strings.Builder
	if f.p99Declared {
		fmt.Fprintf(&b, "p99 %s", f.p99())
	} else {
		fmt.Fprintf(&b, "no p99 declared (rules assume %s)", f.p99())
	}
	if f.freshnessMs > 0 {
		fmt.Fprintf(&b, ", freshness %s", loop.FormatDuration(f.freshnessMs))
	}
	fmt.Fprintf(&b, ", peak %s/s", human(f.peak))
	if f.peakFactor != 1 {
		fmt.Fprintf(&b, " (%s/s × %s)", human(f.bytesPerSec), strconv.FormatFloat(f.peakFactor, 'g', -1, 64))
	}
	if f.recordBytes > 0 {
		fmt.Fprintf(&b, ", records ~%s", human(f.recordBytes))
	}
	return b.String()
}

func producerSettings(f figures) []Setting {
	var out []Setting
	add := func(k, v, r string) { out = append(out, Setting{Key: k, Value: v, Reason: r}) }

	what := "the loop acts on these records"
	if f.actionTopic != "" {
		what = "it writes the loop's actions (" + f.actionTopic + ")"
	}
	add("acks", "all", "no acknowledged record may be lost: "+what)
	add("enable.idempotence", "true", "retries after a timeout or leader change must not duplicate records")
	add("max.in.flight.requests.per.connection", "5",
		"the most requests in flight that idempotence keeps in order; fewer would cap throughput")

	linger, lingerReason := lingerMs(f)
	add("linger.ms", itoa(linger), lingerReason)

	batch, batchReason := batchBytes(f, linger)
	add("batch.size", itoa(batch), batchReason)

	codec, codecReason := compression(f)
	add("compression.type", codec, codecReason)

	delivery := min(max(30*f.p99Ms, 30_000), 120_000)
	add("delivery.timeout.ms", itoa(delivery),
		fmt.Sprintf("30× the %s p99 within [30s, 120s]: fail an undeliverable record while it still matters, after riding out a leader election", f.p99()))
	request := min(30_000, delivery/2)
	add("request.timeout.ms", itoa(request),
		"half the delivery timeout, so a stalled request is retried at least once before the record fails")

	if need := f.recordBytes + recordOverhead; f.recordBytes > 0 && need > MaxBatchBytes {
		const mib = 1 << 20
		size := ceilDiv(need, mib) * mib
		add("max.request.size", itoa(size),
			fmt.Sprintf("records of ~%s exceed the 1 MiB default request size; the topic's max.message.bytes is raised to match", human(f.recordBytes)))
	}
	return out
}

// lingerMs is 1% of the p99 budget, capped at 5 ms for tight loops and
// 20 ms otherwise.
func lingerMs(f figures) (int64, string) {
	limit := int64(20)
	if f.p99Ms < TightLatencyMs {
		limit = 5
	}
	l := f.p99Ms / 100
	switch {
	case l == 0:
		return 0, fmt.Sprintf("send at once: 1%% of the %s p99 budget is under a millisecond", f.p99())
	case l > limit:
		return limit, fmt.Sprintf("1%% of the %s p99 budget, capped at %d ms: fuller batches, latency cost stays negligible", f.p99(), limit)
	}
	return l, fmt.Sprintf("1%% of the %s p99 budget: batches fill a little without spending the budget", f.p99())
}

// batchBytes sizes a batch to hold twice what the busiest partition fills
// during one linger at peak, or one declared record, within
// [MinBatchBytes, MaxBatchBytes].
func batchBytes(f figures, lingerMs int64) (int64, string) {
	window := max(lingerMs, 1)
	fill := ceilDiv(f.partRate*window, 1000)
	want := 2 * fill
	byRecord := f.recordBytes > 0 && f.recordBytes+recordOverhead > want
	if byRecord {
		want = f.recordBytes + recordOverhead
	}
	size := min(max(pow2ceil(want), MinBatchBytes), MaxBatchBytes)

	where := "per partition (partitions as provisioning derives them)"
	if f.partitions > 0 {
		where = fmt.Sprintf("per partition (%d partitions)", f.partitions)
	}
	fills := fmt.Sprintf("a partition fills ~%s in %d ms at %s/s peak %s", human(fill), window, human(f.partRate), where)
	switch {
	case byRecord && size == MaxBatchBytes && want > MaxBatchBytes:
		return size, fmt.Sprintf("capped at 1 MiB (the default max.message.bytes); each ~%s record goes in a batch of its own", human(f.recordBytes))
	case size == MinBatchBytes:
		return size, "Kafka's 16 KiB floor: " + fills
	case size == MaxBatchBytes && want > MaxBatchBytes:
		return size, "capped at 1 MiB (the default max.message.bytes): " + fills
	case byRecord:
		return size, fmt.Sprintf("room for one ~%s record plus overhead, rounded up to a power of two", human(f.recordBytes))
	}
	return size, "twice what fills in one linger, rounded up to a power of two: " + fills
}

func compression(f figures) (string, string) {
	if f.p99Ms >= LooseLatencyMs && f.peak >= HighThroughputBytes {
		return "zstd", fmt.Sprintf("best ratio saves network, disk and quota at %s/s peak; the %s p99 absorbs its CPU cost", human(f.peak), f.p99())
	}
	if f.p99Ms < TightLatencyMs {
		return "lz4", fmt.Sprintf("fastest codec: microseconds per batch inside the %s p99", f.p99())
	}
	return "lz4", fmt.Sprintf("cheap and fast; at %s/s peak zstd's better ratio is not worth its CPU", human(f.peak))
}

func consumerSettings(f figures, group bool) []Setting {
	var out []Setting
	add := func(k, v, r string) { out = append(out, Setting{Key: k, Value: v, Reason: r}) }

	add("fetch.min.bytes", "1", "the broker answers as soon as any record is ready; waiting for more would spend the p99 budget")
	wait := min(max(f.p99Ms/10, 10), 100)
	add("fetch.max.wait.ms", itoa(wait),
		fmt.Sprintf("10%% of the %s p99 within [10, 100] ms: bounds idle fetches; records never wait for it (fetch.min.bytes=1)", f.p99()))
	if f.p99Ms < TightLatencyMs {
		add("max.poll.records", "100", fmt.Sprintf("small polls: the last record of a poll does not wait long behind the others within the %s p99", f.p99()))
	} else {
		add("max.poll.records", "500", fmt.Sprintf("Kafka's default: the %s p99 absorbs processing a full poll", f.p99()))
	}
	add("isolation.level", "read_committed", "never act on records of aborted transactions; costs nothing when producers are not transactional")
	if f.freshnessMs > 0 {
		add("auto.offset.reset", "by_duration:"+isoDuration(f.freshnessMs),
			fmt.Sprintf("without a committed offset start %s back, the freshness window: older records are stale, and records on newly added partitions are not skipped", loop.FormatDuration(f.freshnessMs)))
	} else {
		add("auto.offset.reset", "earliest", "no freshness objective: without a committed offset read everything retained, skip nothing")
	}
	if !group {
		return out
	}
	add("enable.auto.commit", "false", "commit offsets after acting on the records (at-least-once); auto-commit can commit records still in flight")
	if f.freshnessMs > 0 {
		s := min(max(f.freshnessMs/2, 10_000), 45_000)
		add("session.timeout.ms", itoa(s),
			fmt.Sprintf("half the %s freshness within [10s, 45s]: a dead member's partitions move before its lag breaks freshness, without rebalancing on every pause", loop.FormatDuration(f.freshnessMs)))
	} else {
		add("session.timeout.ms", "45000", "Kafka's default: no freshness objective to protect from a dead member")
	}
	add("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
		"cooperative rebalances move only the partitions that change owner; the rest keep being consumed")
	return out
}

func username(principal string) string {
	if name, ok := strings.CutPrefix(principal, "User:"); ok {
		return name
	}
	return principal
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// pow2ceil is the smallest power of two ≥ v (1 for v ≤ 1).
func pow2ceil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	return 1 << bits.Len64(uint64(v-1))
}

// human renders bytes approximately: "600 B", "10 KiB", "1.5 MiB".
func human(b int64) string {
	const kib, mib, gib = 1 << 10, 1 << 20, 1 << 30
	unit := func(v float64, u string) string {
		if v >= 100 || v == math.Trunc(v) {
			return strconv.FormatFloat(math.Round(v), 'f', -1, 64) + " " + u
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
	}
	switch {
	case b >= gib:
		return unit(float64(b)/gib, "GiB")
	case b >= mib:
		return unit(float64(b)/mib, "MiB")
	case b >= kib:
		return unit(float64(b)/kib, "KiB")
	}
	return strconv.FormatInt(b, 10) + " B"
}

// isoDuration renders milliseconds as an ISO-8601 duration in seconds, as
// Java's Duration.parse reads it: 30000 -> "PT30S", 1500 -> "PT1.5S".
func isoDuration(ms int64) string {
	return "PT" + strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "S"
}
