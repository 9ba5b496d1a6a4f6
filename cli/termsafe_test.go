package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// hostile is text a loop author, a server or a file could send: a clear
// screen (ESC[2J), an OSC that retitles the terminal (ending in BEL), a
// carriage return that overwrites the line, a C1 CSI (U+009B) and a
// right-to-left override (U+202E).
const hostile = "x\x1b[2J\x1b]0;pwned\x07\r\u009b31m\u202ey"

// rawControls are what must never reach a terminal raw.
var rawControls = []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"}

// hostileServer answers every RPC loopctl makes with hostile text in
// every string a user sees, or with err when set.
type hostileServer struct {
	loopgatev1.UnimplementedLoopServiceServer
	loopgatev1.UnimplementedPrincipalServiceServer
	loopgatev1.UnimplementedIdentityServiceServer
	loopgatev1.UnimplementedAuditServiceServer
	loopgatev1.UnimplementedClusterServiceServer
	err error
}

func h(s string) string { return s + hostile }

func hostileVerdict() *loopgatev1.PolicyVerdict {
	v := func(id string) []*loopgatev1.Violation {
		return []*loopgatev1.Violation{{Id: h(id), Field: h("spec.f"), Msg: h("msg")}}
	}
	return &loopgatev1.PolicyVerdict{Allowed: true, DecisionId: h("dec"), BundleRevision: h("rev"),
		Deny: v("DENY"), Warn: v("WARN"), Approval: v("APPROVE")}
}

func hostileLoop() *loopgatev1.Loop {
	ts := timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	return &loopgatev1.Loop{
		Name: "teams/growth/loops/" + h("x"), Uid: h("uid"), Etag: h("etag"), Generation: 2,
		Labels:     map[string]string{h("key"): h("value")},
		CreateTime: ts, UpdateTime: ts,
		Spec: &loopgatev1.LoopSpec{
			Description: h("description"), Owners: []string{h("ana@example.com")},
			Classification: h("pii"), Residency: h("eu"), RetentionMs: 1000,
			Slo: &loopgatev1.Slo{LatencyP99Ms: 1000}, Throughput: &loopgatev1.Throughput{BytesPerSecond: 1, PeakFactor: 1},
			Streams: []*loopgatev1.Stream{{Name: h("events"), Schema: &loopgatev1.StreamSchema{Format: h("avro"),
				Compatibility: h("BACKWARD"), Definition: h("{}")}}},
			Producers: []*loopgatev1.Producer{{Principal: h("User:p"), Streams: []string{h("events")}}},
			Consumers: []*loopgatev1.Consumer{{Principal: h("User:c"), Group: h("g"), Streams: []string{h("events")}}},
			Action:    &loopgatev1.LoopAction{Stream: h("events")},
		},
		Status: &loopgatev1.LoopStatus{
			State: loopgatev1.Loop_READY, ObservedGeneration: 2, Cluster: h("eu-1"), DecisionId: h("dec"),
			NeedsApproval: true, RequestedBy: h("bob"), ApprovedBy: h("carol"),
			Conditions: []*loopgatev1.Condition{{Type: h("Provisioned"), Status: "False", Reason: h("Reason"), Message: h("message"),
				ObservedGeneration: 2, LastTransitionTime: ts}},
			Policy: hostileVerdict(),
			Streams: []*loopgatev1.StreamEndpoint{{Stream: h("events"), Topic: h("topic"), Cluster: h("eu-1"), Region: h("eu"),
				BootstrapServers: []string{h("k1:9092")}, External: true}},
			Principals: []*loopgatev1.PrincipalGrants{{Principal: h("User:p"), ProduceTopics: []string{h("t")},
				ConsumeTopics: []string{h("t")}, Groups: []string{h("g")}}},
			Approvals: []*loopgatev1.ApprovalProgress{{Id: h("REASON"), Msg: h("msg"), Field: h("f"), Role: h("role"), Required: 2,
				ApprovedBy: []string{h("ana")}}},
			Reviews: []*loopgatev1.Review{{Reviewer: h("ana"), Verdict: h("APPROVED"), Comment: h("comment"), Generation: 2,
				Reasons: []string{h("REASON")}, Time: ts}},
		},
	}
}

func hostilePrincipal() *loopgatev1.Principal {
	ts := timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	return &loopgatev1.Principal{Name: "teams/growth/principals/" + h("p"), KafkaPrincipal: h("User:p"), Team: h("growth"),
		Etag: h("etag"), CreateTime: ts, CreatedBy: h("ana"), Origin: h("loop"), ClaimedBy: h("teams/growth/loops/x"),
		Loops: []string{h("teams/growth/loops/x")},
		Credential: &loopgatev1.CredentialInfo{Mechanism: h("SCRAM"), Clusters: []string{h("eu-1")}, IssueTime: ts,
			IssuedBy: h("ana"), RotateTime: ts, RotatedBy: h("bob"), Rotations: 1}}
}

func (s *hostileServer) ListLoops(context.Context, *loopgatev1.ListLoopsRequest) (*loopgatev1.ListLoopsResponse, error) {
	return &loopgatev1.ListLoopsResponse{Loops: []*loopgatev1.Loop{hostileLoop()}}, s.err
}

func (s *hostileServer) GetLoop(context.Context, *loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) CreateLoop(context.Context, *loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) UpdateLoop(context.Context, *loopgatev1.UpdateLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) DeleteLoop(context.Context, *loopgatev1.DeleteLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) ApproveLoop(context.Context, *loopgatev1.ApproveLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) RejectLoop(context.Context, *loopgatev1.RejectLoopRequest) (*loopgatev1.Loop, error) {
	return hostileLoop(), s.err
}

func (s *hostileServer) ListApprovals(context.Context, *loopgatev1.ListApprovalsRequest) (*loopgatev1.ListApprovalsResponse, error) {
	return &loopgatev1.ListApprovalsResponse{Loops: []*loopgatev1.Loop{hostileLoop()}}, s.err
}

func (s *hostileServer) PlanLoop(context.Context, *loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) {
	return &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_UPDATE, Cluster: h("eu-1"), Verdict: hostileVerdict(),
		Changes: []*loopgatev1.PlannedChange{{Kind: h("CreateACL"), Resource: h("acl"), Current: h("absent"), Desired: h("present")}}}, s.err
}

func (s *hostileServer) GetLoopContract(context.Context, *loopgatev1.GetLoopContractRequest) (*loopgatev1.LoopContract, error) {
	set := []*loopgatev1.ClientSetting{{Key: h("acks"), Value: h("all"), Reason: h("reason")}}
	return &loopgatev1.LoopContract{Loop: "teams/growth/loops/" + h("x"), Principal: h("User:p"), Username: h("p"),
		Cluster: h("eu-1"), Region: h("eu"), BootstrapServers: []string{h("k1:9092")}, SecurityProtocol: h("SASL_SSL"),
		SaslMechanism: h("SCRAM-SHA-512"), ProduceTopics: []string{h("t")}, ConsumeTopics: []string{h("t")}, Group: h("g"),
		ProducerSettings: set, ConsumerSettings: set, Basis: h("basis")}, s.err
}

func (s *hostileServer) ListPrincipals(context.Context, *loopgatev1.ListPrincipalsRequest) (*loopgatev1.ListPrincipalsResponse, error) {
	return &loopgatev1.ListPrincipalsResponse{Principals: []*loopgatev1.Principal{hostilePrincipal()}}, s.err
}

func (s *hostileServer) GetPrincipal(context.Context, *loopgatev1.GetPrincipalRequest) (*loopgatev1.Principal, error) {
	return hostilePrincipal(), s.err
}

func (s *hostileServer) CreatePrincipal(context.Context, *loopgatev1.CreatePrincipalRequest) (*loopgatev1.Principal, error) {
	return hostilePrincipal(), s.err
}

func (s *hostileServer) DeletePrincipal(context.Context, *loopgatev1.DeletePrincipalRequest) (*loopgatev1.DeletePrincipalResponse, error) {
	return &loopgatev1.DeletePrincipalResponse{Principal: hostilePrincipal(), Clusters: []string{h("eu-1")}}, s.err
}

func (s *hostileServer) IssuePrincipalCredentials(context.Context, *loopgatev1.IssuePrincipalCredentialsRequest) (*loopgatev1.IssuePrincipalCredentialsResponse, error) {
	return &loopgatev1.IssuePrincipalCredentialsResponse{Principal: hostilePrincipal(), Username: h("p"), Password: h("pw"),
		Endpoints: []*loopgatev1.CredentialEndpoint{{Cluster: h("eu-1"), Region: h("eu"), Mechanism: h("SCRAM"),
			SecurityProtocol: h("SASL_SSL"), BootstrapServers: []string{h("k1:9092")}}},
		Skipped: []string{h("us-1")}}, s.err
}

func (s *hostileServer) ListConsumerGroups(context.Context, *loopgatev1.ListConsumerGroupsRequest) (*loopgatev1.ListConsumerGroupsResponse, error) {
	return &loopgatev1.ListConsumerGroupsResponse{Groups: []*loopgatev1.ConsumerGroup{{Name: h("teams/growth/groups/g"), GroupId: h("g"),
		Team: h("growth"), CreatedBy: h("ana"), Origin: h("loop"), ClaimedBy: h("teams/growth/loops/x")}}}, s.err
}

func (s *hostileServer) ListOwnershipConflicts(context.Context, *loopgatev1.ListOwnershipConflictsRequest) (*loopgatev1.ListOwnershipConflictsResponse, error) {
	return &loopgatev1.ListOwnershipConflictsResponse{Conflicts: []*loopgatev1.OwnershipConflict{{Kind: h("principal"), Id: h("p"),
		Owner: h("risk"), Loops: []string{h("teams/growth/loops/x")}}}}, s.err
}

func (s *hostileServer) GetCaller(context.Context, *loopgatev1.GetCallerRequest) (*loopgatev1.Caller, error) {
	return &loopgatev1.Caller{Subject: h("ana"), Teams: []string{h("growth")}, Roles: []string{h("admin")}, Method: h("token"),
		Issuer: h("issuer")}, s.err
}

func (s *hostileServer) ListAuditEvents(context.Context, *loopgatev1.ListAuditEventsRequest) (*loopgatev1.ListAuditEventsResponse, error) {
	details, _ := structpb.NewStruct(map[string]any{h("key"): h("details"), "problems": []any{map[string]any{"msg": h("problem")}}})
	return &loopgatev1.ListAuditEventsResponse{Events: []*loopgatev1.AuditEvent{{Seq: 1, Id: h("id"), Time: timestamppb.Now(),
		Actor: h("ana"), Action: h("loop.create"), Resource: h("teams/growth/loops/x"), RequestId: h("req"),
		DecisionId: h("dec"), Outcome: h("OK"), Details: details}}}, s.err
}

func (s *hostileServer) VerifyAuditChain(context.Context, *loopgatev1.VerifyAuditChainRequest) (*loopgatev1.VerifyAuditChainResponse, error) {
	return &loopgatev1.VerifyAuditChainResponse{Ok: false, EventsChecked: 3,
		FirstBroken: &loopgatev1.BrokenLink{Seq: 2, Id: h("id"), Reason: h("reason")}}, s.err
}

func (s *hostileServer) ListClusters(context.Context, *loopgatev1.ListClustersRequest) (*loopgatev1.ListClustersResponse, error) {
	return &loopgatev1.ListClustersResponse{Clusters: []*loopgatev1.Cluster{{Name: h("eu-1"), Region: h("eu"),
		BootstrapServers: []string{h("k1:9092")}, ReplicationFactor: 3}}}, s.err
}

// start serves s on a loopback port and points loopctl at it, as
// fakeServer.start does.
func (s *hostileServer) start(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	g := grpc.NewServer()
	loopgatev1.RegisterLoopServiceServer(g, s)
	loopgatev1.RegisterPrincipalServiceServer(g, s)
	loopgatev1.RegisterIdentityServiceServer(g, s)
	loopgatev1.RegisterAuditServiceServer(g, s)
	loopgatev1.RegisterClusterServiceServer(g, s)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := devcreds.Write(filepath.Join(home, ".loopgate", "dev-credentials.json"), devcreds.Credentials{
		Server: lis.Addr().String(), Token: "admin-token"}); err != nil {
		t.Fatal(err)
	}
}

// hostileFile writes a valid loop file whose description is hostile, and
// one whose unknown field is.
func hostileFiles(t *testing.T) (valid, invalid string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// YAML double-quoted escapes: \e ESC, \a BEL, \r, \u009b, \u202e.
	const yamlHostile = `"x\e[2J\e]0;pwned\a\r\u009b31m\u202ey"`
	lines := strings.Split(string(src), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  description:") {
			lines[i] = "  description: " + yamlHostile
		}
	}
	desc := strings.Join(lines, "\n")
	if !strings.Contains(desc, yamlHostile) {
		t.Fatal("no description line in the example")
	}
	dir := t.TempDir()
	valid, invalid = filepath.Join(dir, "valid.yaml"), filepath.Join(dir, "invalid.yaml")
	bad := strings.Replace(desc, "  owners:", "  "+yamlHostile+": 1\n  owners:", 1)
	bad = strings.Replace(bad, "retention: 72h", "retention: "+yamlHostile, 1)
	for p, body := range map[string]string{valid: desc, invalid: bad} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return valid, invalid
}

// Every command prints what the server or a file says through termSafe:
// no escape sequence, BEL, carriage return, C1 control or bidi override
// reaches the terminal raw, in table output (and in -o json and -o yaml).
func TestEveryCommandEscapesHostileText(t *testing.T) {
	srv := &hostileServer{}
	srv.start(t)
	valid, invalid := hostileFiles(t)
	commands := [][]string{
		{"get"},
		{"get", "growth/x"},
		{"get", "growth/x", "-o", "json"},
		{"get", "growth/x", "-o", "yaml"},
		{"plan", "-f", valid},
		{"apply", "-f", valid, "--wait", "--timeout", "2s"},
		{"apply", "-f", invalid},
		{"plan", "-f", invalid},
		{"delete", "growth/x", "--wait", "--timeout", "150ms"},
		{"approve", "growth/x"},
		{"reject", "growth/x", "--comment", "no"},
		{"approvals"},
		{"audit"},
		{"audit", "-o", "json"},
		{"audit", "-o", "yaml"},
		{"audit", "verify"},
		{"clusters"},
		{"principals"},
		{"principals", "--conflicts"},
		{"groups"},
		{"principal", "get", "growth/p"},
		{"principal", "create", "growth/p"},
		{"principal", "delete", "growth/p"},
		{"principal", "credentials", "growth/p"},
		{"contract", "growth/x", "--principal", "p"},
		{"contract", "growth/x", "--principal", "p", "--client", "java"},
		{"contract", "growth/x", "--principal", "p", "--client", "librdkafka"},
		{"whoami"},
	}
	for _, args := range commands {
		_, stdout, stderr := run(t, args...)
		checkEscaped(t, strings.Join(args, " "), stdout+stderr)
	}

	// The server's errors, with every kind of detail, and a wait error.
	st, _ := status.New(codes.FailedPrecondition, h("denied")).WithDetails(
		&errdetails.ErrorInfo{Reason: "POLICY_DENIED", Metadata: map[string]string{"resource": h("res"), "decision_id": h("dec"), "bundle_revision": h("rev")}},
		&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: h("RULE"), Subject: h("spec.f"), Description: h("desc")}}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: h("spec.g"), Description: h("RULE: bad")}}},
	)
	st2, _ := status.New(codes.InvalidArgument, h("invalid")).WithDetails(
		&errdetails.ErrorInfo{Reason: h("REASON")},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: h("spec.g"), Description: h("bad")}}},
	)
	for _, err := range []error{st.Err(), st2.Err(), status.Error(codes.NotFound, h("gone")), status.Error(codes.Internal, h("boom"))} {
		srv.err = err
		for _, args := range [][]string{{"get", "growth/x"}, {"apply", "-f", valid}, {"plan", "-f", valid}, {"audit"}} {
			_, stdout, stderr := run(t, args...)
			checkEscaped(t, strings.Join(args, " ")+" ("+status.Code(err).String()+")", stdout+stderr)
		}
	}
}

func checkEscaped(t *testing.T, cmd, out string) {
	t.Helper()
	for _, c := range rawControls {
		if strings.Contains(out, c) {
			i := strings.Index(out, c)
			t.Errorf("loopctl %s printed %q raw: …%q…", cmd, c, out[max(0, i-80):min(len(out), i+40)])
			return
		}
	}
	// The hostile text did reach the output, escaped: the check is not
	// vacuous.
	if !strings.Contains(out, `\x1b[2J`) && !strings.Contains(out, `\u001b[2J`) && !strings.Contains(out, `\e[2J`) {
		t.Errorf("loopctl %s: the hostile text does not appear escaped in:\n%s", cmd, out)
	}
}
