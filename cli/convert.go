package cli

import (
	"maps"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// toProto maps a loop read from a file (metadata and spec; status is output
// only and not sent) to its API form. The server has its own mapper for the
// other direction; both use the canonical units of package loop.
func toProto(l *loop.Loop) *loopgatev1.Loop {
	return &loopgatev1.Loop{
		Name:   l.Metadata.ResourceName(),
		Labels: maps.Clone(l.Metadata.Labels),
		Spec:   specToProto(&l.Spec),
	}
}

func specToProto(s *loop.Spec) *loopgatev1.LoopSpec {
	out := &loopgatev1.LoopSpec{
		Description:    s.Description,
		Owners:         cloneStrings(s.Owners),
		Classification: string(s.Classification),
		Residency:      s.Residency,
		RetentionMs:    s.RetentionMs,
		Slo: &loopgatev1.Slo{
			LatencyP99Ms: s.SLO.LatencyP99Ms,
			FreshnessMs:  s.SLO.FreshnessMs,
		},
		Throughput: &loopgatev1.Throughput{
			BytesPerSecond: s.Throughput.BytesPerSecond,
			PeakFactor:     s.Throughput.PeakFactor,
			RecordBytes:    s.Throughput.RecordBytes,
		},
	}
	for _, st := range s.Streams {
		out.Streams = append(out.Streams, &loopgatev1.Stream{
			Name:       st.Name,
			Partitions: st.Partitions,
			Schema: &loopgatev1.StreamSchema{
				Format:        st.Schema.Format,
				Compatibility: st.Schema.Compatibility,
				Definition:    st.Schema.Definition,
			},
		})
	}
	for _, p := range s.Producers {
		out.Producers = append(out.Producers, &loopgatev1.Producer{
			Principal: p.Principal,
			Streams:   cloneStrings(p.Streams),
		})
	}
	for _, c := range s.Consumers {
		out.Consumers = append(out.Consumers, &loopgatev1.Consumer{
			Principal: c.Principal,
			Group:     c.Group,
			Streams:   cloneStrings(c.Streams),
		})
	}
	if s.Action != nil {
		out.Action = &loopgatev1.LoopAction{Stream: s.Action.Stream}
	}
	return out
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
