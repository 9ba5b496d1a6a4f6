package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
)

// Policy governance (store.PolicyReader, store.PolicyWriter) and the
// decision log.

var t0 = time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)

// sampleBundle is a bundle as a push stores it. The archive holds bytes
// that are not text (NUL, 0xff, gzip's magic), the push time is not UTC
// and finer than a microsecond.
func sampleBundle(revision string, pushed time.Time) store.PolicyBundle {
	archive := append([]byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0xff, 0xfe}, []byte("bundle "+revision)...)
	sum := sha256.Sum256(archive)
	return store.PolicyBundle{
		Revision: revision,
		Digest:   hex.EncodeToString(sum[:]),
		Archive:  archive,
		Manifest: json.RawMessage(`{"revision": "` + revision + `", "roots": ["loopgate"]}`),
		Files:    []string{"/.manifest", "/loopgate/main.rego", "/loopgate/main_test.rego"},
		Signed:   "security-2026",
		Tests:    json.RawMessage(`[{"name": "test_owners", "pass": true, "durationMs": 3}]`),
		PushedBy: "sec@example.com",
		PushTime: pushed.In(time.FixedZone("CET", 3600)).Add(789 * time.Nanosecond),
		Approvals: []store.PolicyApproval{
			{Reviewer: "rev-a@example.com", Time: pushed.Add(time.Minute), Comment: "reviewed the diff"},
			{Reviewer: "rev-b@example.com", Time: pushed.Add(2 * time.Minute)},
		},
	}
}

func putBundle(t *testing.T, s store.Store, b store.PolicyBundle) {
	t.Helper()
	if err := s.Update(ctxFor(t), func(tx store.Tx) error { return tx.PutPolicyBundle(ctxFor(t), b) }); err != nil {
		t.Fatalf("PutPolicyBundle(%s): %v", b.Revision, err)
	}
}

// sameTime: the same instant to the microsecond, read back in UTC.
func sameTime(got, want time.Time) bool {
	return got.Equal(want.Truncate(time.Microsecond)) && (got.IsZero() || got.Location() == time.UTC)
}

// sameJSON: equal JSON documents (a store may keep them byte for byte or
// not; the decision input is checked byte for byte separately).
func sameJSON(got, want json.RawMessage) bool {
	if len(got) == 0 || len(want) == 0 {
		return len(got) == len(want)
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	return string(gj) == string(wj)
}

// assertBundle compares every field; the archive only when withArchive
// (listings leave it nil).
func assertBundle(t *testing.T, what string, got *store.PolicyBundle, want store.PolicyBundle, withArchive bool) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no bundle, want %s", what, want.Revision)
		return
	}
	if got.Revision != want.Revision || got.Digest != want.Digest || got.Signed != want.Signed || got.PushedBy != want.PushedBy ||
		!slices.Equal(got.Files, want.Files) || !sameJSON(got.Manifest, want.Manifest) || !sameJSON(got.Tests, want.Tests) ||
		!sameTime(got.PushTime, want.PushTime) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, *got, want)
	}
	if withArchive && string(got.Archive) != string(want.Archive) {
		t.Errorf("%s: archive = %x, want %x", what, got.Archive, want.Archive)
	}
	if !withArchive && got.Archive != nil {
		t.Errorf("%s: a listing carries the %d-byte archive, want nil", what, len(got.Archive))
	}
	if len(got.Approvals) != len(want.Approvals) {
		t.Errorf("%s: %d approvals %+v, want %d %+v", what, len(got.Approvals), got.Approvals, len(want.Approvals), want.Approvals)
		return
	}
	for i, a := range got.Approvals {
		w := want.Approvals[i]
		if a.Reviewer != w.Reviewer || a.Comment != w.Comment || !sameTime(a.Time, w.Time) {
			t.Errorf("%s: approval %d = %+v, want %+v", what, i, a, w)
		}
	}
}

// testPolicyBundles: every field of a bundle round-trips, approvals keep
// their order, a revision is stored once, and oversized or mislabelled
// archives are refused.
func testPolicyBundles(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if list, err := s.ListPolicyBundles(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListPolicyBundles of an empty store = %v, %v; want none", list, err)
	}
	_, err := s.GetPolicyBundle(ctx, "r1")
	wantErr(t, "GetPolicyBundle of a missing revision", err, store.ErrNotFound)

	b1 := sampleBundle("r1", t0)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutPolicyBundle(ctx, b1); err != nil {
			return err
		}
		got, err := tx.GetPolicyBundle(ctx, "r1")
		if err != nil {
			return fmt.Errorf("GetPolicyBundle inside the writing transaction: %w", err)
		}
		assertBundle(t, "inside the writing transaction", got, b1, true)
		return nil
	})
	if err != nil {
		t.Fatalf("PutPolicyBundle: %v", err)
	}
	got, err := s.GetPolicyBundle(ctx, "r1")
	if err != nil {
		t.Fatalf("GetPolicyBundle: %v", err)
	}
	assertBundle(t, "GetPolicyBundle", got, b1, true)

	// Approvals append in order, after the ones pushed with the bundle.
	before := time.Now().Add(-time.Second)
	third := store.PolicyApproval{Reviewer: "rev-c@example.com", Time: t0.Add(3*time.Minute + 999*time.Nanosecond), Comment: "ok"}
	untimed := store.PolicyApproval{Reviewer: "rev-d@example.com", Comment: "late"}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AddPolicyApproval(ctx, "r1", third); err != nil {
			return err
		}
		return tx.AddPolicyApproval(ctx, "r1", untimed)
	})
	if err != nil {
		t.Fatalf("AddPolicyApproval: %v", err)
	}
	got, err = s.GetPolicyBundle(ctx, "r1")
	if err != nil {
		t.Fatalf("GetPolicyBundle: %v", err)
	}
	if n := len(got.Approvals); n != 4 || got.Approvals[3].Time.Before(before) || time.Since(got.Approvals[3].Time) > time.Minute {
		t.Fatalf("approvals after two adds = %+v; want 4, the last stamped with the time of adding", got.Approvals)
	}
	untimed.Time = got.Approvals[3].Time
	b1.Approvals = append(b1.Approvals, third, untimed)
	assertBundle(t, "after AddPolicyApproval", got, b1, true)

	err = s.Update(ctx, func(tx store.Tx) error { return tx.AddPolicyApproval(ctx, "r-missing", third) })
	wantErr(t, "AddPolicyApproval to a missing bundle", err, store.ErrNotFound)

	// A revision is stored once; the refusal leaves the transaction usable.
	other := sampleBundle("r1", t0.Add(time.Hour))
	other.Archive = []byte("another archive")
	other.Digest = ""
	b2 := sampleBundle("r2", t0.Add(time.Hour))
	b2.Approvals = nil
	b2.Signed, b2.Tests, b2.Files = "", nil, nil
	err = s.Update(ctx, func(tx store.Tx) error {
		wantErr(t, "PutPolicyBundle of a stored revision", tx.PutPolicyBundle(ctx, other), store.ErrAlreadyExists)
		return tx.PutPolicyBundle(ctx, b2)
	})
	if err != nil {
		t.Fatalf("Update with a refused PutPolicyBundle: %v, want the transaction to commit", err)
	}
	got, _ = s.GetPolicyBundle(ctx, "r1")
	assertBundle(t, "r1 after a refused duplicate", got, b1, true)
	got, err = s.GetPolicyBundle(ctx, "r2")
	if err != nil {
		t.Fatalf("GetPolicyBundle(r2): %v", err)
	}
	assertBundle(t, "bundle without signature, tests, files or approvals", got, b2, true)

	// Oversized archives and wrong digests are refused, and store nothing.
	big := sampleBundle("r-big", t0)
	big.Archive = make([]byte, store.MaxPolicyArchiveBytes+1)
	big.Digest = ""
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutPolicyBundle(ctx, big) })
	if err == nil || errors.Is(err, store.ErrAlreadyExists) || !strings.Contains(err.Error(), fmt.Sprint(store.MaxPolicyArchiveBytes)) {
		t.Errorf("PutPolicyBundle of a %d-byte archive: %v, want an error naming the limit", len(big.Archive), err)
	}
	bad := sampleBundle("r-bad", t0)
	bad.Digest = strings.Repeat("0", 64)
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutPolicyBundle(ctx, bad) })
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("PutPolicyBundle with a digest that is not the archive's: %v, want a digest error", err)
	}
	for _, rev := range []string{"r-big", "r-bad"} {
		_, err := s.GetPolicyBundle(ctx, rev)
		wantErr(t, "GetPolicyBundle of a refused bundle "+rev, err, store.ErrNotFound)
	}
	// The largest archive allowed is stored whole; an empty digest is filled in.
	largest := sampleBundle("r-max", t0.Add(-time.Hour))
	largest.Archive = make([]byte, store.MaxPolicyArchiveBytes)
	largest.Archive[len(largest.Archive)-1] = 0x42
	largest.Digest = ""
	putBundle(t, s, largest)
	sum := sha256.Sum256(largest.Archive)
	largest.Digest = hex.EncodeToString(sum[:])
	got, err = s.GetPolicyBundle(ctx, "r-max")
	if err != nil {
		t.Fatalf("GetPolicyBundle(r-max): %v", err)
	}
	assertBundle(t, "bundle of the largest archive allowed", got, largest, true)

	// Listing: newest push first, without archives, with approvals.
	list, err := s.ListPolicyBundles(ctx)
	if err != nil {
		t.Fatalf("ListPolicyBundles: %v", err)
	}
	want := []store.PolicyBundle{b2, b1, largest}
	if len(list) != len(want) {
		t.Fatalf("ListPolicyBundles = %d bundles, want %d", len(list), len(want))
	}
	for i := range want {
		assertBundle(t, fmt.Sprintf("ListPolicyBundles[%d]", i), &list[i], want[i], false)
	}
}

func appendActivation(t *testing.T, s store.Store, a store.PolicyActivation) store.PolicyActivation {
	t.Helper()
	var stored store.PolicyActivation
	err := s.Update(ctxFor(t), func(tx store.Tx) error {
		var err error
		stored, err = tx.AppendPolicyActivation(ctxFor(t), a)
		return err
	})
	if err != nil {
		t.Fatalf("AppendPolicyActivation(%+v): %v", a, err)
	}
	return stored
}

func sameActivation(got, want store.PolicyActivation) bool {
	return got.Seq == want.Seq && got.Revision == want.Revision && got.Action == want.Action && got.Actor == want.Actor &&
		got.Comment == want.Comment && sameTime(got.Time, want.Time)
}

// testPolicyActivations: activations get Seq 1, 2, 3…, the latest is the
// active policy, and they list newest first.
func testPolicyActivations(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	_, err := s.ActivePolicy(ctx)
	wantErr(t, "ActivePolicy with no activation", err, store.ErrNotFound)
	if list, err := s.ListPolicyActivations(ctx, store.ActivationFilter{}); err != nil || len(list) != 0 {
		t.Errorf("ListPolicyActivations of an empty store = %v, %v; want none", list, err)
	}
	putBundle(t, s, sampleBundle("r1", t0))
	putBundle(t, s, sampleBundle("r2", t0.Add(time.Hour)))

	want := []store.PolicyActivation{
		{Seq: 1, Revision: "r1", Action: store.PolicyActivate, Actor: "sec@example.com", Comment: "first",
			Time: t0.Add(2*time.Hour + 123456789).In(time.FixedZone("CET", 3600))},
		{Seq: 2, Revision: "r2", Action: store.PolicyActivate, Actor: "sec@example.com", Time: t0.Add(3 * time.Hour)},
		{Seq: 3, Revision: "r1", Action: store.PolicyRollback, Actor: "ops@example.com", Comment: "r2 denies too much",
			Time: t0.Add(4 * time.Hour)},
	}
	for _, w := range want {
		in := w
		in.Seq = 99 // assigned by the store, whatever the caller says
		if got := appendActivation(t, s, in); !sameActivation(got, w) {
			t.Errorf("AppendPolicyActivation = %+v, want %+v", got, w)
		}
	}
	active, err := s.ActivePolicy(ctx)
	if err != nil || !sameActivation(*active, want[2]) {
		t.Errorf("ActivePolicy = %+v, %v; want the latest activation %+v", active, err, want[2])
	}
	list, err := s.ListPolicyActivations(ctx, store.ActivationFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("ListPolicyActivations = %+v, %v; want 3", list, err)
	}
	for i, a := range list {
		if w := want[len(want)-1-i]; !sameActivation(a, w) {
			t.Errorf("ListPolicyActivations[%d] = %+v, want %+v (newest first)", i, a, w)
		}
	}
	if list, err := s.ListPolicyActivations(ctx, store.ActivationFilter{Limit: 2}); err != nil || len(list) != 2 || list[0].Seq != 3 || list[1].Seq != 2 {
		t.Errorf("ListPolicyActivations(limit 2) = %+v, %v; want seqs 3, 2", list, err)
	}
	// Paging: Before is the seq of the last activation of the previous page.
	for _, c := range []struct {
		f    store.ActivationFilter
		want []int64
	}{
		{store.ActivationFilter{Before: 3, Limit: 1}, []int64{2}},
		{store.ActivationFilter{Before: 2, Limit: 1}, []int64{1}},
		{store.ActivationFilter{Before: 3}, []int64{2, 1}},
		{store.ActivationFilter{Before: 1}, nil},
		{store.ActivationFilter{Before: 99, Limit: 2}, []int64{3, 2}},
	} {
		list, err := s.ListPolicyActivations(ctx, c.f)
		var seqs []int64
		for _, a := range list {
			seqs = append(seqs, a.Seq)
		}
		if err != nil || !slices.Equal(seqs, c.want) {
			t.Errorf("ListPolicyActivations(%+v) = seqs %v, %v; want %v", c.f, seqs, err, c.want)
		}
	}

	// Back to the built-in bundle (revision ""), stamped with the time of
	// appending, seen inside the transaction that appends it.
	before := time.Now().Add(-time.Second)
	err = s.Update(ctx, func(tx store.Tx) error {
		a, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Action: store.PolicyRollback, Actor: "ops@example.com"})
		if err != nil {
			return err
		}
		if a.Seq != 4 || a.Revision != "" || a.Time.Before(before) || time.Since(a.Time) > time.Minute || a.Time.Location() != time.UTC {
			t.Errorf("activation of the built-in bundle = %+v; want seq 4 at the time of appending, in UTC", a)
		}
		active, err := tx.ActivePolicy(ctx)
		if err != nil || active.Seq != 4 {
			t.Errorf("ActivePolicy inside the appending transaction = %+v, %v; want seq 4", active, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("AppendPolicyActivation of the built-in bundle: %v", err)
	}

	// Refusals: an unknown bundle, an unknown action.
	err = s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: "r-missing", Action: store.PolicyActivate, Actor: "x"})
		return err
	})
	wantErr(t, "activation of a bundle that was never pushed", err, store.ErrNotFound)
	err = s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: "r1", Action: "enable", Actor: "x"})
		return err
	})
	if err == nil {
		t.Errorf("activation with action %q succeeded, want an error", "enable")
	}
	// A rolled-back activation leaves no trace and no gap.
	err = s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: "r2", Action: store.PolicyActivate, Actor: "x"}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if a := appendActivation(t, s, store.PolicyActivation{Revision: "r2", Action: store.PolicyActivate, Actor: "x"}); a.Seq != 5 {
		t.Errorf("activation after a rolled-back one has seq %d, want 5", a.Seq)
	}
	if list, err := s.ListPolicyActivations(ctx, store.ActivationFilter{Limit: 100}); err != nil || len(list) != 5 || list[0].Seq != 5 || list[4].Seq != 1 {
		t.Errorf("ListPolicyActivations = %+v, %v; want seqs 5 to 1", list, err)
	}
}

// testConcurrentPolicyActivations appends activations from concurrent
// transactions, some rolled back: the committed ones must carry distinct,
// gapless seqs 1..n, and the active policy is the last.
func testConcurrentPolicyActivations(t *testing.T, s store.Store) {
	const writers, appendsEach = 8, 12
	putBundle(t, s, sampleBundle("r1", t0))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[int64]string{}
	)
	for w := range writers {
		wg.Go(func() {
			ctx := ctxFor(t)
			for i := range appendsEach {
				rollback := i%4 == 3
				actor := fmt.Sprintf("writer-%d-%d", w, i)
				var got store.PolicyActivation
				err := s.Update(ctx, func(tx store.Tx) error {
					var err error
					if got, err = tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: "r1", Action: store.PolicyActivate, Actor: actor}); err != nil {
						return err
					}
					if rollback {
						return errBoom
					}
					return nil
				})
				switch {
				case rollback && !errors.Is(err, errBoom):
					t.Errorf("%s: rolled-back append returned %v", actor, err)
				case !rollback && err != nil:
					t.Errorf("%s: %v", actor, err)
				case !rollback:
					mu.Lock()
					if other, dup := seqs[got.Seq]; dup {
						t.Errorf("%s and %s were both given seq %d", other, actor, got.Seq)
					}
					seqs[got.Seq] = actor
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	n := len(seqs)
	if n != writers*appendsEach*3/4 {
		t.Fatalf("%d committed activations, want %d", n, writers*appendsEach*3/4)
	}
	list, err := s.ListPolicyActivations(ctxFor(t), store.ActivationFilter{Limit: 1000})
	if err != nil || len(list) != n {
		t.Fatalf("ListPolicyActivations = %d activations, %v; want %d", len(list), err, n)
	}
	for i, a := range list {
		if want := int64(n - i); a.Seq != want || seqs[a.Seq] != a.Actor {
			t.Fatalf("ListPolicyActivations[%d] = seq %d by %s; want seq %d by %s (no gaps, newest first)", i, a.Seq, a.Actor, want, seqs[want])
		}
	}
	if active, err := s.ActivePolicy(ctxFor(t)); err != nil || active.Seq != int64(n) {
		t.Errorf("ActivePolicy = %+v, %v; want seq %d", active, err, n)
	}
}

func sameWaiver(got, want store.Waiver) bool {
	return got.ID == want.ID && got.Team == want.Team && got.Loop == want.Loop && got.Rule == want.Rule &&
		got.Reason == want.Reason && got.GrantedBy == want.GrantedBy && got.RevokedBy == want.RevokedBy &&
		sameTime(got.Until, want.Until) && sameTime(got.GrantTime, want.GrantTime) && sameTime(got.RevokeTime, want.RevokeTime)
}

func assertWaivers(t *testing.T, what string, r store.Reader, f store.WaiverFilter, want []store.Waiver) {
	t.Helper()
	got, err := r.ListWaivers(ctxFor(t), f)
	if err != nil {
		t.Errorf("%s: ListWaivers(%+v): %v", what, f, err)
		return
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = sameWaiver(got[i], want[i])
	}
	if !ok {
		ids := func(ws []store.Waiver) (out []string) {
			for _, w := range ws {
				out = append(out, w.ID)
			}
			return out
		}
		t.Errorf("%s: ListWaivers(%+v) = %v, want %v\n got %+v\nwant %+v", what, f, ids(got), ids(want), got, want)
	}
}

// testWaivers: waivers round-trip, ids are unique, revocation keeps the
// first, and the filter selects by team, loop and activity exactly as
// store.Waiver.Active says.
func testWaivers(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	cet := time.FixedZone("CET", 3600)
	w := func(id, team, loop, rule string, granted time.Time, until time.Duration) store.Waiver {
		return store.Waiver{ID: id, Team: team, Loop: loop, Rule: rule, Until: granted.Add(until).In(cet),
			Reason: "migration to the new retention tiers", GrantedBy: "sec@example.com", GrantTime: granted.Add(321)}
	}
	ws := []store.Waiver{
		w("w-a", "growth", "checkout-nudge", "RETENTION_TOO_LONG", t0, 48*time.Hour),
		w("w-b", "growth", "checkout-nudge", "NO_FRESHNESS", t0.Add(time.Hour), 2*time.Hour),
		w("w-c", "growth", "checkout-nudge", "NO_FRESHNESS", t0, 24*time.Hour), // same rule, granted earlier
		w("w-d", "growth", "cart", "RETENTION_TOO_LONG", t0, 10*24*time.Hour),
		w("w-e", "risk", "checkout-nudge", "RETENTION_TOO_LONG", t0, 48*time.Hour),
		w("w-f", "growth", "cart", "PII_OUTSIDE_EU", t0, 30*24*time.Hour),
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, x := range ws {
			if err := tx.PutWaiver(ctx, x); err != nil {
				return err
			}
		}
		assertWaivers(t, "inside the writing transaction", tx, store.WaiverFilter{Team: "risk"}, ws[4:5])
		return nil
	})
	if err != nil {
		t.Fatalf("PutWaiver: %v", err)
	}
	// The id is taken; the refusal leaves the transaction usable.
	extra := w("w-g", "risk", "fraud", "NO_FRESHNESS", t0, time.Hour)
	err = s.Update(ctx, func(tx store.Tx) error {
		dup := w("w-a", "risk", "other", "X", t0, time.Hour)
		wantErr(t, "PutWaiver of a taken id", tx.PutWaiver(ctx, dup), store.ErrAlreadyExists)
		return tx.PutWaiver(ctx, extra)
	})
	if err != nil {
		t.Fatalf("Update with a refused PutWaiver: %v, want the transaction to commit", err)
	}
	ws = append(ws, extra)

	// Revocation: the first one is kept; a missing id is ErrNotFound.
	revokeAt := t0.Add(90*time.Minute + 77)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.RevokeWaiver(ctx, "w-d", "ops@example.com", revokeAt); err != nil {
			return err
		}
		if err := tx.RevokeWaiver(ctx, "w-d", "mallory@example.com", revokeAt.Add(time.Hour)); err != nil {
			return fmt.Errorf("revoking a revoked waiver: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("RevokeWaiver: %v", err)
	}
	ws[3].RevokedBy, ws[3].RevokeTime = "ops@example.com", revokeAt
	err = s.Update(ctx, func(tx store.Tx) error { return tx.RevokeWaiver(ctx, "w-missing", "ops@example.com", revokeAt) })
	wantErr(t, "RevokeWaiver of a missing waiver", err, store.ErrNotFound)

	byKey := func(sel func(store.Waiver) bool) []store.Waiver {
		var out []store.Waiver
		for _, x := range ws {
			if sel(x) {
				out = append(out, x)
			}
		}
		slices.SortFunc(out, func(a, b store.Waiver) int {
			return strings.Compare(a.Team+"\x00"+a.Loop+"\x00"+a.Rule, b.Team+"\x00"+b.Loop+"\x00"+b.Rule)*2 + a.GrantTime.Compare(b.GrantTime)
		})
		return out
	}
	all := byKey(func(store.Waiver) bool { return true })
	if ids := []string{all[0].ID, all[1].ID, all[2].ID, all[3].ID, all[4].ID}; !slices.Equal(ids, []string{"w-f", "w-d", "w-c", "w-b", "w-a"}) {
		t.Fatalf("test setup: expected order %v", ids) // (team, loop, rule, grant time)
	}
	assertWaivers(t, "no filter", s, store.WaiverFilter{}, all)
	assertWaivers(t, "team", s, store.WaiverFilter{Team: "growth"}, byKey(func(x store.Waiver) bool { return x.Team == "growth" }))
	assertWaivers(t, "team and loop", s, store.WaiverFilter{Team: "growth", Loop: "checkout-nudge"},
		byKey(func(x store.Waiver) bool { return x.Team == "growth" && x.Loop == "checkout-nudge" }))
	assertWaivers(t, "loop of any team", s, store.WaiverFilter{Loop: "checkout-nudge"},
		byKey(func(x store.Waiver) bool { return x.Loop == "checkout-nudge" }))
	assertWaivers(t, "unknown team", s, store.WaiverFilter{Team: "nobody"}, nil)
	for _, at := range []time.Time{
		t0.Add(30 * time.Minute),          // all granted, none expired (w-d revoked)
		t0.Add(3*time.Hour - time.Second), // w-b in its last second
		t0.Add(3 * time.Hour),             // w-b expires at its until
		t0.Add(47 * time.Hour),            // w-c expired
		t0.Add(100 * 24 * time.Hour),      // all expired
	} {
		for _, team := range []string{"", "growth"} {
			assertWaivers(t, fmt.Sprintf("active at %s, team %q", at.Format(time.RFC3339), team), s,
				store.WaiverFilter{Team: team, ActiveAt: at.In(cet)},
				byKey(func(x store.Waiver) bool { return x.Active(at) && (team == "" || x.Team == team) }))
		}
	}
}

// decisionResult is a result as admission records it.
func decisionResult(deny, warn, approval []string) json.RawMessage {
	list := func(ids []string) []map[string]string {
		out := []map[string]string{}
		for _, id := range ids {
			out = append(out, map[string]string{"id": id, "msg": "rule " + id + " says no", "field": "spec.retention"})
		}
		return out
	}
	b, _ := json.Marshal(map[string]any{"deny": list(deny), "warn": list(warn), "approval": list(approval)})
	return b
}

func putDecisions(t *testing.T, s store.Store, ds ...store.Decision) {
	t.Helper()
	err := s.Update(ctxFor(t), func(tx store.Tx) error {
		for _, d := range ds {
			if err := tx.PutDecision(ctxFor(t), d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PutDecision of %d decisions: %v", len(ds), err)
	}
}

func decisionIDs(ds []store.Decision) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func assertDecisionIDs(t *testing.T, what string, r store.Reader, f store.DecisionFilter, want ...string) {
	t.Helper()
	got, err := r.ListDecisions(ctxFor(t), f)
	if err != nil {
		t.Errorf("%s: ListDecisions(%+v): %v", what, f, err)
		return
	}
	if want == nil {
		want = []string{}
	}
	if ids := decisionIDs(got); !slices.Equal(ids, want) {
		t.Errorf("%s: ListDecisions(%+v) = %v, want %v", what, f, ids, want)
	}
}

// testDecisionLogFields: input, digest, duration and kind round-trip; the
// input is kept byte for byte (its digest verifies against it) unless it
// is over MaxDecisionInputBytes, when only the digest is kept.
func testDecisionLogFields(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	input := json.RawMessage(`{"operation": "CREATE",  "loop": {"metadata": {"team": "growth"}, "spec": {"retention": "30d"}},
	 "actor": {"subject": "ana@example.com", "roles": []}, "z": null, "a": 1.50}`)
	full := store.Decision{
		ID: "dec-full", Time: t0.Add(987654321).In(time.FixedZone("CET", 3600)), Resource: "teams/growth/loops/checkout-nudge",
		Operation: "CREATE", BundleRevision: "r7", Result: decisionResult([]string{"RETENTION_TOO_LONG"}, nil, nil),
		Input: input, InputDigest: hexSHA256(input), Duration: 1234567 * time.Nanosecond, Kind: "request",
	}
	noDigest := store.Decision{ID: "dec-nodigest", Time: t0.Add(time.Second), Resource: "teams/growth/loops/x", Operation: "UPDATE",
		Result: decisionResult(nil, nil, nil), Input: json.RawMessage(`{"x":1}`), Kind: "plan"}
	// The largest input kept, and one byte more.
	pad := func(n int) json.RawMessage {
		return json.RawMessage(`{"pad":"` + strings.Repeat("x", n-len(`{"pad":""}`)) + `"}`)
	}
	atMax, overMax := pad(store.MaxDecisionInputBytes), pad(store.MaxDecisionInputBytes+1)
	kept := store.Decision{ID: "dec-max", Time: t0.Add(2 * time.Second), Resource: "teams/growth/loops/x", Operation: "UPDATE",
		Result: decisionResult(nil, nil, nil), Input: atMax, Kind: "reevaluation", Duration: time.Millisecond}
	dropped := store.Decision{ID: "dec-big", Time: t0.Add(3 * time.Second), Resource: "teams/growth/loops/x", Operation: "UPDATE",
		Result: decisionResult(nil, nil, nil), Input: overMax, Kind: "impact", Duration: time.Second}
	bare := store.Decision{ID: "dec-bare", Time: t0.Add(4 * time.Second), Resource: "teams/growth/loops/x", Operation: "DELETE",
		Result: json.RawMessage(`{}`)}
	putDecisions(t, s, full, noDigest, kept, dropped, bare)

	check := func(id string, wantInput json.RawMessage, wantDigest string, wantDuration time.Duration, wantKind string, wantTime time.Time) {
		t.Helper()
		got, err := s.GetDecision(ctx, id)
		if err != nil {
			t.Errorf("GetDecision(%s): %v", id, err)
			return
		}
		if string(got.Input) != string(wantInput) {
			t.Errorf("GetDecision(%s).Input = %.200q (%d bytes), want %.200q (%d bytes) byte for byte", id, got.Input, len(got.Input), wantInput, len(wantInput))
		}
		if got.InputDigest != wantDigest || got.Duration != wantDuration || got.Kind != wantKind || !sameTime(got.Time, wantTime) {
			t.Errorf("GetDecision(%s) = digest %q duration %v kind %q time %v; want %q, %v, %q, %v",
				id, got.InputDigest, got.Duration, got.Kind, got.Time, wantDigest, wantDuration, wantKind, wantTime.UTC())
		}
		if got.Input != nil && hexSHA256(got.Input) != got.InputDigest {
			t.Errorf("GetDecision(%s): the stored input does not hash to its digest", id)
		}
	}
	check("dec-full", input, full.InputDigest, 1234*time.Microsecond, "request", full.Time)
	check("dec-nodigest", noDigest.Input, hexSHA256(noDigest.Input), 0, "plan", noDigest.Time)
	check("dec-max", atMax, hexSHA256(atMax), time.Millisecond, "reevaluation", kept.Time)
	check("dec-big", nil, hexSHA256(overMax), time.Second, "impact", dropped.Time)
	check("dec-bare", nil, "", 0, "", bare.Time)

	// A listing carries the same fields.
	list, err := s.ListDecisions(ctx, store.DecisionFilter{Resource: "teams/growth/loops/checkout-nudge"})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListDecisions by resource = %v, %v; want dec-full", decisionIDs(list), err)
	}
	if d := list[0]; d.ID != "dec-full" || string(d.Input) != string(input) || d.InputDigest != full.InputDigest ||
		d.Duration != 1234*time.Microsecond || d.Kind != "request" || d.BundleRevision != "r7" || d.Operation != "CREATE" ||
		!sameJSON(d.Result, full.Result) || !sameTime(d.Time, full.Time) {
		t.Errorf("ListDecisions[0] = %+v, want %+v", d, full)
	}
}

// testListDecisions: newest first; by resource; by rule exactly (not a
// prefix, not a pattern, only in deny, warn or approval); since; paging.
func testListDecisions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	d := func(id string, min int, resource string, result json.RawMessage) store.Decision {
		return store.Decision{ID: id, Time: at(min), Resource: resource, Operation: "UPDATE", BundleRevision: "r1", Result: result}
	}
	const nudge, cart = "teams/growth/loops/checkout-nudge", "teams/growth/loops/cart"
	ds := []store.Decision{
		d("dec-01", 1, nudge, decisionResult([]string{"RETENTION_TOO_LONG"}, nil, nil)),
		d("dec-02", 2, cart, decisionResult(nil, []string{"RETENTION"}, nil)),
		d("dec-03", 3, nudge, decisionResult([]string{"OWNERS_REQUIRED"}, nil, []string{"RETENTION"})),
		// Names RETENTION only where a rule id is not: in a message, a
		// field, and an "id" outside deny/warn/approval.
		d("dec-04", 4, cart, json.RawMessage(`{"deny":[{"id":"OWNERS_REQUIRED","msg":"see \"id\":\"RETENTION\"","field":"RETENTION"}],
			"warn":[],"approval":[],"meta":{"id":"RETENTION"},"waived":[{"id":"RETENTION"}]}`)),
		d("dec-05", 5, nudge, decisionResult([]string{"A_B"}, nil, nil)),
		d("dec-06", 6, nudge, decisionResult([]string{"AXB"}, nil, nil)),
		d("dec-07", 7, cart, decisionResult([]string{"100%_SURE"}, nil, nil)),
		// The same rule in two lists: listed once.
		d("dec-08", 8, nudge, decisionResult([]string{"RETENTION"}, []string{"RETENTION", "NO_FRESHNESS"}, nil)),
		d("dec-09", 9, cart, decisionResult(nil, nil, nil)),
		d("dec-10", 10, cart, json.RawMessage(`null`)),
		// Two decisions at the same time: by id, descending.
		d("dec-11a", 11, nudge, decisionResult(nil, []string{"NO_FRESHNESS"}, nil)),
		d("dec-11b", 11, nudge, decisionResult(nil, []string{"NO_FRESHNESS"}, nil)),
	}
	ds[8].Kind, ds[9].Kind, ds[6].Kind = "plan", "impact", "request" // the others have none: requests
	// Stored out of order: listings sort by time, not by insertion.
	shuffled := slices.Clone(ds)
	slices.Reverse(shuffled[3:9])
	putDecisions(t, s, shuffled...)
	newestFirst := decisionIDs(ds)
	slices.Reverse(newestFirst)

	assertDecisionIDs(t, "no filter", s, store.DecisionFilter{}, newestFirst...)
	assertDecisionIDs(t, "resource", s, store.DecisionFilter{Resource: cart}, "dec-10", "dec-09", "dec-07", "dec-04", "dec-02")
	assertDecisionIDs(t, "unknown resource", s, store.DecisionFilter{Resource: "teams/growth/loops/none"})
	assertDecisionIDs(t, "requests (a record without a kind is one)", s, store.DecisionFilter{Resource: cart, Kind: "request"}, "dec-07", "dec-04", "dec-02")
	assertDecisionIDs(t, "kind", s, store.DecisionFilter{Kind: "plan"}, "dec-09")
	assertDecisionIDs(t, "rule in deny, warn or approval", s, store.DecisionFilter{Rule: "RETENTION"}, "dec-08", "dec-03", "dec-02")
	assertDecisionIDs(t, "rule of which another is a prefix", s, store.DecisionFilter{Rule: "RETENTION_TOO_LONG"}, "dec-01")
	assertDecisionIDs(t, "prefix of a rule", s, store.DecisionFilter{Rule: "RETENTION_TOO"})
	assertDecisionIDs(t, "rule with a LIKE wildcard", s, store.DecisionFilter{Rule: "RETENTION%"})
	assertDecisionIDs(t, "rule with _ matches itself only", s, store.DecisionFilter{Rule: "A_B"}, "dec-05")
	assertDecisionIDs(t, "rule with % and _", s, store.DecisionFilter{Rule: "100%_SURE"}, "dec-07")
	assertDecisionIDs(t, "pattern that would match with LIKE", s, store.DecisionFilter{Rule: "100%"})
	assertDecisionIDs(t, "rule and resource", s, store.DecisionFilter{Rule: "RETENTION", Resource: nudge}, "dec-08", "dec-03")
	assertDecisionIDs(t, "rule only in warn", s, store.DecisionFilter{Rule: "NO_FRESHNESS"}, "dec-11b", "dec-11a", "dec-08")
	assertDecisionIDs(t, "since (inclusive)", s, store.DecisionFilter{Since: at(8).In(time.FixedZone("CET", 3600))},
		"dec-11b", "dec-11a", "dec-10", "dec-09", "dec-08")
	assertDecisionIDs(t, "since and resource", s, store.DecisionFilter{Since: at(8), Resource: cart}, "dec-10", "dec-09")
	assertDecisionIDs(t, "limit", s, store.DecisionFilter{Limit: 3}, "dec-11b", "dec-11a", "dec-10")

	// Paging: each page starts before the previous page's last decision.
	for _, f := range []store.DecisionFilter{{Limit: 5}, {Limit: 2, Resource: nudge}, {Limit: 1, Rule: "RETENTION"}, {Limit: 2, Since: at(5)}} {
		want, err := s.ListDecisions(ctx, store.DecisionFilter{Resource: f.Resource, Rule: f.Rule, Since: f.Since})
		if err != nil {
			t.Fatal(err)
		}
		var got []store.Decision
		for pages := 0; ; pages++ {
			page, err := s.ListDecisions(ctx, f)
			if err != nil {
				t.Fatalf("ListDecisions(%+v): %v", f, err)
			}
			if len(page) > f.Limit || pages > len(ds) {
				t.Fatalf("ListDecisions(%+v) = %d decisions (page %d)", f, len(page), pages)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			f.Before = page[len(page)-1].ID
		}
		if !slices.Equal(decisionIDs(got), decisionIDs(want)) {
			t.Errorf("paging %+v: %v, want %v", f, decisionIDs(got), decisionIDs(want))
		}
	}
	_, err := s.ListDecisions(ctx, store.DecisionFilter{Before: "dec-missing"})
	wantErr(t, "ListDecisions before an unknown decision", err, store.ErrNotFound)

	// Inside a transaction, its own decisions are listed.
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutDecision(ctx, d("dec-12", 12, nudge, decisionResult([]string{"RETENTION"}, nil, nil))); err != nil {
			return err
		}
		assertDecisionIDs(t, "inside the writing transaction", tx, store.DecisionFilter{Rule: "RETENTION", Limit: 2}, "dec-12", "dec-08")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testDecisionListLimit: Limit defaults to 100 and is capped at 1000.
func testDecisionListLimit(t *testing.T, s store.Store) {
	var ds []store.Decision
	for i := range store.MaxPageSize + 5 {
		ds = append(ds, store.Decision{ID: fmt.Sprintf("dec-%05d", i), Time: t0.Add(time.Duration(i) * time.Second),
			Resource: "teams/growth/loops/x", Operation: "UPDATE", Result: decisionResult(nil, []string{"NO_FRESHNESS"}, nil)})
	}
	putDecisions(t, s, ds...)
	for _, tc := range []struct {
		limit, want int
		rule        string
	}{{0, store.DefaultDecisionPageSize, ""}, {-1, store.DefaultDecisionPageSize, ""}, {7, 7, ""},
		{store.MaxPageSize + 1, store.MaxPageSize, ""}, {1 << 30, store.MaxPageSize, "NO_FRESHNESS"}} {
		got, err := s.ListDecisions(ctxFor(t), store.DecisionFilter{Limit: tc.limit, Rule: tc.rule})
		if err != nil || len(got) != tc.want || got[0].ID != ds[len(ds)-1].ID {
			t.Errorf("ListDecisions(limit %d) = %d decisions, %v; want the newest %d", tc.limit, len(got), err, tc.want)
		}
	}
}

// testPruneDecisions: decisions before the cutoff go, except the newest
// keep; the rule filter forgets pruned decisions.
func testPruneDecisions(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	var ds []store.Decision
	for i := range 10 {
		ds = append(ds, store.Decision{ID: fmt.Sprintf("dec-%02d", i), Time: t0.Add(time.Duration(i) * time.Hour),
			Resource: "teams/growth/loops/x", Operation: "UPDATE", Result: decisionResult([]string{"RETENTION"}, nil, nil)})
	}
	putDecisions(t, s, ds...)
	prune := func(cutoff time.Time, keep int) int64 {
		t.Helper()
		var n int64
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			n, err = tx.PruneDecisions(ctx, cutoff, keep)
			return err
		})
		if err != nil {
			t.Fatalf("PruneDecisions(%v, %d): %v", cutoff, keep, err)
		}
		return n
	}
	ids := func(from, to int) []string { // dec-to … dec-from, newest first
		var out []string
		for i := to; i >= from; i-- {
			out = append(out, fmt.Sprintf("dec-%02d", i))
		}
		return out
	}
	if n := prune(t0, 0); n != 0 {
		t.Errorf("prune before the first decision deleted %d", n)
	}
	// Cutoff at dec-03's time: dec-00..02 go (dec-03 is not before it).
	if n := prune(t0.Add(3*time.Hour), 0); n != 3 {
		t.Errorf("PruneDecisions(cutoff at the 4th, keep 0) = %d, want 3", n)
	}
	assertDecisionIDs(t, "after pruning 3", s, store.DecisionFilter{}, ids(3, 9)...)
	// Keep wins over the cutoff: all are before it, the newest 5 stay.
	if n := prune(t0.Add(100*time.Hour), 5); n != 2 {
		t.Errorf("PruneDecisions(cutoff after all, keep 5) = %d, want 2", n)
	}
	assertDecisionIDs(t, "after keeping 5", s, store.DecisionFilter{}, ids(5, 9)...)
	assertDecisionIDs(t, "rule filter after pruning", s, store.DecisionFilter{Rule: "RETENTION"}, ids(5, 9)...)
	// Keeping more than there are deletes nothing; so does a cutoff
	// before every decision left.
	if n := prune(t0.Add(100*time.Hour), 50); n != 0 {
		t.Errorf("PruneDecisions(keep 50 of 5) = %d, want 0", n)
	}
	if n := prune(t0.Add(7*time.Hour), 1); n != 2 {
		t.Errorf("PruneDecisions(cutoff at dec-07, keep 1) = %d, want 2 (dec-05, dec-06)", n)
	}
	assertDecisionIDs(t, "after the last prune", s, store.DecisionFilter{}, ids(7, 9)...)
	for _, id := range []string{"dec-00", "dec-06"} {
		_, err := s.GetDecision(ctx, id)
		wantErr(t, "GetDecision of a pruned decision", err, store.ErrNotFound)
	}
	// A pruned id may be recorded again, and is indexed again.
	putDecisions(t, s, ds[0])
	assertDecisionIDs(t, "rule filter after re-recording a pruned id", s, store.DecisionFilter{Rule: "RETENTION"}, "dec-09", "dec-08", "dec-07", "dec-00")
}

// testPolicyRollback: everything a failing Update wrote for policy
// governance disappears with it.
func testPolicyRollback(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	putBundle(t, s, sampleBundle("r0", t0))
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutWaiver(ctx, store.Waiver{ID: "w-kept", Team: "growth", Loop: "x", Rule: "R", Until: t0.Add(1000 * time.Hour)}); err != nil {
			return err
		}
		return tx.PutDecision(ctx, store.Decision{ID: "dec-kept", Time: t0, Resource: "teams/growth/loops/x", Operation: "UPDATE",
			Result: decisionResult([]string{"R"}, nil, nil)})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutPolicyBundle(ctx, sampleBundle("r1", t0)); err != nil {
			return err
		}
		if err := tx.AddPolicyApproval(ctx, "r0", store.PolicyApproval{Reviewer: "rev@example.com"}); err != nil {
			return err
		}
		if _, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: "r1", Action: store.PolicyActivate, Actor: "x"}); err != nil {
			return err
		}
		if err := tx.PutWaiver(ctx, store.Waiver{ID: "w-1", Team: "growth", Loop: "x", Rule: "R", Until: t0.Add(time.Hour)}); err != nil {
			return err
		}
		if err := tx.RevokeWaiver(ctx, "w-kept", "ops@example.com", time.Time{}); err != nil {
			return err
		}
		if err := tx.PutDecision(ctx, store.Decision{ID: "dec-1", Time: t0.Add(time.Hour), Resource: "teams/growth/loops/x", Operation: "UPDATE",
			Result: decisionResult([]string{"R"}, nil, nil), Input: json.RawMessage(`{}`), Kind: "request"}); err != nil {
			return err
		}
		if _, err := tx.PruneDecisions(ctx, t0.Add(time.Minute), 0); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	_, err = s.GetPolicyBundle(ctx, "r1")
	wantErr(t, "rolled-back bundle", err, store.ErrNotFound)
	if b, err := s.GetPolicyBundle(ctx, "r0"); err != nil || len(b.Approvals) != 2 {
		t.Errorf("r0 after a rolled-back approval: %+v, %v; want its 2 pushed approvals", b, err)
	}
	if list, err := s.ListPolicyBundles(ctx); err != nil || len(list) != 1 {
		t.Errorf("ListPolicyBundles after a rollback = %d bundles, %v; want r0 only", len(list), err)
	}
	_, err = s.ActivePolicy(ctx)
	wantErr(t, "ActivePolicy after a rolled-back activation", err, store.ErrNotFound)
	if list, err := s.ListPolicyActivations(ctx, store.ActivationFilter{}); err != nil || len(list) != 0 {
		t.Errorf("ListPolicyActivations after a rollback = %v, %v; want none", list, err)
	}
	if ws, err := s.ListWaivers(ctx, store.WaiverFilter{ActiveAt: t0}); err != nil || len(ws) != 1 || ws[0].ID != "w-kept" {
		t.Errorf("active waivers after a rollback = %+v, %v; want w-kept only, not revoked", ws, err)
	}
	_, err = s.GetDecision(ctx, "dec-1")
	wantErr(t, "rolled-back decision", err, store.ErrNotFound)
	assertDecisionIDs(t, "rule filter after a rollback", s, store.DecisionFilter{Rule: "R"}, "dec-kept")
	if a := appendActivation(t, s, store.PolicyActivation{Revision: "r0", Action: store.PolicyActivate, Actor: "x"}); a.Seq != 1 {
		t.Errorf("first activation after a rolled-back one has seq %d, want 1", a.Seq)
	}
}

// testWaiverPaging: ListWaivers pages by keyset (After, Limit) in the
// listing order, ties of team, loop, rule and grant time broken by id;
// waivers expiring or revoked between two pages neither skip nor repeat
// the others; Teams narrows to the teams a caller may see.
func testWaiverPaging(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	cet := time.FixedZone("CET", 3600)
	w := func(id, team, loop, rule string, granted time.Time, until time.Duration) store.Waiver {
		return store.Waiver{ID: id, Team: team, Loop: loop, Rule: rule, Until: granted.Add(until),
			Reason: "r", GrantedBy: "sec@example.com", GrantTime: granted.In(cet)}
	}
	// In listing order.
	ws := []store.Waiver{
		w("w-1", "growth", "cart", "A_RULE", t0, time.Hour),
		w("w-2", "growth", "cart", "A_RULE", t0.Add(time.Minute+456), 10*time.Hour),
		w("w-3a", "growth", "cart", "B_RULE", t0, 2*time.Hour), // same key but the id
		w("w-3b", "growth", "cart", "B_RULE", t0, 10*time.Hour),
		w("w-4", "growth", "nudge", "A_RULE", t0, 10*time.Hour),
		w("w-5", "ops", "lag", "A_RULE", t0, 10*time.Hour),
		w("w-6", "risk", "fraud", "A_RULE", t0, 3*time.Hour),
		w("w-7", "risk", "fraud", "C_RULE", t0, 10*time.Hour),
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, i := range []int{5, 2, 7, 0, 3, 6, 1, 4} { // not in order
			if err := tx.PutWaiver(ctx, ws[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PutWaiver: %v", err)
	}
	ids := func(list []store.Waiver) (out []string) {
		for _, x := range list {
			out = append(out, x.ID)
		}
		return out
	}
	page := func(f store.WaiverFilter) []store.Waiver {
		t.Helper()
		list, err := s.ListWaivers(ctx, f)
		if err != nil {
			t.Fatalf("ListWaivers(%+v): %v", f, err)
		}
		return list
	}
	// Every page size lists every waiver once, in order.
	for size := 1; size <= len(ws)+1; size++ {
		var got []string
		f := store.WaiverFilter{Limit: size}
		for range len(ws) + 2 {
			list := page(f)
			if len(list) > size {
				t.Fatalf("page of %d waivers with Limit %d", len(list), size)
			}
			got = append(got, ids(list)...)
			if len(list) < size {
				break
			}
			f.After = new(list[len(list)-1].Key())
		}
		if want := ids(ws); !slices.Equal(got, want) {
			t.Errorf("paging by %d: %v, want %v", size, got, want)
		}
	}

	// Active waivers, two a page, while time passes and a revocation
	// lands between the pages: each page lists the waivers active when it
	// is read, after the previous page's last one.
	f := store.WaiverFilter{ActiveAt: t0.Add(30 * time.Minute), Limit: 2}
	first := page(f)
	if got := ids(first); !slices.Equal(got, []string{"w-1", "w-2"}) {
		t.Fatalf("first page = %v, want w-1, w-2", got)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.RevokeWaiver(ctx, "w-4", "ops@example.com", t0.Add(40*time.Minute)) })
	if err != nil {
		t.Fatal(err)
	}
	// w-1 (on the first page) and w-3a (not yet listed) have expired.
	f.ActiveAt, f.After = t0.Add(150*time.Minute), new(first[1].Key())
	second := page(f)
	if got := ids(second); !slices.Equal(got, []string{"w-3b", "w-5"}) {
		t.Errorf("second page = %v, want w-3b, w-5 (w-3a expired, w-4 revoked)", got)
	}
	f.After = new(second[len(second)-1].Key())
	if got := ids(page(f)); !slices.Equal(got, []string{"w-6", "w-7"}) {
		t.Errorf("third page = %v, want w-6, w-7", got)
	}
	// A cursor whose waiver expired still places the next page.
	if got := ids(page(store.WaiverFilter{ActiveAt: t0.Add(150 * time.Minute), After: new(ws[0].Key()), Limit: 1})); !slices.Equal(got, []string{"w-2"}) {
		t.Errorf("page after an expired waiver = %v, want w-2", got)
	}

	// Teams.
	if got := ids(page(store.WaiverFilter{Teams: []string{"risk", "ops"}})); !slices.Equal(got, []string{"w-5", "w-6", "w-7"}) {
		t.Errorf("teams risk and ops = %v, want w-5, w-6, w-7", got)
	}
	if got := ids(page(store.WaiverFilter{Teams: []string{"risk", "ops"}, After: new(ws[5].Key()), Limit: 1})); !slices.Equal(got, []string{"w-6"}) {
		t.Errorf("teams risk and ops after w-5 = %v, want w-6", got)
	}
	if got := page(store.WaiverFilter{Teams: []string{}}); len(got) != 0 {
		t.Errorf("an empty team list = %v, want none", ids(got))
	}
	if got := ids(page(store.WaiverFilter{Team: "growth", Teams: []string{"growth", "risk"}, Loop: "cart"})); !slices.Equal(got, []string{"w-1", "w-2", "w-3a", "w-3b"}) {
		t.Errorf("team growth, loop cart = %v", got)
	}
}
