package admission

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// slowStore counts transactions and makes each one slow, so that requests
// arriving meanwhile queue up behind it as they do under load.
type slowStore struct {
	store.Store
	txs atomic.Int64
}

func (s *slowStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	s.txs.Add(1)
	time.Sleep(5 * time.Millisecond)
	return s.Store.Update(ctx, fn)
}

// Concurrent admissions share transactions, yet each request gets its own
// outcome: the one whose name is taken fails alone, every other loop and
// its audit event is stored, and the chain verifies.
func TestGroupCommitSharesTransactionsNotOutcomes(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	slow := &slowStore{Store: base}
	c := testCore(t, slow)
	admin := Identity{Subject: "admin@example.com", Roles: []string{RoleAdmin}}

	if _, err := c.Create(ctx, admin, racyLoop("3d"), WriteOptions{}); err != nil { // "racy" is taken
		t.Fatal(err)
	}
	slow.txs.Store(0)
	const n = 40
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := racyLoop("3d")
			if i < n {
				l.Metadata.Name = fmt.Sprintf("batched-%02d", i)
			}
			_, errs[i] = c.Create(ctx, admin, l, WriteOptions{RequestID: fmt.Sprintf("req-%d", i)})
		}()
	}
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("create batched-%02d: %v", i, err)
		}
	}
	if !errors.Is(errs[n], store.ErrAlreadyExists) {
		t.Errorf("create of the taken name: %v, want ErrAlreadyExists", errs[n])
	}
	loops, _, err := base.ListLoops(ctx, store.ListOptions{Team: "growth", PageSize: 1000})
	if err != nil || len(loops) != n+1 {
		t.Fatalf("stored loops = %d, %v; want %d", len(loops), err, n+1)
	}
	events, _ := base.ListAudit(ctx, store.AuditFilter{Action: "loop.create", PageSize: 1000})
	if len(events) != n+1 {
		t.Errorf("loop.create audit events = %d, want %d (one per created loop)", len(events), n+1)
	}
	if res, err := base.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
	}
	// Requests that queued behind a slow transaction shared later ones (the
	// failing one costs a rollback and a retry of its batch).
	if txs := slow.txs.Load(); txs >= n/2 {
		t.Errorf("%d transactions for %d admissions: too little was shared", txs, n+1)
	} else {
		t.Logf("%d transactions for %d admissions", txs, n+1)
	}
}
