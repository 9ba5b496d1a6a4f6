package provisioning_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

func acl(principal, typ, name, op string) provisioning.ACL {
	return provisioning.ACL{Principal: principal, Host: "*", ResourceType: typ, ResourceName: name,
		PatternType: provisioning.PatternLiteral, Operation: op, Permission: provisioning.PermissionAllow}
}

// TestDeriveDesignExample pins the resources of the reference loop (examples/checkout-nudge.yaml): every
// topic, config, ACL and quota, in canonical order.
func TestDeriveDesignExample(t *testing.T) {
	got := provisioning.Derive(checkoutNudge(), euCluster)
	const events, actions = "growth.checkout-nudge.events", "growth.checkout-nudge.actions"
	cfg := map[string]string{"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "259200000"}
	want := provisioning.Resources{
		Topics: []provisioning.Topic{
			{Name: actions, Partitions: 6, ReplicationFactor: 3, Configs: cfg},
			{Name: events, Partitions: 12, ReplicationFactor: 3, Configs: cfg},
		},
		ACLs: []provisioning.ACL{
			acl("User:nudge-engine", "GROUP", "nudge-engine", "READ"),
			acl("User:checkout-api", "TOPIC", events, "DESCRIBE"),
			acl("User:checkout-api", "TOPIC", events, "WRITE"),
			acl("User:nudge-engine", "TOPIC", events, "DESCRIBE"),
			acl("User:nudge-engine", "TOPIC", events, "READ"),
		},
		Quotas: []provisioning.Quota{
			{Principal: "User:checkout-api", ProducerByteRate: 6 << 20},
			{Principal: "User:nudge-engine", ConsumerByteRate: 6 << 20},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Derive:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("derived resources do not validate: %v", err)
	}
}

// TestDeriveRules covers the derivation rules one by one.
func TestDeriveRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(*loop.Loop)
		cl     catalog.Cluster
		check  func(t *testing.T, r provisioning.Resources)
	}{
		{
			name:   "RF 1 cluster: min.insync.replicas 1 and RF from the cluster",
			change: func(*loop.Loop) {}, cl: catalog.Cluster{ReplicationFactor: 1},
			check: func(t *testing.T, r provisioning.Resources) {
				for _, tp := range r.Topics {
					if tp.ReplicationFactor != 1 || tp.Configs["min.insync.replicas"] != "1" {
						t.Errorf("%s: rf %d min.isr %s", tp.Name, tp.ReplicationFactor, tp.Configs["min.insync.replicas"])
					}
				}
			},
		},
		{
			name:   "catalog without RF: broker default (-1)",
			change: func(*loop.Loop) {}, cl: catalog.Cluster{},
			check: func(t *testing.T, r provisioning.Resources) {
				if r.Topics[0].ReplicationFactor != -1 {
					t.Errorf("rf %d, want -1", r.Topics[0].ReplicationFactor)
				}
			},
		},
		{
			name: "principal both producer and consumer gets both rates",
			change: func(l *loop.Loop) {
				l.Spec.Consumers = append(l.Spec.Consumers, loop.Consumer{Principal: "User:checkout-api", Group: "g", Streams: []string{"actions"}})
			},
			cl: euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				want := provisioning.Quota{Principal: "User:checkout-api", ProducerByteRate: 6 << 20, ConsumerByteRate: 6 << 20}
				if !slices.Contains(r.Quotas, want) {
					t.Errorf("quotas %+v: want %+v", r.Quotas, want)
				}
			},
		},
		{
			name: "two producers each get the full rate",
			change: func(l *loop.Loop) {
				l.Spec.Producers = append(l.Spec.Producers, loop.Producer{Principal: "User:web", Streams: []string{"events"}})
			},
			cl: euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				for _, p := range []string{"User:checkout-api", "User:web"} {
					if !slices.Contains(r.Quotas, provisioning.Quota{Principal: p, ProducerByteRate: 6 << 20}) {
						t.Errorf("quotas %+v: want full rate for %s", r.Quotas, p)
					}
				}
			},
		},
		{
			name: "producers get ACLs on their own streams only",
			change: func(l *loop.Loop) {
				l.Spec.Producers = append(l.Spec.Producers, loop.Producer{Principal: "User:nudger", Streams: []string{"actions", "nope"}})
			},
			cl: euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				var got []string
				for _, a := range r.ACLs {
					if a.Principal == "User:nudger" {
						got = append(got, a.Operation+" "+a.ResourceName)
					}
				}
				want := []string{"DESCRIBE growth.checkout-nudge.actions", "WRITE growth.checkout-nudge.actions"}
				if !slices.Equal(got, want) {
					t.Errorf("ACLs of User:nudger %v, want %v", got, want)
				}
			},
		},
		{
			name:   "non-User principal gets ACLs but no quota",
			change: func(l *loop.Loop) { l.Spec.Producers[0].Principal = "Group:checkout" },
			cl:     euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				for _, q := range r.Quotas {
					if q.Principal == "Group:checkout" {
						t.Errorf("quota for a non-User principal: %+v", q)
					}
				}
			},
		},
		{
			name:   "huge records raise max.message.bytes to the next MiB",
			change: func(l *loop.Loop) { l.Spec.Throughput.RecordBytes = 3 << 20 },
			cl:     euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				if got := r.Topics[0].Configs["max.message.bytes"]; got != "4194304" {
					t.Errorf("max.message.bytes %q, want 4194304", got)
				}
			},
		},
		{
			name:   "no throughput: no quotas",
			change: func(l *loop.Loop) { l.Spec.Throughput = loop.Throughput{} },
			cl:     euCluster,
			check: func(t *testing.T, r provisioning.Resources) {
				if len(r.Quotas) != 0 {
					t.Errorf("quotas %+v, want none", r.Quotas)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := checkoutNudge()
			tt.change(l)
			tt.check(t, provisioning.Derive(l, tt.cl))
		})
	}
}

// TestDeriveIsDeterministic protects stable plans: the order of producers,
// consumers and streams in the spec does not change the result.
func TestDeriveIsDeterministic(t *testing.T) {
	a := checkoutNudge()
	a.Spec.Producers = append(a.Spec.Producers, loop.Producer{Principal: "User:web", Streams: []string{"events", "actions"}})
	b := checkoutNudge()
	b.Spec.Producers = append([]loop.Producer{{Principal: "User:web", Streams: []string{"actions", "events"}}}, b.Spec.Producers...)
	slices.Reverse(b.Spec.Streams)
	if ra, rb := provisioning.Derive(a, euCluster), provisioning.Derive(b, euCluster); !reflect.DeepEqual(ra, rb) {
		t.Fatalf("Derive depends on spec order:\n%+v\n%+v", ra, rb)
	}
}

func TestDerivePartitions(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		tp   loop.Throughput
		slo  loop.SLO
		rf   int16
		want int32
	}{
		{"design example: 2 MiB/s x3", loop.Throughput{BytesPerSecond: 2 * mib, PeakFactor: 3}, loop.SLO{LatencyP99Ms: 2000}, 3, 6},
		{"tiny loop on RF 3: at least 3", loop.Throughput{BytesPerSecond: 1000, PeakFactor: 2}, loop.SLO{LatencyP99Ms: 2000}, 3, 3},
		{"tiny loop on RF 1: at least 1", loop.Throughput{BytesPerSecond: 1000, PeakFactor: 2}, loop.SLO{}, 1, 1},
		{"tight SLO halves the budget", loop.Throughput{BytesPerSecond: 2 * mib, PeakFactor: 3}, loop.SLO{LatencyP99Ms: 500}, 3, 12},
		{"peak factor below 1 counts as 1", loop.Throughput{BytesPerSecond: 5 * mib, PeakFactor: 0.5}, loop.SLO{}, 1, 5},
		{"fractional need rounds up", loop.Throughput{BytesPerSecond: mib + 1, PeakFactor: 1}, loop.SLO{}, 1, 2},
		{"capped at 64", loop.Throughput{BytesPerSecond: 100 * mib, PeakFactor: 4}, loop.SLO{}, 3, provisioning.MaxDerivedPartitions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := provisioning.DerivePartitions(tt.tp, tt.slo, tt.rf); got != tt.want {
				t.Errorf("DerivePartitions = %d, want %d", got, tt.want)
			}
		})
	}
}
