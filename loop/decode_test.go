package loop

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// designExample is the reference loop spec of docs/loop-spec.md, verbatim.
const designExample = `apiVersion: loopgate.dev/v1
kind: Loop
metadata:
  name: checkout-nudge          # ^[a-z][a-z0-9-]{1,38}[a-z0-9]$
  team: growth                  # owning team, from the team catalog
  labels: {domain: checkout}
spec:
  description: Nudge shoppers who abandon checkout while the session is live
  owners: [ana@example.com]     # people accountable; at least one
  classification: pii           # public | internal | confidential | pii
  residency: eu                 # region key from the cluster catalog
  retention: 72h
  slo:
    latencyP99: 2s              # event produced -> action taken, 99th percentile
    freshness: 30s              # max consumer time lag (optional)
  throughput:
    bytesPerSecond: 2MiB        # steady ingress
    peakFactor: 3
    recordBytes: 600
  streams:
    - name: events              # topic: <team>.<loop>.<stream> unless the catalog says otherwise
      partitions: 12            # optional: derived from throughput and the SLO when omitted
      schema:
        format: avro
        compatibility: BACKWARD # NONE | BACKWARD | FORWARD | FULL (+ _TRANSITIVE)
        definition: |
          {"type":"record","name":"CheckoutEvent","namespace":"shop",
           "fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}
    - name: actions
      schema: {format: avro, definition: '{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}'}
  producers:
    - principal: User:checkout-api
      streams: [events]
    - principal: User:nudge-engine
      streams: [actions]
  consumers:
    - principal: User:nudge-engine
      group: nudge-engine
      streams: [events]
  action:
    stream: actions             # where the loop closes; used to measure producer-to-action latency
`

// minimal is a small valid loop; tests splice fields into it.
const minimal = `apiVersion: loopgate.dev/v1
kind: Loop
metadata:
  name: tiny-loop
  team: growth
spec:
  owners: [ana@example.com]
  classification: internal
  residency: eu
  retention: 1d
  slo: {latencyP99: 1s}
  throughput: {bytesPerSecond: 1KiB}
  streams:
    - name: events
      schema: {definition: '{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}'}
  producers: [{principal: "User:tiny-app", streams: [events]}]
`

func TestParseDesignExampleToCanonicalUnits(t *testing.T) {
	loops, err := ParseBytes([]byte(designExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(loops) != 1 {
		t.Fatalf("got %d loops, want 1", len(loops))
	}
	l := loops[0]
	want := &Loop{
		Metadata: Metadata{Name: "checkout-nudge", Team: "growth", Labels: map[string]string{"domain": "checkout"}},
		Spec: Spec{
			Description:    "Nudge shoppers who abandon checkout while the session is live",
			Owners:         []string{"ana@example.com"},
			Classification: PII,
			Residency:      "eu",
			RetentionMs:    259_200_000,
			SLO:            SLO{LatencyP99Ms: 2_000, FreshnessMs: 30_000},
			Throughput:     Throughput{BytesPerSecond: 2_097_152, PeakFactor: 3, RecordBytes: 600},
			Streams: []Stream{
				{Name: "events", Partitions: 12, Schema: Schema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop",` + "\n" +
						` "fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}` + "\n"}},
				{Name: "actions", Schema: Schema{Format: "avro", Compatibility: "BACKWARD", // defaulted
					Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}, {Principal: "User:nudge-engine", Streams: []string{"actions"}}},
			Consumers: []Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &Action{Stream: "actions"},
		},
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("parsed loop:\n got %+v\nwant %+v", *l, *want)
	}
	if errs := Validate(l); errs != nil {
		t.Errorf("the reference example does not validate: %v", errs)
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	loops, err := ParseBytes([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	l := loops[0]
	if l.Spec.Throughput.PeakFactor != 1 {
		t.Errorf("peakFactor = %v, want default 1", l.Spec.Throughput.PeakFactor)
	}
	if s := l.Spec.Streams[0].Schema; s.Format != "avro" || s.Compatibility != "BACKWARD" {
		t.Errorf("schema format/compatibility = %q/%q, want defaults avro/BACKWARD", s.Format, s.Compatibility)
	}
}

// parseErrors parses src and returns its FieldErrors, failing if Parse
// succeeded or returned another error type.
func parseErrors(t *testing.T, src string) FieldErrors {
	t.Helper()
	loops, err := ParseBytes([]byte(src))
	if err == nil {
		t.Fatalf("Parse accepted the document:\n%s", src)
	}
	if loops != nil {
		t.Errorf("Parse returned loops along with an error")
	}
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("Parse error %v (%T) is not FieldErrors", err, err)
	}
	return fe
}

func TestParseRefusesUnknownFieldsAtEveryDepth(t *testing.T) {
	tests := []struct {
		name, old, new string
		wantField      string
		wantLine       int
		wantHint       string
	}{
		{"top level", "kind: Loop\n", "kind: Loop\nstatus: {}\n", "status", 3, "valid fields here: apiVersion, kind, metadata, spec"},
		{"metadata", "  team: growth\n", "  team: growth\n  namespace: x\n", "metadata.namespace", 6, "valid fields here"},
		{"spec typo", "  streams:\n", "  stream:\n", "spec.stream", 13, `did you mean "streams"?`},
		{"slo", "{latencyP99: 1s}", "{latencyP99: 1s, latencyP95: 1s}", "spec.slo.latencyP95", 11, `did you mean "latencyP99"?`},
		{"stream", "    - name: events\n", "    - name: events\n      replicas: 3\n", "spec.streams[0].replicas", 15, "valid fields here"},
		{"schema", "schema: {definition", "schema: {type: avro, definition", "spec.streams[0].schema.type", 15, "valid fields here: compatibility, definition, format"},
		{"case slip", "  retention: 1d\n", "  Retention: 1d\n", "spec.Retention", 10, `did you mean "retention"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, tt.old, tt.new, 1)
			if src == minimal {
				t.Fatalf("test setup: %q not found", tt.old)
			}
			errs := parseErrors(t, src)
			var found *FieldError
			for i := range errs {
				if errs[i].Field == tt.wantField {
					found = &errs[i]
				}
			}
			if found == nil {
				t.Fatalf("no error for %s in %v", tt.wantField, errs)
			}
			if !strings.Contains(found.Message, "unknown field") || !strings.Contains(found.Message, tt.wantHint) {
				t.Errorf("message %q should say unknown field and %q", found.Message, tt.wantHint)
			}
			if found.Document != 1 || found.Line != tt.wantLine {
				t.Errorf("position = document %d line %d, want document 1 line %d", found.Document, found.Line, tt.wantLine)
			}
		})
	}
}

func TestParseRefusesWrongHeader(t *testing.T) {
	tests := []struct {
		name, old, new, wantField, wantMsg string
	}{
		{"wrong apiVersion", "apiVersion: loopgate.dev/v1", "apiVersion: loopgate.dev/v2", "apiVersion", `must be "loopgate.dev/v1", not "loopgate.dev/v2"`},
		{"missing apiVersion", "apiVersion: loopgate.dev/v1\n", "", "apiVersion", "is missing"},
		{"wrong kind", "kind: Loop", "kind: Deployment", "kind", `must be "Loop", not "Deployment"`},
		{"missing kind", "kind: Loop\n", "", "kind", "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An unknown field as well: a wrong header must not drown in
			// errors about a body that was never meant to be a loop.
			src := strings.Replace(minimal, tt.old, tt.new, 1) + "  replicas: 3\n"
			errs := parseErrors(t, src)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want only the header error: %v", len(errs), errs)
			}
			if errs[0].Field != tt.wantField || !strings.Contains(errs[0].Message, tt.wantMsg) {
				t.Errorf("got %v, want %s: ...%s", errs[0], tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestParseReportsEveryProblemOfADocumentWithPathAndLine(t *testing.T) {
	src := strings.NewReplacer(
		"retention: 1d", "retention: 72x",
		"{latencyP99: 1s}", "{latencyP99: 5}",
		"{bytesPerSecond: 1KiB}", "{bytesPerSecond: 2mb, peakFactor: high}",
		"owners: [ana@example.com]", "owners: ana@example.com",
		"  producers:", "    - name: more\n      partitions: twelve\n  producers:",
	).Replace(minimal)
	errs := parseErrors(t, src)
	want := []FieldError{
		{Field: "spec.owners", Document: 1, Line: 7, Message: `must be a list, not "ana@example.com"`},
		{Field: "spec.retention", Document: 1, Line: 10, Message: `"72x" has an unknown unit "x" (use ms, s, m, h, d or w)`},
		{Field: "spec.slo.latencyP99", Document: 1, Line: 11, Message: `"5" has no unit (write e.g. 5h, 5d or 5ms)`},
		{Field: "spec.throughput.bytesPerSecond", Document: 1, Line: 12, Message: `"2mb" has an unknown unit "mb" (use B, KiB, MiB, GiB, TiB or kB, MB, GB, TB)`},
		{Field: "spec.throughput.peakFactor", Document: 1, Line: 12, Message: `must be a number, not "high"`},
		{Field: "spec.streams[1].partitions", Document: 1, Line: 17, Message: `must be a whole number, not "twelve"`},
	}
	if !reflect.DeepEqual([]FieldError(errs), want) {
		t.Errorf("errors:\n got %#v\nwant %#v", errs, want)
	}
	if got := errs[1].Error(); got != `document 1 line 10: spec.retention: "72x" has an unknown unit "x" (use ms, s, m, h, d or w)` {
		t.Errorf("Error() = %q", got)
	}
	if !strings.HasPrefix(errs.Error(), "6 problems:\n  document 1 line 7: spec.owners:") {
		t.Errorf("FieldErrors.Error() = %q", errs.Error())
	}
}

func TestParseRefusesDuplicateKeys(t *testing.T) {
	src := strings.Replace(minimal, "  residency: eu\n", "  residency: eu\n  residency: us\n", 1)
	errs := parseErrors(t, src)
	if len(errs) != 1 || errs[0].Field != "spec.residency" || errs[0].Line != 10 ||
		!strings.Contains(errs[0].Message, "duplicate key (first written on line 9)") {
		t.Errorf("got %v, want a duplicate key error for spec.residency on line 10", errs)
	}
}

func TestParseMultipleDocuments(t *testing.T) {
	second := strings.Replace(minimal, "name: tiny-loop", "name: other-loop", 1)
	bad := strings.Replace(minimal, "name: tiny-loop", "name: bad-loop", 1)
	bad = strings.Replace(bad, "retention: 1d", "retention: forever", 1)

	t.Run("all good, empty documents skipped", func(t *testing.T) {
		src := "---\n" + minimal + "---\n# only a comment\n---\n" + second + "---\n"
		loops, err := ParseBytes([]byte(src))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if len(loops) != 2 || loops[0].Metadata.Name != "tiny-loop" || loops[1].Metadata.Name != "other-loop" {
			t.Fatalf("got %d loops, want tiny-loop and other-loop in file order", len(loops))
		}
	})
	t.Run("one bad document fails the file and is named", func(t *testing.T) {
		src := minimal + "---\n" + bad + "---\n" + second
		errs := parseErrors(t, src)
		if len(errs) != 1 {
			t.Fatalf("got %v, want one error", errs)
		}
		e := errs[0]
		if e.Document != 2 || e.Field != "spec.retention" || e.Line != 17+10 {
			t.Errorf("got %+v, want document 2 line 27 spec.retention", e)
		}
		if !strings.HasPrefix(e.Error(), `document 2 line 27: spec.retention: "forever" is not a duration`) {
			t.Errorf("Error() = %q", e.Error())
		}
	})
	t.Run("problems of several documents are all reported", func(t *testing.T) {
		bad2 := strings.Replace(second, "kind: Loop", "kind: Loop\nextra: 1", 1)
		errs := parseErrors(t, bad+"---\n"+bad2)
		if len(errs) != 2 || errs[0].Document != 1 || errs[1].Document != 2 || errs[1].Field != "extra" {
			t.Errorf("got %v, want one error in document 1 and one in document 2", errs)
		}
	})
	t.Run("the same loop twice", func(t *testing.T) {
		errs := parseErrors(t, minimal+"---\n"+minimal)
		if len(errs) != 1 || errs[0].Document != 2 || errs[0].Field != "metadata.name" ||
			!strings.Contains(errs[0].Message, "growth/tiny-loop is already defined in document 1") {
			t.Errorf("got %v, want a duplicate loop error in document 2", errs)
		}
	})
	t.Run("syntax error stops reading", func(t *testing.T) {
		errs := parseErrors(t, minimal+"---\nspec: [unclosed\n")
		if len(errs) != 1 || errs[0].Document != 2 || errs[0].Line == 0 || !strings.Contains(errs[0].Message, "fix the YAML syntax") {
			t.Errorf("got %v, want one syntax error in document 2 with a line", errs)
		}
	})
	t.Run("missing sections", func(t *testing.T) {
		errs := parseErrors(t, "apiVersion: loopgate.dev/v1\nkind: Loop\n")
		if len(errs) != 2 || errs[0].Field != "metadata" || errs[1].Field != "spec" {
			t.Errorf("got %v, want metadata and spec missing", errs)
		}
	})
	t.Run("not a mapping", func(t *testing.T) {
		errs := parseErrors(t, "- a\n- b\n")
		if len(errs) != 1 || !strings.Contains(errs[0].Message, "must be a mapping of fields, not a list") {
			t.Errorf("got %v", errs)
		}
	})
}

func TestParseFollowsYAMLAnchors(t *testing.T) {
	src := strings.Replace(minimal, "  owners: [ana@example.com]\n", "  owners: &people [ana@example.com]\n", 1)
	src = src[:strings.Index(src, "  producers:")] +
		"  producers:\n    - principal: User:a\n      streams: &s [events]\n  consumers:\n    - {principal: User:b, group: b, streams: *s}\n"
	loops, err := ParseBytes([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := loops[0].Spec.Consumers[0].Streams; !reflect.DeepEqual(got, []string{"events"}) {
		t.Errorf("aliased streams = %v", got)
	}
}

func TestFormatRoundTripsThroughParse(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var all []*Loop
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		loops, err := ParseBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, loops...)
	}
	// Output-only fields are not rendered and must not break the output.
	all[0].Status.State = StateReady
	all[0].Metadata.Generation = 4
	for _, l := range all {
		out, err := Format(l)
		if err != nil {
			t.Fatalf("Format(%s): %v", l.Metadata.Key(), err)
		}
		back, err := ParseBytes(out)
		if err != nil {
			t.Fatalf("Parse(Format(%s)): %v\n%s", l.Metadata.Key(), err, out)
		}
		if !reflect.DeepEqual(back[0].Metadata.Labels, l.Metadata.Labels) || !reflect.DeepEqual(back[0].Spec, l.Spec) ||
			back[0].Metadata.Name != l.Metadata.Name || back[0].Metadata.Team != l.Metadata.Team {
			t.Errorf("round trip of %s changed it:\n got %+v\nwant %+v\nYAML:\n%s", l.Metadata.Key(), back[0].Spec, l.Spec, out)
		}
	}
	multi, err := FormatAll(all)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseBytes(multi)
	if err != nil || len(back) != len(all) {
		t.Fatalf("Parse(FormatAll) = %d loops, %v; want %d", len(back), err, len(all))
	}
}

func TestFormatWritesHumanUnits(t *testing.T) {
	loops, err := ParseBytes([]byte(designExample))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Format(loops[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"retention: 3d\n", "latencyP99: 2s\n", "freshness: 30s\n", "bytesPerSecond: 2MiB\n", "recordBytes: 600\n", "peakFactor: 3\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Format output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "status") || strings.Contains(string(out), "Ms:") {
		t.Errorf("Format output has output-only or canonical fields:\n%s", out)
	}
}

func TestLoadValidatesWithDocumentAndLine(t *testing.T) {
	bad := strings.Replace(minimal, "name: tiny-loop", "name: Tiny", 1)
	bad = strings.Replace(bad, `{"name":"id","type":"string"}`, `{"name":"id","type":"strin"}`, 1)
	_, err := Load(strings.NewReader(minimal + "---\n" + bad))
	var errs FieldErrors
	if !errors.As(err, &errs) {
		t.Fatalf("Load = %v, want FieldErrors", err)
	}
	want := []struct {
		field string
		line  int
	}{{"metadata.name", 17 + 4}, {"spec.streams[0].schema.definition", 17 + 15}}
	if len(errs) != len(want) {
		t.Fatalf("got %v, want %d errors", errs, len(want))
	}
	for i, w := range want {
		if errs[i].Field != w.field || errs[i].Document != 2 || errs[i].Line != w.line {
			t.Errorf("error %d = %+v, want %s in document 2 line %d", i, errs[i], w.field, w.line)
		}
	}
	// errors.As also finds a single FieldError.
	var one FieldError
	if !errors.As(err, &one) || one.Field != "metadata.name" {
		t.Errorf("errors.As(FieldError) = %+v", one)
	}
}

func TestParseRefusesWrongShapes(t *testing.T) {
	tests := []struct {
		name, old, new, wantField, wantMsg string
	}{
		{"partitions overflow", "    - name: events\n", "    - name: events\n      partitions: 99999999999\n", "spec.streams[0].partitions", "99999999999 is too large"},
		{"partitions quoted", "    - name: events\n", "    - name: events\n      partitions: \"12\"\n", "spec.streams[0].partitions", `must be a whole number, not "12"`},
		{"metadata is a list", "metadata:\n  name: tiny-loop\n  team: growth\n", "metadata: [tiny-loop]\n", "metadata", "must be a mapping of fields, not a list"},
		{"labels is a list", "  team: growth\n", "  team: growth\n  labels: [a]\n", "metadata.labels", "must be a mapping of key: value"},
		{"retention is a mapping", "retention: 1d", "retention: {days: 1}", "spec.retention", "must be a duration such as 72h or 500ms, not a mapping"},
		{"owner is a mapping", "owners: [ana@example.com]", "owners: [{email: ana@example.com}]", "spec.owners[0]", "must be a string, not a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, tt.old, tt.new, 1)
			if src == minimal {
				t.Fatalf("test setup: %q not found", tt.old)
			}
			errs := parseErrors(t, src)
			if len(errs) != 1 || errs[0].Field != tt.wantField || !strings.Contains(errs[0].Message, tt.wantMsg) {
				t.Errorf("got %v, want one error %s: ...%s", errs, tt.wantField, tt.wantMsg)
			}
		})
	}
}
