package loop

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Format renders a loop as a YAML loop document with human units (what
// "loopctl get -o yaml" prints). Only the user-written parts are rendered:
// apiVersion, kind, metadata name/team/labels and spec; output-only metadata
// and status are left out so that the result can be edited and applied
// again. Parse(Format(l)) yields l's metadata and spec.
func Format(l *Loop) ([]byte, error) {
	var buf bytes.Buffer
	if err := encode(&buf, l); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FormatAll renders several loops as one multi-document YAML file.
func FormatAll(loops []*Loop) ([]byte, error) {
	var buf bytes.Buffer
	for i, l := range loops {
		if i > 0 {
			buf.WriteString("---\n")
		}
		if err := encode(&buf, l); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func encode(buf *bytes.Buffer, l *Loop) error {
	enc := yaml.NewEncoder(buf)
	enc.SetIndent(2)
	if err := enc.Encode(fromLoop(l)); err != nil {
		return fmt.Errorf("format loop %s: %w", l.Metadata.Key(), err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("format loop %s: %w", l.Metadata.Key(), err)
	}
	return nil
}

// fromLoop converts the domain shape to the YAML shape.
func fromLoop(l *Loop) *documentYAML {
	sp := &l.Spec
	doc := &documentYAML{
		APIVersion: APIVersion,
		Kind:       Kind,
		Metadata:   &metadataYAML{Name: l.Metadata.Name, Team: l.Metadata.Team, Labels: l.Metadata.Labels},
		Spec: &specYAML{
			Description:    sp.Description,
			Owners:         sp.Owners,
			Classification: string(sp.Classification),
			Residency:      sp.Residency,
			Retention:      durationValue(sp.RetentionMs),
			SLO: sloYAML{
				LatencyP99: durationValue(sp.SLO.LatencyP99Ms),
				Freshness:  durationValue(sp.SLO.FreshnessMs),
			},
			Throughput: throughputYAML{
				BytesPerSecond: sizeValue(sp.Throughput.BytesPerSecond),
				PeakFactor:     sp.Throughput.PeakFactor,
				RecordBytes:    sizeValue(sp.Throughput.RecordBytes),
			},
		},
	}
	for _, s := range sp.Streams {
		doc.Spec.Streams = append(doc.Spec.Streams, streamYAML{
			Name:       s.Name,
			Partitions: s.Partitions,
			Schema:     schemaYAML(s.Schema),
			External:   s.External,
		})
	}
	for _, p := range sp.Producers {
		doc.Spec.Producers = append(doc.Spec.Producers, producerYAML(p))
	}
	for _, c := range sp.Consumers {
		doc.Spec.Consumers = append(doc.Spec.Consumers, consumerYAML(c))
	}
	if sp.Action != nil {
		doc.Spec.Action = &actionYAML{Stream: sp.Action.Stream}
	}
	return doc
}
