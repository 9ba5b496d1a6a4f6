package policy_test

import (
	"bytes"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/provisioning"
)

// typicalLoop is the examples/checkout-nudge.yaml loop: pii in eu, 72h retention, a 2s
// p99 SLO and two streams.
func typicalLoop() *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Name: "checkout-nudge", Team: "growth", Labels: map[string]string{"domain": "checkout"}},
		Spec: loop.Spec{
			Description:    "Nudge shoppers who abandon checkout while the session is live",
			Owners:         []string{"ana@example.com"},
			Classification: loop.PII,
			Residency:      "eu",
			RetentionMs:    72 * 3600 * 1000,
			SLO:            loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 1000},
			Throughput:     loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams: []loop.Stream{
				{Name: "events", Partitions: 12, Schema: loop.Schema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}`}},
				{Name: "actions", Schema: loop.Schema{Format: "avro",
					Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []loop.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
	}
}

// derivedFor is what provisioning would create for typicalLoop (written out
// so the policy tests do not move when the derivation rules are tuned).
func derivedFor(l *loop.Loop) provisioning.Resources {
	var r provisioning.Resources
	for _, s := range l.Spec.Streams {
		p := s.Partitions
		if p == 0 {
			p = 6
		}
		r.Topics = append(r.Topics, provisioning.Topic{
			Name: provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, s.Name), Partitions: p, ReplicationFactor: 3,
			Configs: map[string]string{"retention.ms": "259200000", "cleanup.policy": "delete", "min.insync.replicas": "2"},
		})
	}
	for _, p := range l.Spec.Producers {
		for _, s := range p.Streams {
			topic := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, s)
			for _, op := range []string{provisioning.OpWrite, provisioning.OpDescribe} {
				r.ACLs = append(r.ACLs, provisioning.ACL{Principal: p.Principal, Host: "*", ResourceType: provisioning.ResourceTopic,
					ResourceName: topic, PatternType: provisioning.PatternLiteral, Operation: op, Permission: provisioning.PermissionAllow})
			}
		}
		r.Quotas = append(r.Quotas, provisioning.Quota{Principal: p.Principal, ProducerByteRate: 6 << 20})
	}
	return r
}

func growthTeam() catalog.Team {
	return catalog.Team{Name: "growth", AllowedRegions: []string{"eu", "us"},
		MaxPartitionsPerLoop: 64, MaxPartitions: 256, MaxBytesPerSecond: 10 << 20, UsedPartitions: 40}
}

func euCluster() catalog.Cluster {
	return catalog.Cluster{Name: "eu-1", Region: "eu", Zones: []string{"a", "b", "c"}, ReplicationFactor: 3,
		BootstrapServers: []string{"127.0.0.1:9092"}}
}

// typicalInput is a CREATE of typicalLoop by a member of its team.
func typicalInput() policy.Input {
	l := typicalLoop()
	return policy.Input{
		Operation: policy.OpCreate,
		Loop:      l,
		Derived:   derivedFor(l),
		Team:      growthTeam(),
		Cluster:   euCluster(),
		Regions:   []string{"eu", "us"},
		Actor:     policy.Actor{Subject: "ana@example.com", Teams: []string{"growth"}, Roles: []string{"developer"}},
		Cost:      costFor(l),
	}
}

// costFor is l's cost forecast on the eu cluster, as admission computes it.
func costFor(l *loop.Loop) *cost.Estimate {
	var parts int32
	for _, st := range l.Spec.Streams {
		parts += st.Partitions
	}
	e := cost.Forecast(cost.ForLoop(&l.Spec, parts, euCluster()))
	return &e
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
