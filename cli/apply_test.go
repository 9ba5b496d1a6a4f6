package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// exampleLoop reads the repository's checkout-nudge example through the same
// path apply uses.
func exampleLoop(t *testing.T) *loopgatev1.Loop {
	t.Helper()
	loops, err := readLoopFile(nil, &bytes.Buffer{}, filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatalf("reading the example: %v", err)
	}
	if len(loops) != 1 {
		t.Fatalf("example has %d loops, want 1", len(loops))
	}
	return toProto(loops[0])
}

func TestToProtoCarriesCanonicalUnits(t *testing.T) {
	l := exampleLoop(t)
	if l.GetName() != "teams/growth/loops/checkout-nudge" {
		t.Errorf("name = %q", l.GetName())
	}
	s := l.GetSpec()
	checks := []struct {
		what      string
		got, want any
	}{
		{"labels", l.GetLabels()["domain"], "checkout"},
		{"retention 72h in ms", s.GetRetentionMs(), int64(72 * 3600 * 1000)},
		{"latencyP99 2s in ms", s.GetSlo().GetLatencyP99Ms(), int64(2000)},
		{"freshness 30s in ms", s.GetSlo().GetFreshnessMs(), int64(30000)},
		{"2MiB/s in bytes", s.GetThroughput().GetBytesPerSecond(), int64(2 << 20)},
		{"peak factor", s.GetThroughput().GetPeakFactor(), 3.0},
		{"record bytes", s.GetThroughput().GetRecordBytes(), int64(600)},
		{"classification", s.GetClassification(), "pii"},
		{"streams", len(s.GetStreams()), 2},
		{"events partitions", s.GetStreams()[0].GetPartitions(), int32(12)},
		{"events compatibility", s.GetStreams()[0].GetSchema().GetCompatibility(), "BACKWARD"},
		{"producer", s.GetProducers()[0].GetPrincipal() + " " + strings.Join(s.GetProducers()[0].GetStreams(), ","), "User:checkout-api events"},
		{"consumer group", s.GetConsumers()[0].GetGroup(), "nudge-engine"},
		{"action", s.GetAction().GetStream(), "actions"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(s.GetStreams()[0].GetSchema().GetDefinition(), `"name":"CheckoutEvent"`) {
		t.Errorf("schema definition not kept as written: %q", s.GetStreams()[0].GetSchema().GetDefinition())
	}
	if l.GetStatus() != nil || l.GetEtag() != "" {
		t.Error("toProto set output-only fields")
	}
}

func TestDecideApplyCreatesWhenTheLoopDoesNotExist(t *testing.T) {
	desired := exampleLoop(t)
	step, err := decideApply(desired, nil, status.Error(codes.NotFound, "no such loop"), "req-1", false)
	if err != nil {
		t.Fatalf("decideApply: %v", err)
	}
	if step.update != nil || step.create == nil {
		t.Fatalf("step = %+v, want a create", step)
	}
	c := step.create
	if c.GetParent() != "teams/growth" || c.GetLoopId() != "checkout-nudge" || c.GetRequestId() != "req-1" || c.GetValidateOnly() {
		t.Errorf("create request = parent %q id %q request %q validateOnly %v", c.GetParent(), c.GetLoopId(), c.GetRequestId(), c.GetValidateOnly())
	}
	if !proto.Equal(c.GetLoop(), desired) {
		t.Error("create request does not carry the desired loop")
	}
}

func TestDecideApplyUpdatesSpecAndLabelsGuardedByTheEtag(t *testing.T) {
	desired := exampleLoop(t)
	existing := proto.Clone(desired).(*loopgatev1.Loop)
	existing.Etag = "etag-7"
	existing.Generation = 3
	existing.Status = &loopgatev1.LoopStatus{State: loopgatev1.Loop_READY}

	step, err := decideApply(desired, existing, nil, "req-2", true)
	if err != nil {
		t.Fatalf("decideApply: %v", err)
	}
	if step.create != nil || step.update == nil {
		t.Fatalf("step = %+v, want an update", step)
	}
	u := step.update
	if u.GetLoop().GetEtag() != "etag-7" {
		t.Errorf("update etag = %q, want the one just read", u.GetLoop().GetEtag())
	}
	if got := strings.Join(u.GetUpdateMask().GetPaths(), ","); got != "labels,spec" {
		t.Errorf("update mask = %q, want labels,spec", got)
	}
	if !proto.Equal(u.GetLoop().GetSpec(), desired.GetSpec()) {
		t.Error("update does not send the file's spec unchanged (a re-apply must be a no-op)")
	}
	if !u.GetValidateOnly() || u.GetRequestId() != "req-2" {
		t.Errorf("validateOnly %v request %q", u.GetValidateOnly(), u.GetRequestId())
	}
	if desired.GetEtag() != "" {
		t.Error("decideApply modified the desired loop")
	}
}

func TestDecideApplyRefusesALoopBeingDeleted(t *testing.T) {
	desired := exampleLoop(t)
	existing := &loopgatev1.Loop{Name: desired.GetName(), Status: &loopgatev1.LoopStatus{State: loopgatev1.Loop_DELETING}}
	_, err := decideApply(desired, existing, nil, "r", false)
	if err == nil || !strings.Contains(err.Error(), "is being deleted") {
		t.Errorf("err = %v, want a being-deleted error", err)
	}
}

func TestDecideApplyPassesOtherErrorsThrough(t *testing.T) {
	getErr := status.Error(codes.PermissionDenied, "not your team")
	_, err := decideApply(exampleLoop(t), nil, getErr, "r", false)
	if !errors.Is(err, getErr) && !isCode(err, codes.PermissionDenied) {
		t.Errorf("err = %v, want the GetLoop error", err)
	}
}

func TestUpdateOutcome(t *testing.T) {
	before := &loopgatev1.Loop{Generation: 4, Labels: map[string]string{"domain": "checkout"}}
	same := &loopgatev1.Loop{Generation: 4, Labels: map[string]string{"domain": "checkout"}}
	newSpec := &loopgatev1.Loop{Generation: 5, Labels: map[string]string{"domain": "checkout"}}
	newLabels := &loopgatev1.Loop{Generation: 4, Labels: map[string]string{"domain": "cart"}}
	for _, tc := range []struct {
		after *loopgatev1.Loop
		want  string
	}{{same, "unchanged"}, {newSpec, "updated"}, {newLabels, "updated"}} {
		if got := updateOutcome(before, tc.after); got != tc.want {
			t.Errorf("updateOutcome(gen %d labels %v) = %q, want %q", tc.after.GetGeneration(), tc.after.GetLabels(), got, tc.want)
		}
	}
}

func TestReadLoopFilePrintsEveryProblemWithFileDocumentAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loops.yaml")
	good, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Document 2 has an unknown field; the first document is valid.
	bad := strings.Replace(string(good), "  residency: eu", "  residency: eu\n  residence: us", 1)
	bad = strings.Replace(bad, "name: checkout-nudge", "name: checkout-nudge-two", 1)
	if err := os.WriteFile(path, []byte(string(good)+"\n---\n"+bad), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	loops, err := readLoopFile(nil, &stderr, path)
	if loops != nil {
		t.Error("readLoopFile returned loops despite problems")
	}
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("err = %v, want an ExitError with code 1", err)
	}
	out := stderr.String()
	if !strings.Contains(out, "nothing was sent") {
		t.Errorf("output does not say nothing was sent:\n%s", out)
	}
	if !strings.Contains(out, path+":document 2:line ") || !strings.Contains(out, "spec.residence") {
		t.Errorf("output does not locate the unknown field as FILE:document 2:line N:\n%s", out)
	}
}

func TestNewRequestIDIsARandomUUID(t *testing.T) {
	a, b := newRequestID(), newRequestID()
	if a == b {
		t.Error("two request ids are equal")
	}
	if len(a) != 36 || a[14] != '4' || strings.Count(a, "-") != 4 {
		t.Errorf("request id %q is not a UUIDv4", a)
	}
}
