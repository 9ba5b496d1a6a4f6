package app_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
	"github.com/loopgate/loopgate/server"
)

var updateAuthzDoc = flag.Bool("update-authz-doc", false, "rewrite docs/authorization.md from the authorization table")

// A role column of the authorization table: a demo identity of the embedded
// default and what it stands for. Every request targets team growth.
type authzRole struct {
	demo, title string
}

var authzRoles = []authzRole{
	{"growth", "member of the team"},
	{"growth-lead", "team admin of the team"},
	{"risk", "member of another team"},
	{"reviewer", "security reviewer"},
	{"auditor", "auditor"},
	{"admin", "platform admin"},
}

// authzRow is one RPC called by every role over gRPC and over REST.
type authzRow struct {
	rpc   string        // Service.Method
	note  string        // what the call targets, when it matters
	req   proto.Message // the gRPC request
	rest  string        // METHOD /path?query
	body  string        // REST body (JSON), "" for none
	allow []string      // demo identities that are allowed
}

const (
	fixtureLoop      = "teams/growth/loops/authz-fixture"
	fixturePrincipal = "teams/growth/principals/authz-user"
)

var (
	readersOfGrowth  = []string{"growth", "growth-lead", "reviewer", "auditor", "admin"}
	writersOfGrowth  = []string{"growth", "growth-lead", "admin"}
	approversOfGrowh = []string{"growth-lead", "reviewer", "admin"}
	everyone         = []string{"growth", "growth-lead", "risk", "reviewer", "auditor", "admin"}
)

// authzTable is the authorization contract: the test asserts it for every
// RPC, role and transport, and docs/authorization.md is generated from it.
// Allowed calls may still fail for other reasons (a validate_only request
// with an old etag, a principal that does not exist): the table is about
// authorization only.
func authzTable() []authzRow {
	fixture := typicalLoop("authz-fixture")
	loopJSON := func() string {
		raw, _ := json.Marshal(map[string]any{"name": fixtureLoop, "spec": map[string]any{"owners": []string{"a@example.com"}}})
		return string(raw)
	}()
	return []authzRow{
		{rpc: "LoopService.GetLoop", req: &lgv1.GetLoopRequest{Name: fixtureLoop},
			rest: "GET /v1/" + fixtureLoop, allow: readersOfGrowth},
		{rpc: "LoopService.ListLoops", req: &lgv1.ListLoopsRequest{Parent: "teams/growth"},
			rest: "GET /v1/teams/growth/loops", allow: readersOfGrowth},
		{rpc: "LoopService.ListLoops", note: "teams/- (every team the caller may see)", req: &lgv1.ListLoopsRequest{Parent: "teams/-"},
			rest: "GET /v1/teams/-/loops", allow: everyone},
		{rpc: "LoopService.CreateLoop", note: "validate_only", req: &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "authz-new", Loop: typicalLoop("authz-new"), ValidateOnly: true},
			rest: "POST /v1/teams/growth/loops?loopId=authz-new&validateOnly=true", body: loopJSON, allow: writersOfGrowth},
		{rpc: "LoopService.UpdateLoop", note: "validate_only", req: &lgv1.UpdateLoopRequest{Loop: fixture, ValidateOnly: true},
			rest: "PATCH /v1/" + fixtureLoop + "?validateOnly=true", body: loopJSON, allow: writersOfGrowth},
		{rpc: "LoopService.DeleteLoop", note: "validate_only", req: &lgv1.DeleteLoopRequest{Name: fixtureLoop, ValidateOnly: true},
			rest: "DELETE /v1/" + fixtureLoop + "?validateOnly=true", allow: writersOfGrowth},
		{rpc: "LoopService.PlanLoop", req: &lgv1.PlanLoopRequest{Loop: fixture},
			rest: "POST /v1/" + fixtureLoop + ":plan", body: `{"loop":` + loopJSON + `}`, allow: writersOfGrowth},
		{rpc: "LoopService.ApproveLoop", req: &lgv1.ApproveLoopRequest{Name: fixtureLoop, Etag: "stale"},
			rest: "POST /v1/" + fixtureLoop + ":approve", body: `{"etag":"stale"}`, allow: approversOfGrowh},
		{rpc: "LoopService.RejectLoop", req: &lgv1.RejectLoopRequest{Name: fixtureLoop, Etag: "stale", Comment: "no"},
			rest: "POST /v1/" + fixtureLoop + ":reject", body: `{"etag":"stale","comment":"no"}`, allow: approversOfGrowh},
		{rpc: "LoopService.ListApprovals", req: &lgv1.ListApprovalsRequest{Parent: "teams/growth"},
			rest: "GET /v1/teams/growth/approvals", allow: approversOfGrowh},
		{rpc: "LoopService.GetLoopContract", req: &lgv1.GetLoopContractRequest{Name: fixtureLoop, Principal: "nudge-engine"},
			rest: "GET /v1/" + fixtureLoop + "/contract?principal=nudge-engine", allow: readersOfGrowth},
		{rpc: "LoopService.BatchPlanLoops", note: "every item is authorized as PlanLoop", req: &lgv1.BatchPlanLoopsRequest{Loops: []*lgv1.Loop{fixture}},
			rest: "POST /v1/loops:batchPlan", body: `{"loops":[` + loopJSON + `]}`, allow: writersOfGrowth},
		{rpc: "LoopService.BatchApplyLoops", note: "validate_only; every item is authorized as CreateLoop and UpdateLoop", req: &lgv1.BatchApplyLoopsRequest{Loops: []*lgv1.Loop{fixture}, ValidateOnly: true},
			rest: "POST /v1/loops:batchApply", body: `{"loops":[` + loopJSON + `],"validateOnly":true}`, allow: writersOfGrowth},
		{rpc: "PrincipalService.GetPrincipal", req: &lgv1.GetPrincipalRequest{Name: fixturePrincipal},
			rest: "GET /v1/" + fixturePrincipal, allow: readersOfGrowth},
		{rpc: "PrincipalService.ListPrincipals", req: &lgv1.ListPrincipalsRequest{Parent: "teams/growth"},
			rest: "GET /v1/teams/growth/principals", allow: readersOfGrowth},
		{rpc: "PrincipalService.CreatePrincipal", note: "a principal that exists", req: &lgv1.CreatePrincipalRequest{Parent: "teams/growth", PrincipalId: "authz-user"},
			rest: "POST /v1/teams/growth/principals?principalId=authz-user", body: `{}`, allow: writersOfGrowth},
		{rpc: "PrincipalService.DeletePrincipal", note: "a principal that does not exist", req: &lgv1.DeletePrincipalRequest{Name: "teams/growth/principals/authz-none"},
			rest: "DELETE /v1/teams/growth/principals/authz-none", allow: writersOfGrowth},
		{rpc: "PrincipalService.IssuePrincipalCredentials", note: "a principal that does not exist", req: &lgv1.IssuePrincipalCredentialsRequest{Name: "teams/growth/principals/authz-none"},
			rest: "POST /v1/teams/growth/principals/authz-none:issueCredentials", body: `{}`, allow: writersOfGrowth},
		{rpc: "PrincipalService.ListConsumerGroups", req: &lgv1.ListConsumerGroupsRequest{Parent: "teams/growth"},
			rest: "GET /v1/teams/growth/groups", allow: readersOfGrowth},
		{rpc: "PrincipalService.ListOwnershipConflicts", req: &lgv1.ListOwnershipConflictsRequest{},
			rest: "GET /v1/ownershipConflicts", allow: []string{"auditor", "admin"}},
		{rpc: "AuditService.ListAuditEvents", note: "resource in the team", req: &lgv1.ListAuditEventsRequest{Resource: fixtureLoop, PageSize: 1},
			rest: "GET /v1/auditEvents?resource=" + fixtureLoop + "&pageSize=1", allow: readersOfGrowth},
		{rpc: "AuditService.ListAuditEvents", note: "the team's events", req: &lgv1.ListAuditEventsRequest{Parent: "teams/growth", PageSize: 1},
			rest: "GET /v1/auditEvents?parent=teams/growth&pageSize=1", allow: readersOfGrowth},
		{rpc: "AuditService.ListAuditEvents", note: "the whole trail", req: &lgv1.ListAuditEventsRequest{PageSize: 1},
			rest: "GET /v1/auditEvents?pageSize=1", allow: []string{"reviewer", "auditor", "admin"}},
		{rpc: "AuditService.VerifyAuditChain", req: &lgv1.VerifyAuditChainRequest{},
			rest: "POST /v1/auditEvents:verify", body: `{}`, allow: []string{"reviewer", "auditor", "admin"}},
		{rpc: "ClusterService.ListClusters", req: &lgv1.ListClustersRequest{},
			rest: "GET /v1/clusters", allow: everyone},
		{rpc: "TeamService.GetTeam", req: &lgv1.GetTeamRequest{Name: "teams/growth"},
			rest: "GET /v1/teams/growth", allow: readersOfGrowth},
		{rpc: "IdentityService.GetCaller", req: &lgv1.GetCallerRequest{},
			rest: "GET /v1/caller", allow: everyone},
	}
}

func fullMethod(rpc string) string {
	svc, m, _ := strings.Cut(rpc, ".")
	return "/loopgate.v1." + svc + "/" + m
}

// responseFor returns an empty response message of the RPC.
func responseFor(t *testing.T, rpc string) proto.Message {
	svc, m, _ := strings.Cut(rpc, ".")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("loopgate.v1." + svc))
	if err != nil {
		t.Fatal(err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(m))
	if md == nil {
		t.Fatalf("no method %s", rpc)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// TestAuthorizationTable calls every RPC as every role over gRPC and REST
// and checks the decision against authzTable; every refusal must be in the
// audit trail. It also checks that docs/authorization.md is the table's
// rendering (go test ./app -run TestAuthorizationTable -update-authz-doc).
func TestAuthorizationTable(t *testing.T) {
	table := authzTable()
	checkDoc(t, table)

	// Every RPC loopgate serves has a rule and a row.
	covered := map[string]bool{}
	for _, row := range table {
		covered[fullMethod(row.rpc)] = true
	}
	for _, svc := range []string{"LoopService", "PrincipalService", "AuditService", "ClusterService", "IdentityService", "TeamService"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("loopgate.v1." + svc))
		if err != nil {
			t.Fatal(err)
		}
		ms := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range ms.Len() {
			m := "/loopgate.v1." + svc + "/" + string(ms.Get(i).Name())
			if _, ok := server.MethodActions[m]; !ok {
				t.Errorf("%s has no authorization action (server.MethodActions)", m)
			}
			if !covered[m] {
				t.Errorf("%s has no row in the authorization table", m)
			}
		}
	}

	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	admin := r.ctx
	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.CreateLoop(admin, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "authz-fixture", Loop: typicalLoop("authz-fixture")}); err != nil {
		t.Fatal(err)
	}
	if _, err := lgv1.NewPrincipalServiceClient(r.conn).CreatePrincipal(admin, &lgv1.CreatePrincipalRequest{Parent: "teams/growth", PrincipalId: "authz-user"}); err != nil {
		t.Fatal(err)
	}
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil {
		t.Fatal(err)
	}

	subjects := map[string]string{}
	for _, role := range authzRoles {
		ctx := asDemo(t, role.demo)
		var who lgv1.Caller
		if err := r.conn.Invoke(ctx, lgv1.IdentityService_GetCaller_FullMethodName, &lgv1.GetCallerRequest{}, &who); err != nil {
			t.Fatal(err)
		}
		subjects[role.demo] = who.GetSubject()
		for _, row := range table {
			want := slices.Contains(row.allow, role.demo)
			name := row.rpc
			if row.note != "" {
				name += " (" + row.note + ")"
			}
			// gRPC
			err := r.conn.Invoke(ctx, fullMethod(row.rpc), row.req, responseFor(t, row.rpc))
			code := status.Code(err)
			if want && (code == codes.PermissionDenied || code == codes.Unauthenticated) {
				t.Errorf("gRPC %s as %s: want allowed, got %v", name, role.demo, err)
			}
			if !want {
				if code != codes.PermissionDenied {
					t.Errorf("gRPC %s as %s: want PERMISSION_DENIED, got %v", name, role.demo, err)
				} else if reason := reasonOf(err); reason != "TEAM_SCOPE" && reason != "ROLE_REQUIRED" {
					t.Errorf("gRPC %s as %s: reason %q", name, role.demo, reason)
				}
			}
			// REST
			method, target, _ := strings.Cut(row.rest, " ")
			var body io.Reader
			if row.body != "" {
				body = bytes.NewBufferString(row.body)
			}
			req, _ := http.NewRequest(method, "http://"+r.http+target, body)
			req.Header.Set("Authorization", "Bearer "+creds.Tokens[role.demo])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized) {
				t.Errorf("REST %s as %s: want allowed, got %d %s", row.rest, role.demo, resp.StatusCode, msg)
			}
			if !want && resp.StatusCode != http.StatusForbidden {
				t.Errorf("REST %s as %s: want 403, got %d %s", row.rest, role.demo, resp.StatusCode, msg)
			}
		}
	}

	// Every refusal is audited: each (actor, action) that was refused has
	// a FORBIDDEN event (identical refusals may be collapsed into one).
	audited := map[string]bool{}
	auditCl := lgv1.NewAuditServiceClient(r.conn)
	for token := ""; ; {
		page, err := auditCl.ListAuditEvents(admin, &lgv1.ListAuditEventsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.GetEvents() {
			if ev.GetOutcome() == "FORBIDDEN" {
				audited[ev.GetActor()+" "+ev.GetAction()] = true
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	for _, role := range authzRoles {
		for _, row := range table {
			if slices.Contains(row.allow, role.demo) {
				continue
			}
			key := subjects[role.demo] + " " + server.MethodActions[fullMethod(row.rpc)]
			if !audited[key] {
				t.Errorf("refusal of %s for %s is not in the audit trail", row.rpc, role.demo)
			}
		}
	}
}

// checkDoc compares docs/authorization.md with the table's rendering.
func checkDoc(t *testing.T, table []authzRow) {
	t.Helper()
	want := renderAuthzDoc(table)
	path := filepath.Join("..", "docs", "authorization.md")
	if *updateAuthzDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Errorf("docs/authorization.md is stale: regenerate it with\n\tgo test ./app -run TestAuthorizationTable -update-authz-doc")
	}
}

func renderAuthzDoc(table []authzRow) string {
	var b strings.Builder
	b.WriteString(authzDocIntro)
	b.WriteString("| RPC | REST |")
	for _, r := range authzRoles {
		fmt.Fprintf(&b, " %s |", r.title)
	}
	b.WriteString("\n|---|---|")
	for range authzRoles {
		b.WriteString(":---:|")
	}
	b.WriteString("\n")
	for _, row := range table {
		name := "`" + row.rpc + "`"
		if row.note != "" {
			name += " (" + row.note + ")"
		}
		method, target, _ := strings.Cut(row.rest, " ")
		target, _, _ = strings.Cut(target, "?")
		fmt.Fprintf(&b, "| %s | `%s %s` |", name, method, target)
		for _, r := range authzRoles {
			if slices.Contains(row.allow, r.demo) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Rules by action\n\nThe authorizer's rules (`admission.DefaultRules`): the action each RPC maps to and who holds it. *Team member* and *team admin* hold on their own teams only; the other grants hold on every team.\n\n| Action | Allowed | What |\n|---|---|---|\n")
	for _, rule := range admission.DefaultRules {
		grants := make([]string, len(rule.Allow))
		for i, g := range rule.Allow {
			grants[i] = string(g)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", rule.Action, strings.Join(grants, ", "), rule.Doc)
	}
	return b.String()
}

const authzDocIntro = `# Authorization

<!-- Generated by TestAuthorizationTable in app/authz_test.go from the table
the test asserts; do not edit. Regenerate with
go test ./app -run TestAuthorizationTable -update-authz-doc -->

Every RPC, over gRPC and REST alike, goes through one authorization point
before anything else runs: the server's interceptor authenticates the caller
and asks the authorizer ` + "`(identity, action, resource) → allow | deny(reason)`" + `.
The resource is read from the request's resource name (` + "`teams/{team}/...`" + `),
so the decision needs nothing but the request. A batch request
(` + "`BatchApplyLoops`, `BatchPlanLoops`" + `) names many loops, possibly of several
teams: every item is authorized with the action of its single RPC
(` + "`loop.create` and `loop.update`" + ` for an apply item, which may create or update
its loop; ` + "`loop.plan`" + `), and one refused item refuses the whole request,
naming the item (` + "`loops[i]`" + ` and its loop); nothing of it runs. A refusal answers
` + "`PERMISSION_DENIED`" + ` (HTTP 403) with reason ` + "`TEAM_SCOPE`" + ` or ` + "`ROLE_REQUIRED`" + `
and is recorded in the audit trail with actor, action, resource, method,
source and reason. Identical refusals (same source, actor, method and reason)
within 10 seconds are recorded as one event plus one event with the count of
repeats, so a flood cannot bloat the trail.

## Roles

| Role | Holds |
|---|---|
| team member (no role) | read and change its own teams' loops and principals |
| ` + "`team-admin`" + ` | a team member who also approves the approval reasons policy routes to the team |
| ` + "`security-reviewer`" + ` | reads every team's loops and the audit trail; approves what policy routes to security |
| ` + "`auditor`" + ` | reads everything, changes nothing |
| ` + "`admin`" + ` | platform admin: everything, on every team, and any approval reason |

A team is given by the identity (static token, OIDC claim or client
certificate mapping; see production.md, Identities). Which approval reasons a role may
approve is decided per reason by policy (` + "`role`" + ` and ` + "`approvals`" + ` of each
approval element): a caller allowed to call ` + "`ApproveLoop`" + ` below may still be
refused for a reason its role does not approve (` + "`APPROVER_ROLE_REQUIRED`" + `),
and nobody approves their own request (` + "`SELF_APPROVAL`" + `).

## Who may call what

Each row was called by a demo identity of each role against team growth's
resources, over gRPC and REST; ✓ means the authorizer allowed it (the call
may still fail for another reason, e.g. a validate-only request with a stale
etag), — means ` + "`PERMISSION_DENIED`" + `, audited.

`
