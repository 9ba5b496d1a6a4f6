package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/loopgate/loopgate/contract"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// builtContract is the contract of User:nudge-engine in the checkout-nudge
// example as package contract builds it on the server.
func builtContract(t *testing.T) contract.Contract {
	t.Helper()
	loops, err := readLoopFile(nil, &bytes.Buffer{}, filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return contract.Build(contract.Input{
		Loop: loops[0], Principal: "User:nudge-engine",
		Bootstrap: []string{"127.0.0.1:19092"}, SecurityProtocol: "SASL_PLAINTEXT", Mechanism: "SCRAM-SHA-512",
		Produce: []string{"growth.checkout-nudge.actions"}, Consume: []string{"growth.checkout-nudge.events"},
		Group: "nudge-engine",
	})
}

// contractProto maps c as the server does (server/mapper.go).
func contractProto(c contract.Contract) *loopgatev1.LoopContract {
	out := &loopgatev1.LoopContract{
		Loop: "teams/" + strings.Replace(c.Loop, "/", "/loops/", 1), Principal: c.Principal, Username: c.Username,
		Cluster: "eu-embedded", Region: "eu", BootstrapServers: c.Bootstrap,
		SecurityProtocol: c.SecurityProtocol, SaslMechanism: c.Mechanism, CredentialsManaged: c.Mechanism != "",
		ProduceTopics: c.Produce, ConsumeTopics: c.Consume, Group: c.Group, Basis: c.Basis,
	}
	for _, s := range c.Producer {
		out.ProducerSettings = append(out.ProducerSettings, &loopgatev1.ClientSetting{Key: s.Key, Value: s.Value, Reason: s.Reason})
	}
	for _, s := range c.Consumer {
		out.ConsumerSettings = append(out.ConsumerSettings, &loopgatev1.ClientSetting{Key: s.Key, Value: s.Value, Reason: s.Reason})
	}
	if h := c.OriginHeader; h != nil {
		out.OriginHeader = &loopgatev1.OriginHeader{Key: h.Key, Value: h.Value, Topic: h.Topic}
	}
	return out
}

func TestContractFromProtoRoundTrips(t *testing.T) {
	want := builtContract(t)
	got := contractFromProto(contractProto(want))
	if got.Loop != "growth/checkout-nudge" {
		t.Errorf("Loop = %q, want team/loop", got.Loop)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("contractFromProto =\n%+v\nwant\n%+v", got, want)
	}
	if want.Basis == "" || !strings.HasPrefix(got.Basis, "p99 2s, freshness 30s") {
		t.Errorf("basis = %q", got.Basis)
	}
}

func TestContractFromProtoUsernameFallsBackToPrincipal(t *testing.T) {
	c := contractFromProto(&loopgatev1.LoopContract{Loop: "teams/a/loops/b", Principal: "User:x"})
	if c.Username != "x" || c.Loop != "a/b" || c.Producer != nil || c.Consumer != nil {
		t.Errorf("contract = %+v", c)
	}
}

func TestContractJSONShape(t *testing.T) {
	c := builtContract(t)
	var buf bytes.Buffer
	if err := printValue(&buf, FormatJSON, contractOutputOf(contractProto(c), c)); err != nil {
		t.Fatal(err)
	}
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	_, _ = dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		_ = dec.Decode(&skip)
	}
	wantKeys := "loop principal username cluster region bootstrap securityProtocol mechanism credentialsManaged produce consume group basis producer consumer"
	if strings.Join(keys, " ") != wantKeys {
		t.Errorf("keys = %v\nwant   %s", keys, wantKeys)
	}
	var out contractOutput
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Producer[0] != (contract.Setting{Key: "acks", Value: "all", Reason: c.Producer[0].Reason}) || out.Consumer[0].Reason == "" {
		t.Errorf("settings lost their reasons: %+v", out.Producer[0])
	}
	if strings.Contains(buf.String(), "password") {
		t.Errorf("JSON without credentials names a password:\n%s", buf.String())
	}

	c.Password = "pw"
	buf.Reset()
	_ = printValue(&buf, FormatJSON, contractOutputOf(contractProto(c), c))
	if !strings.Contains(buf.String(), `"password": "pw"`) {
		t.Errorf("JSON with credentials lacks the password:\n%s", buf.String())
	}

	// A producer-only contract has [] lists, not null.
	buf.Reset()
	_ = printValue(&buf, FormatJSON, contractOutputOf(&loopgatev1.LoopContract{}, contract.Contract{}))
	for _, k := range []string{"bootstrap", "produce", "consume", "producer", "consumer"} {
		if !strings.Contains(buf.String(), `"`+k+`": []`) {
			t.Errorf("%s is not []:\n%s", k, buf.String())
		}
	}
}

func TestCheckCredentialsManaged(t *testing.T) {
	if err := checkCredentialsManaged(&loopgatev1.LoopContract{CredentialsManaged: true}); err != nil {
		t.Error(err)
	}
	err := checkCredentialsManaged(&loopgatev1.LoopContract{Cluster: "us-msk", Region: "us", Principal: "User:x"})
	if err == nil || !strings.Contains(err.Error(), "identities of cluster us-msk (region us) are managed outside loopgate") {
		t.Errorf("err = %v", err)
	}
}

func contractServer(t *testing.T) *fakeServer {
	c := builtContract(t)
	f := &fakeServer{contract: contractProto(c), loop: exampleLoop(t), issued: issuedFixture()}
	f.start(t)
	return f
}

func TestContractCommandRendersWithoutPassword(t *testing.T) {
	f := contractServer(t)
	for _, client := range contract.Clients {
		code, stdout, stderr := run(t, "contract", "growth/checkout-nudge", "--principal", "User:nudge-engine", "--client", client, "--as", "growth")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", client, code, stderr)
		}
		var want bytes.Buffer
		c := builtContract(t)
		if err := contract.Render(&want, c, client); err != nil {
			t.Fatal(err)
		}
		if stdout != want.String() {
			t.Errorf("%s: stdout is not contract.Render of the server's contract:\n%s", client, stdout)
		}
		if !strings.Contains(stdout, "Settings follow from: p99 2s, freshness 30s") {
			t.Errorf("%s: header lacks the basis:\n%s", client, stdout)
		}
		if stderr != "" {
			t.Errorf("%s: stderr %q", client, stderr)
		}
	}
	if len(sent[*loopgatev1.IssuePrincipalCredentialsRequest](f)) != 0 {
		t.Error("credentials issued without --with-credentials")
	}
	req := sent[*loopgatev1.GetLoopContractRequest](f)[0]
	if req.GetName() != "teams/growth/loops/checkout-nudge" || req.GetPrincipal() != "User:nudge-engine" {
		t.Errorf("request = %v", req)
	}
	if f.tokens[0] != "Bearer growth-token" {
		t.Errorf("token = %q", f.tokens[0])
	}
}

func TestContractCommandDefaultsToFranzGo(t *testing.T) {
	contractServer(t)
	code, stdout, _ := run(t, "contract", "growth/checkout-nudge")
	if code != 0 || !strings.Contains(stdout, "kgo.NewClient(") || !strings.Contains(stdout, contract.PasswordEnv) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

func TestContractCommandWithCredentials(t *testing.T) {
	f := contractServer(t)
	code, stdout, stderr := run(t, "contract", "growth/checkout-nudge", "--with-credentials", "--rotate", "--client", "java")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	req := sent[*loopgatev1.IssuePrincipalCredentialsRequest](f)[0]
	if req.GetName() != "teams/growth/principals/nudge-engine" || !req.GetRotate() {
		t.Errorf("issue request = %v", req)
	}
	if !strings.Contains(stdout, `password="s3cr3t-Pw_0123";`) {
		t.Errorf("java properties lack the password:\n%s", stdout)
	}
	if !strings.Contains(stderr, "shown only now") || strings.Contains(stderr, "s3cr3t") {
		t.Errorf("stderr:\n%s", stderr)
	}

	code, stdout, _ = run(t, "contract", "growth/checkout-nudge", "--with-credentials", "-o", "json")
	var out contractOutput
	if err := json.Unmarshal([]byte(stdout), &out); code != 0 || err != nil {
		t.Fatalf("exit %d, stdout is not JSON (%v):\n%s", code, err, stdout)
	}
	if out.Password != "s3cr3t-Pw_0123" || out.Loop != "growth/checkout-nudge" || out.Group != "nudge-engine" || !out.CredentialsManaged {
		t.Errorf("contract = %+v", out)
	}
}

func TestContractCommandJSONWithoutCredentialsHasNoPassword(t *testing.T) {
	contractServer(t)
	code, stdout, stderr := run(t, "contract", "growth/checkout-nudge", "-o", "yaml")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "password") || !strings.HasPrefix(stdout, "loop: growth/checkout-nudge\nprincipal: User:nudge-engine\n") {
		t.Errorf("yaml:\n%s", stdout)
	}
	if !strings.Contains(stdout, "  - key: linger.ms\n    value: \"20\"\n    reason: ") {
		t.Errorf("yaml lacks settings with reasons:\n%s", stdout)
	}
}

func TestContractCommandRefusesCredentialsManagedElsewhere(t *testing.T) {
	f := contractServer(t)
	f.contract.CredentialsManaged = false
	f.contract.SaslMechanism = ""
	code, stdout, stderr := run(t, "contract", "growth/checkout-nudge", "--with-credentials")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "error: --with-credentials: the identities of cluster eu-embedded (region eu) are managed outside loopgate") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if len(sent[*loopgatev1.IssuePrincipalCredentialsRequest](f)) != 0 {
		t.Error("credentials issued for a cluster loopgate does not manage")
	}
}

func TestContractCommandAlreadyIssuedSaysRotate(t *testing.T) {
	f := contractServer(t)
	f.issueErr = statusWith(t, codes.FailedPrecondition, "User:nudge-engine already has a credential",
		&errdetails.ErrorInfo{Reason: "CREDENTIALS_ALREADY_ISSUED"})
	code, stdout, stderr := run(t, "contract", "growth/checkout-nudge", "--with-credentials")
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		"error: cannot do this now (CREDENTIALS_ALREADY_ISSUED): User:nudge-engine already has a credential\n",
		"loopctl contract growth/checkout-nudge --principal User:nudge-engine --with-credentials --rotate\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestContractCommandChecksFlagsFirst(t *testing.T) {
	noServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"contract", "growth"}, "is not a loop"},
		{[]string{"contract", "growth/x", "--client", "rust"}, `--client "rust": unknown client (use franz-go, java, librdkafka)`},
		{[]string{"contract", "growth/x", "--rotate"}, "it needs --with-credentials"},
		{[]string{"contract", "growth/x", "-o", "xml"}, "unknown output format"},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}
