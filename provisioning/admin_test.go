package provisioning_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// env is one in-process cluster (SASL/SCRAM + ACLs on) with loopgate's
// admin and an independent kadm client that checks what really happened.
type env struct {
	cluster  *embedded.Cluster
	cat      catalog.Cluster
	admin    *provisioning.KafkaAdmin
	readOnly *provisioning.KafkaAdmin
	check    *kadm.Client
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	c, err := embedded.Start(ctx, embedded.Options{Name: "test"}) // in memory: persistence is embedded's test
	if err != nil {
		tb.Fatalf("embedded.Start: %v", err)
	}
	tb.Cleanup(c.Close)
	cl, err := provisioning.Connect(c.Conn())
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(cl.Close)

	// The checking client is built by hand, not through loopgate's code.
	conn := c.Conn()
	raw, err := kgo.NewClient(
		kgo.SeedBrokers(c.BootstrapServers()...),
		kgo.SASL(scram.Auth{User: conn.SASL.Username, Pass: conn.SASL.Password}.AsSha512Mechanism()),
		kgo.MetadataMinAge(10*time.Millisecond),
	)
	if err != nil {
		tb.Fatalf("kgo.NewClient: %v", err)
	}
	tb.Cleanup(raw.Close)
	return &env{
		cluster:  c,
		cat:      catalog.Cluster{Name: "test", Region: "eu", ReplicationFactor: 1},
		admin:    provisioning.NewKafkaAdmin(cl),
		readOnly: provisioning.NewKafkaAdmin(cl, provisioning.ReadOnly()),
		check:    kadm.NewClient(raw),
	}
}

// randomLoop is the DESIGN example under a random team name, so runs never
// collide.
func randomLoop(tb testing.TB) *loop.Loop {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	l := checkoutNudge()
	l.Metadata.Team = "t" + hex.EncodeToString(b)
	return l
}

// converge observes, plans and executes once, failing on any error.
func (e *env) converge(tb testing.TB, desired, scope provisioning.Resources) ([]provisioning.Action, []provisioning.OpResult) {
	tb.Helper()
	ctx := context.Background()
	obs, err := e.admin.Observe(ctx, scope)
	if err != nil {
		tb.Fatalf("Observe: %v", err)
	}
	p := provisioning.Plan(desired, obs)
	if len(p.Problems) > 0 {
		tb.Fatalf("unexpected problems: %v", p.Problems)
	}
	res, err := e.admin.Execute(ctx, p.Actions)
	if err != nil {
		tb.Fatalf("Execute: %v\n%s", err, provisioning.FormatResults(res))
	}
	return p.Actions, res
}

// replan observes again and returns the plan against desired.
func (e *env) replan(tb testing.TB, desired, scope provisioning.Resources) provisioning.PlanResult {
	tb.Helper()
	obs, err := e.admin.Observe(context.Background(), scope)
	if err != nil {
		tb.Fatalf("Observe: %v", err)
	}
	return provisioning.Plan(desired, obs)
}

func kinds(actions []provisioning.Action) []provisioning.ActionKind {
	out := make([]provisioning.ActionKind, len(actions))
	for i, a := range actions {
		out[i] = a.Kind
	}
	return out
}

// checkTopic asserts, with the independent client, a topic's partitions
// and configs.
func (e *env) checkTopic(tb testing.TB, name string, partitions int, configs map[string]string) {
	tb.Helper()
	ctx := context.Background()
	td, err := e.check.ListTopics(ctx, name)
	if err != nil {
		tb.Fatalf("ListTopics: %v", err)
	}
	d, ok := td[name]
	if !ok || d.Err != nil {
		tb.Fatalf("topic %s missing on the cluster (err %v)", name, d.Err)
	}
	if len(d.Partitions) != partitions {
		tb.Errorf("topic %s: %d partitions on the cluster, want %d", name, len(d.Partitions), partitions)
	}
	rcs, err := e.check.DescribeTopicConfigs(ctx, name)
	if err != nil {
		tb.Fatalf("DescribeTopicConfigs: %v", err)
	}
	rc, err := rcs.On(name, nil)
	if err != nil {
		tb.Fatalf("configs of %s: %v", name, err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	for k, v := range configs {
		if got[k] != v {
			tb.Errorf("topic %s: %s=%q on the cluster, want %q", name, k, got[k], v)
		}
	}
}

func (e *env) topicExists(tb testing.TB, name string) bool {
	tb.Helper()
	td, err := e.check.ListTopics(context.Background(), name)
	if err != nil {
		tb.Fatalf("ListTopics: %v", err)
	}
	d, ok := td[name]
	return ok && d.Err == nil
}

// clusterACLs lists, with the independent client, every ACL on the given
// topics and groups as "principal op type name" strings, sorted.
func (e *env) clusterACLs(tb testing.TB, topics, groups []string) []string {
	tb.Helper()
	b := kadm.NewACLs().Topics(topics...).Groups(groups...).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpAny).
		Allow().AllowHosts().Deny().DenyHosts()
	res, err := e.check.DescribeACLs(context.Background(), b)
	if err != nil {
		tb.Fatalf("DescribeACLs: %v", err)
	}
	var out []string
	for _, r := range res {
		if r.Err != nil {
			tb.Fatalf("DescribeACLs: %v", r.Err)
		}
		for _, d := range r.Described {
			out = append(out, d.Principal+" "+d.Operation.String()+" "+d.Type.String()+" "+d.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// clusterQuotas returns, with the independent client, user -> key -> rate.
func (e *env) clusterQuotas(tb testing.TB) map[string]map[string]float64 {
	tb.Helper()
	q, err := e.check.DescribeClientQuotas(context.Background(), true,
		[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}}) // 2: any named user
	if err != nil {
		tb.Fatalf("DescribeClientQuotas: %v", err)
	}
	out := map[string]map[string]float64{}
	for _, e := range q {
		name := *e.Entity[0].Name
		out[name] = map[string]float64{}
		for _, v := range e.Values {
			out[name][v.Key] = v.Value
		}
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

// TestLifecycleConvergesAndIsIdempotent protects the reconciler's core
// promise: derive → observe → plan → execute makes the cluster match, and
// a second observe + plan finds nothing to do.
func TestLifecycleConvergesAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	desired := provisioning.Derive(l, e.cat)
	if err := desired.Validate(); err != nil {
		t.Fatal(err)
	}

	actions, results := e.converge(t, desired, desired)
	if got, want := len(actions), len(desired.Topics)+len(desired.ACLs)+len(desired.Quotas); got != want {
		t.Fatalf("first plan has %d actions, want one per resource (%d): %v", got, want, kinds(actions))
	}
	t.Logf("first apply:\n%s", provisioning.FormatResults(results))
	for _, r := range results {
		if r.Op == "" || r.Err != "" {
			t.Errorf("result %+v: want an op and no error", r)
		}
	}

	retention := strconv.FormatInt(l.Spec.RetentionMs, 10)
	events := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "events")
	actionsTopic := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "actions")
	e.checkTopic(t, events, 12, map[string]string{"retention.ms": retention, "cleanup.policy": "delete", "min.insync.replicas": "1"})
	e.checkTopic(t, actionsTopic, 6, map[string]string{"retention.ms": retention})

	wantACLs := []string{
		"User:checkout-api DESCRIBE TOPIC " + events,
		"User:checkout-api WRITE TOPIC " + events,
		"User:nudge-engine DESCRIBE TOPIC " + events,
		"User:nudge-engine READ GROUP nudge-engine",
		"User:nudge-engine READ TOPIC " + events,
	}
	slices.Sort(wantACLs)
	if got := e.clusterACLs(t, []string{events, actionsTopic}, []string{"nudge-engine"}); !slices.Equal(got, wantACLs) {
		t.Errorf("ACLs on the cluster:\n got %q\nwant %q", got, wantACLs)
	}
	q := e.clusterQuotas(t)
	if q["checkout-api"]["producer_byte_rate"] != 6<<20 || q["nudge-engine"]["consumer_byte_rate"] != 6<<20 {
		t.Errorf("quotas on the cluster: %v, want 6 MiB/s producer for checkout-api and consumer for nudge-engine", q)
	}

	if p := e.replan(t, desired, desired); !p.Empty() {
		t.Fatalf("re-plan after apply is not empty: %+v", p)
	}
	// Executing the same plan again (a retry after a lost response) succeeds.
	if res, err := e.admin.Execute(context.Background(), actions); err != nil {
		t.Fatalf("re-executing the first plan: %v\n%s", err, provisioning.FormatResults(res))
	}
}

// TestUpdatesPlanOnlyWhatChanged protects minimal plans: each kind of spec
// change produces only the actions it needs, and they converge.
func TestUpdatesPlanOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	e.converge(t, provisioning.Derive(l, e.cat), provisioning.Derive(l, e.cat))

	steps := []struct {
		name   string
		change func(*loop.Spec)
		want   []provisioning.ActionKind
	}{
		{"retention change", func(s *loop.Spec) { s.RetentionMs = 24 * 3600 * 1000 },
			[]provisioning.ActionKind{provisioning.AlterTopicConfigs, provisioning.AlterTopicConfigs}},
		{"more partitions", func(s *loop.Spec) { s.Streams[0].Partitions = 16 },
			[]provisioning.ActionKind{provisioning.AddPartitions}},
		{"new consumer", func(s *loop.Spec) {
			s.Consumers = append(s.Consumers, loop.Consumer{Principal: "User:fraud", Group: "fraud", Streams: []string{"actions"}})
		}, []provisioning.ActionKind{provisioning.CreateACL, provisioning.CreateACL, provisioning.CreateACL, provisioning.SetQuota}},
	}
	for _, st := range steps {
		st.change(&l.Spec)
		desired := provisioning.Derive(l, e.cat)
		actions, _ := e.converge(t, desired, desired)
		if !slices.Equal(kinds(actions), st.want) {
			t.Errorf("%s: actions %v, want %v", st.name, kinds(actions), st.want)
		}
		if p := e.replan(t, desired, desired); !p.Empty() {
			t.Errorf("%s: re-plan not empty: %+v", st.name, p)
		}
	}
	events := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "events")
	e.checkTopic(t, events, 16, map[string]string{"retention.ms": strconv.Itoa(24 * 3600 * 1000)})
	if q := e.clusterQuotas(t); q["fraud"]["consumer_byte_rate"] != 6<<20 {
		t.Errorf("quota of the new consumer: %v", q["fraud"])
	}
}

// TestShrinkIsAProblemNotAnAction protects safety invariant 3: partitions
// only grow, even when the spec asks for fewer.
func TestShrinkIsAProblemNotAnAction(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	e.converge(t, provisioning.Derive(l, e.cat), provisioning.Derive(l, e.cat))
	l.Spec.Streams[0].Partitions = 4
	desired := provisioning.Derive(l, e.cat)
	p := e.replan(t, desired, desired)
	if len(p.Actions) != 0 || len(p.Problems) != 1 || p.Problems[0].Reason != provisioning.ReasonPartitionsShrink {
		t.Fatalf("plan %+v: want no actions and one PartitionsShrink problem", p)
	}
}

// TestDeleteRemovesEverythingTheLoopOwned protects loop deletion: an empty
// desired state against the loop's previous resources deletes its topics,
// ACLs and quotas, and nothing else.
func TestDeleteRemovesEverythingTheLoopOwned(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	owned := provisioning.Derive(l, e.cat)
	e.converge(t, owned, owned)

	// An unrelated topic that must survive.
	other := "keep-" + l.Metadata.Team
	if _, err := e.check.CreateTopic(context.Background(), 1, 1, nil, other); err != nil {
		t.Fatal(err)
	}

	actions, _ := e.converge(t, provisioning.Resources{}, owned)
	want := len(owned.Topics) + len(owned.ACLs) + len(owned.Quotas)
	if len(actions) != want {
		t.Fatalf("delete plan has %d actions, want %d: %v", len(actions), want, kinds(actions))
	}
	// Topics are deleted last, after the ACLs that name them.
	firstTopic := slices.Index(kinds(actions), provisioning.DeleteTopic)
	if firstTopic != len(actions)-len(owned.Topics) {
		t.Errorf("delete order %v: want every DeleteTopic after the other deletes", kinds(actions))
	}
	for _, name := range topicNames(owned) {
		if e.topicExists(t, name) {
			t.Errorf("topic %s still exists", name)
		}
	}
	if got := e.clusterACLs(t, topicNames(owned), []string{"nudge-engine"}); len(got) != 0 {
		t.Errorf("ACLs left: %v", got)
	}
	if q := e.clusterQuotas(t); len(q["checkout-api"]) != 0 || len(q["nudge-engine"]) != 0 {
		t.Errorf("quotas left: %v", q)
	}
	if !e.topicExists(t, other) {
		t.Errorf("unrelated topic %s was deleted", other)
	}
	if p := e.replan(t, provisioning.Resources{}, owned); !p.Empty() {
		t.Errorf("re-plan after delete not empty: %+v", p)
	}
}

// TestObserveFindsExtraACLs protects drift detection: an ACL someone added
// by hand on a loop's topic is observed and planned for deletion.
func TestObserveFindsExtraACLs(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	desired := provisioning.Derive(l, e.cat)
	e.converge(t, desired, desired)

	events := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "events")
	b := kadm.NewACLs().Allow("User:intruder").AllowHosts("*").Topics(events).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)
	if _, err := e.check.CreateACLs(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	p := e.replan(t, desired, desired)
	if len(p.Actions) != 1 || p.Actions[0].Kind != provisioning.DeleteACL || p.Actions[0].ACL.Principal != "User:intruder" {
		t.Fatalf("plan %+v: want one DeleteACL of User:intruder", p.Actions)
	}
	e.converge(t, desired, desired)
	if got := e.clusterACLs(t, []string{events}, nil); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "User:intruder ") }) {
		t.Errorf("intruder ACL survived: %v", got)
	}
}

// TestReadOnlyAdminRefusesWrites protects safety invariant 2: a dry run
// goes through Execute but cannot change the cluster.
func TestReadOnlyAdminRefusesWrites(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	desired := provisioning.Derive(l, e.cat)
	obs, err := e.readOnly.Observe(context.Background(), desired)
	if err != nil {
		t.Fatal(err)
	}
	p := provisioning.Plan(desired, obs)
	res, err := e.readOnly.Execute(context.Background(), p.Actions)
	if !errors.Is(err, provisioning.ErrReadOnly) {
		t.Fatalf("Execute on a read-only admin: err %v, want ErrReadOnly", err)
	}
	if len(res) != len(p.Actions) {
		t.Fatalf("%d results for %d actions", len(res), len(p.Actions))
	}
	for _, r := range res {
		if r.Op == "" || r.Err == "" {
			t.Errorf("result %+v: want the op it would run and an error", r)
		}
	}
	for _, name := range topicNames(desired) {
		if e.topicExists(t, name) {
			t.Errorf("read-only admin created topic %s", name)
		}
	}
	if q := e.clusterQuotas(t); len(q) != 0 {
		t.Errorf("read-only admin set quotas: %v", q)
	}
}

// TestCreateOfForeignTopicFails protects against silently adopting a topic
// made outside loopgate with another shape.
func TestCreateOfForeignTopicFails(t *testing.T) {
	e := newEnv(t)
	l := randomLoop(t)
	desired := provisioning.Derive(l, e.cat)
	events := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "events")
	// Plan while the topic does not exist, then someone else creates it.
	p := provisioning.Plan(desired, provisioning.Resources{})
	if _, err := e.check.CreateTopic(context.Background(), 2, 1, nil, events); err != nil {
		t.Fatal(err)
	}
	res, err := e.admin.Execute(context.Background(), p.Actions)
	if !errors.Is(err, provisioning.ErrTopicExists) {
		t.Fatalf("err %v, want ErrTopicExists", err)
	}
	var failed int
	for _, r := range res {
		if r.Err != "" {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed results, want only the foreign topic's create:\n%s", failed, provisioning.FormatResults(res))
	}
}

// TestAuthorizationErrorsKeepTheirType protects error handling upstream:
// a principal without rights gets a *kadm.AuthError through Execute's
// combined error, and it is not retriable.
func TestAuthorizationErrorsKeepTheirType(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	user, pass := "weak", "weak-password"
	if _, err := e.check.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pass,
	}}); err != nil {
		t.Fatal(err)
	}
	cl, err := provisioning.Connect(provisioning.ClusterConn{
		BootstrapServers: e.cluster.BootstrapServers(),
		SASL:             &provisioning.SASL{Mechanism: provisioning.MechanismScramSHA512, Username: user, Password: pass},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	weak := provisioning.NewKafkaAdmin(cl)
	desired := provisioning.Derive(randomLoop(t), e.cat)
	_, err = weak.Execute(ctx, provisioning.Plan(desired, provisioning.Resources{}).Actions)
	t.Logf("Execute as a user without ACLs: %v", err)
	var ae *kadm.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err %v: want a *kadm.AuthError inside", err)
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("err %v: want an authorization kerr inside", err)
	}
	if provisioning.IsRetriable(err) {
		t.Errorf("an authorization failure must not be retriable")
	}
}
