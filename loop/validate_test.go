package loop

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/schemas"
)

// validLoop returns the reference example (examples/checkout-nudge.yaml), parsed and defaulted.
func validLoop(t *testing.T) *Loop {
	t.Helper()
	loops, err := ParseBytes([]byte(designExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return loops[0]
}

func fields(errs FieldErrors) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Field
	}
	return out
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	l := validLoop(t)
	l.Metadata.Name = "Checkout_Nudge"
	l.Spec.Owners = nil
	l.Spec.Streams[0].Schema.Definition = `{"type":"record","name":"E","fields":[{"name":"a","type":"strng"}]}`
	l.Spec.Producers[0].Streams = []string{"events", "evnts"}
	l.Spec.RetentionMs = 0

	errs := Validate(l)
	want := []string{
		"metadata.name",
		"spec.owners",
		"spec.retention",
		"spec.streams[0].schema.definition",
		"spec.producers[0].streams[1]",
	}
	if got := fields(errs); !reflect.DeepEqual(got, want) {
		t.Fatalf("fields = %v, want %v\n%v", got, want, errs)
	}
	msgs := map[string]string{
		"metadata.name":                     `"Checkout_Nudge" must be 3-40 characters`,
		"spec.owners":                       "at least one owner is required",
		"spec.retention":                    "must be greater than 0",
		"spec.streams[0].schema.definition": `stream "events": invalid Avro schema:`,
		"spec.producers[0].streams[1]":      `unknown stream "evnts" (did you mean "events"?)`,
	}
	for _, e := range errs {
		if !strings.Contains(e.Message, msgs[e.Field]) {
			t.Errorf("%s: message %q does not contain %q", e.Field, e.Message, msgs[e.Field])
		}
		if e.Document != 0 || e.Line != 0 {
			t.Errorf("%s: Validate set a position (%d, %d) it cannot know", e.Field, e.Document, e.Line)
		}
	}
}

func TestValidateAcceptsTheDesignExample(t *testing.T) {
	if errs := Validate(validLoop(t)); errs != nil {
		t.Fatalf("Validate: %v", errs)
	}
	if err := Validate(validLoop(t)).Err(); err != nil {
		t.Fatalf("Err() of no problems = %v, want nil", err)
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(l *Loop)
		wantField string
		wantMsg   string
	}{
		{"name too short", func(l *Loop) { l.Metadata.Name = "ab" }, "metadata.name", "3-40 characters"},
		{"name trailing dash", func(l *Loop) { l.Metadata.Name = "checkout-" }, "metadata.name", "not ending with '-'"},
		{"name missing", func(l *Loop) { l.Metadata.Name = "" }, "metadata.name", "is required"},
		{"team missing", func(l *Loop) { l.Metadata.Team = "" }, "metadata.team", "is required"},
		{"team upper case", func(l *Loop) { l.Metadata.Team = "Growth" }, "metadata.team", `"Growth" must be`},
		{"label key", func(l *Loop) { l.Metadata.Labels = map[string]string{"bad key": "x"} }, `metadata.labels["bad key"]`, "label key"},
		{"label value", func(l *Loop) { l.Metadata.Labels = map[string]string{"domain": "two words"} }, "metadata.labels.domain", "label value"},
		{"owner not an email", func(l *Loop) { l.Spec.Owners = []string{"ana"} }, "spec.owners[0]", `"ana" is not an email`},
		{"owner twice", func(l *Loop) { l.Spec.Owners = []string{"ana@example.com", "Ana@Example.com"} }, "spec.owners[1]", "listed twice (also spec.owners[0])"},
		{"classification unknown", func(l *Loop) { l.Spec.Classification = "secret" }, "spec.classification", "public, internal, confidential, pii"},
		{"classification missing", func(l *Loop) { l.Spec.Classification = "" }, "spec.classification", "is required"},
		{"residency missing", func(l *Loop) { l.Spec.Residency = "" }, "spec.residency", "is required"},
		{"residency malformed", func(l *Loop) { l.Spec.Residency = "EU West" }, "spec.residency", "not a region key"},
		{"retention negative", func(l *Loop) { l.Spec.RetentionMs = -1 }, "spec.retention", "greater than 0"},
		{"latency zero", func(l *Loop) { l.Spec.SLO.LatencyP99Ms = 0 }, "spec.slo.latencyP99", "greater than 0"},
		{"freshness negative", func(l *Loop) { l.Spec.SLO.FreshnessMs = -5 }, "spec.slo.freshness", "not be negative"},
		{"throughput zero", func(l *Loop) { l.Spec.Throughput.BytesPerSecond = 0 }, "spec.throughput.bytesPerSecond", "greater than 0"},
		{"peak factor below 1", func(l *Loop) { l.Spec.Throughput.PeakFactor = 0.5 }, "spec.throughput.peakFactor", "at least 1"},
		{"peak factor NaN", func(l *Loop) { l.Spec.Throughput.PeakFactor = math.NaN() }, "spec.throughput.peakFactor", "at least 1"},
		{"record bytes negative", func(l *Loop) { l.Spec.Throughput.RecordBytes = -1 }, "spec.throughput.recordBytes", "not be negative"},
		{"no streams", func(l *Loop) {
			l.Spec.Streams = nil
			l.Spec.Producers = nil
			l.Spec.Consumers = nil
			l.Spec.Action = nil
		}, "spec.streams", "at least one stream"},
		{"stream name", func(l *Loop) { l.Spec.Streams[1].Name = "Actions" }, "spec.streams[1].name", `"Actions" must be`},
		{"stream twice", func(l *Loop) { l.Spec.Streams[1].Name = "events"; l.Spec.Action = nil }, "spec.streams[1].name", "already declared at spec.streams[0]"},
		{"partitions negative", func(l *Loop) { l.Spec.Streams[0].Partitions = -1 }, "spec.streams[0].partitions", "out of range (0 to 1024"},
		{"partitions too many", func(l *Loop) { l.Spec.Streams[0].Partitions = 5000 }, "spec.streams[0].partitions", "out of range"},
		{"format not avro", func(l *Loop) { l.Spec.Streams[1].Schema.Format = "protobuf" }, "spec.streams[1].schema.format", `"protobuf" is not supported (use avro)`},
		{"compatibility unknown", func(l *Loop) { l.Spec.Streams[0].Schema.Compatibility = "backward" }, "spec.streams[0].schema.compatibility", "not a compatibility mode"},
		{"definition missing", func(l *Loop) { l.Spec.Streams[1].Schema.Definition = " " }, "spec.streams[1].schema.definition", `stream "actions": is required`},
		{"definition not a record", func(l *Loop) { l.Spec.Streams[1].Schema.Definition = `"string"` }, "spec.streams[1].schema.definition", `stream "actions": invalid Avro schema: the top-level type is "string"`},
		{"producer principal", func(l *Loop) { l.Spec.Producers[0].Principal = "checkout-api" }, "spec.producers[0].principal", "User:<name>"},
		{"producer wildcard", func(l *Loop) { l.Spec.Producers[0].Principal = "User:*" }, "spec.producers[0].principal", "wildcards"},
		{"producer twice", func(l *Loop) {
			l.Spec.Producers = append(l.Spec.Producers, Producer{Principal: "User:checkout-api", Streams: []string{"actions"}})
		}, "spec.producers[2].principal", "already listed in spec.producers[0]"},
		{"stream nobody writes", func(l *Loop) { l.Spec.Producers[0].Streams = []string{"actions"} }, "spec.streams[0]", `stream "events" has no producer`},
		{"action stream nobody writes", func(l *Loop) {
			l.Spec.Producers = l.Spec.Producers[:1]
			l.Spec.Streams[1].External = true
		}, "spec.streams[1]", `stream "actions" is the action stream but no producer writes it`},
		{"quota overflow", func(l *Loop) {
			l.Spec.Throughput.BytesPerSecond = 1 << 62
			l.Spec.Throughput.PeakFactor = 4
		}, "spec.throughput", "more than the 9007199254740992 bytes/s a Kafka quota can hold"},
		{"producer principal with a slash", func(l *Loop) { l.Spec.Producers[0].Principal = "User:a/b" }, "spec.producers[0].principal", "User:<name>"},
		{"producer without streams", func(l *Loop) { l.Spec.Producers[0].Streams = nil }, "spec.producers[0].streams", "at least one stream"},
		{"producer stream twice", func(l *Loop) { l.Spec.Producers[0].Streams = []string{"events", "events"} }, "spec.producers[0].streams[1]", "listed twice"},
		{"consumer group missing", func(l *Loop) { l.Spec.Consumers[0].Group = "" }, "spec.consumers[0].group", "is required (the consumer group id, e.g. nudge-engine)"},
		{"consumer group invalid", func(l *Loop) { l.Spec.Consumers[0].Group = "my group" }, "spec.consumers[0].group", `"my group" must be`},
		{"consumer unknown stream", func(l *Loop) { l.Spec.Consumers[0].Streams = []string{"clicks"} }, "spec.consumers[0].streams[0]", `unknown stream "clicks" (declared: actions, events)`},
		{"consumer twice", func(l *Loop) { l.Spec.Consumers = append(l.Spec.Consumers, l.Spec.Consumers[0]) }, "spec.consumers[1]", "already listed in spec.consumers[0]"},
		{"action unknown stream", func(l *Loop) { l.Spec.Action.Stream = "nudges" }, "spec.action.stream", `unknown stream "nudges" (declared: events, actions)`},
		{"action empty", func(l *Loop) { l.Spec.Action.Stream = "" }, "spec.action.stream", "is required when action is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := validLoop(t)
			tt.mutate(l)
			errs := Validate(l)
			for _, e := range errs {
				if e.Field == tt.wantField {
					if !strings.Contains(e.Message, tt.wantMsg) {
						t.Errorf("%s: message %q does not contain %q", e.Field, e.Message, tt.wantMsg)
					}
					return
				}
			}
			t.Errorf("no error for %s; got %v", tt.wantField, errs)
		})
	}
}

func TestValidateTopicNameMustBeValidForKafka(t *testing.T) {
	l := validLoop(t)
	// Each part is valid on its own, but team + loop + stream exceed
	// Kafka's 249-character limit.
	l.Metadata.Team = "t" + strings.Repeat("x", 39)
	l.Metadata.Name = "n" + strings.Repeat("x", 39)
	l.Spec.Streams[0].Name = "e" + strings.Repeat("v", 62)
	l.Spec.Producers, l.Spec.Consumers, l.Spec.Action = nil, nil, nil
	for i := range l.Spec.Streams {
		l.Spec.Streams[i].External = true
	}
	errs := Validate(l)
	if len(errs) != 0 {
		t.Fatalf("a 145-character topic name is valid; got %v", errs)
	}
	// Over the limit: the team and loop names are too long for their own
	// rules as well, but the stream must name the topic it cannot create.
	long := TopicName(strings.Repeat("t", 100), strings.Repeat("n", 100), strings.Repeat("s", 60))
	if len(long) <= maxTopicName {
		t.Fatalf("test setup: topic %d characters", len(long))
	}
	l.Metadata.Team = strings.Repeat("t", 100)
	l.Metadata.Name = strings.Repeat("n", 100)
	l.Spec.Streams[0].Name = strings.Repeat("s", 60)
	errs = Validate(l)
	if !slices.Contains(fields(errs), "spec.streams[0].name") {
		t.Fatalf("no topic name error for a %d-character topic; got %v", len(long), errs)
	}
	for _, e := range errs {
		if e.Field == "spec.streams[0].name" && !strings.Contains(e.Message, "not a valid Kafka topic name") {
			t.Errorf("message %q", e.Message)
		}
	}
}

func TestCompatibilitiesMatchSchemasModes(t *testing.T) {
	if !reflect.DeepEqual(Compatibilities, schemas.Modes) {
		t.Fatalf("loop.Compatibilities %v and schemas.Modes %v disagree", Compatibilities, schemas.Modes)
	}
}

func TestExamplesParseAndValidate(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example specs in ../examples, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			loops, err := Load(fh)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(loops) == 0 {
				t.Fatal("no loops")
			}
		})
	}
}

func BenchmarkParseAndValidate(b *testing.B) {
	src := []byte(designExample)
	for b.Loop() {
		loops, err := ParseBytes(src)
		if err != nil {
			b.Fatal(err)
		}
		if errs := Validate(loops[0]); errs != nil {
			b.Fatal(errs)
		}
	}
}

// BenchmarkLoad1000Loops measures Parse+Validate of a file of 1,000 loops
// whose schemas all differ and were never parsed before (every iteration
// uses new schema texts, so schemas' parse cache never hits): the worst case
// of "1,000 loops applied from one file" (docs/benchmarks.md).
func BenchmarkLoad1000Loops(b *testing.B) {
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		var sb strings.Builder
		for i := range 1000 {
			if i > 0 {
				sb.WriteString("---\n")
			}
			doc := strings.Replace(designExample, "name: checkout-nudge", fmt.Sprintf("name: loop-%04d", i), 1)
			doc = strings.ReplaceAll(doc, `"name":"user_id"`, fmt.Sprintf(`"name":"user_%d_%d"`, n, i))
			sb.WriteString(doc)
		}
		src := sb.String()
		b.SetBytes(int64(len(src)))
		b.StartTimer()
		loops, err := Load(strings.NewReader(src))
		if err != nil || len(loops) != 1000 {
			b.Fatalf("Load: %d loops, %v", len(loops), err)
		}
	}
}
