package provtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// testLoop is a loop with random names: team t<id>, producer User:p-<id>,
// consumer User:c-<id> reading with group g-<id>. Streams: events (3
// partitions, written by the producer, read by the consumer) and actions
// (2 partitions).
type testLoop struct {
	*loop.Loop
	id               string
	events, actions  string // topic names
	producer, reader string // user names (principals without "User:")
	group            string
}

// retentionMs is the retention of every test loop: 3 days.
const retentionMs = 72 * 3600 * 1000

// quotaRate is the quota every test loop's principals get: 1 MiB/s × 2.
const quotaRate = 2 << 20

func newTestLoop(t testing.TB) *testLoop {
	t.Helper()
	id := randomID(t)
	l := &loop.Loop{
		Metadata: loop.Metadata{Name: "contract", Team: "t" + id},
		Spec: loop.Spec{
			Owners:         []string{"contract@example.com"},
			Classification: loop.Internal,
			Residency:      "test",
			RetentionMs:    retentionMs,
			SLO:            loop.SLO{LatencyP99Ms: 2000},
			Throughput:     loop.Throughput{BytesPerSecond: 1 << 20, PeakFactor: 2, RecordBytes: 200},
			Streams: []loop.Stream{
				{Name: "events", Partitions: 3, Schema: loop.Schema{Format: "avro"}},
				{Name: "actions", Partitions: 2, Schema: loop.Schema{Format: "avro"}},
			},
			Producers: []loop.Producer{{Principal: "User:p-" + id, Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:c-" + id, Group: "g-" + id, Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
	}
	return &testLoop{
		Loop:     l,
		id:       id,
		events:   provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "events"),
		actions:  provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "actions"),
		producer: "p-" + id,
		reader:   "c-" + id,
		group:    "g-" + id,
	}
}

// derive returns the loop's resources on the harness cluster, validated.
func (h *harness) derive(t testing.TB, l *testLoop) provisioning.Resources {
	t.Helper()
	r := provisioning.Derive(l.Loop, h.cat)
	if err := r.Validate(); err != nil {
		t.Fatalf("derived resources of %s are invalid: %v", l.Metadata.Key(), err)
	}
	return r
}

// plan observes scope and plans desired against it.
func (h *harness) plan(t testing.TB, desired, scope provisioning.Resources) provisioning.PlanResult {
	t.Helper()
	obs, err := h.admin.Observe(testCtx(t), scope)
	if err != nil {
		t.Fatalf("%s: Observe: %v", h.c.Name, err)
	}
	return provisioning.Plan(desired, obs)
}

// converge observes, plans and executes once, failing on any problem or
// error, then waits until the cluster shows the result (a re-plan is
// empty). It returns the executed actions and their results.
func (h *harness) converge(t testing.TB, desired, scope provisioning.Resources) ([]provisioning.Action, []provisioning.OpResult) {
	t.Helper()
	p := h.plan(t, desired, scope)
	if len(p.Problems) > 0 {
		t.Fatalf("%s: unexpected plan problems: %v", h.c.Name, p.Problems)
	}
	res, err := h.admin.Execute(testCtx(t), p.Actions)
	if err != nil {
		t.Fatalf("%s: Execute: %v\n%s", h.c.Name, err, provisioning.FormatResults(res))
	}
	h.settled(t, desired, scope)
	return p.Actions, res
}

// settled waits until observing scope and planning desired gives an empty
// plan: the cluster matches desired as far as loopgate can see.
func (h *harness) settled(t testing.TB, desired, scope provisioning.Resources) {
	t.Helper()
	h.eventually(t, "re-plan is empty", func(ctx context.Context) error {
		obs, err := h.admin.Observe(ctx, scope)
		if err != nil {
			return err
		}
		if p := provisioning.Plan(desired, obs); !p.Empty() {
			return fmt.Errorf("actions %v, problems %v", resources(p.Actions), p.Problems)
		}
		return nil
	})
}

// union is every resource of a and b (for an Observe scope that covers an
// old and a new spec).
func union(a, b provisioning.Resources) provisioning.Resources {
	return provisioning.Resources{
		Topics: slices.Concat(a.Topics, b.Topics),
		ACLs:   slices.Concat(a.ACLs, b.ACLs),
		Quotas: slices.Concat(a.Quotas, b.Quotas),
	}
}

func kinds(actions []provisioning.Action) []provisioning.ActionKind {
	out := make([]provisioning.ActionKind, len(actions))
	for i, a := range actions {
		out[i] = a.Kind
	}
	return out
}

// resources lists "Kind resource" for failure messages.
func resources(actions []provisioning.Action) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = string(a.Kind) + " " + a.Resource
	}
	return out
}

func topicNames(r provisioning.Resources) []string {
	var out []string
	for _, t := range r.Topics {
		out = append(out, t.Name)
	}
	return out
}

// ---------------------------------------------------------------- checker

// topicState is a topic as the independent checker sees it.
type topicState struct {
	partitions int
	configs    map[string]string
}

// topic describes name with the checker; ok is false when it does not
// exist.
func (h *harness) topic(ctx context.Context, name string) (st topicState, ok bool, err error) {
	td, err := h.check.ListTopics(ctx, name)
	if err != nil {
		return st, false, fmt.Errorf("ListTopics %s: %w", name, err)
	}
	d, found := td[name]
	if !found || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return st, false, nil
	}
	if d.Err != nil {
		return st, false, fmt.Errorf("metadata of %s: %w", name, d.Err)
	}
	st.partitions = len(d.Partitions)
	rcs, err := h.check.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return st, false, fmt.Errorf("DescribeTopicConfigs %s: %w", name, err)
	}
	rc, err := rcs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return st, false, fmt.Errorf("configs of %s: %w", name, err)
	}
	st.configs = map[string]string{}
	for _, c := range rc.Configs {
		st.configs[c.Key] = c.MaybeValue()
	}
	return st, true, nil
}

// waitTopic waits until the checker sees name with the given partition
// count and (at least) the given configs.
func (h *harness) waitTopic(t testing.TB, name string, partitions int, configs map[string]string) {
	t.Helper()
	h.eventually(t, "topic "+name+" on the cluster", func(ctx context.Context) error {
		st, ok, err := h.topic(ctx, name)
		switch {
		case err != nil:
			return err
		case !ok:
			return errors.New("topic does not exist")
		case st.partitions != partitions:
			return fmt.Errorf("%d partitions, want %d", st.partitions, partitions)
		}
		for _, k := range slices.Sorted(maps.Keys(configs)) {
			if st.configs[k] != configs[k] {
				return fmt.Errorf("%s=%q, want %q", k, st.configs[k], configs[k])
			}
		}
		return nil
	})
}

// waitTopicGone waits until the checker no longer sees name.
func (h *harness) waitTopicGone(t testing.TB, name string) {
	t.Helper()
	h.eventually(t, "topic "+name+" is deleted", func(ctx context.Context) error {
		_, ok, err := h.topic(ctx, name)
		if err == nil && ok {
			err = errors.New("topic still exists")
		}
		return err
	})
}

// acls lists, with the checker, every literal ACL on the given topics and
// groups as sorted "principal OPERATION TYPE name" strings.
func (h *harness) acls(ctx context.Context, topics, groups []string) ([]string, error) {
	b := kadm.NewACLs().Topics(topics...).Groups(groups...).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpAny).
		Allow().AllowHosts().Deny().DenyHosts()
	res, err := h.check.DescribeACLs(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("DescribeACLs: %w", err)
	}
	var out []string
	for _, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("DescribeACLs: %w", r.Err)
		}
		for _, d := range r.Described {
			out = append(out, d.Principal+" "+d.Operation.String()+" "+d.Type.String()+" "+d.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// waitACLs waits until the checker sees exactly want on topics and groups.
func (h *harness) waitACLs(t testing.TB, topics, groups, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	h.eventually(t, "ACLs on the cluster", func(ctx context.Context) error {
		got, err := h.acls(ctx, topics, groups)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("\n got %q\nwant %q", got, want)
		}
		return err
	})
}

// quotas returns, with the checker, the client quotas of the named users:
// user -> key -> rate. Users without a quota are absent.
func (h *harness) quotas(ctx context.Context, users ...string) (map[string]map[string]float64, error) {
	q, err := h.check.DescribeClientQuotas(ctx, true,
		[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}}) // 2: any named user
	if err != nil {
		return nil, fmt.Errorf("DescribeClientQuotas: %w", err)
	}
	out := map[string]map[string]float64{}
	for _, e := range q {
		if len(e.Entity) != 1 || e.Entity[0].Name == nil || !slices.Contains(users, *e.Entity[0].Name) {
			continue
		}
		vals := map[string]float64{}
		for _, v := range e.Values {
			vals[v.Key] = v.Value
		}
		out[*e.Entity[0].Name] = vals
	}
	return out, nil
}

// waitQuotas waits until the checker sees exactly want for users (a user
// missing from want must have no quota).
func (h *harness) waitQuotas(t testing.TB, users []string, want map[string]map[string]float64) {
	t.Helper()
	h.eventually(t, "quotas on the cluster", func(ctx context.Context) error {
		got, err := h.quotas(ctx, users...)
		if err == nil && !maps.EqualFunc(got, want, maps.Equal) {
			err = fmt.Errorf("got %v, want %v", got, want)
		}
		return err
	})
}
