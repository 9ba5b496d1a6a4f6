package provisioning_test

import (
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// checkoutNudge is the reference example (examples/checkout-nudge.yaml) in canonical units.
func checkoutNudge() *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Name: "checkout-nudge", Team: "growth"},
		Spec: loop.Spec{
			Owners:         []string{"ana@example.com"},
			Classification: loop.PII,
			Residency:      "eu",
			RetentionMs:    72 * 3600 * 1000,
			SLO:            loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput:     loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams: []loop.Stream{
				{Name: "events", Partitions: 12, Schema: loop.Schema{Format: "avro"}},
				{Name: "actions", Schema: loop.Schema{Format: "avro"}},
			},
			Producers: []loop.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
	}
}

var euCluster = catalog.Cluster{Name: "eu-1", Region: "eu", ReplicationFactor: 3}
