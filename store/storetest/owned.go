package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
)

func putOwned(t *testing.T, s store.Store, o *store.Owned) *store.Owned {
	t.Helper()
	ctx := ctxFor(t)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.CreateOwned(ctx, o) }); err != nil {
		t.Fatalf("CreateOwned %s %s: %v", o.Kind, o.Name, err)
	}
	return o
}

// A name belongs to one team: a second team's create of the same kind and
// name fails, whatever the team; the same name of another kind is free.
func testOwnedOneTeamPerName(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	created := time.Date(2026, 11, 30, 8, 0, 0, 123456789, time.UTC)
	o := putOwned(t, s, &store.Owned{Kind: store.KindPrincipal, Name: "checkout-api", Team: "growth",
		CreatedBy: "ana@example.com", Origin: store.OriginLoop, ClaimedBy: "teams/growth/loops/checkout-nudge", CreateTime: created})
	if o.Etag == "" {
		t.Fatalf("CreateOwned assigned no etag")
	}
	got, err := s.GetOwned(ctx, store.KindPrincipal, "checkout-api")
	if err != nil {
		t.Fatalf("GetOwned: %v", err)
	}
	if got.Team != "growth" || got.Etag != o.Etag || got.Origin != store.OriginLoop || got.ClaimedBy != o.ClaimedBy ||
		got.CreatedBy != "ana@example.com" || !got.CreateTime.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("GetOwned = %+v, want what was created (%+v)", got, o)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.CreateOwned(ctx, &store.Owned{Kind: store.KindPrincipal, Name: "checkout-api", Team: "risk", Origin: store.OriginExplicit})
	})
	wantErr(t, "another team creating a taken principal", err, store.ErrAlreadyExists)
	if got, _ := s.GetOwned(ctx, store.KindPrincipal, "checkout-api"); got == nil || got.Team != "growth" {
		t.Errorf("after a refused create the owner is %+v, want growth", got)
	}
	putOwned(t, s, &store.Owned{Kind: store.KindGroup, Name: "checkout-api", Team: "risk", Origin: store.OriginExplicit})
	_, err = s.GetOwned(ctx, store.KindGroup, "nope")
	wantErr(t, "GetOwned of a missing name", err, store.ErrNotFound)

	// A failing transaction leaves no claim behind.
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateOwned(ctx, &store.Owned{Kind: store.KindGroup, Name: "rolled-back", Team: "growth"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	_, err = s.GetOwned(ctx, store.KindGroup, "rolled-back")
	wantErr(t, "a claim of a rolled back transaction", err, store.ErrNotFound)
}

// Credential metadata is updated by compare-and-swap on the etag; delete
// checks the etag too.
func testOwnedEtag(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	o := putOwned(t, s, &store.Owned{Kind: store.KindPrincipal, Name: "nudge-engine", Team: "growth", Origin: store.OriginExplicit})
	first := o.Etag
	o.Credential = &store.Credential{Mechanism: "SCRAM-SHA-512", Clusters: []string{"eu-embedded"},
		IssueTime: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), IssuedBy: "ana@example.com"}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.UpdateOwned(ctx, o, first) }); err != nil {
		t.Fatalf("UpdateOwned: %v", err)
	}
	if o.Etag == first {
		t.Errorf("UpdateOwned kept etag %q", first)
	}
	got, err := s.GetOwned(ctx, store.KindPrincipal, "nudge-engine")
	if err != nil || got.Credential == nil || got.Credential.IssuedBy != "ana@example.com" || got.Credential.Clusters[0] != "eu-embedded" || got.Etag != o.Etag {
		t.Fatalf("GetOwned after UpdateOwned = %+v, %v", got, err)
	}
	stale := *got
	stale.Credential = nil
	err = s.Update(ctx, func(tx store.Tx) error { return tx.UpdateOwned(ctx, &stale, first) })
	wantErr(t, "UpdateOwned with a stale etag", err, store.ErrEtagMismatch)
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteOwned(ctx, store.KindPrincipal, "nudge-engine", first) })
	wantErr(t, "DeleteOwned with a stale etag", err, store.ErrEtagMismatch)
	err = s.Update(ctx, func(tx store.Tx) error { return tx.DeleteOwned(ctx, store.KindPrincipal, "missing", "") })
	wantErr(t, "DeleteOwned of a missing name", err, store.ErrNotFound)
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteOwned(ctx, store.KindPrincipal, "nudge-engine", o.Etag) }); err != nil {
		t.Fatalf("DeleteOwned: %v", err)
	}
	_, err = s.GetOwned(ctx, store.KindPrincipal, "nudge-engine")
	wantErr(t, "GetOwned after delete", err, store.ErrNotFound)
}

// ListOwned filters by kind and team and pages in name order.
func testOwnedList(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := range 7 {
		team := "growth"
		if i%2 == 1 {
			team = "risk"
		}
		putOwned(t, s, &store.Owned{Kind: store.KindPrincipal, Name: fmt.Sprintf("p-%02d", i), Team: team})
	}
	putOwned(t, s, &store.Owned{Kind: store.KindGroup, Name: "g-1", Team: "growth"})

	var names []string
	tok := ""
	for pages := 0; ; pages++ {
		page, next, err := s.ListOwned(ctx, store.OwnedFilter{Kind: store.KindPrincipal, Team: "growth", PageSize: 3, PageToken: tok})
		if err != nil {
			t.Fatalf("ListOwned: %v", err)
		}
		for _, o := range page {
			if o.Team != "growth" || o.Kind != store.KindPrincipal {
				t.Errorf("ListOwned(growth principals) returned %+v", o)
			}
			names = append(names, o.Name)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("ListOwned does not end")
		}
		tok = next
	}
	if fmt.Sprint(names) != "[p-00 p-02 p-04 p-06]" {
		t.Errorf("growth principals = %v, want [p-00 p-02 p-04 p-06]", names)
	}
	all, _, err := s.ListOwned(ctx, store.OwnedFilter{Kind: store.KindPrincipal})
	if err != nil || len(all) != 7 {
		t.Errorf("every principal: %d, %v; want 7", len(all), err)
	}
	_, _, err = s.ListOwned(ctx, store.OwnedFilter{Kind: store.KindPrincipal, Team: "risk", PageToken: tok})
	wantErr(t, "a page token of another filter", err, store.ErrInvalidPageToken)
}
