package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/internal/census"
)

// clusterState is what an independent client sees on a cluster, restricted
// to topics with the given prefix (the other cluster's and Kafka's internal
// topics are ignored).
type clusterState struct {
	Partitions map[string]int32             // topic -> partitions
	Configs    map[string]map[string]string // topic -> non-default configs
	ACLs       []string                     // "principal OP TYPE name", sorted
	Quotas     map[string]map[string]int64  // user -> key -> value
}

func observe(t *testing.T, c cluster, prefix string) clusterState {
	t.Helper()
	adm, kcl := kafkaAdmin(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := clusterState{Partitions: map[string]int32{}, Configs: map[string]map[string]string{}, Quotas: map[string]map[string]int64{}}

	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("listing topics on %s: %v", c.Name, err)
	}
	var names []string
	for name, d := range topics {
		if strings.HasPrefix(name, prefix) {
			st.Partitions[name] = int32(len(d.Partitions))
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		cfgs, err := adm.DescribeTopicConfigs(ctx, names...)
		if err != nil {
			t.Fatalf("describing topic configs: %v", err)
		}
		for _, rc := range cfgs {
			m := map[string]string{}
			for _, kv := range rc.Configs {
				if kv.Value != nil && kv.Source == kmsg.ConfigSourceDynamicTopicConfig {
					m[kv.Key] = *kv.Value
				}
			}
			st.Configs[rc.Name] = m
		}
	}

	resp, err := census.DescribeACLs(ctx, kcl)
	if err != nil {
		t.Fatalf("describing ACLs: %v", err)
	}
	for _, r := range resp.Resources {
		if !strings.HasPrefix(r.ResourceName, prefix) && r.ResourceType != kmsg.ACLResourceTypeGroup {
			continue
		}
		for _, a := range r.ACLs {
			st.ACLs = append(st.ACLs, fmt.Sprintf("%s %s %s %s", a.Principal, a.Operation, r.ResourceType, r.ResourceName))
		}
	}
	sort.Strings(st.ACLs)

	quotas, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}})
	if err != nil {
		t.Fatalf("describing quotas: %v", err)
	}
	for _, q := range quotas {
		for _, e := range q.Entity {
			if e.Type != "user" || e.Name == nil {
				continue
			}
			m := map[string]int64{}
			for _, v := range q.Values {
				m[v.Key] = int64(v.Value)
			}
			st.Quotas[*e.Name] = m
		}
	}
	return st
}
