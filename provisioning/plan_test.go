package provisioning

import (
	"reflect"
	"slices"
	"testing"
)

func topic(name string, parts int32, cfg map[string]string) Topic {
	return Topic{Name: name, Partitions: parts, ReplicationFactor: 3, Configs: cfg}
}

func bind(principal, typ, name, op string) ACL {
	return ACL{Principal: principal, Host: "*", ResourceType: typ, ResourceName: name,
		PatternType: PatternLiteral, Operation: op, Permission: PermissionAllow}
}

var (
	cfgA   = map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"}
	cfgB   = map[string]string{"retention.ms": "2000", "cleanup.policy": "delete"}
	aclW   = bind("User:p", ResourceTopic, "t.a", OpWrite)
	aclR   = bind("User:c", ResourceTopic, "t.a", OpRead)
	aclG   = bind("User:c", ResourceGroup, "g", OpRead)
	quotaP = Quota{Principal: "User:p", ProducerByteRate: 100}
)

// step is an action reduced to what a table can state: kind and resource.
type step struct {
	Kind     ActionKind
	Resource string
}

func steps(p PlanResult) []step {
	var out []step
	for _, a := range p.Actions {
		out = append(out, step{a.Kind, a.Resource})
	}
	return out
}

func TestPlan(t *testing.T) {
	full := Resources{
		Topics: []Topic{topic("t.a", 6, cfgA), topic("t.b", 3, cfgA)},
		ACLs:   []ACL{aclW, aclR, aclG},
		Quotas: []Quota{quotaP},
	}
	tests := []struct {
		name              string
		desired, observed Resources
		want              []step
		problems          []string // reasons
	}{
		{name: "equal sets: empty plan", desired: full, observed: full},
		{name: "both empty: empty plan"},
		{
			name:    "nothing observed: create everything, topics first",
			desired: full,
			want: []step{
				{CreateTopic, "topic t.a"}, {CreateTopic, "topic t.b"},
				{CreateACL, "acl User:c READ GROUP g"}, {CreateACL, "acl User:c READ TOPIC t.a"}, {CreateACL, "acl User:p WRITE TOPIC t.a"},
				{SetQuota, "quota User:p"},
			},
		},
		{
			name:     "nothing desired: delete everything, ACLs before topics",
			observed: full,
			want: []step{
				{DeleteACL, "acl User:c READ GROUP g"}, {DeleteACL, "acl User:c READ TOPIC t.a"}, {DeleteACL, "acl User:p WRITE TOPIC t.a"},
				{DeleteQuota, "quota User:p"},
				{DeleteTopic, "topic t.a"}, {DeleteTopic, "topic t.b"},
			},
		},
		{
			name:     "more partitions: AddPartitions",
			desired:  Resources{Topics: []Topic{topic("t.a", 12, cfgA)}},
			observed: Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			want:     []step{{AddPartitions, "topic t.a"}},
		},
		{
			name:     "fewer partitions: a problem, no action",
			desired:  Resources{Topics: []Topic{topic("t.a", 3, cfgA)}},
			observed: Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			problems: []string{ReasonPartitionsShrink},
		},
		{
			name:     "different RF: a problem, no action",
			desired:  Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			observed: Resources{Topics: []Topic{{Name: "t.a", Partitions: 6, ReplicationFactor: 1, Configs: cfgA}}},
			problems: []string{ReasonReplicationFactorChanged},
		},
		{
			name:     "desired RF -1 (broker default) matches any RF",
			desired:  Resources{Topics: []Topic{{Name: "t.a", Partitions: 6, ReplicationFactor: -1, Configs: cfgA}}},
			observed: Resources{Topics: []Topic{{Name: "t.a", Partitions: 6, ReplicationFactor: 1, Configs: cfgA}}},
		},
		{
			name:     "config differs: AlterTopicConfigs",
			desired:  Resources{Topics: []Topic{topic("t.a", 6, cfgB)}},
			observed: Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			want:     []step{{AlterTopicConfigs, "topic t.a"}},
		},
		{
			name:     "unmanaged observed configs are ignored",
			desired:  Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			observed: Resources{Topics: []Topic{topic("t.a", 6, map[string]string{"retention.ms": "1000", "cleanup.policy": "delete", "segment.ms": "5"})}},
		},
		{
			name:     "grow and alter together: partitions before configs",
			desired:  Resources{Topics: []Topic{topic("t.a", 12, cfgB)}},
			observed: Resources{Topics: []Topic{topic("t.a", 6, cfgA)}},
			want:     []step{{AddPartitions, "topic t.a"}, {AlterTopicConfigs, "topic t.a"}},
		},
		{
			name:     "quota rate differs: SetQuota",
			desired:  Resources{Quotas: []Quota{{Principal: "User:p", ProducerByteRate: 200}}},
			observed: Resources{Quotas: []Quota{quotaP}},
			want:     []step{{SetQuota, "quota User:p"}},
		},
		{
			name:     "zero-rate desired quota means none",
			desired:  Resources{Quotas: []Quota{{Principal: "User:p"}}},
			observed: Resources{Quotas: []Quota{quotaP}},
			want:     []step{{DeleteQuota, "quota User:p"}},
		},
		{
			name:     "ACL that differs only in host is replaced",
			desired:  Resources{ACLs: []ACL{aclW}},
			observed: Resources{ACLs: []ACL{func() ACL { a := aclW; a.Host = "10.0.0.1"; return a }()}},
			want:     []step{{CreateACL, "acl User:p WRITE TOPIC t.a"}, {DeleteACL, "acl User:p WRITE TOPIC t.a host=10.0.0.1"}},
		},
		{
			name:     "duplicates in the input are planned once",
			desired:  Resources{ACLs: []ACL{aclW, aclW}, Topics: []Topic{topic("t.a", 6, cfgA), topic("t.a", 6, cfgA)}},
			observed: Resources{},
			want:     []step{{CreateTopic, "topic t.a"}, {CreateACL, "acl User:p WRITE TOPIC t.a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plan(tt.desired, tt.observed)
			if got := steps(p); !slices.Equal(got, tt.want) {
				t.Errorf("actions:\n got %v\nwant %v", got, tt.want)
			}
			var reasons []string
			for _, pr := range p.Problems {
				reasons = append(reasons, pr.Reason)
				if pr.Message == "" || pr.Resource == "" {
					t.Errorf("problem %+v: want resource and message", pr)
				}
			}
			if !slices.Equal(reasons, tt.problems) {
				t.Errorf("problems %v, want %v", reasons, tt.problems)
			}
		})
	}
}

// TestPlanPayloads protects the executor's inputs and the diff table: each
// action carries the typed payload and human current/desired strings.
func TestPlanPayloads(t *testing.T) {
	p := Plan(
		Resources{Topics: []Topic{topic("t.a", 12, cfgB)}, Quotas: []Quota{{Principal: "User:p", ProducerByteRate: 200}}},
		Resources{Topics: []Topic{topic("t.a", 6, cfgA)}, Quotas: []Quota{quotaP}},
	)
	want := []Action{
		{Kind: AddPartitions, Resource: "topic t.a", Current: "partitions=6", Desired: "partitions=12",
			Topic: &Topic{Name: "t.a", Partitions: 12, ReplicationFactor: 3}},
		{Kind: AlterTopicConfigs, Resource: "topic t.a", Current: "retention.ms=1000", Desired: "retention.ms=2000",
			Topic:      &Topic{Name: "t.a", Partitions: 6, ReplicationFactor: 3, Configs: map[string]string{"retention.ms": "2000"}},
			ConfigKeys: []string{"retention.ms"}},
		{Kind: SetQuota, Resource: "quota User:p", Current: "producer_byte_rate=100", Desired: "producer_byte_rate=200",
			Quota: &Quota{Principal: "User:p", ProducerByteRate: 200}},
	}
	if !reflect.DeepEqual(p.Actions, want) {
		t.Fatalf("actions:\n got %+v\nwant %+v", p.Actions, want)
	}
}

// TestPlanDoesNotAliasInputs protects callers that keep their Resources:
// editing a planned action's topic configs must not change the input.
func TestPlanDoesNotAliasInputs(t *testing.T) {
	desired := Resources{Topics: []Topic{topic("t.a", 6, map[string]string{"retention.ms": "1"})}}
	p := Plan(desired, Resources{})
	p.Actions[0].Topic.Configs["retention.ms"] = "changed"
	if desired.Topics[0].Configs["retention.ms"] != "1" {
		t.Fatal("Plan's action shares the config map of its input")
	}
}
