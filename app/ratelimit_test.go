package app_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// demoToken returns one of the embedded demo identities' tokens.
func demoToken(t *testing.T, name string) string {
	t.Helper()
	path, _ := devcreds.Path()
	creds, err := devcreds.Read(path)
	if err != nil || creds == nil || creds.Tokens[name] == "" {
		t.Fatalf("demo token %q: %v", name, err)
	}
	return creds.Tokens[name]
}

// Each identity's changes and each address's failed logins are rate
// limited: RESOURCE_EXHAUSTED with RetryInfo over gRPC, 429 with
// Retry-After over REST, audited; other identities are not affected.
func TestRateLimits(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Limits = config.RateLimits{MutationsPerSecond: 0.01, MutationBurst: 3, AuthFailuresPerMinute: 0.6, AuthFailureBurst: 3}
	r := runServer(t, cfg, 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	growth := asDemo(t, "growth")
	create := func(ctx context.Context) error {
		_, err := loops.CreateLoop(ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "limited", Loop: typicalLoop("limited"), ValidateOnly: true})
		return err
	}
	for i := range 3 {
		if err := create(growth); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	err := create(growth)
	if status.Code(err) != codes.ResourceExhausted || reasonOf(err) != "RATE_LIMITED" {
		t.Fatalf("past the burst: %v, want RESOURCE_EXHAUSTED RATE_LIMITED", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("no RetryInfo: %v", status.Convert(err).Details())
	}
	// Reads are not limited; another identity is not affected.
	if _, err := loops.GetLoop(growth, &lgv1.GetLoopRequest{Name: "teams/growth/loops/none"}); status.Code(err) != codes.NotFound {
		t.Errorf("a read after the limit: %v", err)
	}
	if err := create(asDemo(t, "growth-lead")); err != nil {
		t.Errorf("another identity: %v", err)
	}
	// REST: 429 with Retry-After.
	rest := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.http+"/v1/teams/growth/loops?loopId=limited&validateOnly=true",
			strings.NewReader(`{"spec":{"owners":["a@example.com"]}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := rest(demoToken(t, "growth")); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("REST past the burst: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// The refusal is audited.
	events, err := lgv1.NewAuditServiceClient(r.conn).ListAuditEvents(asDemo(t, "auditor"), &lgv1.ListAuditEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var limited int
	for _, ev := range events.GetEvents() {
		if ev.GetOutcome() == "RATE_LIMITED" {
			limited++
		}
	}
	if limited == 0 {
		t.Error("no RATE_LIMITED event in the audit trail")
	}

	// Failed logins from one address: after the burst, even a good token
	// from that address is refused until the bucket refills.
	bad := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer not-a-token")
	for i := range 3 {
		if _, err := loops.GetLoop(bad, &lgv1.GetLoopRequest{Name: "teams/growth/loops/x"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("bad token %d: %v", i, err)
		}
	}
	if _, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: "teams/growth/loops/x"}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("after 3 failed logins from this address: %v, want RESOURCE_EXHAUSTED", err)
	}

}
