package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of team-owned Kafka identities (docs/loop-spec.md, ownership). A name of
// one kind belongs to exactly one team; no loop of another team may name it.
const (
	// KindPrincipal is a Kafka principal "User:{name}"; Owned.Name is the
	// name without the "User:" prefix.
	KindPrincipal = "principal"
	// KindGroup is a Kafka consumer group id.
	KindGroup = "group"
)

// Owned records which team owns a principal or a consumer group, how it
// came to own it and, for principals, the metadata of the credential
// loopgate issued (never the secret itself).
type Owned struct {
	Kind string `json:"-"`
	Name string `json:"-"`
	Team string `json:"-"`
	// Etag changes on every write; Delete and credential rotation check it.
	Etag       string    `json:"-"`
	CreateTime time.Time `json:"-"`
	// CreatedBy is the subject that created or claimed it.
	CreatedBy string `json:"createdBy"`
	// Origin says how the team came to own it: "explicit" (created through
	// the API), "loop" (claimed by the loop ClaimedBy when it first named
	// it) or "migration" (claimed when an older store was upgraded).
	Origin    string `json:"origin"`
	ClaimedBy string `json:"claimedBy,omitempty"` // the loop resource that claimed it
	// Credential is the credential loopgate issued for a principal, if any.
	Credential *Credential `json:"credential,omitempty"`
}

// Origins of an Owned record.
const (
	OriginExplicit  = "explicit"
	OriginLoop      = "loop"
	OriginMigration = "migration"
)

// Credential is what loopgate remembers of a principal's SCRAM credential:
// who issued or rotated it, when, and on which clusters. The password is
// shown once to the caller and never stored.
type Credential struct {
	Mechanism  string    `json:"mechanism"`
	Clusters   []string  `json:"clusters"`
	IssueTime  time.Time `json:"issueTime"`
	IssuedBy   string    `json:"issuedBy"`
	RotateTime time.Time `json:"rotateTime,omitzero"`
	RotatedBy  string    `json:"rotatedBy,omitempty"`
	Rotations  int       `json:"rotations,omitempty"`
}

// OwnedFilter selects a page of owned names of one kind, ordered by name.
type OwnedFilter struct {
	Kind      string
	Team      string // "" = every team
	PageSize  int    // <= 0 means 50; capped at 1000
	PageToken string // from the previous page
}

// OwnedReader is the part of Reader and Tx that reads owned names.
type OwnedReader interface {
	// GetOwned returns the record of kind/name, or ErrNotFound.
	GetOwned(ctx context.Context, kind, name string) (*Owned, error)
	// ListOwned returns a page of records and the token of the next page
	// ("" on the last page).
	ListOwned(ctx context.Context, f OwnedFilter) ([]*Owned, string, error)
}

// OwnedWriter is the part of Tx that changes owned names.
type OwnedWriter interface {
	// CreateOwned inserts o (ErrAlreadyExists if kind/name is taken by any
	// team) and assigns a fresh Etag and, when zero, CreateTime.
	CreateOwned(ctx context.Context, o *Owned) error
	// UpdateOwned replaces the document of o (team and name are fixed) if
	// the stored etag equals expectedEtag (ErrEtagMismatch otherwise,
	// ErrNotFound if missing) and assigns a fresh Etag.
	UpdateOwned(ctx context.Context, o *Owned, expectedEtag string) error
	// DeleteOwned removes kind/name if its etag equals expectedEtag ("" =
	// any).
	DeleteOwned(ctx context.Context, kind, name, expectedEtag string) error
}

// EncodeOwned returns the stored document of o.
func EncodeOwned(o *Owned) ([]byte, error) {
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", o.Kind, o.Name, err)
	}
	return raw, nil
}

// DecodeOwned rebuilds a record from its key columns and document.
func DecodeOwned(kind, name, team, etag string, created time.Time, doc []byte) (*Owned, error) {
	o := &Owned{}
	if len(doc) > 0 {
		if err := json.Unmarshal(doc, o); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", kind, name, err)
		}
	}
	o.Kind, o.Name, o.Team, o.Etag, o.CreateTime = kind, name, team, etag, created.UTC()
	return o, nil
}

// OwnedPageSize applies OwnedFilter.PageSize's default and cap.
func OwnedPageSize(n int) int { return clampPageSize(n, DefaultLoopPageSize) }

// OwnedPage cuts a listing fetched with one extra row into a page and the
// token of the next one.
func OwnedPage(rows []*Owned, size int, f OwnedFilter) ([]*Owned, string) {
	if len(rows) <= size {
		return rows, ""
	}
	last := rows[size-1]
	return rows[:size], EncodePageToken(f.Kind+"/"+f.Team, f.Kind, last.Name)
}

// DecodeOwnedPageToken returns the last name of the previous page.
func DecodeOwnedPageToken(f OwnedFilter) (string, error) {
	_, name, err := DecodePageToken(f.Kind+"/"+f.Team, f.PageToken)
	return name, err
}
