package contract

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/loop"
)

const mib = 1 << 20

// testLoop returns loop growth/nudge with streams events (eventParts
// partitions, 0 = derived) and actions, where the loop closes.
func testLoop(p99, freshness, bps int64, peakFactor float64, recordBytes int64, eventParts int32) *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: "growth", Name: "nudge"},
		Spec: loop.Spec{
			SLO:        loop.SLO{LatencyP99Ms: p99, FreshnessMs: freshness},
			Throughput: loop.Throughput{BytesPerSecond: bps, PeakFactor: peakFactor, RecordBytes: recordBytes},
			Streams: []loop.Stream{
				{Name: "events", Partitions: eventParts},
				{Name: "actions"},
			},
			Producers: []loop.Producer{{Principal: "User:api", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:engine", Group: "engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
	}
}

const (
	events  = "growth.nudge.events"
	actions = "growth.nudge.actions"
)

// both returns an Input for a principal that reads events and writes
// events (so batch sizing sees the events partitions).
func both(l *loop.Loop) Input {
	return Input{
		Loop: l, Principal: "User:engine", Bootstrap: []string{"k1:9093"},
		SecurityProtocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512",
		Produce: []string{events}, Consume: []string{events}, Group: "engine",
	}
}

// TestBuildRules protects the rule table of the package doc: each case
// names the loop shape and the settings it must yield.
func TestBuildRules(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want map[string]string // settings that must have these values
		none []string          // settings that must be absent
	}{{
		name: "tight SLO: short linger, Kafka's batch floor, lz4, small polls, short session",
		in:   both(testLoop(200, 1000, 1*mib, 2, 300, 0)),
		want: map[string]string{
			"acks": "all", "enable.idempotence": "true", "max.in.flight.requests.per.connection": "5",
			"linger.ms": "2", "batch.size": "16384", "compression.type": "lz4",
			"delivery.timeout.ms": "30000", "request.timeout.ms": "15000",
			"fetch.min.bytes": "1", "fetch.max.wait.ms": "20", "max.poll.records": "100",
			"isolation.level": "read_committed", "auto.offset.reset": "by_duration:PT1S",
			"enable.auto.commit": "false", "session.timeout.ms": "10000",
			"partition.assignment.strategy": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
		},
		none: []string{"max.request.size"},
	}, {
		name: "reference example (p99 2s, 2MiB/s × 3 on 12 partitions): 20ms linger, 32KiB batches",
		in:   both(testLoop(2000, 30000, 2*mib, 3, 600, 12)),
		want: map[string]string{
			"linger.ms": "20", "batch.size": "32768", "compression.type": "lz4",
			"delivery.timeout.ms": "60000", "request.timeout.ms": "30000",
			"fetch.max.wait.ms": "100", "max.poll.records": "500",
			"auto.offset.reset": "by_duration:PT30S", "session.timeout.ms": "15000",
		},
		none: []string{"max.request.size"},
	}, {
		name: "high throughput, loose SLO: zstd, bigger batches, Kafka's timeouts, read all",
		in:   both(testLoop(5000, 0, 80*mib, 2, 800, 32)),
		want: map[string]string{
			"linger.ms": "20", "batch.size": "262144", "compression.type": "zstd",
			"delivery.timeout.ms": "120000", "request.timeout.ms": "30000",
			"fetch.max.wait.ms": "100", "max.poll.records": "500",
			"auto.offset.reset": "earliest", "session.timeout.ms": "45000",
		},
	}, {
		name: "high throughput, tight SLO: lz4 stays, linger capped at 5ms",
		in:   both(testLoop(500, 0, 80*mib, 2, 800, 32)),
		want: map[string]string{
			"linger.ms": "5", "batch.size": "65536", "compression.type": "lz4",
			"delivery.timeout.ms": "30000", "request.timeout.ms": "15000",
			"fetch.max.wait.ms": "50", "max.poll.records": "100",
		},
	}, {
		name: "a partition above 50MiB/s: batch capped at 1MiB",
		in:   both(testLoop(2000, 0, 80*mib, 2, 800, 3)),
		want: map[string]string{"batch.size": "1048576", "compression.type": "zstd"},
	}, {
		name: "records above 1MiB: batch capped, max.request.size as the topic's max.message.bytes",
		in:   both(testLoop(2000, 0, 10*mib, 1, 3*mib, 12)),
		want: map[string]string{"batch.size": "1048576", "max.request.size": "4194304"},
	}, {
		name: "records that need a bigger batch than the rate does",
		in:   both(testLoop(2000, 0, 1*mib, 1, 100_000, 12)),
		want: map[string]string{"batch.size": "131072"},
		none: []string{"max.request.size"},
	}, {
		name: "p99 under 100ms: no linger, fetch wait at its 10ms floor",
		in:   both(testLoop(50, 0, 1*mib, 1, 0, 3)),
		want: map[string]string{"linger.ms": "0", "batch.size": "16384", "fetch.max.wait.ms": "10", "max.poll.records": "100"},
	}, {
		name: "p99 1.5s: neither tight nor loose",
		in:   both(testLoop(1500, 0, 40*mib, 1, 0, 0)),
		want: map[string]string{
			"linger.ms": "15", "compression.type": "lz4", "delivery.timeout.ms": "45000",
			"request.timeout.ms": "22500", "fetch.max.wait.ms": "100", "max.poll.records": "500",
		},
	}, {
		name: "unknown partitions: a partition carries at most 1MiB/s, as provisioning derives",
		in:   both(testLoop(2000, 0, 2*mib, 3, 600, 0)),
		want: map[string]string{"batch.size": "65536"},
	}, {
		name: "Input.Partitions wins over the spec",
		in: func() Input {
			in := both(testLoop(2000, 0, 2*mib, 3, 600, 12))
			in.Partitions = map[string]int32{events: 6}
			return in
		}(),
		want: map[string]string{"batch.size": "65536"},
	}, {
		name: "long freshness: session timeout capped at Kafka's 45s",
		in:   both(testLoop(2000, 10*60_000, 1*mib, 1, 0, 3)),
		want: map[string]string{"session.timeout.ms": "45000", "auto.offset.reset": "by_duration:PT600S"},
	}, {
		name: "no p99 declared: treated as loose",
		in:   both(testLoop(0, 0, 1*mib, 0, 0, 3)),
		want: map[string]string{"linger.ms": "20", "max.poll.records": "500", "delivery.timeout.ms": "60000"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Build(tt.in)
			for k, want := range tt.want {
				if got, ok := c.Setting(k); !ok || got != want {
					t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
				}
			}
			for _, k := range tt.none {
				if v, ok := c.Setting(k); ok {
					t.Errorf("%s = %q, want it absent", k, v)
				}
			}
		})
	}
}

func keys(ss []Setting) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Key)
	}
	return out
}

var (
	producerKeys = []string{
		"acks", "enable.idempotence", "max.in.flight.requests.per.connection", "linger.ms", "batch.size",
		"compression.type", "delivery.timeout.ms", "request.timeout.ms",
	}
	consumerKeys = []string{"fetch.min.bytes", "fetch.max.wait.ms", "max.poll.records", "isolation.level", "auto.offset.reset"}
	groupKeys    = []string{"enable.auto.commit", "session.timeout.ms", "partition.assignment.strategy"}
)

// TestBuildRoles: a principal gets producer settings only when it writes,
// consumer settings only when it reads, and group settings only with a group.
func TestBuildRoles(t *testing.T) {
	l := testLoop(2000, 30000, 2*mib, 3, 600, 12)
	base := Input{Loop: l, Principal: "User:engine", Bootstrap: []string{"k1:9093"}, SecurityProtocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512"}
	tests := []struct {
		name               string
		produce, consume   []string
		group              string
		wantProd, wantCons []string
	}{
		{"producer only", []string{events}, nil, "", producerKeys, nil},
		{"consumer only", nil, []string{events}, "engine", nil, slices.Concat(consumerKeys, groupKeys)},
		{"both", []string{actions}, []string{events}, "engine", producerKeys, slices.Concat(consumerKeys, groupKeys)},
		{"consumer without group", nil, []string{events}, "", nil, consumerKeys},
		{"neither", nil, nil, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Produce, in.Consume, in.Group = tt.produce, tt.consume, tt.group
			c := Build(in)
			if got := keys(c.Producer); !slices.Equal(got, tt.wantProd) {
				t.Errorf("producer keys = %v, want %v", got, tt.wantProd)
			}
			if got := keys(c.Consumer); !slices.Equal(got, tt.wantCons) {
				t.Errorf("consumer keys = %v, want %v", got, tt.wantCons)
			}
		})
	}
}

// TestReasonsAreOneLine: every setting says why, in one line.
func TestReasonsAreOneLine(t *testing.T) {
	for _, l := range []*loop.Loop{
		testLoop(200, 1000, 1*mib, 2, 300, 0),
		testLoop(2000, 30000, 2*mib, 3, 600, 12),
		testLoop(5000, 0, 80*mib, 2, 3*mib, 3),
		testLoop(50, 0, 1*mib, 1, 0, 3),
		testLoop(0, 0, 0, 0, 0, 0),
	} {
		c := Build(both(l))
		for _, s := range slices.Concat(c.Producer, c.Consumer) {
			if s.Reason == "" || strings.ContainsAny(s.Reason, "\r\n") || s.Value == "" {
				t.Errorf("%s: %s=%q reason %q: want a value and a one-line reason", c.Basis, s.Key, s.Value, s.Reason)
			}
		}
		if strings.ContainsAny(c.Basis, "\r\n") {
			t.Errorf("basis %q is not one line", c.Basis)
		}
	}
}

func TestBuildIsDeterministicAndNormalizes(t *testing.T) {
	l := testLoop(2000, 30000, 2*mib, 3, 600, 12)
	in := both(l)
	in.Produce = []string{events, actions, events}
	in.Consume = []string{events, events}
	in.SecurityProtocol, in.Mechanism = " sasl_ssl", "scram-sha-512"
	a := Build(in)
	in2 := in
	in2.Produce = []string{actions, events}
	b := Build(in2)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Build depends on topic order or duplicates:\n%+v\n%+v", a, b)
	}
	if want := []string{actions, events}; !slices.Equal(a.Produce, want) {
		t.Errorf("Produce = %v, want %v", a.Produce, want)
	}
	if want := []string{events}; !slices.Equal(a.Consume, want) {
		t.Errorf("Consume = %v, want %v", a.Consume, want)
	}
	if a.SecurityProtocol != "SASL_SSL" || a.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("security = %q %q, want upper-cased", a.SecurityProtocol, a.Mechanism)
	}
	if a.Loop != "growth/nudge" || a.Username != "engine" {
		t.Errorf("loop %q username %q", a.Loop, a.Username)
	}
	// Build copies its slices: changing the input afterwards changes nothing.
	in.Bootstrap[0] = "changed"
	if a.Bootstrap[0] != "k1:9093" {
		t.Errorf("Bootstrap aliases the input: %v", a.Bootstrap)
	}
}

func TestBuildActionReason(t *testing.T) {
	l := testLoop(2000, 30000, 2*mib, 3, 600, 12)
	in := both(l)
	in.Produce = []string{actions}
	if r := Build(in).Producer[0].Reason; !strings.Contains(r, "actions ("+actions+")") {
		t.Errorf("acks reason for the action stream = %q, want it to name the actions", r)
	}
	in.Produce = []string{events}
	if r := Build(in).Producer[0].Reason; strings.Contains(r, actions) {
		t.Errorf("acks reason for events = %q names the action stream", r)
	}
}

func TestBuildNilLoop(t *testing.T) {
	c := Build(Input{Principal: "User:x", Produce: []string{"t"}, Consume: []string{"t"}, Group: "g"})
	if len(c.Producer) == 0 || len(c.Consumer) == 0 {
		t.Fatalf("nil loop: got %+v", c)
	}
}

func TestUsername(t *testing.T) {
	for in, want := range map[string]string{"User:checkout-api": "checkout-api", "checkout-api": "checkout-api", "User:": ""} {
		if got := username(in); got != want {
			t.Errorf("username(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for v, want := range map[int64]int64{0: 1, 1: 1, 2: 2, 3: 4, 16384: 16384, 16385: 32768} {
		if got := pow2ceil(v); got != want {
			t.Errorf("pow2ceil(%d) = %d, want %d", v, got, want)
		}
	}
	for v, want := range map[int64]string{600: "600 B", 1024: "1 KiB", 20972: "20.5 KiB", 6 * mib: "6 MiB", 524288: "512 KiB", 3 * mib / 2: "1.5 MiB"} {
		if got := human(v); got != want {
			t.Errorf("human(%d) = %q, want %q", v, got, want)
		}
	}
	for ms, want := range map[int64]string{30000: "PT30S", 1500: "PT1.5S", 1: "PT0.001S"} {
		if got := isoDuration(ms); got != want {
			t.Errorf("isoDuration(%d) = %q, want %q", ms, got, want)
		}
		if back, ok := parseISOSeconds(want); !ok || atoi(back) != ms {
			t.Errorf("parseISOSeconds(%q) = %q, %v; want %d", want, back, ok, ms)
		}
	}
	for ms, want := range map[string]string{"0": "0", "20": "20 * time.Millisecond", "30000": "30 * time.Second", "1500": "1500 * time.Millisecond"} {
		if got := goDuration(ms); got != want {
			t.Errorf("goDuration(%s) = %q, want %q", ms, got, want)
		}
	}
}

// TestJavaEscaping: a password with quotes, backslashes and non-ASCII
// survives Properties.load and then the JAAS parser.
func TestJavaEscaping(t *testing.T) {
	got := javaEscape(jaasQuote(`a\b"c é😀`))
	want := `"a\\\\b\\"c \u00E9\uD83D\uDE00"`
	if got != want {
		t.Errorf("javaEscape(jaasQuote(...)) = %s, want %s", got, want)
	}
	if got := javaEscape(" lead"); got != `\ lead` {
		t.Errorf("leading space: %s", got)
	}
}
