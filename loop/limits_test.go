package loop

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// These tests use only Validate, Load and ParseBytes, which existed before
// the limits did, so that they show the failures they guard against on
// the code before the limits (they fail there).

// problem returns the message of the first problem at field, or fails.
func problem(t *testing.T, errs FieldErrors, field string) string {
	t.Helper()
	for _, e := range errs {
		if e.Field == field {
			return e.Message
		}
	}
	t.Fatalf("no problem at %s in %d problems:\n%v", field, len(errs), errs)
	return ""
}

// checkBounded fails unless errs respects MaxReportedProblems and every
// message and field is short, whatever the input.
func checkBounded(t *testing.T, errs FieldErrors) {
	t.Helper()
	if len(errs) > 101 {
		t.Errorf("%d problems reported; want at most 100 and a last one saying how many more", len(errs))
	}
	for _, e := range errs {
		if len(e.Message) > 1200 || len(e.Field) > 300 {
			t.Errorf("problem at %.80s is %d+%d bytes long: %.300s", e.Field, len(e.Field), len(e.Message), e.Message)
			return
		}
	}
}

func TestValidateRefusesEveryListOverItsLimit(t *testing.T) {
	principal := func(i int) string { return fmt.Sprintf("User:svc-%d", i) }
	tests := []struct {
		name   string
		mutate func(l *Loop)
		field  string
		want   string
	}{
		{"10,000 producers", func(l *Loop) {
			l.Spec.Producers = nil
			for i := range 10000 {
				l.Spec.Producers = append(l.Spec.Producers, Producer{Principal: principal(i), Streams: []string{"events", "actions"}})
			}
		}, "spec.producers", "10000 producers; at most 64 (limits.maxProducersPerLoop)"},
		{"10,000 consumers", func(l *Loop) {
			for i := range 10000 {
				l.Spec.Consumers = append(l.Spec.Consumers, Consumer{Principal: principal(i), Group: fmt.Sprint("g", i), Streams: []string{"events"}})
			}
		}, "spec.consumers", "10001 consumers; at most 64 (limits.maxConsumersPerLoop)"},
		{"20,000 labels", func(l *Loop) {
			for i := range 20000 {
				l.Metadata.Labels[fmt.Sprint("k", i)] = "v"
			}
		}, "metadata.labels", "20001 labels; at most 64 (limits.maxLabels)"},
		{"1,000 streams", func(l *Loop) {
			for i := range 998 {
				l.Spec.Streams = append(l.Spec.Streams, Stream{Name: fmt.Sprint("s", i), External: true,
					Schema: Schema{Format: "avro", Definition: `{"type":"record","name":"E","fields":[]}`}})
			}
		}, "spec.streams", "1000 streams; at most 32 (limits.maxStreamsPerLoop)"},
		{"100 owners", func(l *Loop) {
			for i := range 99 {
				l.Spec.Owners = append(l.Spec.Owners, fmt.Sprintf("o%d@example.com", i))
			}
		}, "spec.owners", "100 owners; at most 16 (limits.maxOwners)"},
		{"a 1 MB description", func(l *Loop) { l.Spec.Description = strings.Repeat("d", 1<<20) },
			"spec.description", "1048576 bytes; at most 4096 (limits.maxDescriptionBytes)"},
		{"a 1 MB label key", func(l *Loop) { l.Metadata.Labels[strings.Repeat("k", 1<<20)] = "v" },
			`metadata.labels["` + strings.Repeat("k", 200) + `"…(1048576 bytes)]`, "label key is 1048576 bytes; at most 317 (limits.maxLabelKeyBytes)"},
		{"a 1 MB label value", func(l *Loop) { l.Metadata.Labels["domain"] = strings.Repeat("v", 1<<20) },
			"metadata.labels.domain", "label value is 1048576 bytes; at most 63 (limits.maxLabelValueBytes)"},
		{"a producer's streams list of 5,000", func(l *Loop) {
			l.Spec.Producers[0].Streams = slicesRepeat("events", 5000)
		}, "spec", "5002 stream grants"},
		{"300 stream grants", func(l *Loop) {
			for i := range 60 {
				l.Spec.Consumers = append(l.Spec.Consumers, Consumer{Principal: principal(i), Group: fmt.Sprint("g", i),
					Streams: []string{"events", "actions", "events", "actions", "events"}})
			}
		}, "spec", "303 stream grants (the streams of every producer and consumer together; each becomes ACLs); at most 256 (limits.maxGrantsPerLoop)"},
		{"a 1 MiB loop", func(l *Loop) {
			def := `{"type":"record","name":"E","doc":"` + strings.Repeat("x", 100<<10) + `","fields":[]}`
			for i := range 10 {
				l.Spec.Streams = append(l.Spec.Streams, Stream{Name: fmt.Sprint("s", i), External: true,
					Schema: Schema{Format: "avro", Definition: def}})
			}
		}, "spec", "of JSON (metadata and spec, schema definitions included); at most 262144 (limits.maxSpecBytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := validLoop(t)
			tt.mutate(l)
			errs := Validate(l)
			if msg := problem(t, errs, tt.field); !strings.Contains(msg, tt.want) {
				t.Errorf("%s: %q, want it to contain %q", tt.field, msg, tt.want)
			}
			checkBounded(t, errs)
		})
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// The limit error comes first and the items of the oversized list are not
// checked one by one: 10,000 bad producers give one problem, not 10,000.
func TestValidateDoesNotCheckTheItemsOfAListOverItsLimit(t *testing.T) {
	l := validLoop(t)
	for i := range 10000 {
		l.Spec.Producers = append(l.Spec.Producers, Producer{Principal: fmt.Sprint("bad principal ", i), Streams: []string{"nope"}})
	}
	errs := Validate(l)
	if errs[0].Field != "spec.producers" {
		t.Fatalf("first problem %v, want the producers limit", errs[0])
	}
	for _, e := range errs {
		if strings.HasPrefix(e.Field, "spec.producers[") {
			t.Fatalf("got %d problems, want none about single producers: %.500v", len(errs), errs)
		}
	}
}

// However many problems a loop has, at most MaxReportedProblems are
// listed, then one saying how many more.
func TestValidateCapsTheProblemsReported(t *testing.T) {
	l := validLoop(t)
	for i := range 60 {
		l.Spec.Consumers = append(l.Spec.Consumers, Consumer{Principal: fmt.Sprint("User:c", i), Group: "g" + fmt.Sprint(i),
			Streams: []string{"a", "b", "c"}}) // 180 unknown streams
	}
	errs := Validate(l)
	if len(errs) != 101 {
		t.Fatalf("got %d problems, want 100 and one more saying how many were left out", len(errs))
	}
	if last := errs[100].Message; !strings.Contains(last, "more problem(s) not listed (at most 100 are reported at once") || errs[100].Field == "" {
		t.Errorf("last problem = %+v", errs[100])
	}
}

// Every message that repeats input clips it: a 1 MB name is not echoed.
func TestValidateClipsTheInputItQuotes(t *testing.T) {
	huge := strings.Repeat("N", 1<<20)
	l := validLoop(t)
	l.Metadata.Name = huge
	l.Metadata.Team = huge
	l.Spec.Owners = []string{huge, huge + "@x.y"}
	l.Spec.Classification = Classification(huge)
	l.Spec.Residency = huge
	l.Spec.Streams[0].Schema.Format = huge
	l.Spec.Streams[1].Name = huge
	l.Spec.Streams[1].Schema.Compatibility = huge
	l.Spec.Producers[0].Principal = huge
	l.Spec.Producers[1].Streams = []string{huge}
	l.Spec.Consumers[0].Group = huge
	l.Spec.Action.Stream = huge
	errs := Validate(l)
	if len(errs) < 10 {
		t.Fatalf("want a problem for each huge value, got %v", errs)
	}
	checkBounded(t, errs)
	msg := problem(t, errs, "metadata.name")
	if want := `"` + strings.Repeat("N", 200) + `"…(1048576 bytes) must be 3-40 characters`; !strings.HasPrefix(msg, want) {
		t.Errorf("metadata.name: %.300q, want it to start with %.300q", msg, want)
	}
}

// A deeply nested or very wide Avro schema is refused by its limits before
// it is parsed, with a short message (the message used to repeat the whole
// 2.5 MB definition, and a 60,000-field schema cost seconds and hundreds of
// MB to check).
func TestValidateRefusesHostileSchemasCheaplyWithShortMessages(t *testing.T) {
	deep := func(depth int) string {
		return `{"type":"record","name":"R","fields":[{"name":"f","type":` +
			strings.Repeat(`{"type":"array","items":`, depth) + `"strng"` + strings.Repeat("}", depth) + `}]}`
	}
	wide := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"type":"record","name":"W","fields":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"f%d","type":"int"}`, i)
		}
		b.WriteString("]}")
		return b.String()
	}
	tests := []struct {
		name, def, want string
	}{
		{"2.5 MB of nesting", deep(100_000), "Avro schema over a limit: the definition is 2500067 bytes; at most 131072 (limits.maxSchemaBytes)"},
		{"5,000 levels of nesting", deep(5000), "Avro schema over a limit: the definition nests more than 64 levels deep (JSON objects and arrays); at most 64 (limits.maxSchemaDepth)"},
		{"60,000 fields", wide(60_000), "Avro schema over a limit: the definition is 1848929 bytes; at most 131072 (limits.maxSchemaBytes)"},
		{"4,000 fields", wide(4000), "Avro schema over a limit: the definition has more than 1000 fields (record fields, nested types and enum symbols); at most 1000 (limits.maxSchemaFields)"},
		{"40 levels with an unknown type", deep(40), `invalid Avro schema: unknown type: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := validLoop(t)
			l.Spec.Streams[0].Schema.Definition = tt.def
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			errs := Validate(l)
			runtime.ReadMemStats(&after)
			msg := problem(t, errs, "spec.streams[0].schema.definition")
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %.400q, want it to contain %q", msg, tt.want)
			}
			if len(msg) > 600 {
				t.Errorf("message is %d bytes long; it must clip the definition: %.300q", len(msg), msg)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("validation allocated %d MB; the limits must be checked before parsing", alloc>>20)
			}
		})
	}
}

// aliasBomb is a 40-odd KB loop file whose aliases expand into 10^7
// values: every one of 10,000 producers is an alias of a producer whose
// streams are an alias of a 1,000-item list.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: loopgate.dev/v1\nkind: Loop\nmetadata: {name: bomb, team: growth}\nspec:\n")
	b.WriteString("  owners: [ana@example.com]\n  classification: internal\n  residency: eu\n  retention: 1d\n")
	b.WriteString("  slo: {latencyP99: 1s}\n  throughput: {bytesPerSecond: 1MiB}\n")
	b.WriteString(`  streams: [{name: events, schema: {definition: '{"type":"record","name":"E","fields":[]}'}}]` + "\n")
	b.WriteString("  action: {stream: &l [" + strings.TrimSuffix(strings.Repeat("e,", 1000), ",") + "]}\n")
	b.WriteString("  consumers: [&p {principal: User:p, streams: *l}")
	b.WriteString(strings.Repeat(",*p", 10000))
	b.WriteString("]\n")
	return b.String()
}

func TestLoadRefusesAYAMLAliasBombWithBoundedMemory(t *testing.T) {
	bomb := aliasBomb()
	if len(bomb) > 48<<10 {
		t.Fatalf("the bomb is %d bytes; keep it small", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Load(strings.NewReader(bomb))
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
		t.Errorf("Load allocated %d MB for a %d-byte file", alloc>>20, len(bomb))
	}
	var fes FieldErrors
	if !errors.As(err, &fes) {
		t.Fatalf("Load = %v, want FieldErrors", err)
	}
	if !strings.Contains(err.Error(), "the document expands YAML aliases to more than 100000 values; write the values out or use fewer aliases") {
		t.Errorf("Load error does not say why:\n%.1000s", err)
	}
	checkBounded(t, fes)
}

// Aliases used sparingly still work: the budget counts expansions, not
// aliases.
func TestParseFollowsAliasesWithinTheBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("  consumers:\n    - {principal: User:c0, streams: &both [events, actions]}\n")
	for i := 1; i < 60; i++ {
		fmt.Fprintf(&b, "    - {principal: User:c%d, streams: *both}\n", i)
	}
	loops, err := ParseBytes([]byte(strings.Replace(designExample, "  consumers:\n", b.String(), 1)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(loops[0].Spec.Consumers); n != 61 || len(loops[0].Spec.Consumers[59].Streams) != 2 {
		t.Fatalf("got %d consumers: %.300v", n, loops[0].Spec.Consumers)
	}
}

func TestLoadRefusesAFileOverMaxFileBytes(t *testing.T) {
	big := designExample + "\n# " + strings.Repeat("x", 5<<20) + "\n"
	_, err := Load(strings.NewReader(big))
	if err == nil || !strings.Contains(err.Error(), "the file is larger than 4194304 bytes (4MiB), the most a loop file may be; split it into several files") {
		t.Fatalf("Load of a 5 MiB file = %.300v", err)
	}
}

// A huge unknown key or scalar in a file is clipped in the field path and
// the message too.
func TestParseClipsTheInputItQuotes(t *testing.T) {
	huge := strings.Repeat("k", 1<<20)
	longKey := strings.Repeat("k", 1000) // YAML allows implicit keys of 1024 characters
	src := strings.Replace(designExample, "  owners:", "  "+longKey+": 1\n  owners:", 1)
	src = strings.Replace(src, "retention: 72h", "retention: "+huge, 1)
	src = strings.Replace(src, "latencyP99: 2s ", "latencyP99: ["+huge+"]", 1)
	_, err := ParseBytes([]byte(src))
	var fes FieldErrors
	if !errors.As(err, &fes) || len(fes) != 3 {
		t.Fatalf("Parse = %.500v, want 3 problems", err)
	}
	checkBounded(t, fes)
}

// quote bounds what it writes, also when escapes make the input longer.
func TestQuoteBoundsItsOutput(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("a", 200), strings.Repeat("a", 201), strings.Repeat("\x81", 1000),
		strings.Repeat("é", 500), strings.Repeat("\x1b", 300)} {
		q := quote(s)
		if len(q) > 230 {
			t.Errorf("quote(%d bytes) is %d bytes: %q", len(s), len(q), q)
		}
		if len(s) <= 50 && q != fmt.Sprintf("%q", s) {
			t.Errorf("quote(%q) = %s", s, q)
		}
		if strings.Contains(q, "…(") != (fmt.Sprintf("%q", s) != q) {
			t.Errorf("quote(%d bytes) = %s: says it clipped iff it did", len(s), q)
		}
	}
}
