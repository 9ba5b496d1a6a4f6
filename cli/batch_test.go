package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/admission"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// lowerBatchLimits sets the batch bounds for one test.
func lowerBatchLimits(t *testing.T, items, bytes int) {
	t.Helper()
	oldItems, oldBytes := batchMaxItems, batchMaxBytes
	batchMaxItems, batchMaxBytes = items, bytes
	t.Cleanup(func() { batchMaxItems, batchMaxBytes = oldItems, oldBytes })
}

// batchCreates answers BatchApplyLoops by creating every loop (PROVISIONING),
// except those fail names, which fail with their status.
func batchCreates(f *fakeServer, fail map[string]error) {
	f.batchApply = func(req *loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error) {
		resp := &loopgatev1.BatchApplyLoopsResponse{}
		for _, l := range req.GetLoops() {
			r := &loopgatev1.BatchApplyLoopResult{Name: l.GetName()}
			if err, ok := fail[shortName(l.GetName())]; ok {
				r.Error = status.Convert(err).Proto()
			} else {
				created := proto.Clone(l).(*loopgatev1.Loop)
				created.Generation = 1
				created.Status = &loopgatev1.LoopStatus{State: loopgatev1.Loop_PROVISIONING}
				r.Loop, r.Operation = created, loopgatev1.BatchApplyLoopResult_CREATED
			}
			resp.Results = append(resp.Results, r)
		}
		return resp, nil
	}
}

// batchSizes returns the number of loops of each BatchApplyLoops request.
func batchSizes(f *fakeServer) []int {
	var out []int
	for _, r := range sent[*loopgatev1.BatchApplyLoopsRequest](f) {
		out = append(out, len(r.GetLoops()))
	}
	return out
}

func TestBatchMaxItemsIsTheServers(t *testing.T) {
	if batchMaxItems != admission.MaxBatchItems {
		t.Errorf("loopctl sends batches of %d loops, the server takes %d", batchMaxItems, admission.MaxBatchItems)
	}
}

// apply sends the loops in batch requests of at most batchMaxItems loops
// and batchMaxBytes, in file order, and reports each loop as before.
func TestApplySendsBatchesInFileOrder(t *testing.T) {
	path := writeLoops(t, 7)
	one := batchItemSize(exampleLoop(t))
	for _, tc := range []struct {
		name         string
		items, bytes int
		want         []int
	}{
		{"by count", 3, 4 << 20, []int{3, 3, 1}},
		{"by size", 1000, 2*one + one/2, []int{2, 2, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lowerBatchLimits(t, tc.items, tc.bytes)
			f := &fakeServer{}
			batchCreates(f, nil)
			f.start(t)
			code, stdout, stderr := run(t, "apply", "-f", path)
			if code != 0 {
				t.Fatalf("apply: exit %d\n%s%s", code, stdout, stderr)
			}
			if got := batchSizes(f); !slices.Equal(got, tc.want) {
				t.Errorf("batches of %v loops, want %v", got, tc.want)
			}
			var want []string
			for i := range 7 {
				want = append(want, fmt.Sprintf("growth/loop-%02d", i))
			}
			if got := appliedNames(stdout); !slices.Equal(got, want) {
				t.Errorf("reported %v, want %v", got, want)
			}
			if n := len(sent[*loopgatev1.GetLoopRequest](f)) + len(sent[*loopgatev1.CreateLoopRequest](f)); n != 0 {
				t.Errorf("%d single RPCs besides the batches", n)
			}
			for _, r := range sent[*loopgatev1.BatchApplyLoopsRequest](f) {
				if r.GetAtomic() || r.GetValidateOnly() || r.GetRequestId() == "" {
					t.Errorf("batch request: atomic %v, validate_only %v, request id %q", r.GetAtomic(), r.GetValidateOnly(), r.GetRequestId())
				}
			}
		})
	}
}

// A loop named again in the files starts a new request, so that the later
// document is applied after the earlier one, as before batches.
func TestApplySplitsABatchWhereALoopRepeats(t *testing.T) {
	dir := loopTree(t, map[string]string{"a.yaml": loopYAML(t, "one") + "\n---\n" + loopYAML(t, "two"), "b.yaml": loopYAML(t, "one")})
	f := &fakeServer{}
	batchCreates(f, nil)
	f.start(t)
	if code, stdout, stderr := run(t, "apply", "-f", dir); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := batchSizes(f); !slices.Equal(got, []int{2, 1}) {
		t.Errorf("batches of %v loops, want [2 1]", got)
	}
}

// Each loop's error is reported as its single RPC's would be; the others go
// on and the exit code is 1.
func TestApplyReportsEachFailedLoop(t *testing.T) {
	denied, _ := status.New(codes.FailedPrecondition, "teams/growth/loops/loop-01: denied by policy").WithDetails(
		&errdetails.ErrorInfo{Reason: "POLICY_DENIED", Metadata: map[string]string{"resource": "teams/growth/loops/loop-01"}},
		&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "PII_RESIDENCY", Subject: "spec.residency", Description: "PII stays in eu"}}})
	f := &fakeServer{}
	batchCreates(f, map[string]error{"growth/loop-01": denied.Err()})
	f.start(t)
	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 3))
	if code != 1 || !slices.Equal(appliedNames(stdout), []string{"growth/loop-00", "growth/loop-02"}) {
		t.Errorf("apply with a denied loop: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "teams/growth/loops/loop-01 is denied by policy") || !strings.Contains(stderr, "PII_RESIDENCY") {
		t.Errorf("stderr does not report the denial:\n%s", stderr)
	}
}

// A request refused as a whole is reported once, naming what was not
// applied; one refused because a loop is not the caller's is sent again
// loop by loop, so that only that loop is refused, as before batches.
func TestApplyWhenAWholeBatchIsRefused(t *testing.T) {
	lowerBatchLimits(t, 2, 4<<20)
	f := &fakeServer{batchApply: func(req *loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error) {
		return nil, status.Error(codes.ResourceExhausted, "rate limited: growth-dev sent too many changes")
	}}
	f.start(t)
	code, stdout, stderr := run(t, "apply", "-f", writeLoops(t, 3))
	if code != 1 || strings.Count(stderr, "rate limited") != 2 || !strings.Contains(stderr, "none of its 2 loops (growth/loop-00 to growth/loop-01) was applied") {
		t.Errorf("batches refused as a whole: exit %d\n%s%s", code, stdout, stderr)
	}

	f = &fakeServer{batchApply: func(*loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error) {
		return nil, status.Error(codes.PermissionDenied, "loops[1] (teams/growth/loops/loop-01): may not")
	}}
	createEverything(f)
	f.createLoop = func(req *loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error) {
		if req.GetLoopId() == "loop-01" {
			return nil, status.Error(codes.PermissionDenied, "growth-dev may not create teams/growth/loops/loop-01")
		}
		return req.GetLoop(), nil
	}
	f.start(t)
	code, stdout, stderr = run(t, "apply", "-f", writeLoops(t, 3))
	if code != 1 || !slices.Equal(appliedNames(stdout), []string{"growth/loop-00", "growth/loop-02"}) || !strings.Contains(stderr, "permission denied") {
		t.Errorf("a batch refused for one loop: exit %d\n%s%s", code, stdout, stderr)
	}
}

// A server without batch requests gets one RPC per loop, as before.
func TestApplyAndPlanFallBackToSingleRPCs(t *testing.T) {
	f := &fakeServer{planLoop: func(*loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) {
		return &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_CREATE, Verdict: &loopgatev1.PolicyVerdict{Allowed: true}}, nil
	}}
	createEverything(f)
	f.start(t)
	path := writeLoops(t, 3)
	if code, stdout, stderr := run(t, "apply", "-f", path); code != 0 || len(appliedNames(stdout)) != 3 {
		t.Fatalf("apply: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, "plan", "-f", path); code != 0 || strings.Count(stdout, ": CREATE") != 3 {
		t.Fatalf("plan: exit %d\n%s%s", code, stdout, stderr)
	}
	if a, p := len(sent[*loopgatev1.BatchApplyLoopsRequest](f)), len(sent[*loopgatev1.BatchPlanLoopsRequest](f)); a != 1 || p != 1 {
		t.Errorf("%d batch applies and %d batch plans tried, want one each", a, p)
	}
	if c, p := len(sent[*loopgatev1.CreateLoopRequest](f)), len(sent[*loopgatev1.PlanLoopRequest](f)); c != 3 || p != 3 {
		t.Errorf("%d creates and %d plans, want 3 each", c, p)
	}
	code, _, stderr := run(t, "apply", "--atomic", "-f", path)
	if code != 1 || !strings.Contains(stderr, "no batch apply") {
		t.Errorf("apply --atomic on a server without batches: exit %d\n%s", code, stderr)
	}
}

// apply --atomic sends every loop in one request with atomic set; what one
// request cannot carry is refused before anything is sent.
func TestApplyAtomic(t *testing.T) {
	path := writeLoops(t, 3)
	f := &fakeServer{}
	batchCreates(f, nil)
	f.start(t)
	code, stdout, stderr := run(t, "apply", "--atomic", "-f", path)
	reqs := sent[*loopgatev1.BatchApplyLoopsRequest](f)
	if code != 0 || len(reqs) != 1 || !reqs[0].GetAtomic() || len(reqs[0].GetLoops()) != 3 || len(appliedNames(stdout)) != 3 {
		t.Fatalf("apply --atomic: exit %d, %d requests\n%s%s", code, len(reqs), stdout, stderr)
	}

	// The server's refusal names every failing loop; nothing was applied.
	refused, _ := status.New(codes.FailedPrecondition, "atomic batch refused, nothing was applied: 1 of 3 item(s) failed; loops[1] (teams/growth/loops/loop-01): denied by policy").WithDetails(
		&errdetails.ErrorInfo{Reason: "ATOMIC_BATCH_REFUSED"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "loops[1].spec.residency", Description: "PII_RESIDENCY: PII stays in eu", Reason: "PII_RESIDENCY"}}})
	f.batchApply = func(*loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error) {
		return nil, refused.Err()
	}
	code, stdout, stderr = run(t, "apply", "--atomic", "-f", path)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "loops[1] (teams/growth/loops/loop-01)") ||
		!strings.Contains(stderr, "loops[1].spec.residency") || !strings.Contains(stderr, "nothing was applied: --atomic applies every loop or none") {
		t.Errorf("apply --atomic refused: exit %d\n%s%s", code, stdout, stderr)
	}

	// Too many loops for one request, or a loop named twice: refused before
	// anything is sent.
	before := len(f.requests)
	lowerBatchLimits(t, 2, 4<<20)
	code, _, stderr = run(t, "apply", "--atomic", "-f", path)
	if code != 1 || !strings.Contains(stderr, "--atomic sends every loop in one request") || !strings.Contains(stderr, "nothing was sent") {
		t.Errorf("apply --atomic over the batch limit: exit %d\n%s", code, stderr)
	}
	lowerBatchLimits(t, 1000, 4<<20)
	dup := loopTree(t, map[string]string{"a.yaml": loopYAML(t, "one"), "b.yaml": loopYAML(t, "one")})
	code, _, stderr = run(t, "apply", "--atomic", "-f", dup)
	if code != 1 || !strings.Contains(stderr, "growth/one is loop 1 and loop 2") {
		t.Errorf("apply --atomic with a loop twice: exit %d\n%s", code, stderr)
	}
	if n := len(f.requests); n != before {
		t.Errorf("%d requests sent for refused --atomic applies", n-before)
	}
}

// apply --atomic --wait follows the loops as apply --wait does.
func TestApplyAtomicWait(t *testing.T) {
	f := &fakeServer{}
	batchCreates(f, nil)
	fl := newFleet(f, func(string, int) *loopgatev1.LoopStatus { return readyStatus })
	for i := range 2 {
		name := fmt.Sprintf("teams/growth/loops/loop-%02d", i)
		fl.loops[name] = &loopgatev1.Loop{Name: name, Generation: 1, Status: &loopgatev1.LoopStatus{State: loopgatev1.Loop_PROVISIONING}}
	}
	f.start(t)
	code, stdout, stderr := run(t, "apply", "--atomic", "--wait", "--timeout", "10s", "-f", writeLoops(t, 2))
	if code != 0 || strings.Count(stdout, "READY") < 2 {
		t.Errorf("apply --atomic --wait: exit %d\n%s%s", code, stdout, stderr)
	}
}

// plan and diff plan in batch requests and report in file order.
func TestPlanAndDiffSendBatches(t *testing.T) {
	lowerBatchLimits(t, 2, 4<<20)
	f := &fakeServer{
		batchPlan: func(req *loopgatev1.BatchPlanLoopsRequest) (*loopgatev1.BatchPlanLoopsResponse, error) {
			resp := &loopgatev1.BatchPlanLoopsResponse{}
			for _, l := range req.GetLoops() {
				r := &loopgatev1.BatchPlanLoopResult{Name: l.GetName()}
				if strings.HasSuffix(l.GetName(), "-03") {
					r.Error = status.New(codes.InvalidArgument, "invalid request: spec.owners: at least one").Proto()
				} else {
					r.Plan = &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_CREATE, Verdict: &loopgatev1.PolicyVerdict{Allowed: true}}
				}
				resp.Results = append(resp.Results, r)
			}
			return resp, nil
		},
		getLoop: func(*loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
			return nil, status.Error(codes.NotFound, "none")
		},
	}
	f.start(t)
	path := writeLoops(t, 5)
	for _, cmd := range []string{"plan", "diff"} {
		before := len(sent[*loopgatev1.BatchPlanLoopsRequest](f))
		code, stdout, stderr := run(t, cmd, "-f", path)
		if code != 1 || !strings.Contains(stderr, "spec.owners: at least one") {
			t.Errorf("%s with an invalid loop: exit %d\n%s%s", cmd, code, stdout, stderr)
		}
		var order []string
		for _, line := range strings.Split(stdout, "\n") {
			if name, _, ok := strings.Cut(line, ": CREATE"); ok {
				order = append(order, shortName(name))
			}
		}
		if !slices.Equal(order, []string{"growth/loop-00", "growth/loop-01", "growth/loop-02", "growth/loop-04"}) {
			t.Errorf("%s reported %v", cmd, order)
		}
		if n := len(sent[*loopgatev1.BatchPlanLoopsRequest](f)) - before; n != 3 {
			t.Errorf("%s sent %d batch plans for 5 loops in batches of 2", cmd, n)
		}
	}
	if n := len(sent[*loopgatev1.PlanLoopRequest](f)); n != 0 {
		t.Errorf("%d single plans besides the batches", n)
	}
}
