package store_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
)

func TestDecisionRulesReadsDenyWarnAndApprovalOnly(t *testing.T) {
	for _, tc := range []struct {
		result string
		want   []string
	}{
		{`{"deny":[{"id":"B"}],"warn":[{"id":"A"},{"id":"B"}],"approval":[{"id":"C","role":"admin"}]}`, []string{"A", "B", "C"}},
		{`{"deny":[],"warn":null}`, nil},
		{`{"meta":{"id":"X"},"waived":[{"id":"Y"}],"deny":[{"msg":"\"id\":\"Z\""}]}`, nil},
		{`{"deny":"X","warn":[1,"X",{"id":7},{"id":""},{"id":null}]}`, nil},
		{`null`, nil}, {`[{"id":"X"}]`, nil}, {`not json`, nil}, {``, nil},
		{`{"deny":[{"id":"100%_SURE"}]}`, []string{"100%_SURE"}},
	} {
		if got := store.DecisionRules(json.RawMessage(tc.result)); !slices.Equal(got, tc.want) {
			t.Errorf("DecisionRules(%s) = %q, want %q", tc.result, got, tc.want)
		}
	}
}

func TestPrepareDecisionBoundsTheInput(t *testing.T) {
	now := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	d, err := store.PrepareDecision(store.Decision{ID: "d", Input: json.RawMessage(`{"a":1}`)}, now)
	if err != nil || !d.Time.Equal(now.Truncate(time.Microsecond)) || d.Time.Location() != time.UTC ||
		d.InputDigest != "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862" || string(d.Input) != `{"a":1}` {
		t.Errorf("PrepareDecision = %+v, %v", d, err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", store.MaxDecisionInputBytes) + `"`)
	d, err = store.PrepareDecision(store.Decision{ID: "d", Input: big, InputDigest: "given"}, now)
	if err != nil || d.Input != nil || d.InputDigest != "given" {
		t.Errorf("PrepareDecision of an oversized input = input %d bytes, digest %q, %v; want no input, the digest kept", len(d.Input), d.InputDigest, err)
	}
	if _, err := store.PrepareDecision(store.Decision{}, now); err == nil {
		t.Error("PrepareDecision without an id succeeded")
	}
}

func TestPreparePolicyBundleChecksSizeAndDigest(t *testing.T) {
	now := time.Now()
	b, err := store.PreparePolicyBundle(store.PolicyBundle{Revision: "r1", Archive: []byte("abc")}, now)
	if err != nil || b.Digest != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || b.PushTime.IsZero() {
		t.Errorf("PreparePolicyBundle = %+v, %v; want the digest filled in and the push time set", b, err)
	}
	for _, bad := range []store.PolicyBundle{
		{Archive: []byte("abc")},
		{Revision: "r1", Archive: []byte("abc"), Digest: "00"},
		{Revision: "r1", Archive: make([]byte, store.MaxPolicyArchiveBytes+1)},
	} {
		if _, err := store.PreparePolicyBundle(bad, now); err == nil {
			t.Errorf("PreparePolicyBundle(revision %q, %d bytes, digest %q) succeeded", bad.Revision, len(bad.Archive), bad.Digest)
		}
	}
}
