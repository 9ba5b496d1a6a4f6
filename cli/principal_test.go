package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"gopkg.in/yaml.v3"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func TestParsePrincipalRef(t *testing.T) {
	for _, tc := range []struct {
		ref, team, id string
	}{
		{"growth/nudge-engine", "growth", "nudge-engine"},
		{"growth/User:nudge-engine", "growth", "nudge-engine"},
		{"teams/growth/principals/nudge-engine", "growth", "nudge-engine"},
	} {
		team, id, err := parsePrincipalRef(tc.ref)
		if err != nil || team != tc.team || id != tc.id {
			t.Errorf("parsePrincipalRef(%q) = %q, %q, %v", tc.ref, team, id, err)
		}
	}
	for _, bad := range []string{"nudge-engine", "growth/", "/x", "growth/User:", "a/b/c", "teams/growth/loops/x"} {
		if _, _, err := parsePrincipalRef(bad); err == nil || !strings.Contains(err.Error(), "TEAM/NAME") {
			t.Errorf("parsePrincipalRef(%q) = %v, want an error naming TEAM/NAME", bad, err)
		}
	}
}

func issuedFixture() *loopgatev1.IssuePrincipalCredentialsResponse {
	return &loopgatev1.IssuePrincipalCredentialsResponse{
		Principal: nudgeEngine(),
		Username:  "nudge-engine",
		Password:  "s3cr3t-Pw_0123",
		Endpoints: []*loopgatev1.CredentialEndpoint{{
			Cluster: "eu-embedded", Region: "eu", BootstrapServers: []string{"127.0.0.1:19092", "127.0.0.1:19093"},
			Mechanism: "SCRAM-SHA-512", SecurityProtocol: "SASL_PLAINTEXT",
		}},
		Skipped: []string{"us-msk: identities are managed outside loopgate (credentials: external)"},
	}
}

func TestPrintCredentials(t *testing.T) {
	var buf bytes.Buffer
	if err := printCredentials(&buf, issuedFixture()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Principal:  User:nudge-engine (teams/growth/principals/nudge-engine)\n",
		"Username:   nudge-engine\n",
		"Password:   s3cr3t-Pw_0123\n",
		"\nEndpoints:\n",
		"  CLUSTER       REGION   MECHANISM       SECURITY PROTOCOL   BOOTSTRAP\n",
		"  eu-embedded   eu       SCRAM-SHA-512   SASL_PLAINTEXT      127.0.0.1:19092,127.0.0.1:19093\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("credentials lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "s3cr3t-Pw_0123"); n != 1 {
		t.Errorf("password printed %d times, want once:\n%s", n, out)
	}
}

func TestCredentialsJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := printValue(&buf, FormatJSON, credentialsOf(issuedFixture())); err != nil {
		t.Fatal(err)
	}
	want := `{
  "username": "nudge-engine",
  "password": "s3cr3t-Pw_0123",
  "endpoints": [
    {
      "cluster": "eu-embedded",
      "region": "eu",
      "mechanism": "SCRAM-SHA-512",
      "securityProtocol": "SASL_PLAINTEXT",
      "bootstrapServers": [
        "127.0.0.1:19092",
        "127.0.0.1:19093"
      ]
    }
  ],
  "skipped": [
    "us-msk: identities are managed outside loopgate (credentials: external)"
  ]
}
`
	if buf.String() != want {
		t.Errorf("JSON =\n%s\nwant\n%s", buf.String(), want)
	}

	// Lists are [] rather than null when empty.
	buf.Reset()
	if err := printValue(&buf, FormatJSON, credentialsOf(&loopgatev1.IssuePrincipalCredentialsResponse{Username: "x", Password: "p"})); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["endpoints"].([]any); !ok {
		t.Errorf("endpoints = %#v, want []", m["endpoints"])
	}
	if _, ok := m["skipped"].([]any); !ok {
		t.Errorf("skipped = %#v, want []", m["skipped"])
	}
}

func TestCredentialsYAMLKeepsKeysAndQuotesNumbers(t *testing.T) {
	r := issuedFixture()
	r.Password = "12345" // must stay a string
	var buf bytes.Buffer
	if err := printValue(&buf, FormatYAML, credentialsOf(r)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "username: nudge-engine\npassword: \"12345\"\nendpoints:\n  - cluster: eu-embedded\n") {
		t.Errorf("YAML:\n%s", buf.String())
	}
	var v struct {
		Password  string
		Endpoints []struct {
			SecurityProtocol string `yaml:"securityProtocol"`
		}
	}
	if err := yaml.Unmarshal(buf.Bytes(), &v); err != nil || v.Password != "12345" || v.Endpoints[0].SecurityProtocol != "SASL_PLAINTEXT" {
		t.Errorf("YAML reads back as %+v (%v)", v, err)
	}
}

func TestPrintPrincipalDetails(t *testing.T) {
	var buf bytes.Buffer
	if err := printPrincipalDetails(&buf, nudgeEngine()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Name:          teams/growth/principals/nudge-engine\n",
		"Principal:     User:nudge-engine\n",
		"Origin:        loop growth/checkout-nudge\n",
		"Created:       2026-11-30 09:00 by ana\n",
		"Loops:         growth/checkout-nudge, growth/cart-rescue\n",
		"Credential:    SCRAM-SHA-512 on eu-embedded, issued 2026-11-30 10:00 by ana, rotated 2×\n",
		"Last rotated:  2026-12-01 10:00 by bo\n",
		"Etag:          e1\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("details lack %q:\n%s", want, buf.String())
		}
	}
}

func TestPrintPrincipalDeleted(t *testing.T) {
	var buf bytes.Buffer
	printPrincipalDeleted(&buf, "teams/growth/principals/x", &loopgatev1.DeletePrincipalResponse{
		Principal: &loopgatev1.Principal{Name: "teams/growth/principals/x"}, Clusters: []string{"eu-1", "eu-2"},
	})
	want := "teams/growth/principals/x deleted\n  credential, ACLs and quotas removed from: eu-1, eu-2\n"
	if buf.String() != want {
		t.Errorf("deleted = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	printPrincipalDeleted(&buf, "teams/growth/principals/x", &loopgatev1.DeletePrincipalResponse{})
	if !strings.Contains(buf.String(), "no credential, ACLs or quotas on any cluster") {
		t.Errorf("deleted without clusters = %q", buf.String())
	}
}

func TestPrincipalCredentialsJSONIsAloneOnStdout(t *testing.T) {
	f := &fakeServer{issued: issuedFixture()}
	f.start(t)
	code, stdout, stderr := run(t, "principal", "credentials", "growth/User:nudge-engine", "--rotate", "-o", "json", "--as", "growth")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	req := sent[*loopgatev1.IssuePrincipalCredentialsRequest](f)[0]
	if req.GetName() != "teams/growth/principals/nudge-engine" || !req.GetRotate() {
		t.Errorf("request = %v", req)
	}
	var got credentialsOutput
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not the credentials object (%v):\n%s", err, stdout)
	}
	if dec.More() {
		t.Errorf("stdout has more than one JSON value:\n%s", stdout)
	}
	if got.Password != "s3cr3t-Pw_0123" || got.Endpoints[0].BootstrapServers[1] != "127.0.0.1:19093" {
		t.Errorf("credentials = %+v", got)
	}
	if !strings.Contains(stderr, "shown only now") || !strings.Contains(stderr, "loopgate does not keep it") {
		t.Errorf("stderr lacks the one-time warning:\n%s", stderr)
	}
	if strings.Contains(stderr, "s3cr3t") {
		t.Errorf("the password leaked to stderr:\n%s", stderr)
	}
}

func TestPrincipalCredentialsTable(t *testing.T) {
	f := &fakeServer{issued: issuedFixture()}
	f.start(t)
	code, stdout, stderr := run(t, "principal", "credentials", "growth/nudge-engine")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if sent[*loopgatev1.IssuePrincipalCredentialsRequest](f)[0].GetRotate() {
		t.Error("rotate sent without --rotate")
	}
	if strings.Count(stdout, "s3cr3t-Pw_0123") != 1 || !strings.Contains(stdout, "SASL_PLAINTEXT") {
		t.Errorf("stdout:\n%s", stdout)
	}
	for _, want := range []string{"warning: the password of nudge-engine is shown only now", "us-msk: identities are managed outside loopgate"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestPrincipalCredentialsAlreadyIssued(t *testing.T) {
	f := &fakeServer{err: statusWith(t, codes.FailedPrecondition,
		"User:x already has a credential and its password cannot be shown again: rotate it (loopctl principal credentials growth/x --rotate) to get a new one",
		&errdetails.ErrorInfo{Reason: "CREDENTIALS_ALREADY_ISSUED", Domain: "loopgate.dev"})}
	f.start(t)
	code, stdout, stderr := run(t, "principal", "credentials", "growth/x")
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, "error: cannot do this now (CREDENTIALS_ALREADY_ISSUED): User:x already has a credential") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestPrincipalCreateGetDelete(t *testing.T) {
	f := &fakeServer{principal: checkoutAPI(), deleted: &loopgatev1.DeletePrincipalResponse{
		Principal: checkoutAPI(), Clusters: []string{"eu-embedded"}}}
	f.start(t)

	code, stdout, stderr := run(t, "principal", "create", "growth/User:checkout-api")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	if req := sent[*loopgatev1.CreatePrincipalRequest](f)[0]; req.GetParent() != "teams/growth" || req.GetPrincipalId() != "checkout-api" {
		t.Errorf("create request = %v", req)
	}
	if !strings.HasPrefix(stdout, "teams/growth/principals/checkout-api created: User:checkout-api now belongs to team growth\n") {
		t.Errorf("create stdout:\n%s", stdout)
	}

	code, stdout, _ = run(t, "principal", "get", "growth/checkout-api")
	if code != 0 || sent[*loopgatev1.GetPrincipalRequest](f)[0].GetName() != "teams/growth/principals/checkout-api" ||
		!strings.Contains(stdout, "Origin:      explicit\n") {
		t.Errorf("get: exit %d:\n%s", code, stdout)
	}

	code, stdout, _ = run(t, "principal", "delete", "growth/checkout-api", "--etag", "e7")
	if req := sent[*loopgatev1.DeletePrincipalRequest](f)[0]; req.GetName() != "teams/growth/principals/checkout-api" || req.GetEtag() != "e7" {
		t.Errorf("delete request = %v", req)
	}
	if code != 0 || !strings.Contains(stdout, "removed from: eu-embedded") {
		t.Errorf("delete: exit %d:\n%s", code, stdout)
	}
}

func TestPrincipalErrorsGoThroughPrintError(t *testing.T) {
	f := &fakeServer{err: statusWith(t, codes.InvalidArgument, "invalid principal",
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "principal_id", Description: "must start with a letter or digit"},
		}})}
	f.start(t)
	code, _, stderr := run(t, "principal", "create", "growth/_bad")
	want := "error: invalid request (INVALID_ARGUMENT): invalid principal\n  principal_id: must start with a letter or digit\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

func TestPrincipalCommandsCheckArgumentsFirst(t *testing.T) {
	noServer(t)
	for _, args := range [][]string{
		{"principal", "get", "nudge-engine"},
		{"principal", "create", "growth/"},
		{"principal", "credentials", "a/b/c"},
		{"principal", "delete", "growth"},
	} {
		code, _, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "is not a principal: write TEAM/NAME") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "principal", "get"); code != 1 || !strings.Contains(stderr, "accepts 1 arg") {
		t.Errorf("no argument: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "principals", "a/b"); code != 1 || !strings.Contains(stderr, "is not a team") {
		t.Errorf("principals a/b: exit %d, stderr %q", code, stderr)
	}
}
