// Package store persists loopgate's state: loops (desired spec and observed
// status), policy decisions, idempotency records and the audit trail.
//
// Every change is made inside Store.Update, whose function runs in one
// database transaction: a loop write, its decision and its audit event
// commit together or not at all. Implementations live in store/sqlite (the
// embedded default) and store/postgres (production); both pass the contract
// suite in store/storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
)

// Errors returned by stores; check with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrEtagMismatch means the caller's etag is not the stored one: the
	// loop changed since the caller read it.
	ErrEtagMismatch = errors.New("etag mismatch")
)

// Decision is a recorded policy decision.
type Decision struct {
	ID             string          `json:"id"`
	Time           time.Time       `json:"time"`
	Resource       string          `json:"resource"`
	Operation      string          `json:"operation"`
	BundleRevision string          `json:"bundleRevision"`
	Result         json.RawMessage `json:"result"` // {"deny":[...],"warn":[...],"approval":[...]}
	// Input is the policy input evaluated, as JSON (at most
	// MaxDecisionInputBytes; larger inputs are not kept, InputDigest is),
	// so that the decision can be re-evaluated and explained. Decisions
	// recorded before inputs were kept have none.
	Input json.RawMessage `json:"input,omitempty"`
	// InputDigest is the hex SHA-256 of the input JSON.
	InputDigest string `json:"inputDigest,omitempty"`
	// Duration is how long the evaluation took.
	Duration time.Duration `json:"duration,omitempty"`
	// Kind is what asked: "request" (create, update, delete), "plan",
	// "reevaluation" (after a bundle change or a waiver's expiry) or
	// "impact"; "" for decisions recorded before kinds existed.
	Kind string `json:"kind,omitempty"`
}

// MaxDecisionInputBytes bounds the input kept with a decision.
const MaxDecisionInputBytes = 256 << 10

// Request is what a request id was first used for: who sent which request
// to change which resource. A retry carrying the same id must match all of
// it (subject, method and body hash) to be answered with the recorded
// resource; any other use of the id is refused. Records made before the
// binding existed have an empty Subject, Method and Hash: they cannot prove
// that a retry is the same request.
type Request struct {
	// ID is the client's request id (at most 128 bytes; callers validate it).
	ID string
	// Subject is who sent the request (the authenticated caller).
	Subject string
	// Method is the operation, e.g. "loop.create".
	Method string
	// Resource is what the request created or changed, e.g.
	// "teams/growth/loops/checkout-nudge".
	Resource string
	// Hash is the hex SHA-256 of the canonical request body.
	Hash string
	// Time is when the id was first recorded (UTC, to the microsecond);
	// PutRequest sets it to the current time when zero.
	Time time.Time
}

// ListOptions selects a page of loops, ordered by (team, name).
type ListOptions struct {
	Team      string // "" = all teams
	PageSize  int    // <= 0 means 50; capped at 1000
	PageToken string // from the previous page's NextPageToken
}

// AuditFilter selects audit events, ordered by Seq (ascending unless Newest).
type AuditFilter struct {
	Resource string // exact resource name, "" = any
	Actor    string
	Action   string
	// Team, when set, keeps the events about the team's resources: the
	// resource "teams/{Team}" and every resource under "teams/{Team}/".
	Team string
	// Since and Until, when not zero, keep events with Since <= Time <
	// Until.
	Since, Until time.Time
	AfterSeq     int64 // events with Seq > AfterSeq
	PageSize     int   // <= 0 means 100; capped at 1000
	// Newest lists by Seq descending (newest first); with BeforeSeq > 0
	// only events with Seq < BeforeSeq (the next page of such a listing).
	Newest    bool
	BeforeSeq int64
}

// Reader is the read side, usable outside transactions.
type Reader interface {
	GetLoop(ctx context.Context, team, name string) (*loop.Loop, error)
	ListLoops(ctx context.Context, opts ListOptions) (loops []*loop.Loop, nextPageToken string, err error)
	// TeamPartitions sums Status.Partitions over the team's loops that are
	// not being deleted, leaving out the loop named except. Policy checks
	// a team's partition budget with it on every write, so it is computed
	// in the database, without decoding loops.
	TeamPartitions(ctx context.Context, team, except string) (int64, error)
	// GetRequest returns what requestID was first used for, for safe
	// retries; found is false if the id was never recorded.
	GetRequest(ctx context.Context, requestID string) (r Request, found bool, err error)
	// Owned principals and consumer groups (owned.go).
	OwnedReader
	// Policy bundles, activations, waivers and the decision log (policy.go).
	PolicyReader
}

// Tx is the view of the store inside one transaction.
type Tx interface {
	Reader
	// CreateLoop inserts a new loop; ErrAlreadyExists if team/name exists.
	// The store assigns a fresh Etag (written back into l).
	CreateLoop(ctx context.Context, l *loop.Loop) error
	// UpdateLoop replaces metadata, spec and status if the stored etag
	// equals expectedEtag (ErrEtagMismatch otherwise, ErrNotFound if
	// missing) and assigns a fresh Etag (written back into l).
	UpdateLoop(ctx context.Context, l *loop.Loop, expectedEtag string) error
	// UpdateStatus replaces only the status; the etag does not change
	// (the etag covers the desired state: metadata and spec).
	UpdateStatus(ctx context.Context, team, name string, status loop.Status) error
	// DeleteLoop removes the loop row for good (after deprovisioning).
	DeleteLoop(ctx context.Context, team, name string) error

	PutDecision(ctx context.Context, d Decision) error

	// AppendAudit appends ev to the chain: it bounds ev to the audit size
	// limits (audit.Bound: oversized details are replaced by a summary
	// with the original's length and SHA-256, long strings are clipped),
	// then assigns Seq (last+1), Time (if zero), PrevHash (the last
	// event's hash) and Hash over the bounded event, and returns the
	// stored event. Concurrent appends never fork or gap the chain.
	AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error)

	// PutRequest records what r.ID is used for. The first record of an id
	// is kept: ErrAlreadyExists if r.ID is already recorded (nothing is
	// overwritten, and the transaction stays usable).
	PutRequest(ctx context.Context, r Request) error

	OwnedWriter
	// Pushing, approving and activating bundles; waivers; pruning the
	// decision log (policy.go).
	PolicyWriter
}

// Store is a loopgate state store.
type Store interface {
	Reader
	// Observations keeps what loopgate observes of running loops (SLO, lag).
	Observations
	// Update runs fn in one transaction; an error from fn rolls back all of
	// it. Implementations serialise writers so that etag checks and audit
	// appends are race free.
	Update(ctx context.Context, fn func(tx Tx) error) error

	GetDecision(ctx context.Context, id string) (*Decision, error)
	// ListAudit returns the matching events exactly as stored (events
	// stored before the audit size limits may exceed them; readers that
	// must fit a message bound them for display, see audit.Bound).
	ListAudit(ctx context.Context, f AuditFilter) ([]audit.Event, error)
	// VerifyAudit recomputes the whole chain in Seq order.
	VerifyAudit(ctx context.Context) (audit.VerifyResult, error)
	Close() error
}

// Elector is implemented by stores that several loopgate processes share
// (PostgreSQL). Exactly one process at a time runs the reconciler: Lead
// blocks until this process holds the lease (or ctx ends) and returns a
// context that is cancelled if the lease is lost. Stores without Elector
// (SQLite) belong to one process, which always leads.
type Elector interface {
	Lead(ctx context.Context) (context.Context, error)
}

// Notifier is implemented by stores that several processes share: a write
// in one process wakes the reconciler in whichever process leads.
type Notifier interface {
	// Publish announces that the loop "team/name" changed.
	Publish(ctx context.Context, key string) error
	// Subscribe calls fn with every published key until ctx ends.
	Subscribe(ctx context.Context, fn func(key string)) error
}
