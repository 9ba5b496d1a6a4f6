package audit_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/audit"
)

// A store seals each appended event onto the previous one; Verify names
// the first event that no longer matches.
func Example() {
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	first, _ := audit.Seal(audit.Event{Actor: "ana@example.com", Action: "loop.create",
		Resource: "teams/growth/loops/checkout-nudge", Outcome: audit.OutcomeOK}, 1, audit.GenesisHash, now)
	second, _ := audit.Seal(audit.Event{Actor: "loopgate/reconciler", Action: "loop.provision",
		Resource: "teams/growth/loops/checkout-nudge", Outcome: audit.OutcomeOK,
		Details: json.RawMessage(`{"topics":["growth.checkout-nudge.events"]}`)}, 2, first.Hash, now)

	fmt.Println(audit.Verify([]audit.Event{first, second}).OK)

	first.Actor = "mallory@example.com"
	res := audit.Verify([]audit.Event{first, second})
	fmt.Println(res.OK, res.FirstBroken.Seq)
	// Output:
	// true
	// false 1
}
