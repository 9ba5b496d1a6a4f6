package sqlite_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// A loop and the audit event that records its creation commit together.
func Example() {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.MemoryPath) // or a file such as data/loopgate.db
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	l := &loop.Loop{Metadata: loop.Metadata{Team: "growth", Name: "checkout-nudge"}}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateLoop(ctx, l); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Event{Actor: "ana@example.com", Action: "loop.create",
			Resource: l.Metadata.ResourceName(), Outcome: audit.OutcomeOK})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	got, _ := s.GetLoop(ctx, "growth", "checkout-nudge")
	fmt.Println(got.Metadata.Key(), got.Metadata.Generation, got.Metadata.Etag == l.Metadata.Etag)
	res, _ := s.VerifyAudit(ctx)
	fmt.Println(res.OK, res.Events)
	// Output:
	// growth/checkout-nudge 1 true
	// true 1
}
