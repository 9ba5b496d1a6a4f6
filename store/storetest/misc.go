package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
)

func testDecisions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	d := store.Decision{
		ID: "dec-42", Time: time.Date(2026, 11, 3, 10, 0, 0, 987654321, time.UTC),
		Resource: "teams/growth/loops/checkout-nudge", Operation: "CREATE", BundleRevision: "rev-7",
		Result: json.RawMessage(`{"deny":[],"warn":[{"id":"NO_FRESHNESS","msg":"set a freshness SLO","field":"spec.slo.freshness"}],"approval":[]}`),
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutDecision(ctx, d) }); err != nil {
		t.Fatalf("PutDecision: %v", err)
	}
	got, err := s.GetDecision(ctx, "dec-42")
	if err != nil {
		t.Fatalf("GetDecision: %v", err)
	}
	var gotResult, wantResult any
	_ = json.Unmarshal(got.Result, &gotResult)
	_ = json.Unmarshal(d.Result, &wantResult)
	gj, _ := json.Marshal(gotResult)
	wj, _ := json.Marshal(wantResult)
	if got.ID != d.ID || got.Resource != d.Resource || got.Operation != d.Operation || got.BundleRevision != d.BundleRevision ||
		!got.Time.Equal(d.Time.Truncate(time.Microsecond)) || string(gj) != string(wj) {
		t.Errorf("GetDecision = %+v (result %s), want %+v", got, got.Result, d)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutDecision(ctx, d) })
	wantErr(t, "PutDecision with an existing id", err, store.ErrAlreadyExists)
	_, err = s.GetDecision(ctx, "dec-missing")
	wantErr(t, "GetDecision of a missing id", err, store.ErrNotFound)

	noTime := store.Decision{ID: "dec-43", Resource: "teams/growth/loops/x", Operation: "DELETE", Result: json.RawMessage(`{}`)}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutDecision(ctx, noTime) }); err != nil {
		t.Fatalf("PutDecision without time: %v", err)
	}
	if got, err := s.GetDecision(ctx, "dec-43"); err != nil || time.Since(got.Time) > time.Minute {
		t.Errorf("decision stored without time: %+v, err %v; want the time of storing", got, err)
	}
}
