// Package apimap maps loops between the API messages and the domain; used
// by the server and loopctl.
//
// It maps what a loop file says and the API carries both ways: the loop's
// name and labels (metadata) and its whole spec, in the canonical units of
// package loop (milliseconds, bytes). Output-only metadata (uid, etag,
// generation, times) and the status are not mapped here: the server fills
// them in (server/mapper.go), and a loop file has none.
//
// An absent sub-message of the API (slo, throughput, a stream's schema) maps
// to the zero value of the domain, which maps back to an empty message: the
// two mean the same.
package apimap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// ParseName splits an API loop name "teams/{team}/loops/{loop}" into team
// and loop id. It checks the shape only; loop.Validate checks the names.
func ParseName(name string) (team, id string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "teams" || parts[2] != "loops" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// LoopToProto maps a loop's name, labels and spec to its API form. Output-only
// fields (metadata set by loopgate, status) are left unset.
func LoopToProto(l *loop.Loop) *lgv1.Loop {
	return &lgv1.Loop{
		Name:   l.Metadata.ResourceName(),
		Labels: maps.Clone(l.Metadata.Labels),
		Spec:   SpecToProto(&l.Spec),
	}
}

// LoopFromProto maps an API loop's name, labels and spec to the domain;
// output-only fields are ignored. The name must be
// "teams/{team}/loops/{loop}".
func LoopFromProto(p *lgv1.Loop) (*loop.Loop, error) {
	if p == nil {
		return nil, fmt.Errorf("no loop")
	}
	team, id, ok := ParseName(p.GetName())
	if !ok {
		return nil, fmt.Errorf("%q is not a loop name: want teams/{team}/loops/{loop}", p.GetName())
	}
	return &loop.Loop{
		Metadata: loop.Metadata{Name: id, Team: team, Labels: maps.Clone(p.GetLabels())},
		Spec:     SpecFromProto(p.GetSpec()),
	}, nil
}

// SpecToProto maps a spec to the API.
func SpecToProto(s *loop.Spec) *lgv1.LoopSpec {
	out := &lgv1.LoopSpec{
		Description:    s.Description,
		Owners:         slices.Clone(s.Owners),
		Classification: string(s.Classification),
		Residency:      s.Residency,
		RetentionMs:    s.RetentionMs,
		Slo:            &lgv1.Slo{LatencyP99Ms: s.SLO.LatencyP99Ms, FreshnessMs: s.SLO.FreshnessMs},
		Throughput: &lgv1.Throughput{
			BytesPerSecond: s.Throughput.BytesPerSecond,
			PeakFactor:     s.Throughput.PeakFactor,
			RecordBytes:    s.Throughput.RecordBytes,
		},
	}
	for _, st := range s.Streams {
		out.Streams = append(out.Streams, &lgv1.Stream{
			Name:       st.Name,
			Partitions: st.Partitions,
			External:   st.External,
			Schema: &lgv1.StreamSchema{
				Format:        st.Schema.Format,
				Compatibility: st.Schema.Compatibility,
				Definition:    st.Schema.Definition,
			},
		})
	}
	for _, p := range s.Producers {
		out.Producers = append(out.Producers, &lgv1.Producer{Principal: p.Principal, Streams: slices.Clone(p.Streams)})
	}
	for _, c := range s.Consumers {
		out.Consumers = append(out.Consumers, &lgv1.Consumer{Principal: c.Principal, Group: c.Group, Streams: slices.Clone(c.Streams)})
	}
	if s.Action != nil {
		out.Action = &lgv1.LoopAction{Stream: s.Action.Stream}
	}
	return out
}

// SpecFromProto maps an API spec to the domain; nil is the zero spec.
func SpecFromProto(s *lgv1.LoopSpec) loop.Spec {
	if s == nil {
		return loop.Spec{}
	}
	out := loop.Spec{
		Description:    s.GetDescription(),
		Owners:         slices.Clone(s.GetOwners()),
		Classification: loop.Classification(s.GetClassification()),
		Residency:      s.GetResidency(),
		RetentionMs:    s.GetRetentionMs(),
		SLO:            loop.SLO{LatencyP99Ms: s.GetSlo().GetLatencyP99Ms(), FreshnessMs: s.GetSlo().GetFreshnessMs()},
		Throughput: loop.Throughput{
			BytesPerSecond: s.GetThroughput().GetBytesPerSecond(),
			PeakFactor:     s.GetThroughput().GetPeakFactor(),
			RecordBytes:    s.GetThroughput().GetRecordBytes(),
		},
	}
	for _, st := range s.GetStreams() {
		out.Streams = append(out.Streams, loop.Stream{
			Name:       st.GetName(),
			Partitions: st.GetPartitions(),
			External:   st.GetExternal(),
			Schema: loop.Schema{
				Format:        st.GetSchema().GetFormat(),
				Compatibility: st.GetSchema().GetCompatibility(),
				Definition:    st.GetSchema().GetDefinition(),
			},
		})
	}
	for _, p := range s.GetProducers() {
		out.Producers = append(out.Producers, loop.Producer{Principal: p.GetPrincipal(), Streams: slices.Clone(p.GetStreams())})
	}
	for _, c := range s.GetConsumers() {
		out.Consumers = append(out.Consumers, loop.Consumer{Principal: c.GetPrincipal(), Group: c.GetGroup(), Streams: slices.Clone(c.GetStreams())})
	}
	if a := s.GetAction(); a != nil {
		out.Action = &loop.Action{Stream: a.GetStream()}
	}
	return out
}
