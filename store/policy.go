package store

import (
	"context"
	"encoding/json"
	"time"
)

// Policy bundles, their activations, waivers and the decision log: what
// security reviewers govern (see docs/policy.md).
//
// A bundle is pushed as a candidate (PutPolicyBundle) with the results of
// its own tests; reviewers approve it (AddPolicyApproval); activating it or
// rolling back appends an activation (AppendPolicyActivation). The active
// revision is the one of the latest activation; with none, the bundle
// built into the binary is active (revision zero, not stored).

// MaxPolicyArchiveBytes bounds a stored bundle archive (a gzipped tarball).
const MaxPolicyArchiveBytes = 8 << 20

// PolicyBundle is an uploaded policy bundle.
type PolicyBundle struct {
	// Revision is the bundle's .manifest revision; unique in the store.
	Revision string
	// Digest is the hex SHA-256 of Archive.
	Digest string
	// Archive is the bundle as pushed, normalised to a gzipped tarball in
	// OPA's bundle format (at most MaxPolicyArchiveBytes). ListPolicyBundles
	// leaves it nil; GetPolicyBundle fills it.
	Archive []byte
	// Manifest is the bundle's .manifest as JSON.
	Manifest json.RawMessage
	// Files lists the bundle's file paths (sorted).
	Files []string
	// Signed names the key id that signed the bundle ("" if unsigned).
	Signed string
	// Tests are the bundle's own test results, as JSON (see policy.TestResult).
	Tests    json.RawMessage
	PushedBy string
	PushTime time.Time // set by PutPolicyBundle when zero (UTC, microseconds)
	// Approvals are the reviews that approve the bundle, in order.
	Approvals []PolicyApproval
}

// PolicyApproval is one reviewer's approval of a bundle.
type PolicyApproval struct {
	Reviewer string    `json:"reviewer"`
	Time     time.Time `json:"time"`
	Comment  string    `json:"comment,omitempty"`
}

// Policy activation actions.
const (
	PolicyActivate = "activate"
	PolicyRollback = "rollback"
)

// PolicyActivation is one change of the active bundle.
type PolicyActivation struct {
	Seq      int64  // assigned by AppendPolicyActivation: 1, 2, ...
	Revision string // the revision made active ("" = the built-in bundle)
	Action   string // PolicyActivate or PolicyRollback
	Actor    string
	Time     time.Time // set by AppendPolicyActivation when zero
	Comment  string
}

// Waiver is a time-limited exception to one policy rule for one loop.
type Waiver struct {
	ID        string
	Team      string
	Loop      string
	Rule      string // a policy rule id, e.g. RETENTION_TOO_LONG
	Until     time.Time
	Reason    string
	GrantedBy string
	GrantTime time.Time
	// RevokedBy and RevokeTime are set once the waiver is revoked early.
	RevokedBy  string
	RevokeTime time.Time
}

// Active reports whether w applies at t: granted, not revoked, not expired.
func (w Waiver) Active(t time.Time) bool {
	return w.RevokeTime.IsZero() && t.Before(w.Until)
}

// Key is w's place in the order waivers are listed in (WaiverFilter).
func (w Waiver) Key() WaiverKey {
	return WaiverKey{Team: w.Team, Loop: w.Loop, Rule: w.Rule, GrantTime: w.GrantTime, ID: w.ID}
}

// WaiverKey is a waiver's place in the listing order (team, loop, rule,
// grant time, id): the keyset cursor of ListWaivers paging. Its fields
// never change once a waiver is stored, so a cursor stays exact when
// waivers expire, are revoked or are granted between two pages: nothing
// is skipped or listed twice.
type WaiverKey struct {
	Team, Loop, Rule string
	GrantTime        time.Time
	ID               string
}

// WaiverFilter selects waivers, ordered by (team, loop, rule, grant time,
// id).
type WaiverFilter struct {
	Team, Loop string // "" = any
	// Teams, when not nil, keeps only the waivers of these teams (the teams
	// a caller may see); an empty, non-nil Teams selects none.
	Teams []string
	// ActiveAt, when set, keeps only the waivers active at that time.
	ActiveAt time.Time
	// After, when set, keeps only the waivers after it in the order
	// (paging: the key of the last waiver of the previous page).
	After *WaiverKey
	// Limit, when > 0, returns at most that many (one bounded query).
	Limit int
}

// ActivationFilter selects policy activations, newest first.
type ActivationFilter struct {
	// Before, when > 0, keeps only the activations with a lower Seq
	// (paging: the Seq of the last activation of the previous page).
	Before int64
	// Limit is at most how many: <= 0 means DefaultActivationLimit; capped
	// at MaxPageSize (ActivationLimit).
	Limit int
}

// DecisionFilter selects recorded decisions, newest first.
type DecisionFilter struct {
	Resource string    // exact resource name, "" = any
	Rule     string    // decisions whose result names this rule id, "" = any
	Kind     string    // decisions of this kind ("request", "plan", ...; a record without one is a request), "" = any
	Since    time.Time // decisions at or after, zero = any
	Before   string    // decisions recorded before this decision id (paging), "" = from the newest
	Limit    int       // <= 0 means 100; capped at 1000
}

// PolicyReader is the read side of policy governance.
type PolicyReader interface {
	// GetPolicyBundle returns a bundle with its archive; ErrNotFound if no
	// bundle has that revision.
	GetPolicyBundle(ctx context.Context, revision string) (*PolicyBundle, error)
	// ListPolicyBundles lists every bundle, newest push first, without
	// archives.
	ListPolicyBundles(ctx context.Context) ([]PolicyBundle, error)
	// ActivePolicy returns the latest activation; ErrNotFound if none (the
	// built-in bundle is active).
	ActivePolicy(ctx context.Context) (*PolicyActivation, error)
	// ListPolicyActivations lists the activations f selects, newest first.
	ListPolicyActivations(ctx context.Context, f ActivationFilter) ([]PolicyActivation, error)
	// ListWaivers lists the waivers f selects.
	ListWaivers(ctx context.Context, f WaiverFilter) ([]Waiver, error)
	// ListDecisions lists recorded decisions, newest first.
	ListDecisions(ctx context.Context, f DecisionFilter) ([]Decision, error)
}

// PolicyWriter is the write side, inside a transaction.
type PolicyWriter interface {
	// PutPolicyBundle stores a new bundle; ErrAlreadyExists if its
	// revision is stored (nothing is overwritten).
	PutPolicyBundle(ctx context.Context, b PolicyBundle) error
	// AddPolicyApproval appends an approval to a stored bundle;
	// ErrNotFound if there is no such bundle.
	AddPolicyApproval(ctx context.Context, revision string, a PolicyApproval) error
	// AppendPolicyActivation records an activation, assigning Seq and
	// Time, and returns it.
	AppendPolicyActivation(ctx context.Context, a PolicyActivation) (PolicyActivation, error)
	// PutWaiver stores a new waiver; ErrAlreadyExists if its id is taken.
	PutWaiver(ctx context.Context, w Waiver) error
	// RevokeWaiver marks a waiver revoked; ErrNotFound if there is none.
	RevokeWaiver(ctx context.Context, id, by string, at time.Time) error
	// PruneDecisions deletes the decisions recorded before cutoff, keeping
	// at least the newest keep of them, and returns how many it deleted.
	PruneDecisions(ctx context.Context, cutoff time.Time, keep int) (int64, error)
}
