package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// GetTeam gives a team its catalog limits beside what its loops use: the
// partitions policy counts against the team's budget, the largest and the
// busiest loop, the monthly cost. Another team may not read it (refused and
// audited); an unknown team is not found; a malformed name is invalid.
func TestGetTeamShowsLimitsAndUsage(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	loops := lgv1.NewLoopServiceClient(r.conn)
	teams := lgv1.NewTeamServiceClient(r.conn)

	small, big := typicalLoop("team-small"), typicalLoop("team-big")
	small.Spec.Streams[0].Partitions = 6
	big.Spec.Throughput.BytesPerSecond = 8 << 20
	var wantPartitions, statusPartitions int64
	var wantCost float64
	for _, l := range []*lgv1.Loop{small, big} {
		plan, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: l})
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range plan.GetDerived().GetTopics() {
			wantPartitions += int64(tp.GetPartitions())
		}
		created, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: lastName(l.GetName()), Loop: l})
		if err != nil {
			t.Fatal(err)
		}
		wantCost += created.GetStatus().GetCost().GetMonthlyTotal()
		statusPartitions += int64(created.GetStatus().GetPartitions())
	}
	if statusPartitions != wantPartitions {
		t.Errorf("the loops' status.partitions add up to %d, want the derived topics' %d", statusPartitions, wantPartitions)
	}

	got, err := teams.GetTeam(asDemo(t, "growth"), &lgv1.GetTeamRequest{Name: "teams/growth"})
	if err != nil {
		t.Fatal(err)
	}
	lim, use := got.GetLimits(), got.GetUsage()
	if got.GetName() != "teams/growth" || len(got.GetAllowedRegions()) != 2 ||
		lim.GetMaxPartitionsPerLoop() != 64 || lim.GetMaxPartitions() != 256 || lim.GetMaxBytesPerSecond() != 50<<20 {
		t.Errorf("limits = %v, regions %v; want the embedded catalog's growth entry", lim, got.GetAllowedRegions())
	}
	if use.GetLoops() != 2 || use.GetPartitions() != wantPartitions || wantPartitions == 0 {
		t.Errorf("usage: %d loops, %d partitions; want 2 and %d", use.GetLoops(), use.GetPartitions(), wantPartitions)
	}
	if use.GetLargestLoop() != big.GetName() || use.GetHighestThroughputLoop() != big.GetName() || use.GetHighestBytesPerSecond() != 8<<20 {
		t.Errorf("largest %s (%d partitions), busiest %s (%d B/s); want %s for both",
			use.GetLargestLoop(), use.GetLargestLoopPartitions(), use.GetHighestThroughputLoop(), use.GetHighestBytesPerSecond(), big.GetName())
	}
	if mc := use.GetMonthlyCost(); len(mc) != 1 || mc[0].GetCurrency() != "USD" || math.Abs(mc[0].GetAmount()-wantCost) > 0.001 {
		t.Errorf("monthly cost = %v, want USD %.2f", mc, wantCost)
	}

	// Another team's member is refused, and the refusal is audited.
	_, err = teams.GetTeam(asDemo(t, "risk"), &lgv1.GetTeamRequest{Name: "teams/growth"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("risk reading teams/growth: %v, want PermissionDenied", err)
	}
	ev, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{
		Resource: "teams/growth", Action: "team.get", OrderBy: "seq desc", PageSize: 1})
	if err != nil || len(ev.GetEvents()) != 1 || ev.GetEvents()[0].GetOutcome() != "FORBIDDEN" {
		t.Errorf("the refusal is not audited: %v %v", ev.GetEvents(), err)
	}

	for _, tc := range []struct {
		name   string
		code   codes.Code
		reason string
	}{
		{"teams/nope", codes.NotFound, "TEAM_NOT_FOUND"},
		{"teams/growth/loops/team-big", codes.InvalidArgument, ""},
		{"teams/-", codes.InvalidArgument, ""},
	} {
		_, err := teams.GetTeam(r.ctx, &lgv1.GetTeamRequest{Name: tc.name})
		if status.Code(err) != tc.code || (tc.reason != "" && reasonOf(err) != tc.reason) {
			t.Errorf("GetTeam(%q) = %v (reason %s), want %v %s", tc.name, err, reasonOf(err), tc.code, tc.reason)
		}
	}

	// loopctl team, as the dev admin.
	code, out, errOut := runLoopctl(r, "team", "growth")
	for _, want := range []string{"Team:     teams/growth", "Regions:  eu, us", "Loops:    2",
		fmt.Sprintf("partitions, all loops      %-8d 256       %d%%", wantPartitions, wantPartitions*100/256), "growth/team-big", "throughput, busiest loop   8MiB/s   50MiB/s   16%"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("loopctl team growth (exit %d) lacks %q:\n%s%s", code, want, out, errOut)
		}
	}

	// REST, as the team's member.
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.http+"/v1/teams/growth", nil)
	req.Header.Set("Authorization", "Bearer "+demoToken(t, "growth"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var rest struct {
		Limits struct {
			MaxPartitions int `json:"maxPartitions"`
		} `json:"limits"`
		Usage struct {
			Loops int `json:"loops"`
		} `json:"usage"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rest) != nil || rest.Limits.MaxPartitions != 256 || rest.Usage.Loops != 2 {
		t.Errorf("GET /v1/teams/growth = %d %s", resp.StatusCode, body)
	}
}

// ListAuditEvents filters by team (parent) and time: a team member reads
// its own team's trail without naming each resource, never another team's;
// a resource outside the parent, or an end before the start, is invalid.
func TestAuditEventsByTeamAndTime(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	loops := lgv1.NewLoopServiceClient(r.conn)
	auditCl := lgv1.NewAuditServiceClient(r.conn)
	before := time.Now()
	if _, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "audited", Loop: typicalLoop("audited")}); err != nil {
		t.Fatal(err)
	}
	riskLoop := typicalLoop("risky")
	riskLoop.Name = "teams/risk/loops/risky"
	riskLoop.Spec.Producers = []*lgv1.Producer{{Principal: "User:risk-api", Streams: []string{"events", "actions"}}}
	riskLoop.Spec.Consumers = []*lgv1.Consumer{{Principal: "User:risk-engine", Group: "risk-engine", Streams: []string{"events"}}}
	if _, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/risk", LoopId: "risky", Loop: riskLoop}); err != nil {
		t.Fatal(err)
	}

	growth := asDemo(t, "growth")
	page, err := auditCl.ListAuditEvents(growth, &lgv1.ListAuditEventsRequest{Parent: "teams/growth", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	sawLoop := false
	for _, e := range page.GetEvents() {
		if res := e.GetResource(); res != "teams/growth" && !strings.HasPrefix(res, "teams/growth/") {
			t.Errorf("team growth's trail lists %s (%s)", res, e.GetAction())
		}
		sawLoop = sawLoop || e.GetResource() == "teams/growth/loops/audited" && e.GetAction() == "loop.create"
	}
	if !sawLoop {
		t.Errorf("team growth's trail misses the creation of its loop: %v", page.GetEvents())
	}

	// Time: nothing of the growth team before the test started; the
	// creation is in [before, now).
	if p, err := auditCl.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Parent: "teams/growth", EndTime: timestamppb.New(before)}); err != nil || len(p.GetEvents()) != 0 {
		t.Errorf("events before the start: %v %v", p.GetEvents(), err)
	}
	if p, err := auditCl.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Resource: "teams/growth/loops/audited", Action: "loop.create",
		StartTime: timestamppb.New(before), EndTime: timestamppb.New(time.Now().Add(time.Second))}); err != nil || len(p.GetEvents()) != 1 {
		t.Errorf("creation within [start, end): %v %v", p.GetEvents(), err)
	}

	// loopctl audit --team --since.
	code, out, errOut := runLoopctl(r, "audit", "--team", "growth", "--since", "1h", "--action", "loop.create")
	if code != 0 || !strings.Contains(out, "teams/growth/loops/audited") || strings.Contains(out, "teams/risk") {
		t.Errorf("loopctl audit --team growth (exit %d):\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runLoopctl(r, "audit", "--since", "yesterday"); code == 0 || !strings.Contains(errOut, "--since: \"yesterday\": want a time") {
		t.Errorf("loopctl audit --since yesterday: exit %d, %s", code, errOut)
	}

	for _, tc := range []struct {
		what string
		req  *lgv1.ListAuditEventsRequest
		code codes.Code
	}{
		{"another team's trail", &lgv1.ListAuditEventsRequest{Parent: "teams/risk"}, codes.PermissionDenied},
		{"another team's loop under its own parent", &lgv1.ListAuditEventsRequest{Parent: "teams/growth", Resource: "teams/risk/loops/risky"}, codes.InvalidArgument},
		{"a parent that is not a team", &lgv1.ListAuditEventsRequest{Parent: "teams/growth/loops/audited"}, codes.InvalidArgument},
		{"end before start", &lgv1.ListAuditEventsRequest{Parent: "teams/growth", StartTime: timestamppb.Now(), EndTime: timestamppb.New(before)}, codes.InvalidArgument},
	} {
		if _, err := auditCl.ListAuditEvents(growth, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.code)
		}
	}
}

// The loop's status names each principal's client quota, as provisioned.
func TestStatusCarriesQuotas(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	l := typicalLoop("quoted") // 2 MiB/s × peak 3
	created, err := lgv1.NewLoopServiceClient(r.conn).CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "quoted", Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{"User:checkout-api": {6 << 20, 0}, "User:nudge-engine": {6 << 20, 6 << 20}}
	for _, g := range created.GetStatus().GetPrincipals() {
		q := g.GetQuota()
		if w, ok := want[g.GetPrincipal()]; !ok || q.GetPrincipal() != g.GetPrincipal() || q.GetProducerByteRate() != w[0] || q.GetConsumerByteRate() != w[1] {
			t.Errorf("%s: quota %v, want producer %d consumer %d", g.GetPrincipal(), q, w[0], w[1])
		}
		delete(want, g.GetPrincipal())
	}
	if len(want) != 0 {
		t.Errorf("no grants for %v", want)
	}
}

func lastName(name string) string { return name[len(filepath.Dir(name))+1:] }

// The observer's credential, which loopgate sets itself on clusters where it
// manages credentials, is audited like any principal's (never the password).
func TestObserverCredentialIsAudited(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	auditCl := lgv1.NewAuditServiceClient(r.conn)
	var events []*lgv1.AuditEvent
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && len(events) < 2; time.Sleep(100 * time.Millisecond) {
		page, err := auditCl.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: "observer.credentials"})
		if err != nil {
			t.Fatal(err)
		}
		events = page.GetEvents()
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.GetResource()] = true
		if e.GetActor() != "loopgate/observer" || e.GetOutcome() != "OK" || e.GetDetails().GetFields()["mechanism"].GetStringValue() == "" {
			t.Errorf("observer credential event %v", e)
		}
	}
	for _, want := range []string{"clusters/eu-embedded/principals/loopgate-observer", "clusters/us-embedded/principals/loopgate-observer"} {
		if !seen[want] {
			t.Errorf("no observer.credentials event for %s; got %v", want, events)
		}
	}
}

// A restart does not re-evaluate every loop against the bundle they were
// judged by before it: the completed pass is on record
// (policy.reevaluated), so only the first start, which has none, runs one.
func TestRestartDoesNotReevaluateAgain(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dataDir := filepath.Join(t.TempDir(), "data")
	passes := func(r *running) int {
		t.Helper()
		page, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: "policy.reevaluated"})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.GetEvents())
	}
	r := runServer(t, config.Embedded(dataDir), slog.LevelWarn)
	if _, err := lgv1.NewLoopServiceClient(r.conn).CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "judged", Loop: typicalLoop("judged")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); passes(r) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if n := passes(r); n != 1 {
		t.Fatalf("first start: %d re-evaluation passes on record, want 1", n)
	}
	// A stored bundle activated: one more pass.
	activateCandidate(t, r, "restart-1")
	for deadline := time.Now().Add(20 * time.Second); passes(r) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
	}
	if n := passes(r); n != 2 {
		t.Fatalf("after an activation: %d passes on record, want 2", n)
	}
	r.Stop()
	r2 := runServer(t, config.Embedded(dataDir), slog.LevelWarn)
	time.Sleep(time.Second) // a pass would start at once
	if n := passes(r2); n != 2 {
		t.Errorf("after a restart with the stored bundle active: %d re-evaluation passes on record, want still 2", n)
	}
}

// ListLoops in LOOP_VIEW_BASIC leaves out what an overview does not show
// (schema definitions, connection info, cost items) and keeps the rest; an
// unknown view is a field error.
func TestListLoopsBasicView(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	loops := lgv1.NewLoopServiceClient(r.conn)
	if _, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "viewed", Loop: typicalLoop("viewed")}); err != nil {
		t.Fatal(err)
	}
	full, err := loops.ListLoops(r.ctx, &lgv1.ListLoopsRequest{Parent: "teams/growth"})
	if err != nil {
		t.Fatal(err)
	}
	basic, err := loops.ListLoops(r.ctx, &lgv1.ListLoopsRequest{Parent: "teams/growth", View: lgv1.LoopView_LOOP_VIEW_BASIC})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.GetLoops()) != 1 || len(basic.GetLoops()) != 1 {
		t.Fatalf("listed %d and %d loops, want 1", len(full.GetLoops()), len(basic.GetLoops()))
	}
	f, b := full.GetLoops()[0], basic.GetLoops()[0]
	if f.GetSpec().GetStreams()[0].GetSchema().GetDefinition() == "" || len(f.GetStatus().GetStreams()) == 0 || len(f.GetStatus().GetCost().GetItems()) == 0 {
		t.Fatalf("the full view lacks schemas, endpoints or cost items: %v", f)
	}
	for _, st := range b.GetSpec().GetStreams() {
		if st.GetSchema().GetDefinition() != "" {
			t.Errorf("basic view: stream %s has its schema definition", st.GetName())
		}
	}
	if len(b.GetStatus().GetStreams()) != 0 || len(b.GetStatus().GetPrincipals()) != 0 || len(b.GetStatus().GetCost().GetItems()) != 0 {
		t.Errorf("basic view has connection info or cost items: %v", b.GetStatus())
	}
	if b.GetName() != f.GetName() || b.GetStatus().GetState() != f.GetStatus().GetState() || b.GetEtag() != f.GetEtag() ||
		b.GetStatus().GetCost().GetMonthlyTotal() != f.GetStatus().GetCost().GetMonthlyTotal() || b.GetStatus().GetCost().GetCurrency() != "USD" ||
		len(b.GetSpec().GetOwners()) == 0 || len(b.GetStatus().GetConditions()) != len(f.GetStatus().GetConditions()) {
		t.Errorf("basic view lost what it keeps:\nbasic %v\nfull  %v", b, f)
	}
	_, err = loops.ListLoops(r.ctx, &lgv1.ListLoopsRequest{Parent: "teams/growth", View: lgv1.LoopView(7)})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || fieldViolations(st)["view"] == "" {
		t.Errorf("view 7: %v, want INVALID_ARGUMENT naming view", err)
	}
}
