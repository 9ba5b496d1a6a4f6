package loop_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// largestLoop is the largest loop the default limits allow: every list at
// its limit, every grant used, and, with longest, every name at its
// longest.
func largestLoop(longest bool) *loop.Loop {
	lim := catalog.DefaultLimits()
	pad := func(prefix string, n int, i int) string {
		if !longest {
			return fmt.Sprintf("%s%d", prefix, i)
		}
		s := fmt.Sprintf("%s%d", prefix, i)
		return s + strings.Repeat("x", n-len(s))
	}
	l := &loop.Loop{Metadata: loop.Metadata{
		Name: pad("loop", 40, 0), Team: pad("team", 40, 0), Labels: map[string]string{},
	}}
	for i := range lim.MaxLabels {
		key := fmt.Sprintf("k%d", i)
		if longest {
			key = "a" + strings.Repeat("b", 251) + "c/" + fmt.Sprintf("k%062d", i)
		}
		l.Metadata.Labels[key] = pad("v", lim.MaxLabelValueBytes, i)
	}
	sp := &l.Spec
	sp.Description = strings.Repeat("d", lim.MaxDescriptionBytes)
	for i := range lim.MaxOwners {
		sp.Owners = append(sp.Owners, pad("o", 242, i)+"@example.com")
	}
	sp.Classification, sp.Residency, sp.RetentionMs = loop.Internal, "eu", 86400000
	sp.SLO.LatencyP99Ms, sp.Throughput.BytesPerSecond, sp.Throughput.PeakFactor = 2000, 1<<20, 1
	for i := range lim.MaxStreamsPerLoop {
		sp.Streams = append(sp.Streams, loop.Stream{Name: pad("s", 63, i), Schema: loop.Schema{Format: "avro", Compatibility: "BACKWARD",
			Definition: fmt.Sprintf(`{"type":"record","name":"E%d","fields":[{"name":"id","type":"string"}]}`, i)}})
	}
	stream := func(i int) string { return sp.Streams[i%len(sp.Streams)].Name }
	perEntry := lim.MaxGrantsPerLoop / (lim.MaxProducersPerLoop + lim.MaxConsumersPerLoop)
	for i := range lim.MaxProducersPerLoop {
		p := loop.Producer{Principal: "User:" + pad("p", 128, i)}
		for j := range perEntry {
			p.Streams = append(p.Streams, stream(i*perEntry+j))
		}
		sp.Producers = append(sp.Producers, p)
	}
	for i := range lim.MaxConsumersPerLoop {
		c := loop.Consumer{Principal: "User:" + pad("c", 128, i), Group: pad("g", 249, i)}
		for j := range perEntry {
			c.Streams = append(c.Streams, stream(i*perEntry+j))
		}
		sp.Consumers = append(sp.Consumers, c)
	}
	return l
}

// The largest loop the default limits allow is valid, and the audit event
// listing every operation that provisions it (as the reconciler writes it)
// is well under 1 MiB.
func TestLargestLoopWithinTheLimitsHasABoundedAuditEvent(t *testing.T) {
	for _, longest := range []bool{false, true} {
		l := largestLoop(longest)
		if errs := loop.Validate(l); len(errs) > 0 {
			t.Fatalf("longest=%v: the largest loop is invalid: %v", longest, errs)
		}
		spec, _ := json.Marshal(l)
		res := provisioning.Derive(l, catalog.Cluster{Name: "eu-1", Region: "eu", ReplicationFactor: 3})
		plan := provisioning.Plan(res, provisioning.Resources{})
		ops := make([]string, len(plan.Actions))
		for i, a := range plan.Actions { // as reconciler.describeAction
			ops[i] = string(a.Kind) + " " + a.Resource
			if a.Current != "" {
				ops[i] += " from " + a.Current
			}
			if a.Desired != "" {
				ops[i] += " to " + a.Desired
			}
		}
		event, _ := json.Marshal(map[string]any{"generation": 1, "cluster": "eu-1", "planned": ops})
		t.Logf("longest=%v: spec %d bytes; %d ACLs, %d quotas, %d topics; intent event details %d bytes",
			longest, len(spec), len(res.ACLs), len(res.Quotas), len(res.Topics), len(event))
		if len(res.ACLs) > 576 || len(res.Quotas) > 128 || len(res.Topics) > 32 {
			t.Errorf("derived more than the limits promise")
		}
		if len(event) > 512<<10 {
			t.Errorf("the audit event of the largest loop is %d bytes; keep it well under 1 MiB", len(event))
		}
	}
}
