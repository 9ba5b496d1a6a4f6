package contract_test

import (
	"bufio"
	"bytes"
	"errors"
	"go/format"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/contract"
	"github.com/loopgate/loopgate/loop"
)

const secret = "s3cr3t-Pa55-do-not-leak"

func loopSLO(p99, freshness int64) loop.SLO {
	return loop.SLO{LatencyP99Ms: p99, FreshnessMs: freshness}
}

func designLoop() *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: "growth", Name: "checkout-nudge"},
		Spec: loop.Spec{
			SLO:        loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput: loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams:    []loop.Stream{{Name: "events", Partitions: 12}, {Name: "actions"}},
			Action:     &loop.Action{Stream: "actions"},
		},
	}
}

// roles are the principal shapes every renderer must handle.
var roles = []struct {
	name             string
	produce, consume []string
	group            string
}{
	{"producer only", []string{"growth.checkout-nudge.events"}, nil, ""},
	{"consumer only", nil, []string{"growth.checkout-nudge.events"}, "nudge-engine"},
	{"both", []string{"growth.checkout-nudge.actions"}, []string{"growth.checkout-nudge.events"}, "nudge-engine"},
	{"two topics each", []string{"growth.checkout-nudge.actions", "growth.checkout-nudge.events"},
		[]string{"growth.checkout-nudge.actions", "growth.checkout-nudge.events"}, "nudge-engine"},
	{"consumer without group", nil, []string{"growth.checkout-nudge.events"}, ""},
}

func input(produce, consume []string, group, password string) contract.Input {
	return contract.Input{
		Loop: designLoop(), Principal: "User:nudge-engine",
		Bootstrap:        []string{"kafka-1.eu:9093", "kafka-2.eu:9093"},
		SecurityProtocol: "SASL_SSL", Mechanism: "SCRAM-SHA-512",
		Produce: produce, Consume: consume, Group: group, Password: password,
	}
}

func render(t *testing.T, c contract.Contract, client string) string {
	t.Helper()
	var b bytes.Buffer
	if err := contract.Render(&b, c, client); err != nil {
		t.Fatalf("Render(%s): %v", client, err)
	}
	return b.String()
}

// TestRenderCarriesTheContract: every client's output names the
// bootstrap servers, the user, the mechanism, the group and every topic.
func TestRenderCarriesTheContract(t *testing.T) {
	for _, client := range contract.Clients {
		for _, r := range roles {
			t.Run(client+"/"+r.name, func(t *testing.T) {
				c := contract.Build(input(r.produce, r.consume, r.group, ""))
				out := render(t, c, client)
				want := []string{"kafka-1.eu:9093", "kafka-2.eu:9093", "nudge-engine", "SCRAM-SHA-512"}
				want = append(want, r.produce...)
				want = append(want, r.consume...)
				if r.group != "" {
					want = append(want, r.group)
				}
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
			})
		}
	}
}

// TestRenderPassword: no password in the output unless the contract
// carries one; a placeholder (or the env variable) instead.
func TestRenderPassword(t *testing.T) {
	placeholder := map[string]string{
		"franz-go":   `os.Getenv("` + contract.PasswordEnv + `")`,
		"java":       `password="<password of User:nudge-engine>"`,
		"librdkafka": "sasl.password=<password of User:nudge-engine>",
	}
	for _, client := range contract.Clients {
		t.Run(client, func(t *testing.T) {
			topics := []string{"growth.checkout-nudge.events"}
			without := render(t, contract.Build(input(topics, topics, "nudge-engine", "")), client)
			if strings.Contains(without, secret) {
				t.Errorf("output without a password contains one:\n%s", without)
			}
			if !strings.Contains(without, placeholder[client]) {
				t.Errorf("output lacks the placeholder %q:\n%s", placeholder[client], without)
			}
			with := render(t, contract.Build(input(topics, topics, "nudge-engine", secret)), client)
			if !strings.Contains(with, secret) {
				t.Errorf("output with a password does not carry it:\n%s", with)
			}
			if strings.Contains(with, "<password of") {
				t.Errorf("output with a password still has the placeholder:\n%s", with)
			}
		})
	}
}

func TestRenderUnknownClient(t *testing.T) {
	var b bytes.Buffer
	err := contract.Render(&b, contract.Build(input([]string{"t"}, nil, "", "")), "sarama")
	if !errors.Is(err, contract.ErrUnknownClient) {
		t.Fatalf("err = %v, want ErrUnknownClient", err)
	}
	for _, c := range append([]string{"sarama"}, contract.Clients...) {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not name %q", err, c)
		}
	}
	if b.Len() != 0 {
		t.Errorf("Render wrote %q before failing", b.String())
	}
}

// TestRenderFranzGoIsGo: the franz-go output parses as gofmt'd Go.
// (TestFranzGoSnippetsCompile builds it against franz-go.)
func TestRenderFranzGoIsGo(t *testing.T) {
	for _, r := range roles {
		for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "", "OAUTHBEARER"} {
			in := input(r.produce, r.consume, r.group, "")
			in.Mechanism = mech
			out := render(t, contract.Build(in), "franz-go")
			if _, err := parser.ParseFile(token.NewFileSet(), "client.go", out, parser.ParseComments); err != nil {
				t.Fatalf("%s/%s: not Go: %v\n%s", r.name, mech, err, out)
			}
			if f, _ := format.Source([]byte(out)); string(f) != out {
				t.Errorf("%s/%s: not gofmt'd", r.name, mech)
			}
		}
	}
}

// properties reads key=value lines, skipping comments and blanks.
func properties(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %q is not key=value", line)
		}
		if _, dup := m[k]; dup {
			t.Errorf("key %s set twice", k)
		}
		m[k] = v
	}
	return m
}

// TestRenderJavaProperties: every setting is a property with its value,
// its reason is the comment above it.
func TestRenderJavaProperties(t *testing.T) {
	c := contract.Build(input([]string{"growth.checkout-nudge.actions"}, []string{"growth.checkout-nudge.events"}, "nudge-engine", ""))
	out := render(t, c, "java")
	props := properties(t, out)
	want := map[string]string{
		"bootstrap.servers": "kafka-1.eu:9093,kafka-2.eu:9093",
		"security.protocol": "SASL_SSL",
		"sasl.mechanism":    "SCRAM-SHA-512",
		"group.id":          "nudge-engine",
	}
	for _, s := range append(c.Producer, c.Consumer...) {
		want[s.Key] = s.Value
		if !strings.Contains(out, "# "+s.Key+": "+s.Reason) {
			t.Errorf("reason of %s missing", s.Key)
		}
	}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("%s = %q, want %q", k, props[k], v)
		}
	}
	if jaas := props["sasl.jaas.config"]; !strings.HasPrefix(jaas, "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"nudge-engine\"") {
		t.Errorf("sasl.jaas.config = %q", jaas)
	}
}

// TestRenderLibrdkafkaNames: librdkafka gets its own property names, and
// a comment where it has no equivalent.
func TestRenderLibrdkafkaNames(t *testing.T) {
	c := contract.Build(input([]string{"growth.checkout-nudge.actions"}, []string{"growth.checkout-nudge.events"}, "nudge-engine", ""))
	out := render(t, c, "librdkafka")
	props := properties(t, out)
	want := map[string]string{
		"bootstrap.servers":             "kafka-1.eu:9093,kafka-2.eu:9093",
		"security.protocol":             "sasl_ssl",
		"sasl.mechanisms":               "SCRAM-SHA-512",
		"sasl.username":                 "nudge-engine",
		"group.id":                      "nudge-engine",
		"acks":                          "all",
		"enable.idempotence":            "true",
		"linger.ms":                     "20",
		"batch.size":                    "65536",
		"compression.codec":             "lz4",
		"fetch.wait.max.ms":             "100",
		"fetch.min.bytes":               "1",
		"auto.offset.reset":             "latest", // no by_duration in librdkafka
		"enable.auto.commit":            "false",
		"isolation.level":               "read_committed",
		"partition.assignment.strategy": "cooperative-sticky",
	}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("%s = %q, want %q", k, props[k], v)
		}
	}
	for _, k := range []string{"compression.type", "fetch.max.wait.ms", "max.poll.records", "sasl.mechanism"} {
		if _, ok := props[k]; ok {
			t.Errorf("%s is not a librdkafka property name but is set", k)
		}
	}
	if !strings.Contains(out, "# max.poll.records=500: ") {
		t.Errorf("max.poll.records is not explained in a comment:\n%s", out)
	}
}

// TestRenderLargeRecords: each client can send records above 1 MiB.
func TestRenderLargeRecords(t *testing.T) {
	l := designLoop()
	l.Spec.Throughput.RecordBytes = 3 << 20
	in := input([]string{"growth.checkout-nudge.events"}, nil, "", "")
	in.Loop = l
	c := contract.Build(in)
	for client, want := range map[string]string{
		"java":       "\nmax.request.size=4194304\n",
		"librdkafka": "\nmessage.max.bytes=4194304\n",
		"franz-go":   "kgo.ProducerBatchMaxBytes(4194304)",
	} {
		if out := render(t, c, client); !strings.Contains(out, want) {
			t.Errorf("%s: output lacks %q:\n%s", client, want, out)
		}
	}
}

// TestRenderWithoutSASL: a principal authenticated by its TLS certificate
// gets no SASL settings, and a hint where the certificate goes.
func TestRenderWithoutSASL(t *testing.T) {
	in := input([]string{"growth.checkout-nudge.events"}, nil, "", "")
	in.SecurityProtocol, in.Mechanism = "SSL", ""
	c := contract.Build(in)
	for _, client := range contract.Clients {
		out := render(t, c, client)
		for _, bad := range []string{"sasl.jaas.config=", "sasl.username=", "kgo.SASL(", "sasl.password="} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: output has %q without a mechanism:\n%s", client, bad, out)
			}
		}
		if !strings.Contains(out, "certificate") {
			t.Errorf("%s: output does not say where the certificate goes:\n%s", client, out)
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	in := input([]string{"growth.checkout-nudge.actions"}, []string{"growth.checkout-nudge.events"}, "nudge-engine", "")
	for _, client := range contract.Clients {
		if a, b := render(t, contract.Build(in), client), render(t, contract.Build(in), client); a != b {
			t.Errorf("%s: two renderings differ", client)
		}
	}
}
