package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// batchLoop is typicalLoop named name, of team (growth unless a team is
// given in name as team/name), whose principals and group carry prefix so
// that admitting it claims names nothing else uses.
func batchLoop(name, prefix string) *lgv1.Loop {
	team, id, ok := strings.Cut(name, "/")
	if !ok {
		team, id = "growth", name
	}
	l := typicalLoop(id)
	l.Name = "teams/" + team + "/loops/" + id
	for _, p := range l.Spec.Producers {
		p.Principal = strings.Replace(p.Principal, "User:", "User:"+prefix, 1)
	}
	for _, c := range l.Spec.Consumers {
		c.Principal = strings.Replace(c.Principal, "User:", "User:"+prefix, 1)
		c.Group = prefix + c.Group
	}
	return l
}

// deniedLoop is a valid loop the default policy denies: PII resident in us.
func deniedLoop(name, prefix string) *lgv1.Loop {
	l := batchLoop(name, prefix)
	l.Spec.Residency = "us"
	return l
}

// fieldViolations returns the BadRequest field violations of a status:
// field -> description.
func fieldViolations(st *status.Status) map[string]string {
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

// auditEvents lists every audit event, oldest first.
func auditEvents(t *testing.T, r *running) []*lgv1.AuditEvent {
	t.Helper()
	cl := lgv1.NewAuditServiceClient(r.conn)
	var out []*lgv1.AuditEvent
	for token := ""; ; {
		page, err := cl.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.GetEvents()...)
		if token = page.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// loopNames lists the names of every loop.
func loopNames(t *testing.T, r *running) []string {
	t.Helper()
	resp, err := lgv1.NewLoopServiceClient(r.conn).ListLoops(r.ctx, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range resp.GetLoops() {
		out = append(out, l.GetName())
	}
	return out
}

// A batch apply admits every item on its own: valid items are created (or
// updated, or left unchanged), an invalid and a denied one fail with the
// details their single RPC would have, and a loop named twice fails on its
// later item.
func TestBatchApplyGivesPerItemResults(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")

	invalid := batchLoop("batch-invalid", "bi-")
	invalid.Spec.Owners = nil
	items := []*lgv1.Loop{batchLoop("batch-a", "ba-"), invalid, deniedLoop("batch-denied", "bd-"), batchLoop("batch-b", "bb-"), batchLoop("batch-a", "ba-")}
	resp, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.GetResults()
	if len(res) != len(items) {
		t.Fatalf("%d results for %d items", len(res), len(items))
	}
	for i, want := range []lgv1.BatchApplyLoopResult_Operation{lgv1.BatchApplyLoopResult_CREATED, 0, 0, lgv1.BatchApplyLoopResult_CREATED} {
		if res[i].GetName() != items[i].GetName() {
			t.Errorf("result %d names %s, want %s", i, res[i].GetName(), items[i].GetName())
		}
		if want != 0 && (res[i].GetOperation() != want || res[i].GetError() != nil || res[i].GetLoop().GetUid() == "") {
			t.Errorf("item %d: %v %v, want %v with the loop", i, res[i].GetOperation(), res[i].GetError(), want)
		}
	}
	// The invalid item: INVALID_ARGUMENT with its field, as CreateLoop.
	st := status.FromProto(res[1].GetError())
	if st.Code() != codes.InvalidArgument || reasonOf(st.Err()) != "INVALID_ARGUMENT" || fieldViolations(st)["spec.owners"] == "" || res[1].GetLoop() != nil {
		t.Errorf("invalid item: %v %v, want INVALID_ARGUMENT on spec.owners", st.Code(), fieldViolations(st))
	}
	_, single := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "batch-invalid", Loop: invalid, ValidateOnly: true})
	if !slices.Equal(mapsKeys(fieldViolations(status.Convert(single))), mapsKeys(fieldViolations(st))) {
		t.Errorf("the item's field violations %v differ from CreateLoop's %v", fieldViolations(st), fieldViolations(status.Convert(single)))
	}
	// The denied item: POLICY_DENIED with every violation.
	st = status.FromProto(res[2].GetError())
	if st.Code() != codes.FailedPrecondition || reasonOf(st.Err()) != "POLICY_DENIED" || len(denials(st.Err())) == 0 {
		t.Errorf("denied item: %v %s %v", st.Code(), reasonOf(st.Err()), denials(st.Err()))
	}
	// The loop named twice: the later item fails on its name.
	st = status.FromProto(res[4].GetError())
	if st.Code() != codes.InvalidArgument || !strings.Contains(fieldViolations(st)["name"], "loops[0]") {
		t.Errorf("duplicate item: %v %v, want INVALID_ARGUMENT on name naming loops[0]", st.Code(), fieldViolations(st))
	}
	got := loopNames(t, r)
	if !slices.Contains(got, items[0].GetName()) || !slices.Contains(got, items[3].GetName()) || len(got) != 2 {
		t.Errorf("loops after the batch: %v, want batch-a and batch-b", got)
	}

	// Again, with batch-b's labels changed: unchanged, updated.
	b := batchLoop("batch-b", "bb-")
	b.Labels = map[string]string{"domain": "checkout", "tier": "gold"}
	resp, err = loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: []*lgv1.Loop{batchLoop("batch-a", "ba-"), b}})
	if err != nil {
		t.Fatal(err)
	}
	if ops := []lgv1.BatchApplyLoopResult_Operation{resp.GetResults()[0].GetOperation(), resp.GetResults()[1].GetOperation()}; ops[0] != lgv1.BatchApplyLoopResult_UNCHANGED || ops[1] != lgv1.BatchApplyLoopResult_UPDATED {
		t.Errorf("re-apply: %v, want UNCHANGED, UPDATED", ops)
	}
	if resp.GetResults()[1].GetLoop().GetLabels()["tier"] != "gold" {
		t.Errorf("the update did not replace the labels: %v", resp.GetResults()[1].GetLoop().GetLabels())
	}

	// Each item is audited as its single RPC: created, denied, invalid.
	outcomes := map[string]string{}
	for _, ev := range auditEvents(t, r) {
		if strings.HasPrefix(ev.GetResource(), "teams/growth/loops/batch-") && ev.GetAction() == "loop.create" {
			outcomes[strings.TrimPrefix(ev.GetResource(), "teams/growth/loops/")] += ev.GetOutcome() + " "
		}
	}
	for name, want := range map[string]string{"batch-a": "OK ", "batch-b": "OK ", "batch-denied": "DENIED ", "batch-invalid": "INVALID "} {
		if !strings.Contains(outcomes[name], want) {
			t.Errorf("audit of %s: %q, want %q", name, outcomes[name], want)
		}
	}
}

// waitLoopReady waits until the loop name is READY.
func waitLoopReady(t *testing.T, cl lgv1.LoopServiceClient, ctx context.Context, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := cl.GetLoop(ctx, &lgv1.GetLoopRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetStatus().GetState() == lgv1.Loop_READY {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not READY: %v", name, got.GetStatus())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mapsKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// An atomic batch with one denied item persists nothing (no loop, no
// claim, no audit "created" event), audits the denial and the batch's
// refusal, and names the failing item with its fields; an atomic batch of
// valid items creates them all.
func TestBatchApplyAtomic(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	principals := lgv1.NewPrincipalServiceClient(r.conn)
	growth := asDemo(t, "growth")
	before := loopNames(t, r)
	eventsBefore := len(auditEvents(t, r))

	items := []*lgv1.Loop{batchLoop("atomic-a", "aa-"), deniedLoop("atomic-denied", "ad-"), batchLoop("atomic-b", "ab-")}
	_, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items, Atomic: true, RequestId: "atomic-1"})
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || reasonOf(err) != "ATOMIC_BATCH_REFUSED" {
		t.Fatalf("atomic batch with a denied item: %v, want FAILED_PRECONDITION ATOMIC_BATCH_REFUSED", err)
	}
	if !strings.Contains(st.Message(), "loops[1] (teams/growth/loops/atomic-denied)") || strings.Contains(st.Message(), "loops[0]") {
		t.Errorf("the refusal does not name the denied item (only): %s", st.Message())
	}
	if fv := fieldViolations(st); !strings.Contains(fv["loops[1].spec.residency"], "PII") {
		t.Errorf("no field violation on loops[1].spec.residency: %v", fv)
	}
	if got := loopNames(t, r); !slices.Equal(got, before) {
		t.Errorf("loops after a refused atomic batch: %v, want %v", got, before)
	}
	if _, err := principals.GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/aa-checkout-api"}); status.Code(err) != codes.NotFound {
		t.Errorf("a refused atomic batch claimed a principal: %v", err)
	}
	var created, denied, refused int
	for _, ev := range auditEvents(t, r)[eventsBefore:] {
		switch {
		case ev.GetAction() == "loop.create" && ev.GetOutcome() == "OK", strings.HasSuffix(ev.GetAction(), ".claim"):
			created++
		case ev.GetAction() == "loop.create" && ev.GetOutcome() == "DENIED" && ev.GetResource() == items[1].GetName():
			denied++
		case ev.GetAction() == "loop.batchApply" && ev.GetOutcome() == "DENIED" && strings.Contains(ev.GetDetails().String(), "loops[1]"):
			refused++
		}
	}
	if created != 0 || denied != 1 || refused != 1 {
		t.Errorf("audit after the refused batch: %d created or claimed, %d denied, %d batch refusals; want 0, 1, 1", created, denied, refused)
	}
	// Nothing bound the request id: the corrected batch may use it.
	items = []*lgv1.Loop{batchLoop("atomic-a", "aa-"), batchLoop("atomic-b", "ab-")}
	resp, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items, Atomic: true, RequestId: "atomic-1"})
	if err != nil {
		t.Fatalf("atomic batch of valid loops: %v", err)
	}
	for i, res := range resp.GetResults() {
		if res.GetOperation() != lgv1.BatchApplyLoopResult_CREATED || res.GetLoop().GetStatus().GetState() != lgv1.Loop_PROVISIONING {
			t.Errorf("item %d: %v %v", i, res.GetOperation(), res.GetLoop().GetStatus().GetState())
		}
	}
	if got := loopNames(t, r); len(got) != len(before)+2 {
		t.Errorf("loops after the atomic batch: %v", got)
	}
	if _, err := principals.GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/aa-checkout-api"}); err != nil {
		t.Errorf("the atomic batch did not claim its principal: %v", err)
	}
	// Applied again: unchanged, atomically too.
	resp, err = loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items, Atomic: true})
	if err != nil || resp.GetResults()[0].GetOperation() != lgv1.BatchApplyLoopResult_UNCHANGED || resp.GetResults()[1].GetOperation() != lgv1.BatchApplyLoopResult_UNCHANGED {
		t.Errorf("atomic re-apply: %v %v, want every item UNCHANGED", resp.GetResults(), err)
	}
}

// An atomic batch is decided as a whole: each team's partition budget
// counts every item before it, and a free name claimed by an item of one
// team cannot be claimed by an item of another.
func TestBatchApplyAtomicChecksTheBatchAsAWhole(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)

	// growth may use 256 partitions: enough loops to need more, each
	// within the budget on its own.
	plan, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: batchLoop("budget-0", "b0-")})
	if err != nil {
		t.Fatal(err)
	}
	per := int32(0)
	for _, tp := range plan.GetDerived().GetTopics() {
		per += tp.GetPartitions()
	}
	n := int(256/per) + 1
	var items []*lgv1.Loop
	for i := range n {
		items = append(items, batchLoop(fmt.Sprintf("budget-%d", i), fmt.Sprintf("b%d-", i)))
	}
	_, err = loops.BatchApplyLoops(r.ctx, &lgv1.BatchApplyLoopsRequest{Loops: items, Atomic: true})
	st := status.Convert(err)
	last := fmt.Sprintf("loops[%d]", n-1)
	if reasonOf(err) != "ATOMIC_BATCH_REFUSED" || !strings.Contains(fieldViolations(st)[last+".spec.streams"], "PARTITIONS_PER_TEAM_EXCEEDED") {
		t.Errorf("%d loops of %d partitions over a budget of 256: %v %v, want PARTITIONS_PER_TEAM_EXCEEDED on %s", n, per, err, fieldViolations(st), last)
	}
	if got := loopNames(t, r); len(got) != 0 {
		t.Errorf("loops after the refused batch: %v", got)
	}
	// Within the budget, the same loops are admitted together.
	if _, err := loops.BatchApplyLoops(r.ctx, &lgv1.BatchApplyLoopsRequest{Loops: items[:n-1], Atomic: true}); err != nil {
		t.Errorf("%d loops within the budget: %v", n-1, err)
	}

	// A platform admin applying two teams' loops that name one free
	// principal: the first item claims it, the second is refused.
	g := batchLoop("growth/shared-a", "shared-")
	k := batchLoop("risk/shared-b", "shared-")
	_, err = loops.BatchApplyLoops(r.ctx, &lgv1.BatchApplyLoopsRequest{Loops: []*lgv1.Loop{g, k}, Atomic: true})
	st = status.Convert(err)
	if fv := fieldViolations(st); !strings.Contains(fv["loops[1].spec.producers[0].principal"], admission.RulePrincipalNotOwned) || !strings.Contains(st.Message(), "loops[1] (teams/risk/loops/shared-b)") {
		t.Errorf("two teams claiming one name in an atomic batch: %v %v", err, fv)
	}
	if _, err := lgv1.NewPrincipalServiceClient(r.conn).GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/shared-checkout-api"}); status.Code(err) != codes.NotFound {
		t.Errorf("the refused batch claimed a principal: %v", err)
	}
}

// Every item of a batch is authorized before anything runs: a team member
// whose batch names another team's loop is refused as a whole, naming that
// item; the refusal is audited and nothing of the batch is persisted.
func TestBatchAuthorizesEveryItem(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")

	items := []*lgv1.Loop{batchLoop("mine", "m-"), batchLoop("risk/theirs", "t-"), batchLoop("mine-too", "m2-")}
	for _, atomic := range []bool{false, true} {
		_, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items, Atomic: atomic})
		st := status.Convert(err)
		if st.Code() != codes.PermissionDenied || reasonOf(err) != "TEAM_SCOPE" || !strings.Contains(st.Message(), "loops[1] (teams/risk/loops/theirs)") {
			t.Errorf("atomic=%v: %v, want PERMISSION_DENIED TEAM_SCOPE naming loops[1]", atomic, err)
		}
		var meta map[string]string
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				meta = ei.GetMetadata()
			}
		}
		if meta["item"] != "1" || meta["resource"] != "teams/risk/loops/theirs" {
			t.Errorf("atomic=%v: ErrorInfo metadata %v, want item 1 and its resource", atomic, meta)
		}
	}
	if _, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: items}); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "loops[1]") {
		t.Errorf("batch plan naming another team's loop: %v", err)
	}
	if got := loopNames(t, r); len(got) != 0 {
		t.Errorf("loops after refused batches: %v", got)
	}
	var forbidden []string
	for _, ev := range auditEvents(t, r) {
		if ev.GetOutcome() == "FORBIDDEN" && ev.GetResource() == "teams/risk/loops/theirs" {
			forbidden = append(forbidden, ev.GetAction())
		}
	}
	if !slices.Contains(forbidden, "loop.create") || !slices.Contains(forbidden, "loop.plan") {
		t.Errorf("refusals audited: %v, want loop.create and loop.plan on teams/risk/loops/theirs", forbidden)
	}
	// A platform admin may apply both teams' loops in one batch.
	resp, err := loops.BatchApplyLoops(r.ctx, &lgv1.BatchApplyLoopsRequest{Loops: items, ValidateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range resp.GetResults() {
		if res.GetError() != nil {
			t.Errorf("admin, item %d: %v", i, res.GetError())
		}
	}
}

// REST: POST /v1/loops:batchApply with a bearer token, the same results
// and errors as gRPC.
func TestBatchApplyREST(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	post := func(path string, req proto.Message) (int, []byte) {
		body, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		hr, _ := http.NewRequest(http.MethodPost, "http://"+r.http+path, bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+demoToken(t, "growth"))
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	code, body := post("/v1/loops:batchApply", &lgv1.BatchApplyLoopsRequest{
		Loops: []*lgv1.Loop{batchLoop("rest-a", "ra-"), deniedLoop("rest-denied", "rd-")}})
	if code != http.StatusOK {
		t.Fatalf("POST /v1/loops:batchApply: %d %s", code, body)
	}
	var resp lgv1.BatchApplyLoopsResponse
	if err := protojson.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	res := resp.GetResults()
	if len(res) != 2 || res[0].GetOperation() != lgv1.BatchApplyLoopResult_CREATED || res[1].GetError().GetCode() != int32(codes.FailedPrecondition) {
		t.Errorf("REST results: %s", body)
	}
	if !strings.Contains(string(body), `"operation":"CREATED"`) || !strings.Contains(string(body), "PII") {
		t.Errorf("REST body lacks the operation or the violations: %s", body)
	}
	code, body = post("/v1/loops:batchPlan", &lgv1.BatchPlanLoopsRequest{Loops: []*lgv1.Loop{batchLoop("rest-a", "ra-"), batchLoop("rest-new", "rn-")}})
	var plans lgv1.BatchPlanLoopsResponse
	if code != http.StatusOK || protojson.Unmarshal(body, &plans) != nil || len(plans.GetResults()) != 2 ||
		plans.GetResults()[0].GetPlan().GetOperation() == lgv1.PlanLoopResponse_CREATE || plans.GetResults()[1].GetPlan().GetOperation() != lgv1.PlanLoopResponse_CREATE {
		t.Errorf("POST /v1/loops:batchPlan: %d %.2000s", code, body)
	}
	// An atomic refusal over REST: the status with its field violations.
	code, body = post("/v1/loops:batchApply", &lgv1.BatchApplyLoopsRequest{Atomic: true,
		Loops: []*lgv1.Loop{batchLoop("rest-b", "rb-"), deniedLoop("rest-denied", "rd-")}})
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Reason          string `json:"reason"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	}
	_ = json.Unmarshal(body, &e)
	fields := ""
	for _, d := range e.Details {
		for _, v := range d.FieldViolations {
			fields += v.Field + " "
		}
	}
	if code != http.StatusBadRequest || !strings.Contains(fields, "loops[1].spec.residency") || !strings.Contains(e.Message, "loops[1]") {
		t.Errorf("REST atomic refusal: %d %s", code, body)
	}
}

// A batch's request id: a retry returns the same results; the id reused
// with another body or by another caller is refused (REQUEST_ID_REUSED)
// and changes nothing.
func TestBatchApplyRequestID(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")

	for _, atomic := range []bool{false, true} {
		prefix := fmt.Sprintf("rid-%v-", atomic)
		req := &lgv1.BatchApplyLoopsRequest{Atomic: atomic, RequestId: prefix + "id",
			Loops: []*lgv1.Loop{batchLoop(prefix+"a", prefix+"a-"), batchLoop(prefix+"b", prefix+"b-")}}
		first, err := loops.BatchApplyLoops(growth, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := loops.BatchApplyLoops(growth, req)
		if err != nil {
			t.Fatalf("atomic=%v retry: %v", atomic, err)
		}
		for i := range req.GetLoops() {
			a, b := first.GetResults()[i], again.GetResults()[i]
			if b.GetOperation() != lgv1.BatchApplyLoopResult_CREATED || b.GetLoop().GetUid() != a.GetLoop().GetUid() || b.GetLoop().GetGeneration() != 1 {
				t.Errorf("atomic=%v retry, item %d: %v uid %s generation %d; want CREATED uid %s generation 1",
					atomic, i, b.GetOperation(), b.GetLoop().GetUid(), b.GetLoop().GetGeneration(), a.GetLoop().GetUid())
			}
		}
		// Same id, another body: refused, nothing changes.
		other := proto.Clone(req).(*lgv1.BatchApplyLoopsRequest)
		other.Loops[1].Spec.Description = "something else"
		other.Loops = append(other.Loops, batchLoop(prefix+"c", prefix+"c-"))
		if _, err := loops.BatchApplyLoops(growth, other); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "REQUEST_ID_REUSED" {
			t.Errorf("atomic=%v, same id with another body: %v, want REQUEST_ID_REUSED", atomic, err)
		}
		if _, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/" + prefix + "c"}); status.Code(err) != codes.NotFound {
			t.Errorf("atomic=%v: the refused batch created a loop: %v", atomic, err)
		}
		if l, _ := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: req.GetLoops()[1].GetName()}); l.GetSpec().GetDescription() == "something else" {
			t.Errorf("atomic=%v: the refused batch changed a loop", atomic)
		}
		// Same id, another caller (a platform admin, who could apply it).
		if _, err := loops.BatchApplyLoops(r.ctx, req); reasonOf(err) != "REQUEST_ID_REUSED" {
			t.Errorf("atomic=%v, same id by another caller: %v, want REQUEST_ID_REUSED", atomic, err)
		}
		// A single RPC reusing the batch's id.
		if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: prefix + "d", Loop: batchLoop(prefix+"d", prefix+"d-"), RequestId: req.GetRequestId()}); reasonOf(err) != "REQUEST_ID_REUSED" {
			t.Errorf("atomic=%v, CreateLoop with the batch's id: %v, want REQUEST_ID_REUSED", atomic, err)
		}
	}
}

// A batch carries at most admission.MaxBatchItems items: more is refused
// with a field error on "loops" before any item is looked at, and audited.
func TestBatchItemCap(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	small := &lgv1.Loop{Name: "teams/growth/loops/x"}
	many := make([]*lgv1.Loop, admission.MaxBatchItems+1)
	for i := range many {
		many[i] = small
	}
	calls := map[string]func() error{
		"apply": func() error {
			_, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: many})
			return err
		},
		"plan": func() error {
			_, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: many})
			return err
		},
		"empty": func() error {
			_, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		fv := fieldViolations(status.Convert(err))
		if status.Code(err) != codes.InvalidArgument || fv["loops"] == "" {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT on loops", name, err, fv)
		}
		if name != "empty" && !strings.Contains(fv["loops"], fmt.Sprint(admission.MaxBatchItems)) {
			t.Errorf("%s: the error does not give the limit: %v", name, fv)
		}
	}
	invalid := 0
	for _, ev := range auditEvents(t, r) {
		if ev.GetOutcome() == "INVALID" && strings.HasPrefix(ev.GetResource(), "loops:batch") {
			invalid++
		}
	}
	if invalid == 0 {
		t.Error("the refused batches are not in the audit trail")
	}
}

// A batch apply is let in for one token and then charged for every other
// loop it created or updated: re-applying unchanged loops costs nothing
// more, changing many leaves a debt the next change waits for. A batch plan
// costs one token per 20 loops.
func TestBatchCostsWhatItChanges(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Limits = config.RateLimits{MutationsPerSecond: 0.01, MutationBurst: 5}
	r := runServer(t, cfg, 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	items := func(n int) []*lgv1.Loop {
		out := make([]*lgv1.Loop, n)
		for i := range out {
			out[i] = batchLoop(fmt.Sprintf("limited-%d", i), fmt.Sprintf("l%d-", i))
		}
		return out
	}
	apply := func(n int) error {
		_, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items(n)})
		return err
	}
	limited := func(err error) bool {
		return status.Code(err) == codes.ResourceExhausted && reasonOf(err) == "RATE_LIMITED"
	}

	// A dry run changes nothing and costs one token, however large.
	if _, err := loops.BatchApplyLoops(growth, &lgv1.BatchApplyLoopsRequest{Loops: items(8), ValidateOnly: true}); err != nil {
		t.Fatalf("validate-only batch of 8: %v", err)
	}
	// 40 loops planned cost 2 tokens: 2 left.
	if _, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: items(40)}); err != nil {
		t.Fatalf("plan of 40 loops: %v", err)
	}
	// Creating 3 loops: let in for 1, charged 2 more after: 0 left.
	if err := apply(3); err != nil {
		t.Fatalf("creating 3 loops with 2 tokens: %v", err)
	}
	if err := apply(3); !limited(err) {
		t.Errorf("a batch with no token left: %v, want RATE_LIMITED", err)
	}
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{Action: "loop.create"})
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, ev := range events.GetEvents() {
		if ev.GetOutcome() == "OK" {
			created++
		}
	}
	if created != 3 {
		t.Errorf("%d loops created, want 3", created)
	}

	// Another identity re-applies unchanged loops: one token each time,
	// whatever the number of loops.
	admin := asDemo(t, "admin")
	for i := range 5 {
		resp, err := loops.BatchApplyLoops(admin, &lgv1.BatchApplyLoopsRequest{Loops: items(3)})
		if err != nil {
			t.Fatalf("re-apply %d of 3 unchanged loops with %d tokens left: %v", i+1, 5-i, err)
		}
		for _, res := range resp.GetResults() {
			if res.GetOperation() != lgv1.BatchApplyLoopResult_UNCHANGED {
				t.Fatalf("re-apply: %s %v %v, want UNCHANGED", res.GetName(), res.GetOperation(), res.GetError())
			}
		}
	}
	if err := apply(1); !limited(err) {
		t.Errorf("growth after its debt: %v, want RATE_LIMITED", err)
	}
}

// A batch plan plans each item as PlanLoop: CREATE, NOOP, and an invalid
// item's own error.
func TestBatchPlanGivesPerItemResults(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	existing := batchLoop("plan-existing", "pe-")
	if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "plan-existing", Loop: existing}); err != nil {
		t.Fatal(err)
	}
	waitLoopReady(t, loops, growth, existing.GetName())
	invalid := batchLoop("plan-invalid", "pi-")
	invalid.Spec.Owners = nil
	items := []*lgv1.Loop{batchLoop("plan-new", "pn-"), existing, invalid, deniedLoop("plan-denied", "pd-")}
	resp, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: items})
	if err != nil {
		t.Fatal(err)
	}
	res := resp.GetResults()
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i := range 2 {
		single, err := loops.PlanLoop(growth, &lgv1.PlanLoopRequest{Loop: items[i]})
		if err != nil {
			t.Fatal(err)
		}
		got := res[i].GetPlan()
		if got.GetOperation() != single.GetOperation() || res[i].GetName() != items[i].GetName() ||
			len(got.GetChanges()) != len(single.GetChanges()) || got.GetCluster() != single.GetCluster() {
			t.Errorf("item %d: %v with %d changes on %s, want %v with %d on %s as PlanLoop plans it", i,
				got.GetOperation(), len(got.GetChanges()), got.GetCluster(), single.GetOperation(), len(single.GetChanges()), single.GetCluster())
		}
	}
	if res[0].GetPlan().GetOperation() != lgv1.PlanLoopResponse_CREATE || res[1].GetPlan().GetOperation() != lgv1.PlanLoopResponse_NOOP {
		t.Errorf("operations %v, %v: want CREATE for the new loop, NOOP for the provisioned one", res[0].GetPlan().GetOperation(), res[1].GetPlan().GetOperation())
	}
	if st := status.FromProto(res[2].GetError()); st.Code() != codes.InvalidArgument || fieldViolations(st)["spec.owners"] == "" {
		t.Errorf("invalid item: %v", res[2].GetError())
	}
	if p := res[3].GetPlan(); p.GetVerdict().GetAllowed() || len(p.GetVerdict().GetDeny()) == 0 {
		t.Errorf("denied item: %v, want a plan with the denial", p)
	}
}

// A batch plan reads each team's partition total once; each loop's verdict
// still counts what the team's other loops use, exactly as PlanLoop does
// for that loop alone (for a stored loop, without its own partitions).
func TestBatchPlanCountsTeamPartitionsAsPlanLoop(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	for i := range cfg.Teams {
		if cfg.Teams[i].Name == "growth" {
			cfg.Teams[i].MaxPartitions = 40
		}
	}
	r := runServer(t, cfg, 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	for _, id := range []string{"budget-a", "budget-b"} {
		if _, err := loops.CreateLoop(growth, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: id, Loop: batchLoop(id, id+"-")}); err != nil {
			t.Fatal(err)
		}
	}
	grown := batchLoop("budget-a", "budget-a-")
	grown.Spec.Streams[0].Partitions = 24
	items := []*lgv1.Loop{grown, batchLoop("budget-c", "budget-c-")}
	resp, err := loops.BatchPlanLoops(growth, &lgv1.BatchPlanLoopsRequest{Loops: items})
	if err != nil {
		t.Fatal(err)
	}
	denial := func(p *lgv1.PlanLoopResponse) string {
		for _, v := range p.GetVerdict().GetDeny() {
			if v.GetId() == "PARTITIONS_PER_TEAM_EXCEEDED" {
				return v.GetMsg()
			}
		}
		return ""
	}
	for i, item := range items {
		single, err := loops.PlanLoop(growth, &lgv1.PlanLoopRequest{Loop: item})
		if err != nil {
			t.Fatal(err)
		}
		want, got := denial(single), denial(resp.GetResults()[i].GetPlan())
		if want == "" || got != want {
			t.Errorf("%s: batch plan says %q, PlanLoop %q; want the same team budget denial", item.GetName(), got, want)
		}
	}
}
