package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
)

// Open a store, then change state and record the change in one
// transaction. (Not run: it needs a server.)
func Example() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("LOOPGATE_POSTGRES_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	err = s.Update(ctx, func(tx store.Tx) error {
		l, err := tx.GetLoop(ctx, "growth", "checkout-nudge")
		if err != nil {
			return err
		}
		l.Metadata.Labels = map[string]string{"domain": "checkout"}
		if err := tx.UpdateLoop(ctx, l, l.Metadata.Etag); err != nil {
			return err // store.ErrEtagMismatch if it changed since read
		}
		_, err = tx.AppendAudit(ctx, audit.Event{Actor: "ana@example.com", Action: "loop.update",
			Resource: l.Metadata.ResourceName(), Outcome: audit.OutcomeOK})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.VerifyAudit(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("audit chain intact:", res.OK)
}
