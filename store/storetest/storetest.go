// Package storetest is the contract suite that every store.Store
// implementation must pass: call Run from the implementation's tests with a
// function that returns a fresh, empty store.
//
// The suite only uses the store.Store interface, so it runs unchanged
// against SQLite, PostgreSQL or any future backend. The one thing it
// cannot do through that interface — change stored audit rows behind the
// store's back, as an attacker with database access would — is delegated to
// the backend through Options.Tamper.
package storetest

import (
	"testing"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

// Tampering is a change Options.Tamper makes to one stored audit event.
type Tampering int

// The tamperings the suite asks for.
const (
	// ChangeActor sets the event's actor column to "mallory@example.com".
	ChangeActor Tampering = iota + 1
	// ChangeDetails sets the event's details column to {"tampered":true}.
	ChangeDetails
	// DeleteEvent deletes the event's row.
	DeleteEvent
)

func (k Tampering) String() string {
	switch k {
	case ChangeActor:
		return "change actor of"
	case ChangeDetails:
		return "change details of"
	case DeleteEvent:
		return "delete"
	}
	return "unknown tampering"
}

// Options are the backend-specific hooks of the suite.
type Options struct {
	// Tamper applies how to the stored audit event with Seq seq of s,
	// directly in the database (not through the store's API), and fails t
	// if it cannot. The tamper-evidence tests are skipped when nil.
	Tamper func(t *testing.T, s store.Store, seq int64, how Tampering)
	// WriteLegacyAudit writes the already sealed event ev to s directly
	// in the database (not through AppendAudit, so not bounded by
	// audit.Bound), as the next link of the chain — an event as a
	// loopgate before the audit size limits stored it — and moves the
	// chain head to it; it fails t if it cannot. The legacy-event tests
	// are skipped when nil.
	WriteLegacyAudit func(t *testing.T, s store.Store, ev audit.Event)
}

// Run runs the contract suite. newStore must return a fresh, empty store
// and arrange (with t.Cleanup) for it to be closed; it is called once per
// subtest. At most one Options value is used.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"ListPagesThroughEveryLoopInOrder", testListPaging},
		{"ListPageSizeDefaultAndCap", testListPageSize},
		{"ListRejectsForeignPageTokens", testListBadTokens},
		{"TxSeesItsOwnWrites", testTxSeesOwnWrites},
		{"UpdateIsCompareAndSwapOnEtag", testEtagCAS},
		{"UpdateStatusKeepsEtag", testUpdateStatus},
		{"Delete", testDelete},
		{"TeamPartitionsSumsLiveLoops", testTeamPartitions},
		{"FailingUpdateRollsBackLoopAndAudit", testRollback},
		{"PanickingUpdateRollsBack", testPanicRollback},
		{"AuditAppendAssignsChainFields", testAuditAppend},
		{"AuditListFilters", testAuditFilters},
		{"AuditRejectsInvalidDetails", testAuditInvalidDetails},
		{"AuditAppendBoundsOversizedEvents", testAuditAppendBounds},
		{"Decisions", testDecisions},
		{"RequestRecordRoundTrips", testRequestRoundTrip},
		{"RequestIdIsBoundOnce", testRequestBoundOnce},
		{"RolledBackRequestLeavesNoRecord", testRequestRollback},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"ConcurrentAuditAppendsNeverFork", testConcurrentAudit},
		{"OwnedNameBelongsToOneTeam", testOwnedOneTeamPerName},
		{"OwnedUpdateAndDeleteCheckEtag", testOwnedEtag},
		{"OwnedListFiltersAndPages", testOwnedList},
		{"PolicyBundlesRoundTrip", testPolicyBundles},
		{"PolicyActivationsAppendInOrder", testPolicyActivations},
		{"ConcurrentPolicyActivationsNeverGap", testConcurrentPolicyActivations},
		{"WaiversFilterByTeamLoopAndActivity", testWaivers},
		{"WaiversPageByKeyset", testWaiverPaging},
		{"DecisionLogKeepsInputDigestDurationKind", testDecisionLogFields},
		{"ListDecisionsFiltersAndPages", testListDecisions},
		{"ListDecisionsLimitDefaultAndCap", testDecisionListLimit},
		{"PruneDecisionsKeepsNewest", testPruneDecisions},
		{"FailingUpdateRollsBackPolicyGovernance", testPolicyRollback},
		{"ObservationsBelongToTheirLoop", testObservations},
		{"DailySketchesRoundTripAndPrune", testDailySketches},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
	t.Run("TamperedAuditIsNamed", func(t *testing.T) {
		if o.Tamper == nil {
			t.Skip("backend gave no Options.Tamper hook")
		}
		testTamper(t, newStore, o.Tamper)
	})
	t.Run("LegacyOversizedAuditEventVerifies", func(t *testing.T) {
		if o.WriteLegacyAudit == nil {
			t.Skip("backend gave no Options.WriteLegacyAudit hook")
		}
		testLegacyOversizedAudit(t, newStore(t), o.WriteLegacyAudit)
	})
}
