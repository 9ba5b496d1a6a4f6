package admission

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/internal/policytest"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// failingLoops fails GetLoop for the loops named in fail, and records
// every loop GetLoop was asked for.
type failingLoops struct {
	store.Store
	fail map[string]bool
	mu   sync.Mutex
	read []string
}

func (f *failingLoops) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	f.mu.Lock()
	f.read = append(f.read, team+"/"+name)
	f.mu.Unlock()
	if f.fail[team+"/"+name] {
		return nil, errors.New("injected failure")
	}
	return f.Store.GetLoop(ctx, team, name)
}

// A loop that fails to re-evaluate does not hold up the loops after it:
// every loop with an expired waiver is re-evaluated, the failure is
// counted and returned, naming the loop.
func TestExpireWaiversContinuesPastAFailingLoop(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	st := &failingLoops{Store: openTestStore(t), fail: map[string]bool{"growth/b": true}}
	c := testCore(t, st)
	c.Now = func() time.Time { return t0.Add(2 * time.Hour) }
	err := st.Update(ctx, func(tx store.Tx) error {
		for i, l := range []string{"a", "a", "b", "c", "d"} {
			if err := tx.PutWaiver(ctx, store.Waiver{ID: fmt.Sprintf("w-%d", i), Team: "growth", Loop: l, Rule: "RULE_" + fmt.Sprint(i),
				Until: t0.Add(time.Hour), Reason: "r", GrantedBy: "sec@example.com", GrantTime: t0}); err != nil {
				return err
			}
		}
		// Still active: not due, but the next pass's wake-up.
		return tx.PutWaiver(ctx, store.Waiver{ID: "w-later", Team: "growth", Loop: "e", Rule: "RULE_X",
			Until: t0.Add(5 * time.Hour), Reason: "r", GrantedBy: "sec@example.com", GrantTime: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ExpireWaivers(ctx, t0.Add(30*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "teams/growth/loops/b") || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("ExpireWaivers error = %v, want the failure of teams/growth/loops/b", err)
	}
	if res.Expired != 5 || res.Loops != 3 || res.Failed != 1 || !res.Next.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("ExpireWaivers = %+v, want 5 expired, 3 loops re-evaluated, 1 failed, next at +5h", res)
	}
	// Each loop once (a set, not one per waiver), c and d after b failed.
	if want := []string{"growth/a", "growth/b", "growth/c", "growth/d"}; !slices.Equal(st.read, want) {
		t.Errorf("loops re-evaluated: %v, want %v", st.read, want)
	}

	// With no failure the pass returns no error.
	st.fail, st.read = nil, nil
	if res, err := c.ExpireWaivers(ctx, t0.Add(30*time.Minute)); err != nil || res.Loops != 4 || res.Failed != 0 {
		t.Errorf("ExpireWaivers without a failure = %+v, %v; want 4 loops, no error", res, err)
	}
}

func putActivations(t *testing.T, st store.Store, revisions ...string) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, rev := range revisions {
			if _, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: rev, Action: store.PolicyActivate, Actor: "sec@example.com"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func putBundles(t *testing.T, st store.Store, revisions ...string) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, rev := range revisions {
			if err := tx.PutPolicyBundle(ctx, store.PolicyBundle{Revision: rev, Archive: []byte("bundle " + rev), PushedBy: "sec@example.com"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ListPolicyActivations pages through the whole history, newest first;
// a page size out of range is refused by field, and audited.
func TestListPolicyActivationsPages(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	c := testCore(t, st)
	auditor := Identity{Subject: "auditor@example.com", Roles: []string{RoleAuditor}}
	putBundles(t, st, "r1")
	for range 7 {
		putActivations(t, st, "r1")
	}
	var seqs []int64
	before, pages := int64(0), 0
	for {
		list, next, err := c.ListPolicyActivations(ctx, auditor, 3, before)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range list {
			seqs = append(seqs, a.Seq)
		}
		if next == 0 {
			break
		}
		if pages > 5 {
			t.Fatalf("paging does not end: %v", seqs)
		}
		before = next
	}
	if want := []int64{7, 6, 5, 4, 3, 2, 1}; pages != 3 || !slices.Equal(seqs, want) {
		t.Errorf("paging by 3: %d pages, seqs %v; want 3 pages, %v", pages, seqs, want)
	}
	if list, next, err := c.ListPolicyActivations(ctx, auditor, 0, 0); err != nil || len(list) != 7 || next != 0 {
		t.Errorf("default page = %d activations, next %d, %v; want all 7, no next", len(list), next, err)
	}

	for _, size := range []int{-1, store.MaxPageSize + 1} {
		_, _, err := c.ListPolicyActivations(ctx, auditor, size, 0)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || len(invalid.Problems) != 1 || invalid.Problems[0].Field != "page_size" {
			t.Errorf("page size %d: %v, want an InvalidError naming page_size", size, err)
		}
	}
	events, err := st.ListAudit(ctx, store.AuditFilter{Action: "policy.list"})
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, ev := range events {
		if ev.Outcome == audit.OutcomeInvalid && ev.Actor == auditor.Subject && strings.Contains(string(ev.Details), "page_size") {
			invalid++
		}
	}
	// Identical refusals in a short window are one event (refusalLog).
	if invalid != 1 {
		t.Errorf("%d INVALID policy.list events naming page_size, want 1: %+v", invalid, events)
	}
}

// A bundle active before a long history (more activations than one page
// of it) is still SUPERSEDED, not taken for a candidate.
func TestBundleStateSearchesTheWholeHistory(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	c := testCore(t, st)
	admin := Identity{Subject: "admin@example.com", Roles: []string{RoleAdmin}}
	putBundles(t, st, "new", "never")
	err := st.Update(ctx, func(tx store.Tx) error {
		return tx.PutPolicyBundle(ctx, store.PolicyBundle{Revision: "old", Archive: policytest.Candidate(t, "old", nil), PushedBy: "sec@example.com"})
	})
	if err != nil {
		t.Fatal(err)
	}
	putActivations(t, st, "old")
	many := make([]string, ActivationHistoryPage+5)
	for i := range many {
		many[i] = []string{"new", ""}[i%2]
	}
	many[len(many)-1] = "new"
	putActivations(t, st, many...)

	for rev, want := range map[string]string{"old": BundleSuperseded, "new": BundleActive, "never": BundleCandidate} {
		v, err := c.GetPolicyBundle(ctx, admin, rev, false)
		if err != nil || v.State != want {
			t.Errorf("bundle %s: %+v, %v; want state %s", rev, v, err, want)
		}
	}
	list, _, err := c.ListPolicyBundles(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range list {
		if want := map[string]string{"old": BundleSuperseded, "new": BundleActive, "never": BundleCandidate, BuiltinRevision: BundleSuperseded}[v.Revision]; v.State != want {
			t.Errorf("listed bundle %s: state %s, want %s", v.Revision, v.State, want)
		}
	}
	// A rollback may return to it.
	if a, err := c.RollbackPolicy(ctx, admin, "old", "back to the old rules"); err != nil || a.Revision != "old" {
		t.Errorf("rollback to a bundle active %d activations ago: %+v, %v", len(many), a, err)
	}
	if _, err := c.RollbackPolicy(ctx, admin, "never", "x"); err == nil || !strings.Contains(err.Error(), "never active") {
		t.Errorf("rollback to a bundle never active: %v, want NEVER_ACTIVE", err)
	}
}

// ListWaivers pages a team member's listing of every loop it may see by
// keyset, in the store: full pages of its teams' waivers only, each once.
func TestListWaiversPagesVisibleTeams(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	c := testCore(t, st)
	now := time.Now().UTC()
	err := st.Update(ctx, func(tx store.Tx) error {
		for i, team := range []string{"growth", "risk", "growth", "ops", "growth", "risk", "growth", "growth"} {
			if err := tx.PutWaiver(ctx, store.Waiver{ID: fmt.Sprintf("w-%d", i), Team: team, Loop: "l", Rule: fmt.Sprintf("RULE_%d", i),
				Until: now.Add(time.Hour), Reason: "r", GrantedBy: "sec@example.com", GrantTime: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	member := Identity{Subject: "ana@example.com", Teams: []string{"growth"}}
	var got []string
	q := WaiverQuery{PageSize: 2}
	for pages := 0; ; pages++ {
		list, next, err := c.ListWaivers(ctx, member, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 && next != "" {
			t.Errorf("page %d has %d waivers and a next page: want full pages", pages, len(list))
		}
		for _, w := range list {
			got = append(got, w.ID)
		}
		if next == "" || pages > 5 {
			break
		}
		q.PageToken = next
	}
	if want := []string{"w-0", "w-2", "w-4", "w-6", "w-7"}; !slices.Equal(got, want) {
		t.Errorf("growth member paging every waiver: %v, want %v", got, want)
	}

	// A token of another listing, a forged one, a page size out of range.
	_, next, err := c.ListWaivers(ctx, member, WaiverQuery{PageSize: 1})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, %v", next, err)
	}
	for what, q := range map[string]WaiverQuery{
		"token of another listing": {Team: "growth", PageToken: next},
		"forged token":             {PageToken: "not-a-token"},
		"page size":                {PageSize: MaxWaiverPage + 1},
	} {
		_, _, err := c.ListWaivers(ctx, member, q)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || len(invalid.Problems) != 1 ||
			invalid.Problems[0].Field != map[bool]string{true: "page_size", false: "page_token"}[what == "page size"] {
			t.Errorf("%s: %v, want an InvalidError naming the field", what, err)
		}
	}
}

// countingWaivers counts ListWaivers calls.
type countingWaivers struct {
	store.Store
	mu    sync.Mutex
	calls int
}

func (c *countingWaivers) ListWaivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.Store.ListWaivers(ctx, f)
}

// ReevaluateAll reads the active waivers once for the whole pass, not once
// per loop, and a loop's waiver still applies; a waiver that expires during
// the pass does not.
func TestReevaluateAllReadsWaiversOnce(t *testing.T) {
	ctx := context.Background()
	st := &countingWaivers{Store: openTestStore(t)}
	c := testCore(t, st)
	admin := Identity{Subject: "admin@example.com", Roles: []string{RoleAdmin}}
	for _, n := range []string{"loop-a", "loop-b", "loop-c", "loop-d"} {
		if _, err := c.Create(ctx, admin, namedLoop(n), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	c.Now = func() time.Time { return now }
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, w := range []store.Waiver{
			{ID: "w-a", Team: "growth", Loop: "loop-a", Rule: "SOME_RULE", Until: now.Add(time.Hour), Reason: "r", GrantedBy: "sec@example.com", GrantTime: now},
			{ID: "w-b", Team: "growth", Loop: "loop-b", Rule: "OTHER_RULE", Until: now.Add(time.Second), Reason: "r", GrantedBy: "sec@example.com", GrantTime: now},
		} {
			if err := tx.PutWaiver(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.calls = 0
	res, err := c.ReevaluateAll(ctx)
	if err != nil || res.Loops != 4 {
		t.Fatalf("ReevaluateAll = %+v, %v", res, err)
	}
	if st.calls != 1 {
		t.Errorf("ReevaluateAll read the waivers %d times for 4 loops, want once", st.calls)
	}

	// Within a pass: a's waiver applies; b's, expired since the snapshot
	// was read, does not.
	sctx, err := c.withWaiverSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	for name, want := range map[string]int{"loop-a": 1, "loop-b": 0, "loop-c": 0} {
		l, err := st.GetLoop(ctx, "growth", name)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := c.activeWaivers(sctx, l, l)
		if err != nil || len(ws) != want {
			t.Errorf("loop %s: waivers %+v, %v; want %d", name, ws, err, want)
		}
	}
}

// A completed re-evaluation is recorded; the loops are owed another only
// when a bundle was activated since, or the engine's revision is another
// (a new built-in bundle after an upgrade).
func TestNeedsReevaluation(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	c := testCore(t, st)
	owed := func() bool {
		t.Helper()
		v, err := c.NeedsReevaluation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !owed() {
		t.Errorf("no pass on record: not owed")
	}
	if _, err := c.ReevaluateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if owed() {
		t.Errorf("owed right after a completed pass")
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{Action: ActionReevaluated})
	if err != nil || len(evs) != 1 || evs[0].Resource != "policy/bundles/"+c.Policy.Revision() || evs[0].Actor != PolicyActor {
		t.Errorf("recorded passes %+v, %v", evs, err)
	}
	putBundles(t, st, "later")
	putActivations(t, st, "later")
	if !owed() {
		t.Errorf("a bundle activated after the last pass: not owed")
	}
	if _, err := c.ReevaluateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if owed() {
		t.Errorf("owed after the pass that followed the activation")
	}
	// Another engine revision (e.g. a new built-in bundle): owed.
	b, err := policy.ReadArchive(policytest.Candidate(t, "upgraded-builtin", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Policy.Swap(ctx, b); err != nil {
		t.Fatal(err)
	}
	if !owed() {
		t.Errorf("the engine's revision changed: not owed")
	}
}
