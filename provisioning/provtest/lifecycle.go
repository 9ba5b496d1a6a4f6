package provtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// testCreateIsIdempotent: derive → observe → plan → execute makes the
// cluster match, a second observe + plan finds nothing to do, and running
// the same actions again (a retry after a lost response) is harmless.
func testCreateIsIdempotent(t *testing.T, h *harness) {
	l := newTestLoop(t)
	desired := h.derive(t, l)

	actions, results := h.converge(t, desired, desired)
	if got, want := len(actions), len(desired.Topics)+len(desired.ACLs)+len(desired.Quotas); got != want {
		t.Fatalf("first plan has %d actions, want one per resource (%d): %v", got, want, resources(actions))
	}
	for _, r := range results {
		if r.Op == "" || r.Err != "" {
			t.Errorf("result %+v: want the admin operation and no error", r)
		}
	}
	for _, tp := range desired.Topics {
		if got := tp.Configs[provisioning.ConfigRetentionMs]; got != strconv.Itoa(retentionMs) {
			t.Fatalf("derived %s has retention.ms=%q, want %d", tp.Name, got, retentionMs)
		}
		h.waitTopic(t, tp.Name, int(tp.Partitions), tp.Configs)
	}
	h.waitACLs(t, []string{l.events, l.actions}, []string{l.group}, l.baseACLs())
	h.waitQuotas(t, []string{l.producer, l.reader}, map[string]map[string]float64{
		l.producer: {provisioning.QuotaProducerByteRate: quotaRate},
		l.reader:   {provisioning.QuotaConsumerByteRate: quotaRate},
	})

	res, err := h.admin.Execute(testCtx(t), actions)
	if err != nil {
		t.Fatalf("re-executing the first plan: %v\n%s", err, provisioning.FormatResults(res))
	}
	h.settled(t, desired, desired)
	h.waitTopic(t, l.events, 3, nil)
}

// baseACLs are the ACLs Derive gives a test loop, as the checker prints
// them.
func (l *testLoop) baseACLs() []string {
	p, c := "User:"+l.producer, "User:"+l.reader
	return []string{
		p + " DESCRIBE TOPIC " + l.events,
		p + " WRITE TOPIC " + l.events,
		c + " DESCRIBE TOPIC " + l.events,
		c + " READ TOPIC " + l.events,
		c + " READ GROUP " + l.group,
	}
}

// testUpdatePlansOnlyWhatChanged: each kind of spec change gives only the
// actions it needs, and the broker shows the result.
func testUpdatePlansOnlyWhatChanged(t *testing.T, h *harness) {
	l := newTestLoop(t)
	prev := h.derive(t, l)
	h.converge(t, prev, prev)

	extra := "f-" + l.id // a consumer added, then removed again
	steps := []struct {
		name   string
		change func(*loop.Spec)
		want   []provisioning.ActionKind
		check  func(t *testing.T, actions []provisioning.Action)
	}{
		{"RetentionAltersConfigsOnly", func(s *loop.Spec) { s.RetentionMs = 24 * 3600 * 1000 },
			[]provisioning.ActionKind{provisioning.AlterTopicConfigs, provisioning.AlterTopicConfigs},
			func(t *testing.T, actions []provisioning.Action) {
				for _, a := range actions {
					if !slices.Equal(a.ConfigKeys, []string{provisioning.ConfigRetentionMs}) {
						t.Errorf("%s alters %v, want only retention.ms", a.Resource, a.ConfigKeys)
					}
				}
				want := map[string]string{provisioning.ConfigRetentionMs: strconv.Itoa(24 * 3600 * 1000), provisioning.ConfigCleanupPolicy: "delete"}
				h.waitTopic(t, l.events, 3, want)
				h.waitTopic(t, l.actions, 2, want)
			}},
		{"MorePartitionsAddsPartitionsOnly", func(s *loop.Spec) { s.Streams[0].Partitions = 5 },
			[]provisioning.ActionKind{provisioning.AddPartitions},
			func(t *testing.T, _ []provisioning.Action) { h.waitTopic(t, l.events, 5, nil) }},
		{"NewConsumerAddsItsACLsAndQuota", func(s *loop.Spec) {
			s.Consumers = append(s.Consumers, loop.Consumer{Principal: "User:" + extra, Group: extra, Streams: []string{"actions"}})
		}, []provisioning.ActionKind{provisioning.CreateACL, provisioning.CreateACL, provisioning.CreateACL, provisioning.SetQuota},
			func(t *testing.T, actions []provisioning.Action) {
				for _, a := range actions {
					if p := principalOf(a); p != "User:"+extra {
						t.Errorf("%s concerns %s, want only the new consumer User:%s", a.Resource, p, extra)
					}
				}
				want := append(l.baseACLs(),
					"User:"+extra+" DESCRIBE TOPIC "+l.actions,
					"User:"+extra+" READ TOPIC "+l.actions,
					"User:"+extra+" READ GROUP "+extra)
				h.waitACLs(t, []string{l.events, l.actions}, []string{l.group, extra}, want)
				h.waitQuotas(t, []string{l.producer, l.reader, extra}, map[string]map[string]float64{
					l.producer: {provisioning.QuotaProducerByteRate: quotaRate},
					l.reader:   {provisioning.QuotaConsumerByteRate: quotaRate},
					extra:      {provisioning.QuotaConsumerByteRate: quotaRate},
				})
			}},
		{"RemovedConsumerDeletesExactlyItsACLsAndQuota", func(s *loop.Spec) { s.Consumers = s.Consumers[:1] },
			[]provisioning.ActionKind{provisioning.DeleteACL, provisioning.DeleteACL, provisioning.DeleteACL, provisioning.DeleteQuota},
			func(t *testing.T, actions []provisioning.Action) {
				for _, a := range actions {
					if p := principalOf(a); p != "User:"+extra {
						t.Errorf("%s concerns %s, want only the removed consumer User:%s", a.Resource, p, extra)
					}
				}
				h.waitACLs(t, []string{l.events, l.actions}, []string{l.group, extra}, l.baseACLs())
				h.waitQuotas(t, []string{l.producer, l.reader, extra}, map[string]map[string]float64{
					l.producer: {provisioning.QuotaProducerByteRate: quotaRate},
					l.reader:   {provisioning.QuotaConsumerByteRate: quotaRate},
				})
			}},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			st.change(&l.Spec)
			desired := h.derive(t, l)
			// The scope covers the previous spec too, so what it had and
			// the new one lacks (a removed consumer) is observed.
			actions, _ := h.converge(t, desired, union(prev, desired))
			if !slices.Equal(kinds(actions), st.want) {
				t.Fatalf("actions %v, want kinds %v", resources(actions), st.want)
			}
			st.check(t, actions)
			prev = desired
		})
		if !ok {
			return // later steps build on this one
		}
	}
}

func principalOf(a provisioning.Action) string {
	switch {
	case a.ACL != nil:
		return a.ACL.Principal
	case a.Quota != nil:
		return a.Quota.Principal
	}
	return "(no principal)"
}

// testPartitionsOnlyGrow: a desired shrink is a Problem with no action, and
// even an AddPartitions action asking for fewer partitions (bypassing Plan)
// leaves the topic as it was.
func testPartitionsOnlyGrow(t *testing.T, h *harness) {
	l := newTestLoop(t)
	desired := h.derive(t, l)
	h.converge(t, desired, desired)

	l.Spec.Streams[0].Partitions = 2
	shrunk := h.derive(t, l)
	p := h.plan(t, shrunk, shrunk)
	if len(p.Actions) != 0 {
		t.Errorf("plan has actions %v, want none", resources(p.Actions))
	}
	if len(p.Problems) != 1 || p.Problems[0].Reason != provisioning.ReasonPartitionsShrink ||
		p.Problems[0].Resource != "topic "+l.events || !strings.Contains(p.Problems[0].Message, "only grow") {
		t.Errorf("problems %+v: want one PartitionsShrink on topic %s saying partitions only grow", p.Problems, l.events)
	}

	res, err := h.admin.Execute(testCtx(t), []provisioning.Action{{
		Kind: provisioning.AddPartitions, Resource: "topic " + l.events,
		Topic: &provisioning.Topic{Name: l.events, Partitions: 2},
	}})
	if err == nil {
		t.Errorf("an AddPartitions to fewer partitions succeeded:\n%s", provisioning.FormatResults(res))
	} else {
		t.Logf("shrink refused by the broker: %v", err)
	}
	h.waitTopic(t, l.events, 3, nil)
}

// testDeleteRemovesOnlyTheLoopsResources: an empty desired state against
// what the loop owned deletes its topics, ACLs and quotas (topics last) and
// nothing else.
func testDeleteRemovesOnlyTheLoopsResources(t *testing.T, h *harness) {
	l := newTestLoop(t)
	owned := h.derive(t, l)
	h.converge(t, owned, owned)

	other := "keep-" + l.id
	if _, err := h.check.CreateTopic(testCtx(t), 1, h.c.RF, nil, other); err != nil {
		t.Fatalf("creating the unrelated topic %s: %v", other, err)
	}
	t.Cleanup(func() { _, _ = h.check.DeleteTopic(context.Background(), other) })
	h.waitTopic(t, other, 1, nil)

	actions, _ := h.converge(t, provisioning.Resources{}, owned)
	if got, want := len(actions), len(owned.Topics)+len(owned.ACLs)+len(owned.Quotas); got != want {
		t.Fatalf("delete plan has %d actions, want one per owned resource (%d): %v", got, want, resources(actions))
	}
	if first := slices.Index(kinds(actions), provisioning.DeleteTopic); first != len(actions)-len(owned.Topics) {
		t.Errorf("delete order %v: want every DeleteTopic after the ACL and quota deletes", kinds(actions))
	}
	for _, name := range topicNames(owned) {
		h.waitTopicGone(t, name)
	}
	h.waitACLs(t, topicNames(owned), []string{l.group}, nil)
	h.waitQuotas(t, []string{l.producer, l.reader}, map[string]map[string]float64{})
	if _, ok, err := h.topic(testCtx(t), other); err != nil || !ok {
		t.Errorf("unrelated topic %s: exists=%v err=%v, want it untouched", other, ok, err)
	}
}

// testDriftedACLIsRemoved: an ACL someone added by hand on a loop's topic
// is observed and planned for deletion, and converging removes it.
func testDriftedACLIsRemoved(t *testing.T, h *harness) {
	l := newTestLoop(t)
	desired := h.derive(t, l)
	h.converge(t, desired, desired)

	intruder := "User:intruder-" + l.id
	b := kadm.NewACLs().Allow(intruder).AllowHosts("*").Topics(l.events).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)
	if _, err := h.check.CreateACLs(testCtx(t), b); err != nil {
		t.Fatalf("creating the intruder's ACL: %v", err)
	}
	h.eventually(t, "plan deletes the intruder's ACL", func(ctx context.Context) error {
		obs, err := h.admin.Observe(ctx, desired)
		if err != nil {
			return err
		}
		p := provisioning.Plan(desired, obs)
		if len(p.Actions) != 1 || p.Actions[0].Kind != provisioning.DeleteACL || p.Actions[0].ACL.Principal != intruder {
			return fmt.Errorf("plan %v, want exactly one DeleteACL of %s", resources(p.Actions), intruder)
		}
		return nil
	})
	h.converge(t, desired, desired)
	h.waitACLs(t, []string{l.events, l.actions}, []string{l.group}, l.baseACLs())
}

// testReadOnlyRefusesEveryWrite: a read-only admin observes, but refuses
// every kind of action with ErrReadOnly and leaves the cluster as it was.
func testReadOnlyRefusesEveryWrite(t *testing.T, h *harness) {
	provisioned := newTestLoop(t)
	had := h.derive(t, provisioned)
	h.converge(t, had, had)
	fresh := newTestLoop(t)
	freshRes := h.derive(t, fresh)

	// Actions of every kind: create the fresh loop; change the
	// provisioned one (retention, partitions, a consumer removed); delete
	// its topics.
	plan := func(desired, scope provisioning.Resources) []provisioning.Action {
		obs, err := h.readOnly.Observe(testCtx(t), scope)
		if err != nil {
			t.Fatalf("read-only Observe: %v", err)
		}
		return provisioning.Plan(desired, obs).Actions
	}
	actions := plan(freshRes, freshRes)
	changed := *provisioned.Loop
	changed.Spec.RetentionMs = 3600 * 1000
	changed.Spec.Streams = slices.Clone(changed.Spec.Streams)
	changed.Spec.Streams[0].Partitions = 6
	changed.Spec.Consumers = nil
	actions = append(actions, plan(provisioning.Derive(&changed, h.cat), had)...)
	for _, a := range plan(provisioning.Resources{}, had) {
		if a.Kind == provisioning.DeleteTopic {
			actions = append(actions, a)
		}
	}
	kindSet := slices.Compact(slices.Sorted(slices.Values(kinds(actions))))
	allKinds := slices.Sorted(slices.Values([]provisioning.ActionKind{
		provisioning.CreateTopic, provisioning.AddPartitions, provisioning.AlterTopicConfigs, provisioning.CreateACL,
		provisioning.SetQuota, provisioning.DeleteACL, provisioning.DeleteQuota, provisioning.DeleteTopic,
	}))
	if !slices.Equal(kindSet, allKinds) {
		t.Fatalf("test setup: actions cover kinds %v, want all of %v", kindSet, allKinds)
	}

	res, err := h.readOnly.Execute(testCtx(t), actions)
	if !errors.Is(err, provisioning.ErrReadOnly) {
		t.Fatalf("read-only Execute: err %v, want ErrReadOnly", err)
	}
	var ee *provisioning.ExecuteError
	if !errors.As(err, &ee) || len(ee.Failed) != len(actions) {
		t.Errorf("read-only Execute: err %T with %d failed operations, want an *ExecuteError failing all %d", err, failedCount(res), len(actions))
	}
	if provisioning.IsRetriable(err) {
		t.Errorf("ErrReadOnly must not be retriable")
	}
	if len(res) != len(actions) {
		t.Fatalf("%d results for %d actions", len(res), len(actions))
	}
	for _, r := range res {
		if r.Op == "" || !strings.Contains(r.Err, provisioning.ErrReadOnly.Error()) {
			t.Errorf("result %+v: want the operation it would run and the read-only error", r)
		}
	}

	// Unchanged: the provisioned loop still matches, the fresh one is absent.
	h.settled(t, had, had)
	h.waitTopic(t, provisioned.events, 3, map[string]string{provisioning.ConfigRetentionMs: strconv.Itoa(retentionMs)})
	obs, err := h.readOnly.Observe(testCtx(t), freshRes)
	if err != nil {
		t.Fatalf("read-only Observe: %v", err)
	}
	if len(obs.Topics)+len(obs.ACLs)+len(obs.Quotas) != 0 {
		t.Errorf("a read-only admin changed the cluster: observed %+v for a loop never applied", obs)
	}
	for _, name := range topicNames(freshRes) {
		if _, ok, err := h.topic(testCtx(t), name); err != nil || ok {
			t.Errorf("topic %s: exists=%v err=%v, want absent", name, ok, err)
		}
	}
}

func failedCount(res []provisioning.OpResult) int {
	n := 0
	for _, r := range res {
		if r.Err != "" {
			n++
		}
	}
	return n
}
