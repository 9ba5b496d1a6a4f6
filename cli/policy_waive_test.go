package cli

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// fakeWaivers is a WaiverService with canned answers that records requests.
type fakeWaivers struct {
	loopgatev1.UnimplementedWaiverServiceServer

	mu       sync.Mutex
	creates  []*loopgatev1.CreateWaiverRequest
	lists    []*loopgatev1.ListWaiversRequest
	revokes  []*loopgatev1.RevokeWaiverRequest
	listPage []*loopgatev1.ListWaiversResponse
}

func (f *fakeWaivers) CreateWaiver(_ context.Context, req *loopgatev1.CreateWaiverRequest) (*loopgatev1.Waiver, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, req)
	w := &loopgatev1.Waiver{Name: req.GetParent() + "/waivers/wv-1", Rule: req.GetWaiver().GetRule(), Until: req.GetWaiver().GetUntil(),
		Reason: req.GetWaiver().GetReason(), GrantedBy: "security-reviewer@loopgate.local", State: loopgatev1.Waiver_ACTIVE}
	return w, nil
}

func (f *fakeWaivers) ListWaivers(_ context.Context, req *loopgatev1.ListWaiversRequest) (*loopgatev1.ListWaiversResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, req)
	page := f.listPage[0]
	f.listPage = f.listPage[1:]
	return page, nil
}

func (f *fakeWaivers) RevokeWaiver(_ context.Context, req *loopgatev1.RevokeWaiverRequest) (*loopgatev1.Waiver, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokes = append(f.revokes, req)
	return &loopgatev1.Waiver{Name: req.GetName(), Rule: "RETENTION_TOO_LONG", State: loopgatev1.Waiver_REVOKED}, nil
}

func (f *fakeWaivers) start(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	loopgatev1.RegisterWaiverServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := devcreds.Write(filepath.Join(home, ".loopgate", "dev-credentials.json"), devcreds.Credentials{Server: lis.Addr().String(), Token: "admin-token"}); err != nil {
		t.Fatal(err)
	}
}

func TestParseUntil(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-04-01T10:00:00Z":      time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC),
		"2026-04-01T10:00:00+02:00": time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC),
		"2026-04-01":                time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		"72h":                       now.Add(72 * time.Hour),
		"14d":                       now.Add(14 * 24 * time.Hour),
		"90m":                       now.Add(90 * time.Minute),
	} {
		got, err := parseUntil(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tomorrow", "-3h", "0d", "2026-13-01", "14days"} {
		if _, err := parseUntil(in, now); err == nil {
			t.Errorf("parseUntil(%q) succeeded, want an error", in)
		}
	}
}

func TestPolicyWaiveWaiversUnwaive(t *testing.T) {
	f := &fakeWaivers{listPage: []*loopgatev1.ListWaiversResponse{
		{Waivers: []*loopgatev1.Waiver{{Name: "teams/growth/loops/clicks/waivers/wv-1", Rule: "RETENTION_TOO_LONG",
			Until: timestamppb.New(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)), State: loopgatev1.Waiver_ACTIVE,
			GrantedBy: "security-reviewer@loopgate.local", Reason: "migration\nby Q3"}}, NextPageToken: "wv-1"},
		{Waivers: []*loopgatev1.Waiver{{Name: "teams/risk/loops/scores/waivers/wv-2", Rule: "OWNERS_REQUIRED", State: loopgatev1.Waiver_EXPIRED}}},
	}}
	f.start(t)

	before := time.Now()
	code, out, errOut := run(t, "policy", "waive", "growth/clicks", "RETENTION_TOO_LONG", "--until", "14d", "--reason", "migration by Q3")
	if code != 0 || !strings.Contains(out, "teams/growth/loops/clicks/waivers/wv-1 granted: RETENTION_TOO_LONG is waived for growth/clicks") {
		t.Fatalf("waive: %d %q %q", code, out, errOut)
	}
	req := f.creates[0]
	if req.GetParent() != "teams/growth/loops/clicks" || req.GetWaiver().GetRule() != "RETENTION_TOO_LONG" || req.GetWaiver().GetReason() != "migration by Q3" {
		t.Errorf("CreateWaiver request = %v", req)
	}
	if until := req.GetWaiver().GetUntil().AsTime(); until.Before(before.Add(14*24*time.Hour)) || until.After(time.Now().Add(14*24*time.Hour)) {
		t.Errorf("until = %v, want 14 days from now", until)
	}
	if code, _, errOut := run(t, "policy", "waive", "growth/clicks", "RETENTION_TOO_LONG", "--until", "14d"); code == 0 || !strings.Contains(errOut, "--reason is required") {
		t.Errorf("waive without a reason: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, "policy", "waive", "growth/clicks", "RETENTION_TOO_LONG", "--until", "soon", "--reason", "x"); code == 0 || !strings.Contains(errOut, "--until") {
		t.Errorf("waive with a bad --until: %d %q", code, errOut)
	}

	code, out, errOut = run(t, "policy", "waivers", "--all")
	if code != 0 {
		t.Fatalf("waivers: %d %q", code, errOut)
	}
	for _, want := range []string{"ID", "LOOP", "RULE", "UNTIL", "STATE", "GRANTED-BY", "REASON",
		"wv-1", "growth/clicks", "RETENTION_TOO_LONG", "2026-04-01T00:00:00Z", "ACTIVE", "migration by Q3", "wv-2", "risk/scores", "EXPIRED"} {
		if !strings.Contains(out, want) {
			t.Errorf("waivers output lacks %q:\n%s", want, out)
		}
	}
	if len(f.lists) != 2 || f.lists[0].GetParent() != "teams/-/loops/-" || !f.lists[0].GetIncludeExpired() || f.lists[1].GetPageToken() != "wv-1" {
		t.Errorf("ListWaivers requests = %v", f.lists)
	}

	code, out, errOut = run(t, "policy", "unwaive", "growth/clicks", "wv-1", "--reason", "fixed")
	if code != 0 || !strings.Contains(out, "teams/growth/loops/clicks/waivers/wv-1 revoked") {
		t.Fatalf("unwaive: %d %q %q", code, out, errOut)
	}
	if r := f.revokes[0]; r.GetName() != "teams/growth/loops/clicks/waivers/wv-1" || r.GetReason() != "fixed" {
		t.Errorf("RevokeWaiver request = %v", r)
	}
	if code, _, errOut := run(t, "policy", "unwaive", "growth/clicks", "wv-1"); code == 0 || !strings.Contains(errOut, "--reason is required") {
		t.Errorf("unwaive without a reason: %d %q", code, errOut)
	}
	if code, _, _ := run(t, "policy", "unwaive", "growth/clicks", "teams/risk/loops/scores/waivers/wv-2", "--reason", "x"); code == 0 {
		t.Errorf("unwaive of another loop's waiver name succeeded")
	}
}
