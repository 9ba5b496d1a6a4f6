package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// statusWith builds a real gRPC status error with details, as the server's
// error mapper does.
func statusWith(t *testing.T, code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		t.Fatalf("WithDetails: %v", err)
	}
	return st.Err()
}

// policyDenial is a denial with two violations, reported (as the server
// does) both as PreconditionFailure and as BadRequest field violations.
func policyDenial(t *testing.T) error {
	return statusWith(t, codes.FailedPrecondition,
		"teams/growth/loops/clickstream-us: denied by policy (decision dec_1, bundle b7): PII_RESIDENCY, PII_RETENTION_TOO_LONG",
		&errdetails.ErrorInfo{Reason: "POLICY_DENIED", Domain: "loopgate.dev", Metadata: map[string]string{
			"resource": "teams/growth/loops/clickstream-us", "decision_id": "dec_1", "bundle_revision": "b7",
		}},
		&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{
			{Type: "PII_RESIDENCY", Subject: "spec.residency", Description: "pii data may only be stored in: eu"},
			{Type: "PII_RETENTION_TOO_LONG", Subject: "spec.retention", Description: "pii may be kept at most 30d"},
		}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "spec.residency", Description: "PII_RESIDENCY: pii data may only be stored in: eu", Reason: "PII_RESIDENCY"},
			{Field: "spec.retention", Description: "PII_RETENTION_TOO_LONG: pii may be kept at most 30d", Reason: "PII_RETENTION_TOO_LONG"},
		}},
	)
}

func TestViolationsReportsEachPolicyViolationOnce(t *testing.T) {
	st, _ := status.FromError(policyDenial(t))
	got := Violations(st)
	want := []Violation{
		{Rule: "PII_RESIDENCY", Field: "spec.residency", Message: "pii data may only be stored in: eu"},
		{Rule: "PII_RETENTION_TOO_LONG", Field: "spec.retention", Message: "pii may be kept at most 30d"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Violations = %v\nwant %v", got, want)
	}
}

func TestViolationsReadsRuleIDFromBadRequestDescription(t *testing.T) {
	// Without a Reason, the rule id is the "RULE_ID: " prefix of the
	// description; plain field errors keep their whole message.
	err := statusWith(t, codes.InvalidArgument, "invalid",
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "spec.slo.latencyP99", Description: "LATENCY_BELOW_FLOOR: raise it to 500ms"},
			{Field: "spec.owners", Description: "must list at least one owner: e.g. [ana@example.com]"},
		}})
	st, _ := status.FromError(err)
	got := Violations(st)
	want := []Violation{
		{Rule: "LATENCY_BELOW_FLOOR", Field: "spec.slo.latencyP99", Message: "raise it to 500ms"},
		{Field: "spec.owners", Message: "must list at least one owner: e.g. [ana@example.com]"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Violations = %v\nwant %v", got, want)
	}
}

func TestPrintErrorPolicyDenialListsEveryViolationOnALine(t *testing.T) {
	var buf bytes.Buffer
	PrintError(&buf, policyDenial(t), Conn{Server: "127.0.0.1:7070"})
	out := buf.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "error: teams/growth/loops/clickstream-us is denied by policy (decision dec_1, bundle b7): 2 violation(s)") {
		t.Errorf("first line = %q", lines[0])
	}
	for _, want := range [][]string{
		{"PII_RESIDENCY", "spec.residency", "pii data may only be stored in: eu"},
		{"PII_RETENTION_TOO_LONG", "spec.retention", "pii may be kept at most 30d"},
	} {
		found := 0
		for _, l := range lines {
			if strings.Contains(l, want[0]) && strings.Contains(l, want[1]) && strings.Contains(l, want[2]) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("rule %s: on %d lines with its field and message, want exactly 1:\n%s", want[0], found, out)
		}
	}
}

func TestPrintErrorExplainsByCode(t *testing.T) {
	conn := Conn{Server: "10.1.2.3:7070", ServerSource: "$LOOPGATE_SERVER", Token: "tok", TokenSource: "--as growth"}
	tests := []struct {
		name string
		err  error
		conn Conn
		want []string
	}{
		{"unavailable names the address and where it came from",
			status.Error(codes.Unavailable, "connection refused"), conn,
			[]string{"cannot reach loopgate at 10.1.2.3:7070: is `loopgate serve` running?", "from $LOOPGATE_SERVER"}},
		{"unauthenticated without a token says how to give one",
			status.Error(codes.Unauthenticated, "missing bearer token"), Conn{Server: "x"},
			[]string{"not authenticated: missing bearer token", "--token", "$LOOPGATE_TOKEN"}},
		{"unauthenticated with a token says which one was refused",
			status.Error(codes.Unauthenticated, "unknown token"), conn,
			[]string{"the token from --as growth was refused", "loopctl login --with-token"}},
		{"unauthenticated without a token mentions login",
			status.Error(codes.Unauthenticated, "missing bearer token"), Conn{Server: "x"},
			[]string{"log in with `echo $TOKEN | loopctl login --with-token`"}},
		{"an expired stored login says to log in again",
			status.Error(codes.Unauthenticated, "token expired"),
			Conn{Server: "lg:443", Token: "t", TokenSource: "loopctl login (/h/hosts.json)", StoredLogin: true,
				TokenExpiry: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)},
			[]string{"the token from loopctl login (/h/hosts.json) expired at 2020-01-02T03:04:05Z: log in to lg:443 again with `echo $TOKEN | loopctl login --with-token`"}},
		{"a refused stored login says to log in again",
			status.Error(codes.Unauthenticated, "revoked"),
			Conn{Server: "lg:443", Token: "t", TokenSource: "loopctl login (/h/hosts.json)", StoredLogin: true},
			[]string{"was refused (revoked, or expired early?): log in to lg:443 again"}},
		{"server text is made terminal-safe",
			status.Error(codes.NotFound, "no loop \x1b[2Jx"), conn,
			[]string{`not found: no loop \x1b[2Jx`}},
		{"permission denied keeps the server's message and reason",
			statusWith(t, codes.PermissionDenied, "growth-dev may not change team risk's loops",
				&errdetails.ErrorInfo{Reason: "TEAM_SCOPE"}), conn,
			[]string{"permission denied (TEAM_SCOPE): growth-dev may not change team risk's loops"}},
		{"invalid argument lists field violations",
			statusWith(t, codes.InvalidArgument, "2 problems",
				&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT"},
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
					{Field: "spec.owners", Description: "must not be empty"},
					{Field: "spec.streams[0].name", Description: "is required"},
				}}), conn,
			[]string{"invalid request (INVALID_ARGUMENT): 2 problems", "\n  spec.owners: must not be empty\n  spec.streams[0].name: is required\n"}},
		{"aborted says to retry",
			status.Error(codes.Aborted, "etag mismatch"), conn,
			[]string{"conflict: etag mismatch", "run the command again"}},
		{"plain errors are printed as they are",
			errors.New("reading loop file: open x.yaml: no such file or directory"), conn,
			[]string{"error: reading loop file: open x.yaml: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			PrintError(&buf, tc.err, tc.conn)
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestIsCodeSeesThroughWrapping(t *testing.T) {
	err := fmt.Errorf("getting loop: %w", status.Error(codes.NotFound, "no such loop"))
	if !isCode(err, codes.NotFound) {
		t.Error("isCode does not see a wrapped NotFound")
	}
	if isCode(err, codes.Internal) || isCode(errors.New("plain"), codes.NotFound) {
		t.Error("isCode matched the wrong code or a non-status error")
	}
}
