package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
)

// sampleRequest is a request record as the API writes it: who sent which
// request body to change which resource.
func sampleRequest(id string) store.Request {
	return store.Request{
		ID:       id,
		Subject:  "ana@example.com",
		Method:   "loop.create",
		Resource: "teams/growth/loops/checkout-nudge",
		Hash:     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		// Not UTC and finer than a microsecond: read back in UTC, to the µs.
		Time: time.Date(2026, 11, 3, 11, 0, 0, 123456789, time.FixedZone("CET", 3600)),
	}
}

// assertRequest checks that s records r, with the time in UTC to the µs.
func assertRequest(t *testing.T, what string, s store.Reader, want store.Request) {
	t.Helper()
	got, found, err := s.GetRequest(ctxFor(t), want.ID)
	if err != nil || !found {
		t.Errorf("%s: GetRequest(%s): found=%v err=%v, want the record", what, want.ID, found, err)
		return
	}
	if !sameRequest(got, want) {
		t.Errorf("%s: GetRequest(%s) = %+v, want %+v", what, want.ID, got, want)
	}
}

func sameRequest(got, want store.Request) bool {
	return got.ID == want.ID && got.Subject == want.Subject && got.Method == want.Method &&
		got.Resource == want.Resource && got.Hash == want.Hash &&
		got.Time.Equal(want.Time.Truncate(time.Microsecond)) && got.Time.Location() == time.UTC
}

// assertNoRequest checks that s has no record of id.
func assertNoRequest(t *testing.T, what string, s store.Reader, id string) {
	t.Helper()
	got, found, err := s.GetRequest(ctxFor(t), id)
	if err != nil || found || got != (store.Request{}) {
		t.Errorf("%s: GetRequest(%s) = %+v found=%v err=%v, want not found", what, id, got, found, err)
	}
}

// testRequestRoundTrip: every field of a request record reads back, inside
// the writing transaction, in a later one and outside any (what the API
// checks first).
func testRequestRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	r := sampleRequest("req-1")
	err := s.Update(ctx, func(tx store.Tx) error {
		assertNoRequest(t, "before PutRequest", tx, "req-1")
		if err := tx.PutRequest(ctx, r); err != nil {
			return err
		}
		assertRequest(t, "inside the writing transaction", tx, r)
		return nil
	})
	if err != nil {
		t.Fatalf("PutRequest: %v", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		assertRequest(t, "in a later transaction", tx, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertRequest(t, "outside transactions", s, r)
	assertNoRequest(t, "unknown id", s, "req-unknown")

	// Without a time, the store records the time of writing.
	before := time.Now().Add(-time.Second)
	untimed := store.Request{ID: "req-2", Subject: "bo@example.com", Method: "loop.delete",
		Resource: "teams/growth/loops/x", Hash: "00ff"}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, untimed) }); err != nil {
		t.Fatalf("PutRequest without time: %v", err)
	}
	got, found, err := s.GetRequest(ctx, "req-2")
	if err != nil || !found || got.Time.Before(before) || time.Since(got.Time) > time.Minute || got.Time.Location() != time.UTC {
		t.Errorf("request stored without time: %+v found=%v err=%v; want the time of storing, in UTC", got, found, err)
	}
	untimed.Time = got.Time
	if !sameRequest(got, untimed) {
		t.Errorf("GetRequest(req-2) = %+v, want %+v", got, untimed)
	}

	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, store.Request{Subject: "ana@example.com"}) })
	if err == nil || errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("PutRequest without an id: %v, want a validation error", err)
	}
	assertNoRequest(t, "empty id", s, "")
}

// testRequestBoundOnce: an id is bound to its first use. A second
// PutRequest of it — in the same transaction or after the first committed,
// with the same or another binding — is ErrAlreadyExists and changes
// nothing; the failed put leaves the transaction usable.
func testRequestBoundOnce(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	first := sampleRequest("req-1")
	other := store.Request{ID: "req-1", Subject: "mallory@example.com", Method: "loop.delete",
		Resource: "teams/risk/loops/other", Hash: "deadbeef", Time: first.Time.Add(time.Hour)}
	next := sampleRequest("req-2")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutRequest(ctx, first); err != nil {
			return err
		}
		wantErr(t, "second PutRequest of an id in the same transaction", tx.PutRequest(ctx, other), store.ErrAlreadyExists)
		wantErr(t, "identical PutRequest in the same transaction", tx.PutRequest(ctx, first), store.ErrAlreadyExists)
		assertRequest(t, "after a refused put, in the transaction", tx, first)
		// The transaction goes on: later writes in it commit.
		return tx.PutRequest(ctx, next)
	})
	if err != nil {
		t.Fatalf("Update with a refused PutRequest: %v, want the transaction to commit", err)
	}
	assertRequest(t, "first binding after commit", s, first)
	assertRequest(t, "write after the refused put", s, next)

	// After the commit, another use of the id is refused, whoever sends it.
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, other) })
	wantErr(t, "PutRequest of a committed id with another binding", err, store.ErrAlreadyExists)
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, first) })
	wantErr(t, "PutRequest of a committed id with the same binding", err, store.ErrAlreadyExists)
	assertRequest(t, "first binding after refused puts", s, first)
}

// testRequestRollback: a request recorded by a failing Update is gone, and
// its id is free to be used again.
func testRequestRollback(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	r := sampleRequest("req-1")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutRequest(ctx, r); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	assertNoRequest(t, "after rollback", s, "req-1")
	err = s.Update(ctx, func(tx store.Tx) error {
		assertNoRequest(t, "after rollback, in a transaction", tx, "req-1")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	again := r
	again.Subject, again.Hash = "bo@example.com", "00ff"
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutRequest(ctx, again) }); err != nil {
		t.Fatalf("PutRequest of a rolled-back id: %v, want it free", err)
	}
	assertRequest(t, "id reused after rollback", s, again)
}
