package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	before := time.Now().Add(-time.Second)
	l := create(t, s, newLoop("growth", "checkout-nudge"))
	m := l.Metadata
	if m.UID == "" || m.Etag == "" || m.Generation != 1 {
		t.Errorf("CreateLoop wrote back uid=%q etag=%q generation=%d, want a uid, an etag and generation 1", m.UID, m.Etag, m.Generation)
	}
	if m.CreateTime.Before(before) || !m.UpdateTime.Equal(m.CreateTime) {
		t.Errorf("CreateLoop wrote back createTime=%v updateTime=%v, want now for both", m.CreateTime, m.UpdateTime)
	}
	assertSameLoop(t, "GetLoop after CreateLoop", mustGet(t, s, "growth", "checkout-nudge"), l)

	other := create(t, s, newLoop("growth", "other-loop"))
	if other.Metadata.UID == m.UID || other.Metadata.Etag == m.Etag {
		t.Errorf("two loops share uid or etag: %q/%q and %q/%q", m.UID, m.Etag, other.Metadata.UID, other.Metadata.Etag)
	}

	dup := newLoop("growth", "checkout-nudge")
	dup.Spec.Description = "a second loop with the same name"
	err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, dup) })
	wantErr(t, "CreateLoop of an existing team/name", err, store.ErrAlreadyExists)
	if err != nil && !strings.Contains(err.Error(), "growth/checkout-nudge") {
		t.Errorf("duplicate error %q does not name the loop", err)
	}
	assertSameLoop(t, "loop after refused duplicate", mustGet(t, s, "growth", "checkout-nudge"), l)

	_, err = s.GetLoop(ctx, "growth", "missing")
	wantErr(t, "GetLoop of a missing loop", err, store.ErrNotFound)
	_, err = s.GetLoop(ctx, "payments", "checkout-nudge")
	wantErr(t, "GetLoop in another team", err, store.ErrNotFound)
}

// loopsOf makes n loops for each team, named so that their order is known.
func loopsOf(teams []string, n int) []*loop.Loop {
	var out []*loop.Loop
	for _, team := range teams {
		for i := range n {
			out = append(out, newLoop(team, fmt.Sprintf("loop-%04d", i)))
		}
	}
	return out
}

func keys(loops []*loop.Loop) []string {
	out := make([]string, len(loops))
	for i, l := range loops {
		out[i] = l.Metadata.Key()
	}
	return out
}

// listAll follows page tokens until the end.
func listAll(t *testing.T, r store.Reader, opts store.ListOptions) (all []*loop.Loop, pages int) {
	t.Helper()
	for {
		page, next, err := r.ListLoops(ctxFor(t), opts)
		if err != nil {
			t.Fatalf("ListLoops(%+v): %v", opts, err)
		}
		pages++
		all = append(all, page...)
		if next == "" {
			return all, pages
		}
		if len(page) != opts.PageSize {
			t.Errorf("page %d has %d loops and a next token, want a full page of %d", pages, len(page), opts.PageSize)
		}
		if pages > 1000 {
			t.Fatal("ListLoops never stops returning page tokens")
		}
		opts.PageToken = next
	}
}

func testListPaging(t *testing.T, s store.Store) {
	teams := []string{"payments", "growth", "search"} // created out of order on purpose
	created := loopsOf(teams, 45)
	createMany(t, s, created)
	want := keys(created)
	slices.Sort(want) // (team, name) order: "team/" prefixes sort like the pair here

	all, pages := listAll(t, s, store.ListOptions{PageSize: 20})
	if got := keys(all); !slices.Equal(got, want) {
		t.Fatalf("paging with 20 per page returned %d loops:\n%v\nwant %d in (team, name) order", len(got), got, len(want))
	}
	if pages != 7 { // 135 loops = 6 full pages + 15
		t.Errorf("135 loops at 20 per page took %d pages, want 7", pages)
	}
	byKey := map[string]*loop.Loop{}
	for _, l := range created {
		byKey[l.Metadata.Key()] = l
	}
	for _, l := range all[:3] {
		assertSameLoop(t, "listed loop "+l.Metadata.Key(), l, byKey[l.Metadata.Key()])
	}

	growth, _ := listAll(t, s, store.ListOptions{Team: "growth", PageSize: 10})
	if got := keys(growth); len(got) != 45 || !slices.IsSorted(got) || got[0] != "growth/loop-0000" {
		t.Errorf("team filter growth returned %d loops starting %v, want growth's 45 in name order", len(got), got[:min(3, len(got))])
	}
	for _, l := range growth {
		if l.Metadata.Team != "growth" {
			t.Fatalf("team filter growth returned %s", l.Metadata.Key())
		}
	}

	exact, pages := listAll(t, s, store.ListOptions{Team: "search", PageSize: 45})
	if len(exact) != 45 || pages != 1 {
		t.Errorf("45 loops at 45 per page: %d loops in %d pages, want 45 in 1 page with no next token", len(exact), pages)
	}
	none, next, err := s.ListLoops(ctxFor(t), store.ListOptions{Team: "nobody"})
	if err != nil || len(none) != 0 || next != "" {
		t.Errorf("ListLoops of a team without loops = %d loops, token %q, err %v; want none", len(none), next, err)
	}
}

func testListPageSize(t *testing.T, s store.Store) {
	createMany(t, s, loopsOf([]string{"growth"}, store.MaxPageSize+1))
	page, next, err := s.ListLoops(ctxFor(t), store.ListOptions{})
	if err != nil || len(page) != store.DefaultLoopPageSize || next == "" {
		t.Errorf("ListLoops with no page size = %d loops, token %q, err %v; want %d and a token", len(page), next, err, store.DefaultLoopPageSize)
	}
	page, next, err = s.ListLoops(ctxFor(t), store.ListOptions{PageSize: 5000})
	if err != nil || len(page) != store.MaxPageSize || next == "" {
		t.Errorf("ListLoops with page size 5000 = %d loops, token %q, err %v; want the cap %d and a token", len(page), next, err, store.MaxPageSize)
	}
	rest, next, err := s.ListLoops(ctxFor(t), store.ListOptions{PageSize: 5000, PageToken: next})
	if err != nil || len(rest) != 1 || next != "" || rest[0].Metadata.Name != "loop-1000" {
		t.Errorf("second capped page = %v, token %q, err %v; want only growth/loop-1000", keys(rest), next, err)
	}
}

func testListBadTokens(t *testing.T, s store.Store) {
	createMany(t, s, loopsOf([]string{"growth", "search"}, 3))
	_, next, err := s.ListLoops(ctxFor(t), store.ListOptions{Team: "growth", PageSize: 2})
	if err != nil || next == "" {
		t.Fatalf("first page: token %q, err %v", next, err)
	}
	_, _, err = s.ListLoops(ctxFor(t), store.ListOptions{Team: "search", PageSize: 2, PageToken: next})
	wantErr(t, "token reused with another team filter", err, store.ErrInvalidPageToken)
	for _, tok := range []string{"not base64!", "bm90IGpzb24", "e30"} { // garbage, "not json", "{}"
		_, _, err = s.ListLoops(ctxFor(t), store.ListOptions{PageToken: tok})
		wantErr(t, fmt.Sprintf("page token %q", tok), err, store.ErrInvalidPageToken)
	}
}

func testTxSeesOwnWrites(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	create(t, s, newLoop("growth", "a-loop"))
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, newLoop("growth", "b-loop")); err != nil {
			return err
		}
		if _, err := tx.GetLoop(ctx, "growth", "b-loop"); err != nil {
			return fmt.Errorf("GetLoop inside the creating tx: %w", err)
		}
		page, _, err := tx.ListLoops(ctx, store.ListOptions{Team: "growth"})
		if err != nil {
			return err
		}
		if got := keys(page); !slices.Equal(got, []string{"growth/a-loop", "growth/b-loop"}) {
			return fmt.Errorf("ListLoops inside the tx = %v, want both loops", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testEtagCAS(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	orig := create(t, s, newLoop("growth", "checkout-nudge"))
	read := mustGet(t, s, "growth", "checkout-nudge")

	upd := mustGet(t, s, "growth", "checkout-nudge")
	upd.Spec.RetentionMs = 7 * 24 * 3600 * 1000
	upd.Metadata.Generation++
	upd.Metadata.Labels["tier"] = "gold"
	// An updater cannot move the identity or creation time of a loop.
	upd.Metadata.UID = "forged-uid"
	upd.Metadata.CreateTime = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateLoop(ctx, upd, read.Metadata.Etag) }); err != nil {
		t.Fatalf("UpdateLoop with the current etag: %v", err)
	}
	if upd.Metadata.Etag == "" || upd.Metadata.Etag == orig.Metadata.Etag {
		t.Errorf("UpdateLoop wrote back etag %q, want a fresh one (was %q)", upd.Metadata.Etag, orig.Metadata.Etag)
	}
	if upd.Metadata.UID != orig.Metadata.UID || !upd.Metadata.CreateTime.Equal(orig.Metadata.CreateTime) {
		t.Errorf("UpdateLoop changed uid/createTime to %q/%v, want %q/%v kept", upd.Metadata.UID, upd.Metadata.CreateTime, orig.Metadata.UID, orig.Metadata.CreateTime)
	}
	if upd.Metadata.UpdateTime.Before(orig.Metadata.UpdateTime) {
		t.Errorf("updateTime went back from %v to %v", orig.Metadata.UpdateTime, upd.Metadata.UpdateTime)
	}
	after := mustGet(t, s, "growth", "checkout-nudge")
	assertSameLoop(t, "GetLoop after UpdateLoop", after, upd)
	if after.Metadata.Generation != 2 || after.Spec.RetentionMs != 7*24*3600*1000 {
		t.Errorf("stored generation %d retention %d, want the update's 2 and 7d", after.Metadata.Generation, after.Spec.RetentionMs)
	}

	// A writer holding the first read's etag lost the race: refused, nothing changes.
	stale := read
	stale.Spec.Owners = []string{"mallory@example.com"}
	stale.Metadata.Generation = 99
	err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateLoop(ctx, stale, read.Metadata.Etag) })
	wantErr(t, "UpdateLoop with a stale etag", err, store.ErrEtagMismatch)
	assertSameLoop(t, "loop after a refused stale update", mustGet(t, s, "growth", "checkout-nudge"), after)

	noEtag := mustGet(t, s, "growth", "checkout-nudge")
	err = s.Update(ctx, func(tx store.Tx) error { return tx.UpdateLoop(ctx, noEtag, "") })
	wantErr(t, "UpdateLoop with an empty etag", err, store.ErrEtagMismatch)

	missing := newLoop("growth", "missing")
	err = s.Update(ctx, func(tx store.Tx) error { return tx.UpdateLoop(ctx, missing, "whatever") })
	wantErr(t, "UpdateLoop of a missing loop", err, store.ErrNotFound)
}

func testUpdateStatus(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	l := create(t, s, newLoop("growth", "checkout-nudge"))
	st := loop.Status{State: loop.StateReady, ObservedGeneration: 1, Cluster: "eu-1", DecisionID: "dec-1"}
	st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.True, Reason: "TopicsCreated", ObservedGeneration: 1},
		time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateStatus(ctx, "growth", "checkout-nudge", st) }); err != nil {
		t.Fatalf("UpdateStatus: %v", err)
	}
	got := mustGet(t, s, "growth", "checkout-nudge")
	want := *l
	want.Status = st
	assertSameLoop(t, "loop after UpdateStatus (etag, generation, spec, times unchanged)", got, &want)

	// A status write must not invalidate the etag a client holds.
	upd := mustGet(t, s, "growth", "checkout-nudge")
	upd.Spec.Description = "changed after a status write"
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateLoop(ctx, upd, l.Metadata.Etag) }); err != nil {
		t.Errorf("UpdateLoop with the etag read before UpdateStatus: %v, want success", err)
	}

	err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateStatus(ctx, "growth", "missing", st) })
	wantErr(t, "UpdateStatus of a missing loop", err, store.ErrNotFound)
}

func testDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	create(t, s, newLoop("growth", "keep"))
	create(t, s, newLoop("growth", "remove"))
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteLoop(ctx, "growth", "remove") }); err != nil {
		t.Fatalf("DeleteLoop: %v", err)
	}
	_, err := s.GetLoop(ctx, "growth", "remove")
	wantErr(t, "GetLoop after DeleteLoop", err, store.ErrNotFound)
	page, _, err := s.ListLoops(ctx, store.ListOptions{})
	if err != nil || !slices.Equal(keys(page), []string{"growth/keep"}) {
		t.Errorf("ListLoops after delete = %v (err %v), want only growth/keep", keys(page), err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteLoop(ctx, "growth", "remove") })
	wantErr(t, "DeleteLoop of a deleted loop", err, store.ErrNotFound)

	// The name can be used again, as a new loop with a new uid.
	again := create(t, s, newLoop("growth", "remove"))
	if again.Metadata.Generation != 1 {
		t.Errorf("re-created loop has generation %d, want 1", again.Metadata.Generation)
	}
}

// TeamPartitions sums the admitted partitions of a team's live loops,
// leaving out the named loop, other teams and loops being deleted.
func testTeamPartitions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i, p := range []int32{3, 5, 7} {
		l := newLoop("growth", fmt.Sprintf("p-%d", i))
		l.Status.Partitions = p
		create(t, s, l)
	}
	other := newLoop("risk", "p-0")
	other.Status.Partitions = 100
	create(t, s, other)

	got, err := s.TeamPartitions(ctx, "growth", "")
	if err != nil || got != 15 {
		t.Fatalf("TeamPartitions(growth) = %d, %v; want 15", got, err)
	}
	if got, _ := s.TeamPartitions(ctx, "growth", "p-1"); got != 10 {
		t.Errorf("TeamPartitions(growth, except p-1) = %d, want 10", got)
	}
	if got, _ := s.TeamPartitions(ctx, "nobody", ""); got != 0 {
		t.Errorf("TeamPartitions(unknown team) = %d, want 0", got)
	}
	// A loop being deleted no longer counts; a status write is seen.
	err = s.Update(ctx, func(tx store.Tx) error {
		l, err := tx.GetLoop(ctx, "growth", "p-2")
		if err != nil {
			return err
		}
		etag := l.Metadata.Etag
		l.Metadata.DeleteTime = time.Now()
		if err := tx.UpdateLoop(ctx, l, etag); err != nil {
			return err
		}
		st := mustGet(t, tx, "growth", "p-0").Status
		st.Partitions = 4
		if err := tx.UpdateStatus(ctx, "growth", "p-0", st); err != nil {
			return err
		}
		// Inside the transaction the new values are already visible.
		if got, err := tx.TeamPartitions(ctx, "growth", ""); err != nil || got != 9 {
			t.Errorf("TeamPartitions inside the transaction = %d, %v; want 9", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TeamPartitions(ctx, "growth", ""); got != 9 {
		t.Errorf("TeamPartitions after delete mark and status write = %d, want 9", got)
	}
}
