package apimap

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// handMade covers every field of the spec: explicit and derived
// partitions, schemas with and without compatibility, producers, consumers
// with and without group, action, labels, SLO with and without freshness,
// throughput with and without record size, external streams.
func handMade() []*loop.Loop {
	return []*loop.Loop{
		{
			Metadata: loop.Metadata{Name: "every-field", Team: "growth", Labels: map[string]string{"domain": "checkout", "tier": "1"}},
			Spec: loop.Spec{
				Description:    "every field set",
				Owners:         []string{"ana@example.com", "bo@example.com"},
				Classification: loop.PII,
				Residency:      "eu",
				RetentionMs:    72 * 3600 * 1000,
				SLO:            loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
				Throughput:     loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3.5, RecordBytes: 600},
				Streams: []loop.Stream{
					{Name: "events", Partitions: 12, Schema: loop.Schema{Format: "avro", Compatibility: "BACKWARD", Definition: `{"type":"string"}`}},
					{Name: "cdc", External: true, Schema: loop.Schema{Format: "avro", Compatibility: "FULL_TRANSITIVE", Definition: "{\"type\":\"long\"}\n"}},
					{Name: "actions", Schema: loop.Schema{Format: "avro", Definition: `"string"`}},
				},
				Producers: []loop.Producer{
					{Principal: "User:api", Streams: []string{"events"}},
					{Principal: "User:engine", Streams: []string{"actions"}},
				},
				Consumers: []loop.Consumer{
					{Principal: "User:engine", Group: "engine", Streams: []string{"events", "cdc"}},
					{Principal: "User:reporter", Streams: []string{"actions"}},
				},
				Action: &loop.Action{Stream: "actions"},
			},
		},
		{
			Metadata: loop.Metadata{Name: "minimal", Team: "risk"},
			Spec: loop.Spec{
				Owners:         []string{"x@example.com"},
				Classification: loop.Public,
				Residency:      "us",
				RetentionMs:    3600 * 1000,
				SLO:            loop.SLO{LatencyP99Ms: 500},
				Throughput:     loop.Throughput{BytesPerSecond: 1024, PeakFactor: 1},
				Streams:        []loop.Stream{{Name: "in", External: true, Schema: loop.Schema{Format: "avro", Definition: `"int"`}}},
			},
		},
		{Metadata: loop.Metadata{Name: "empty", Team: "t"}},
	}
}

func examples(t *testing.T) []*loop.Loop {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var out []*loop.Loop
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		loops, err := loop.ParseBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, loops...)
	}
	return out
}

func TestDomainToAPIToDomain(t *testing.T) {
	for _, l := range append(examples(t), handMade()...) {
		back, err := LoopFromProto(LoopToProto(l))
		if err != nil {
			t.Fatalf("%s: %v", l.Metadata.Key(), err)
		}
		if !reflect.DeepEqual(back, l) {
			t.Errorf("%s: domain → API → domain changed it:\n got %+v\nwant %+v", l.Metadata.Key(), back, l)
		}
	}
}

func TestAPIToDomainToAPI(t *testing.T) {
	for _, l := range append(examples(t), handMade()...) {
		p := LoopToProto(l)
		d, err := LoopFromProto(p)
		if err != nil {
			t.Fatalf("%s: %v", l.Metadata.Key(), err)
		}
		if back := LoopToProto(d); !proto.Equal(back, p) {
			t.Errorf("%s: API → domain → API changed it:\n got %v\nwant %v", l.Metadata.Key(), back, p)
		}
	}
	// A message written by hand, as a REST client would send it.
	p := &lgv1.Loop{
		Name:   "teams/growth/loops/x",
		Labels: map[string]string{"a": "b"},
		Spec: &lgv1.LoopSpec{
			Description: "d", Owners: []string{"a@example.com"}, Classification: "internal", Residency: "eu", RetentionMs: 1,
			Slo: &lgv1.Slo{LatencyP99Ms: 2, FreshnessMs: 3}, Throughput: &lgv1.Throughput{BytesPerSecond: 4, PeakFactor: 5, RecordBytes: 6},
			Streams: []*lgv1.Stream{
				{Name: "s", Partitions: 7, External: true, Schema: &lgv1.StreamSchema{Format: "avro", Compatibility: "NONE", Definition: "{}"}},
				{Name: "t", Schema: &lgv1.StreamSchema{Format: "avro", Definition: "{}"}},
			},
			Producers: []*lgv1.Producer{{Principal: "User:p", Streams: []string{"t"}}},
			Consumers: []*lgv1.Consumer{{Principal: "User:c", Group: "g", Streams: []string{"s"}}, {Principal: "User:d", Streams: []string{"t"}}},
			Action:    &lgv1.LoopAction{Stream: "t"},
		},
	}
	d, err := LoopFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if back := LoopToProto(d); !proto.Equal(back, p) {
		t.Errorf("API → domain → API changed it:\n got %v\nwant %v", back, p)
	}
}

func TestEveryStreamFieldSurvives(t *testing.T) {
	// External was once dropped by loopctl's own copy of the mapping.
	l := handMade()[0]
	p := LoopToProto(l)
	if !p.GetSpec().GetStreams()[1].GetExternal() {
		t.Error("external stream lost on the way to the API")
	}
}

func TestLoopFromProtoRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "growth/x", "teams//loops/x", "teams/a/loops/", "teams/a/principals/x", "teams/a/loops/x/y"} {
		if _, err := LoopFromProto(&lgv1.Loop{Name: name}); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	if _, err := LoopFromProto(nil); err == nil {
		t.Error("nil accepted")
	}
}

func TestMappingDoesNotAlias(t *testing.T) {
	l := handMade()[0]
	p := LoopToProto(l)
	p.Labels["domain"] = "changed"
	p.Spec.Owners[0] = "changed"
	p.Spec.Producers[0].Streams[0] = "changed"
	if l.Metadata.Labels["domain"] != "checkout" || l.Spec.Owners[0] != "ana@example.com" || l.Spec.Producers[0].Streams[0] != "events" {
		t.Error("the API message shares memory with the domain loop")
	}
}
