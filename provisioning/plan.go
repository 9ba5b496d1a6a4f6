package provisioning

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ActionKind names what an Action does.
type ActionKind string

// The action kinds, in the order Plan emits them.
const (
	CreateTopic       ActionKind = "CreateTopic"
	AddPartitions     ActionKind = "AddPartitions"
	AlterTopicConfigs ActionKind = "AlterTopicConfigs"
	CreateACL         ActionKind = "CreateACL"
	SetQuota          ActionKind = "SetQuota"
	DeleteACL         ActionKind = "DeleteACL"
	DeleteQuota       ActionKind = "DeleteQuota"
	DeleteTopic       ActionKind = "DeleteTopic"
)

// Action is one change to a cluster. Kind says which payload is set:
//
//	CreateTopic        Topic: the topic to create
//	AddPartitions      Topic: name and the new total Partitions
//	AlterTopicConfigs  Topic: name and the desired Configs; ConfigKeys: the keys to set
//	DeleteTopic        Topic: the observed topic
//	CreateACL          ACL: the binding to create
//	DeleteACL          ACL: the observed binding to delete
//	SetQuota           Quota: the desired rates (a zero rate removes that key)
//	DeleteQuota        Quota: the observed rates, all removed
//
// Resource, Current and Desired are short human strings for a
// "resource | current | desired" diff table.
type Action struct {
	Kind       ActionKind `json:"kind"`
	Resource   string     `json:"resource"`
	Current    string     `json:"current"`
	Desired    string     `json:"desired"`
	Topic      *Topic     `json:"topic,omitempty"`
	ConfigKeys []string   `json:"configKeys,omitempty"`
	ACL        *ACL       `json:"acl,omitempty"`
	Quota      *Quota     `json:"quota,omitempty"`
}

// Problem is a difference Plan will not turn into an action because it
// would be unsafe: the cluster keeps its value and a human decides.
type Problem struct {
	Resource string `json:"resource"`
	Reason   string `json:"reason"` // CamelCase, e.g. PartitionsShrink
	Message  string `json:"message"`
}

// String is "<resource>: <message>".
func (p Problem) String() string { return p.Resource + ": " + p.Message }

// Problem reasons.
const (
	ReasonPartitionsShrink         = "PartitionsShrink"
	ReasonReplicationFactorChanged = "ReplicationFactorChanged"
)

// PlanResult is the result of Plan: what to do and what loopgate refuses to
// do. (Go does not allow a type and a function both named Plan.)
type PlanResult struct {
	Actions  []Action  `json:"actions"`
	Problems []Problem `json:"problems"`
}

// Empty reports whether the plan has nothing to do and nothing to report.
func (p PlanResult) Empty() bool { return len(p.Actions) == 0 && len(p.Problems) == 0 }

// Plan computes the actions that make observed match desired. It is pure
// and deterministic; the caller scopes observed to what the loop owns
// (Admin.Observe does), so everything observed but not desired is deleted.
//
//  1. Topics desired but not observed are created.
//  2. Topics in both: more desired partitions → AddPartitions; fewer → a
//     PartitionsShrink problem (partitions only grow). A different
//     replication factor → a ReplicationFactorChanged problem (never
//     changed; a desired factor ≤ 0 means "broker default" and matches
//     anything). Configs whose desired value differs from the observed
//     one → AlterTopicConfigs with those keys only; keys loopgate does not
//     desire are ignored.
//  3. ACLs desired but not observed are created (ACLs are compared as
//     whole bindings).
//  4. Quotas whose rates differ (or are missing) → SetQuota.
//  5. Deletes come last: ACLs, then quotas, then topics, so a topic is
//     never left readable by a stale ACL and its ACLs go before it.
//
// Within each step resources are in canonical order (see Resources.Sort).
func Plan(desired, observed Resources) PlanResult {
	desired = normalized(desired)
	observed = normalized(observed)
	var p PlanResult

	obsTopics := make(map[string]Topic, len(observed.Topics))
	for _, t := range observed.Topics {
		obsTopics[t.Name] = t
	}
	desTopics := make(map[string]bool, len(desired.Topics))
	var grow, alter []Action
	for _, d := range desired.Topics {
		desTopics[d.Name] = true
		o, ok := obsTopics[d.Name]
		if !ok {
			t := cloneTopic(d)
			p.Actions = append(p.Actions, Action{
				Kind: CreateTopic, Resource: d.Label(), Current: "absent", Desired: d.Summary(), Topic: &t,
			})
			continue
		}
		switch {
		case d.Partitions > o.Partitions:
			grow = append(grow, Action{
				Kind: AddPartitions, Resource: d.Label(),
				Current: fmt.Sprintf("partitions=%d", o.Partitions),
				Desired: fmt.Sprintf("partitions=%d", d.Partitions),
				Topic:   &Topic{Name: d.Name, Partitions: d.Partitions, ReplicationFactor: o.ReplicationFactor},
			})
		case d.Partitions < o.Partitions && d.Partitions > 0:
			p.Problems = append(p.Problems, Problem{
				Resource: d.Label(), Reason: ReasonPartitionsShrink,
				Message: fmt.Sprintf("topic %s has %d partitions and the spec asks for %d: partitions can only grow; "+
					"keep partitions at %d or more (a smaller count needs a new stream)", d.Name, o.Partitions, d.Partitions, o.Partitions),
			})
		}
		if d.ReplicationFactor > 0 && o.ReplicationFactor > 0 && d.ReplicationFactor != o.ReplicationFactor {
			p.Problems = append(p.Problems, Problem{
				Resource: d.Label(), Reason: ReasonReplicationFactorChanged,
				Message: fmt.Sprintf("topic %s has replication factor %d and the cluster wants %d: loopgate does not "+
					"reassign replicas; ask the platform team to reassign partitions", d.Name, o.ReplicationFactor, d.ReplicationFactor),
			})
		}
		var keys []string
		for _, k := range slices.Sorted(maps.Keys(d.Configs)) {
			if ov, ok := o.Configs[k]; !ok || ov != d.Configs[k] {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			var cur, des []string
			set := make(map[string]string, len(keys))
			for _, k := range keys {
				ov, ok := o.Configs[k]
				if !ok {
					ov = "(unset)"
				}
				cur = append(cur, k+"="+ov)
				des = append(des, k+"="+d.Configs[k])
				set[k] = d.Configs[k]
			}
			alter = append(alter, Action{
				Kind: AlterTopicConfigs, Resource: d.Label(),
				Current: strings.Join(cur, " "), Desired: strings.Join(des, " "),
				Topic:      &Topic{Name: d.Name, Partitions: o.Partitions, ReplicationFactor: o.ReplicationFactor, Configs: set},
				ConfigKeys: keys,
			})
		}
	}
	p.Actions = append(p.Actions, grow...)
	p.Actions = append(p.Actions, alter...)

	obsACLs := make(map[ACL]bool, len(observed.ACLs))
	for _, a := range observed.ACLs {
		obsACLs[a] = true
	}
	desACLs := make(map[ACL]bool, len(desired.ACLs))
	for _, a := range desired.ACLs {
		desACLs[a] = true
		if !obsACLs[a] {
			a := a
			p.Actions = append(p.Actions, Action{
				Kind: CreateACL, Resource: a.Label(), Current: "absent", Desired: "present", ACL: &a,
			})
		}
	}

	obsQuotas := make(map[string]Quota, len(observed.Quotas))
	for _, q := range observed.Quotas {
		obsQuotas[q.Principal] = q
	}
	desQuotas := make(map[string]bool, len(desired.Quotas))
	for _, d := range desired.Quotas {
		desQuotas[d.Principal] = true
		o, ok := obsQuotas[d.Principal]
		if ok && o == d {
			continue
		}
		cur := "none"
		if ok {
			cur = o.Summary()
		}
		d := d
		p.Actions = append(p.Actions, Action{
			Kind: SetQuota, Resource: d.Label(), Current: cur, Desired: d.Summary(), Quota: &d,
		})
	}

	for _, a := range observed.ACLs {
		if !desACLs[a] {
			a := a
			p.Actions = append(p.Actions, Action{
				Kind: DeleteACL, Resource: a.Label(), Current: "present", Desired: "absent", ACL: &a,
			})
		}
	}
	for _, q := range observed.Quotas {
		if !desQuotas[q.Principal] {
			q := q
			p.Actions = append(p.Actions, Action{
				Kind: DeleteQuota, Resource: q.Label(), Current: q.Summary(), Desired: "none", Quota: &q,
			})
		}
	}
	for _, t := range observed.Topics {
		if !desTopics[t.Name] {
			t := cloneTopic(t)
			p.Actions = append(p.Actions, Action{
				Kind: DeleteTopic, Resource: t.Label(), Current: t.Summary(), Desired: "absent", Topic: &t,
			})
		}
	}
	return p
}

// normalized returns a sorted copy without duplicates and without quotas
// that set no rate (they mean "no quota").
func normalized(r Resources) Resources {
	out := Resources{
		Topics: slices.Clone(r.Topics),
		ACLs:   slices.Clone(r.ACLs),
	}
	for _, q := range r.Quotas {
		if q.ProducerByteRate > 0 || q.ConsumerByteRate > 0 {
			out.Quotas = append(out.Quotas, q)
		}
	}
	out.Sort()
	out.Topics = slices.CompactFunc(out.Topics, func(a, b Topic) bool { return a.Name == b.Name })
	out.ACLs = slices.Compact(out.ACLs)
	out.Quotas = slices.CompactFunc(out.Quotas, func(a, b Quota) bool { return a.Principal == b.Principal })
	return out
}

func cloneTopic(t Topic) Topic {
	t.Configs = maps.Clone(t.Configs)
	return t
}
