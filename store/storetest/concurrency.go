package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

// testConcurrentUpdates runs writers that each make 50 read-modify-write
// updates of the same loop, retrying on etag mismatch, each update with
// its audit event. No update may be lost: the final generation counts
// every successful update, and there is exactly one event per update.
func testConcurrentUpdates(t *testing.T, s store.Store) {
	const writers, updatesEach = 8, 50
	create(t, s, newLoop("growth", "hot-loop"))
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
	)
	for w := range writers {
		wg.Go(func() {
			ctx := ctxFor(t)
			for i := 0; i < updatesEach; {
				l, err := s.GetLoop(ctx, "growth", "hot-loop")
				if err != nil {
					t.Errorf("writer %d: GetLoop: %v", w, err)
					return
				}
				etag := l.Metadata.Etag
				l.Metadata.Generation++
				l.Spec.Description = fmt.Sprintf("writer %d update %d", w, i)
				err = s.Update(ctx, func(tx store.Tx) error {
					if err := tx.UpdateLoop(ctx, l, etag); err != nil {
						return err
					}
					_, err := tx.AppendAudit(ctx, audit.Event{Actor: fmt.Sprintf("writer-%d", w), Action: "loop.update",
						Resource: l.Metadata.ResourceName(), Outcome: audit.OutcomeOK})
					return err
				})
				switch {
				case errors.Is(err, store.ErrEtagMismatch):
					mu.Lock()
					conflicts++
					tooMany := conflicts > 100*writers*updatesEach
					mu.Unlock()
					if tooMany {
						t.Errorf("writer %d: no progress after %d conflicts", w, conflicts)
						return
					}
				case err != nil:
					t.Errorf("writer %d: Update: %v", w, err)
					return
				default:
					i++
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := mustGet(t, s, "growth", "hot-loop")
	if want := int64(1 + writers*updatesEach); got.Metadata.Generation != want {
		t.Errorf("final generation %d, want %d: updates were lost", got.Metadata.Generation, want)
	}
	res := mustVerify(t, s)
	if !res.OK || res.Events != writers*updatesEach {
		t.Errorf("VerifyAudit = %+v, want an intact chain of %d events (one per update)", res, writers*updatesEach)
	}
	t.Logf("%d updates, %d etag conflicts retried", writers*updatesEach, conflicts)
}

// testConcurrentAudit appends from many goroutines at once: the chain must
// come out contiguous, linked and verifiable, with no event lost.
func testConcurrentAudit(t *testing.T, s store.Store) {
	const writers, appendsEach = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			ctx := ctxFor(t)
			for i := range appendsEach {
				err := s.Update(ctx, func(tx store.Tx) error {
					_, err := tx.AppendAudit(ctx, event(fmt.Sprintf("writer-%d", w), "loop.update", "teams/growth/loops/x", i))
					return err
				})
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	res := mustVerify(t, s)
	if !res.OK || res.Events != writers*appendsEach {
		t.Fatalf("VerifyAudit = %+v, want an intact chain of %d events", res, writers*appendsEach)
	}
	perWriter := map[string]int{}
	var after int64
	for {
		evs, err := s.ListAudit(ctxFor(t), store.AuditFilter{AfterSeq: after, PageSize: 64})
		if err != nil {
			t.Fatalf("ListAudit: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Seq != after+1 {
				t.Fatalf("seq %d follows %d", ev.Seq, after)
			}
			after = ev.Seq
			perWriter[ev.Actor]++
		}
	}
	for w := range writers {
		if n := perWriter[fmt.Sprintf("writer-%d", w)]; n != appendsEach {
			t.Errorf("writer-%d has %d events in the chain, want %d", w, n, appendsEach)
		}
	}
}
