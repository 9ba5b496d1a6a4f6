package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// issued is `loopctl principal credentials TEAM/NAME -o json`.
type issued struct {
	Username  string `json:"username"`
	Password  string `json:"password"`
	Endpoints []struct {
		Cluster          string   `json:"cluster"`
		Region           string   `json:"region"`
		Mechanism        string   `json:"mechanism"`
		SecurityProtocol string   `json:"securityProtocol"`
		BootstrapServers []string `json:"bootstrapServers"`
	} `json:"endpoints"`
}

func issueCredentials(t *testing.T, home string, env []string, key string, rotate bool) issued {
	t.Helper()
	args := []string{"principal", "credentials", key, "-o", "json"}
	if rotate {
		args = append(args, "--rotate")
	}
	r := loopctl(t, home, env, args...)
	if r.Code != 0 {
		t.Fatalf("loopctl %v: %s", args, r)
	}
	var out issued
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || out.Password == "" || len(out.Endpoints) == 0 {
		t.Fatalf("credentials -o json: %v\n%s", err, r.Stdout)
	}
	return out
}

// client is an independent Kafka client (franz-go, not loopgate's code)
// built only from what loopctl printed.
func client(t *testing.T, c issued, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	ep := c.Endpoints[0]
	var mech sasl.Mechanism
	switch ep.Mechanism {
	case "SCRAM-SHA-512":
		mech = scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
	case "SCRAM-SHA-256":
		mech = scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
	default:
		t.Fatalf("mechanism %q", ep.Mechanism)
	}
	if ep.SecurityProtocol != "SASL_PLAINTEXT" {
		t.Fatalf("security protocol %q: this test speaks SASL_PLAINTEXT only", ep.SecurityProtocol)
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(ep.BootstrapServers...), kgo.SASL(mech),
		kgo.RequestRetries(2), kgo.RetryTimeout(3 * time.Second), kgo.RecordDeliveryTimeout(8 * time.Second)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, topic, value string, headers ...kgo.RecordHeader) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value), Headers: headers}).FirstErr()
}

// produceEventually retries a produce that may race an ACL the broker
// applies a moment after the admin call (Apache Kafka).
func produceEventually(t *testing.T, c issued, topic, value string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if err = produce(t, client(t, c), topic, value); err == nil {
			return
		}
	}
	t.Fatalf("%s producing to %s: %v", c.Username, topic, err)
}

// consumeOne reads one record of topic in group.
func consumeOne(t *testing.T, c issued, group, topic string) (*kgo.Record, error) {
	t.Helper()
	cl := client(t, c, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("no record within 20s: %w", err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, ferr
		}
		if recs := fs.Records(); len(recs) > 0 {
			return recs[0], nil
		}
	}
}

// useTheLoop is the "Use your loop" walkthrough with only what loopctl
// printed: the producer writes the input stream, the acting service reads
// it in its declared group and writes the action stream (copying the
// origin timestamp header), and grants are enforced.
func useTheLoop(t *testing.T, producer, actor issued) {
	t.Helper()
	const events, actions = "growth.checkout-nudge.events", "growth.checkout-nudge.actions"
	produceEventually(t, producer, events, `{"user_id":"u1","cart_value":42.0}`)

	var rec *kgo.Record
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if rec, err = consumeOne(t, actor, "nudge-engine", events); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the acting service consuming %s in group nudge-engine: %v", events, err)
	}
	if string(rec.Value) != `{"user_id":"u1","cart_value":42.0}` {
		t.Errorf("consumed %q", rec.Value)
	}
	origin := kgo.RecordHeader{Key: "loopgate-origin-ts", Value: []byte(fmt.Sprint(rec.Timestamp.UnixMilli()))}
	if err := produce(t, client(t, actor), actions, `{"user_id":"u1"}`, origin); err != nil {
		t.Fatalf("the acting service writing %s: %v", actions, err)
	}

	// Grants are enforced: the producer may not write the action stream,
	// read the input, or use the actor's group; the actor may not write
	// the input stream.
	if err := produce(t, client(t, producer), actions, "x"); !isAuthErr(err) {
		t.Errorf("checkout-api writing %s: %v, want an authorization error", actions, err)
	}
	if err := produce(t, client(t, actor), events, "x"); !isAuthErr(err) {
		t.Errorf("nudge-engine writing %s: %v, want an authorization error", events, err)
	}
	if _, err := consumeOne(t, producer, "nudge-engine", events); !isAuthErr(err) {
		t.Errorf("checkout-api reading %s in group nudge-engine: %v, want an authorization error", events, err)
	}
}

func isAuthErr(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed)
}

// authenticates reports whether c's password logs in (one metadata request).
func authenticates(t *testing.T, c issued) bool {
	t.Helper()
	cl := client(t, c, kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx) == nil
}

// TestUseYourLoop is the newcomer's path after `apply --wait`: issue
// credentials, connect with nothing but what loopctl printed, close the
// loop; rotation revokes the old password; another team cannot name
// growth's principal or group; the secret is nowhere in logs, audit or
// store; and the bootstrap address survives a restart.
func TestUseYourLoop(t *testing.T) {
	home, data := t.TempDir(), t.TempDir()
	srv := startServer(t, home, data)
	if r := loopctl(t, home, nil, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait"); r.Code != 0 {
		t.Fatalf("apply: %s", r)
	}
	growth := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "growth")}

	get := loopctl(t, home, growth, "get", "growth/checkout-nudge")
	eu := srv.Clusters["eu"]
	for _, want := range []string{"growth.checkout-nudge.events", "growth.checkout-nudge.actions", strings.Join(eu.Bootstrap, ","), "User:nudge-engine"} {
		if !strings.Contains(get.Stdout, want) {
			t.Errorf("loopctl get does not show %q:\n%s", want, get.Stdout)
		}
	}
	contract := loopctl(t, home, growth, "contract", "growth/checkout-nudge", "--principal", "nudge-engine", "--client", "java")
	for _, want := range []string{"bootstrap.servers=" + strings.Join(eu.Bootstrap, ","), "SCRAM-SHA-512", "group.id=nudge-engine", "acks=all"} {
		if !strings.Contains(contract.Stdout, want) {
			t.Errorf("loopctl contract --client java lacks %q: %s", want, contract)
		}
	}

	producer := issueCredentials(t, home, growth, "growth/checkout-api", false)
	actor := issueCredentials(t, home, growth, "growth/nudge-engine", false)
	if got := producer.Endpoints[0].BootstrapServers; !slices.Equal(got, eu.Bootstrap) {
		t.Errorf("credentials bootstrap %v, banner says %v", got, eu.Bootstrap)
	}
	useTheLoop(t, producer, actor)

	rotated := issueCredentials(t, home, growth, "growth/checkout-api", true)
	if authenticates(t, producer) {
		t.Errorf("the old password of checkout-api still authenticates after --rotate")
	}
	if !authenticates(t, rotated) {
		t.Errorf("the rotated password does not authenticate")
	}

	// Another team may not name growth's principal or group; nothing
	// changes on the cluster and growth's quotas stay as they were.
	before := observe(t, eu, "")
	stolen := strings.NewReplacer("team: growth", "team: risk", "name: checkout-nudge", "name: stolen",
		"classification: pii", "classification: internal").Replace(readFile(t, examplePath(t, "checkout-nudge.yaml")))
	r := loopctl(t, home, []string{"LOOPGATE_TOKEN=" + devToken(t, home, "risk")}, "apply", "-f", writeSpec(t, t.TempDir(), "stolen.yaml", stolen))
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "PRINCIPAL_NOT_OWNED") || !strings.Contains(r.Stdout+r.Stderr, "GROUP_NOT_OWNED") ||
		!strings.Contains(r.Stdout+r.Stderr, "team growth") {
		t.Errorf("risk naming growth's principals and group: %s", r)
	}
	after := observe(t, eu, "")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("a refused loop changed the cluster:\nbefore %v\nafter  %v", before, after)
	}

	// The secrets are nowhere: not in the server's output, the audit
	// trail, or the store.
	audit := loopctl(t, home, nil, "audit", "--limit", "1000", "-o", "json")
	bannerBoot := strings.Join(eu.Bootstrap, ",")
	srv.stop()
	var store []byte
	files, _ := filepath.Glob(filepath.Join(data, "loopgate.db*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		store = append(store, b...)
	}
	if len(store) == 0 {
		t.Fatal("no store files")
	}
	for _, c := range []issued{producer, actor, rotated} {
		for what, haystack := range map[string]string{"server output": srv.output(), "audit trail": audit.Stdout, "store": string(store)} {
			if strings.Contains(haystack, c.Password) {
				t.Errorf("the password of %s is in the %s", c.Username, what)
			}
		}
	}
	if !strings.Contains(audit.Stdout, "principal.rotateCredentials") || !strings.Contains(audit.Stdout, "principal.issueCredentials") {
		t.Errorf("audit lacks the credential events")
	}

	// The bootstrap address printed after a restart equals the one before,
	// and the issued credentials still work.
	srv2 := startServer(t, home, data)
	if got := strings.Join(srv2.Clusters["eu"].Bootstrap, ","); got != bannerBoot {
		t.Errorf("bootstrap after restart %s, before %s", got, bannerBoot)
	}
	if !authenticates(t, rotated) || !authenticates(t, actor) {
		t.Errorf("credentials stopped working after a restart")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
