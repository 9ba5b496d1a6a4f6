package app_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// asDemo returns a context authenticated as one of the embedded demo
// identities (admin, reviewer, growth, risk).
func asDemo(t *testing.T, name string) context.Context {
	t.Helper()
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil || creds == nil || creds.Tokens[name] == "" {
		t.Fatalf("demo token %q: %v", name, err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+creds.Tokens[name])
}

func reasonOf(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// denials returns the rule ids of a policy denial, with their fields.
func denials(err error) map[string]string {
	out := map[string]string{}
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				out[v.GetType()] = v.GetSubject() + ": " + v.GetDescription()
			}
		}
	}
	return out
}

func awaitReady(t *testing.T, ctx context.Context, cl lgv1.LoopServiceClient, name string) *lgv1.Loop {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
		if err == nil && l.GetStatus().GetState() == lgv1.Loop_READY {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not READY: %v %v", name, l.GetStatus(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scramClient connects as user/password and returns the error of one
// produce to topic (nil if it was written).
func produceAs(t *testing.T, bootstrap []string, user, password, topic string) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...),
		kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()),
		kgo.RequestRetries(1), kgo.RetryTimeout(2*time.Second), kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
}

// Principals and groups belong to the team whose loop first names them;
// another team's loop naming them is denied with the owner named and
// changes nothing; reserved identities can never be named.
func TestOwnershipAcrossTeams(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dataDir := filepath.Join(t.TempDir(), "data")
	r := runServer(t, config.Embedded(dataDir), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	principals := lgv1.NewPrincipalServiceClient(r.conn)
	growth, risk := asDemo(t, "growth"), asDemo(t, "risk")

	nudge := typicalLoop("checkout-nudge")
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "checkout-nudge", Loop: nudge}); err != nil {
		t.Fatal(err)
	}
	ready := awaitReady(t, growth, loops, nudge.Name)
	if n := len(ready.GetStatus().GetStreams()); n != 2 || ready.GetStatus().GetStreams()[0].GetTopic() != "growth.checkout-nudge.events" ||
		len(ready.GetStatus().GetStreams()[0].GetBootstrapServers()) == 0 || ready.GetStatus().GetStreams()[0].GetRegion() != "eu" {
		t.Errorf("status.streams = %v, want topics with cluster, region and bootstrap", ready.GetStatus().GetStreams())
	}
	list, err := principals.ListPrincipals(growth, &lgv1.ListPrincipalsRequest{Parent: "teams/growth"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.GetPrincipals() {
		names = append(names, p.GetKafkaPrincipal()+"@"+p.GetOrigin())
		if p.GetClaimedBy() != nudge.Name || len(p.GetLoops()) != 1 {
			t.Errorf("principal %v: want claimed by and used by %s", p, nudge.Name)
		}
	}
	if strings.Join(names, ",") != "User:checkout-api@loop,User:nudge-engine@loop" {
		t.Errorf("growth's principals = %v", names)
	}

	// Team risk names growth's principal and group: denied, naming growth.
	steal := typicalLoop("steal")
	steal.Name = "teams/risk/loops/steal"
	steal.Spec.Classification = "internal"
	steal.Spec.Consumers[0].Principal = "User:risk-reader"
	steal.Spec.Consumers[0].Group = "nudge-engine" // growth's group
	_, err = loops.CreateLoop(risk, &lgv1.CreateLoopRequest{Parent: "teams/risk", LoopId: "steal", Loop: steal})
	d := denials(err)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(d["PRINCIPAL_NOT_OWNED"], "belongs to team growth") ||
		!strings.Contains(d["GROUP_NOT_OWNED"], "belongs to team growth") {
		t.Fatalf("risk naming growth's principal and group: %v (violations %v)", err, d)
	}
	if !strings.HasPrefix(d["PRINCIPAL_NOT_OWNED"], "spec.producers[") || !strings.HasPrefix(d["GROUP_NOT_OWNED"], "spec.consumers[0].group") {
		t.Errorf("violations name the wrong fields: %v", d)
	}
	if _, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: steal.Name}); status.Code(err) != codes.NotFound {
		t.Errorf("a denied loop was persisted: %v", err)
	}
	if _, err := principals.GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/risk/principals/risk-reader"}); status.Code(err) != codes.NotFound {
		t.Errorf("a denied loop claimed its free principal: %v", err)
	}
	// Nor through :plan, which shows the same denial and changes nothing.
	plan, err := loops.PlanLoop(risk, &lgv1.PlanLoopRequest{Loop: steal})
	if err != nil || plan.GetVerdict().GetAllowed() {
		t.Errorf("plan of the stealing loop: %v, %v; want a denied verdict", plan.GetVerdict(), err)
	}

	// Reserved identities: loopgate's own admin principal, wildcards.
	for _, p := range []string{"User:loopgate", "User:ANONYMOUS"} {
		bad := proto.Clone(steal).(*lgv1.Loop)
		bad.Spec.Producers[0].Principal = p
		bad.Spec.Consumers[0].Group = ""
		_, err := loops.CreateLoop(risk, &lgv1.CreateLoopRequest{Parent: "teams/risk", LoopId: "steal", Loop: bad})
		if d := denials(err); !strings.Contains(d["PRINCIPAL_RESERVED"], "reserved") {
			t.Errorf("naming %s: %v (%v), want PRINCIPAL_RESERVED", p, err, d)
		}
	}
	if _, err := principals.CreatePrincipal(risk, &lgv1.CreatePrincipalRequest{Parent: "teams/risk", PrincipalId: "loopgate"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("creating the reserved principal loopgate: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := principals.CreatePrincipal(risk, &lgv1.CreatePrincipalRequest{Parent: "teams/risk", PrincipalId: "checkout-api"}); reasonOf(err) != "PRINCIPAL_NOT_OWNED" {
		t.Errorf("risk creating growth's principal: %v, want PRINCIPAL_NOT_OWNED", err)
	}

	// Team scope on every principal RPC.
	for name, call := range map[string]func() error{
		"get": func() error {
			_, err := principals.GetPrincipal(risk, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/checkout-api"})
			return err
		},
		"list": func() error {
			_, err := principals.ListPrincipals(risk, &lgv1.ListPrincipalsRequest{Parent: "teams/growth"})
			return err
		},
		"credentials": func() error {
			_, err := principals.IssuePrincipalCredentials(risk, &lgv1.IssuePrincipalCredentialsRequest{Name: "teams/growth/principals/checkout-api"})
			return err
		},
		"delete": func() error {
			_, err := principals.DeletePrincipal(risk, &lgv1.DeletePrincipalRequest{Name: "teams/growth/principals/checkout-api"})
			return err
		},
		"conflicts": func() error {
			_, err := principals.ListOwnershipConflicts(risk, &lgv1.ListOwnershipConflictsRequest{})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("risk %s on growth's principal: %v, want PERMISSION_DENIED", name, err)
		}
	}

	// A principal a loop names cannot be deleted.
	if _, err := principals.DeletePrincipal(growth, &lgv1.DeletePrincipalRequest{Name: "teams/growth/principals/checkout-api"}); reasonOf(err) != "PRINCIPAL_IN_USE" {
		t.Errorf("deleting a principal in use: %v, want PRINCIPAL_IN_USE", err)
	}
	cf, err := principals.ListOwnershipConflicts(r.ctx, &lgv1.ListOwnershipConflictsRequest{})
	if err != nil || len(cf.GetConflicts()) != 0 {
		t.Errorf("conflicts = %v, %v; want none", cf.GetConflicts(), err)
	}
}

// Credentials are issued once, work with an independent Kafka client on
// the topics the principal is granted, are refused elsewhere, stop working
// when rotated, and the secret is nowhere in the store or the audit trail.
func TestCredentialsIssueRotateAndNeverStored(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dataDir := filepath.Join(t.TempDir(), "data")
	r := runServer(t, config.Embedded(dataDir), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	principals := lgv1.NewPrincipalServiceClient(r.conn)
	audits := lgv1.NewAuditServiceClient(r.conn)
	growth := asDemo(t, "growth")

	nudge := typicalLoop("checkout-nudge")
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "checkout-nudge", Loop: nudge}); err != nil {
		t.Fatal(err)
	}
	awaitReady(t, growth, loops, nudge.Name)

	if _, err := principals.CreatePrincipal(growth, &lgv1.CreatePrincipalRequest{Parent: "teams/growth", PrincipalId: "idle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := principals.IssuePrincipalCredentials(growth, &lgv1.IssuePrincipalCredentialsRequest{Name: "teams/growth/principals/idle"}); reasonOf(err) != "NO_GRANTS" {
		t.Errorf("credentials of a principal without grants: %v, want NO_GRANTS", err)
	}

	name := "teams/growth/principals/checkout-api"
	first, err := principals.IssuePrincipalCredentials(growth, &lgv1.IssuePrincipalCredentialsRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if first.GetUsername() != "checkout-api" || len(first.GetPassword()) < 32 || len(first.GetEndpoints()) != 1 ||
		first.GetEndpoints()[0].GetCluster() != "eu-embedded" || first.GetEndpoints()[0].GetMechanism() != "SCRAM-SHA-512" {
		t.Fatalf("issued credentials = %v", first)
	}
	if _, err := principals.IssuePrincipalCredentials(growth, &lgv1.IssuePrincipalCredentialsRequest{Name: name}); reasonOf(err) != "CREDENTIALS_ALREADY_ISSUED" {
		t.Errorf("issuing twice: %v, want CREDENTIALS_ALREADY_ISSUED", err)
	}
	boot := first.GetEndpoints()[0].GetBootstrapServers()
	if err := produceAs(t, boot, "checkout-api", first.GetPassword(), "growth.checkout-nudge.events"); err != nil {
		t.Fatalf("producing with the issued credential to a granted topic: %v", err)
	}
	if err := produceAs(t, boot, "checkout-api", first.GetPassword(), "growth.checkout-nudge.actions"); err == nil {
		t.Errorf("checkout-api wrote the actions topic it has no grant on")
	}

	second, err := principals.IssuePrincipalCredentials(growth, &lgv1.IssuePrincipalCredentialsRequest{Name: name, Rotate: true})
	if err != nil {
		t.Fatal(err)
	}
	if second.GetPassword() == first.GetPassword() || second.GetPrincipal().GetCredential().GetRotations() != 1 ||
		second.GetPrincipal().GetCredential().GetRotatedBy() == "" {
		t.Errorf("rotation = %v", second.GetPrincipal().GetCredential())
	}
	if err := produceAs(t, boot, "checkout-api", first.GetPassword(), "growth.checkout-nudge.events"); err == nil {
		t.Errorf("the old password still authenticates after --rotate")
	}
	if err := produceAs(t, boot, "checkout-api", second.GetPassword(), "growth.checkout-nudge.events"); err != nil {
		t.Errorf("the rotated password: %v", err)
	}

	// Neither secret is in the audit trail or the store.
	events, err := audits.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.Marshal(events)
	var sawIssue bool
	for _, ev := range events.GetEvents() {
		sawIssue = sawIssue || ev.GetAction() == "principal.issueCredentials"
	}
	if !sawIssue {
		t.Errorf("no principal.issueCredentials audit event")
	}
	r.Stop()
	files, _ := filepath.Glob(filepath.Join(dataDir, "loopgate.db*"))
	if len(files) == 0 {
		t.Fatal("no store files found")
	}
	for _, secret := range []string{first.GetPassword(), second.GetPassword()} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("a password is in the audit trail")
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("a password is in the store file %s", f)
			}
		}
	}
}

// Deleting a principal that no loop names any more removes its credential
// from the cluster (its ACLs and quotas went with the loop) and the record.
func TestDeletePrincipalRemovesItsCredential(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	principals := lgv1.NewPrincipalServiceClient(r.conn)
	growth := asDemo(t, "growth")
	nudge := typicalLoop("short-lived")
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "short-lived", Loop: nudge}); err != nil {
		t.Fatal(err)
	}
	awaitReady(t, growth, loops, nudge.Name)
	cred, err := principals.IssuePrincipalCredentials(growth, &lgv1.IssuePrincipalCredentialsRequest{Name: "teams/growth/principals/checkout-api"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loops.DeleteLoop(growth, &lgv1.DeleteLoopRequest{Name: nudge.Name}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := loops.GetLoop(growth, &lgv1.GetLoopRequest{Name: nudge.Name}); status.Code(err) == codes.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop was not deleted")
		}
	}
	del, err := principals.DeletePrincipal(growth, &lgv1.DeletePrincipalRequest{Name: "teams/growth/principals/checkout-api", Etag: "stale"})
	if status.Code(err) != codes.Aborted {
		t.Errorf("delete with a stale etag: %v, %v; want ABORTED", del, err)
	}
	del, err = principals.DeletePrincipal(growth, &lgv1.DeletePrincipalRequest{Name: "teams/growth/principals/checkout-api"})
	if err != nil || len(del.GetClusters()) != 2 {
		t.Fatalf("delete: %v, %v; want removal from both clusters", del, err)
	}
	boot := cred.GetEndpoints()[0].GetBootstrapServers()
	if err := produceAs(t, boot, "checkout-api", cred.GetPassword(), "growth.short-lived.events"); err == nil || !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "SASL") {
		t.Errorf("the deleted principal's password: %v, want an authentication failure", err)
	}
	if _, err := principals.GetPrincipal(growth, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/checkout-api"}); status.Code(err) != codes.NotFound || reasonOf(err) != "PRINCIPAL_NOT_FOUND" {
		t.Errorf("get after delete: %v, want NOT_FOUND PRINCIPAL_NOT_FOUND", err)
	}
}
