package admission

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// createBefore creates a loop of its own (another request, winning a race)
// right before the next write transaction begins.
type createBefore struct {
	store.Store
	loop *loop.Loop
}

func (s *createBefore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if l := s.loop; l != nil {
		s.loop = nil
		if err := s.Store.Update(ctx, func(tx store.Tx) error { return tx.CreateLoop(ctx, l) }); err != nil {
			return err
		}
	}
	return s.Store.Update(ctx, fn)
}

func namedLoop(name string) *loop.Loop {
	l := racyLoop("3d")
	l.Metadata.Name = name
	return l
}

// A conflict inside an atomic batch's transaction (a loop created by
// another request since the batch read it) aborts the whole batch: the
// items written before it in the transaction are rolled back with it, and
// the error names the item.
func TestAtomicBatchConflictInTheTransactionPersistsNothing(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	racer := racyLoop("2d")
	racer.Metadata.Name = "second"
	racer.Metadata.UID, racer.Metadata.Generation = "racer", 1
	st := &createBefore{Store: base, loop: racer}
	c := testCore(t, st)
	admin := Identity{Subject: "admin@example.com", Roles: []string{RoleAdmin}}

	items := []BatchItem{{Loop: namedLoop("first")}, {Loop: namedLoop("second")}}
	_, err = c.BatchApply(ctx, admin, items, BatchOptions{Atomic: true, RequestID: "batch-1"})
	var atomic *AtomicError
	if !errors.As(err, &atomic) || len(atomic.Failed) != 1 || atomic.Failed[0].Index != 1 || !errors.Is(atomic.Failed[0].Err, store.ErrAlreadyExists) {
		t.Fatalf("atomic batch racing a create: %v, want an AtomicError naming loops[1] (already exists)", err)
	}
	if !strings.Contains(err.Error(), "loops[1] (teams/growth/loops/second)") {
		t.Errorf("the error does not name the item: %v", err)
	}
	if _, err := base.GetLoop(ctx, "growth", "first"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the first item was persisted: %v", err)
	}
	for _, id := range []string{"batch-1", "batch-1#0"} {
		if _, found, _ := base.GetRequest(ctx, id); found {
			t.Errorf("request id %s was recorded", id)
		}
	}
	if _, err := base.GetOwned(ctx, store.KindGroup, "g"); err == nil {
		// The racer wrote its loop directly, claiming nothing: a claim of
		// g can only come from the rolled-back batch.
		t.Error("the rolled-back batch claimed group g")
	}

	// Applied again, the batch updates the loop the other request created.
	res, err := c.BatchApply(ctx, admin, items, BatchOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Operation != OpCreated || res[1].Operation != OpUpdated {
		t.Errorf("operations %s, %s; want CREATED, UPDATED", res[0].Operation, res[1].Operation)
	}
}

// An item's request id fits any request id's bound, whatever the batch's.
func TestItemRequestID(t *testing.T) {
	if got := itemRequestID("abc", 7); got != "abc#7" {
		t.Errorf("itemRequestID(abc, 7) = %q", got)
	}
	long := strings.Repeat("x", maxRequestIDBytes)
	a, b := itemRequestID(long, 999), itemRequestID(long+"y", 999)
	if len(a) > maxRequestIDBytes || a == b || !strings.HasSuffix(a, "#999") {
		t.Errorf("long ids: %q, %q", a, b)
	}
	if itemRequestID("", 3) != "" {
		t.Error("no batch id, yet an item id")
	}
}
