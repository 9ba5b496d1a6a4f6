// Package audit defines loopgate's tamper-evident audit trail: an
// append-only sequence of Events, each carrying the hash of the previous
// event and its own hash over a canonical encoding.
//
// Events are appended by the store in the same transaction as the change
// they record (store.Tx.AppendAudit), so a change without its event cannot
// exist. Verify recomputes the chain and names the first broken link.
//
// Start with Event, then Seal (how a store turns an event into the next
// link: Seq, PrevHash, Time, Hash) and Verifier (how a chain read back in
// Seq order is checked, one event at a time). ComputeHash documents the
// canonical encoding that the hashes cover. Bound keeps every event within
// the size limits (MaxDetailsBytes, MaxFieldBytes); stores apply it before
// Seal, so the hash covers the bounded event as stored.
package audit

import (
	"encoding/json"
	"time"
)

// Outcomes of an audited request.
const (
	OutcomeOK              = "OK"
	OutcomeDenied          = "DENIED"          // refused by policy
	OutcomeInvalid         = "INVALID"         // bad input
	OutcomeForbidden       = "FORBIDDEN"       // authenticated, not allowed
	OutcomeUnauthenticated = "UNAUTHENTICATED" // no or unknown credentials
	OutcomeFailed          = "FAILED"          // e.g. cluster refused an operation
	OutcomeRateLimited     = "RATE_LIMITED"    // refused by a rate limit
)

// Event is one audit record. Seq, PrevHash and Hash are assigned by the
// store when the event is appended; Time too when it is zero.
type Event struct {
	Seq        int64           `json:"seq"`
	ID         string          `json:"id"`
	Time       time.Time       `json:"time"`
	Actor      string          `json:"actor"`    // subject, or "loopgate/reconciler"
	Action     string          `json:"action"`   // e.g. loop.create, loop.provision
	Resource   string          `json:"resource"` // e.g. teams/growth/loops/checkout-nudge
	RequestID  string          `json:"requestId,omitempty"`
	DecisionID string          `json:"decisionId,omitempty"`
	Outcome    string          `json:"outcome"`
	Details    json.RawMessage `json:"details,omitempty"` // JSON object: violations, admin ops, ...
	PrevHash   string          `json:"prevHash"`
	Hash       string          `json:"hash"`
}

// VerifyResult is the outcome of recomputing the chain.
type VerifyResult struct {
	OK     bool  `json:"ok"`
	Events int64 `json:"events"` // events checked
	// FirstBroken is the first event whose hash or link does not verify.
	FirstBroken *BrokenLink `json:"firstBroken,omitempty"`
}

// BrokenLink names an event that fails verification and why.
type BrokenLink struct {
	Seq    int64  `json:"seq"`
	ID     string `json:"id"`
	Reason string `json:"reason"` // e.g. "hash mismatch", "prevHash does not match event 41"
}
