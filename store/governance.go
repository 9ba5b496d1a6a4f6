package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Helpers shared by the store implementations of PolicyReader, PolicyWriter
// and the decision log, so that every backend validates, defaults and
// bounds what it stores the same way.

// DefaultDecisionPageSize is DecisionFilter.Limit's default, and
// DefaultActivationLimit ListPolicyActivations'; both are capped at
// MaxPageSize.
const (
	DefaultDecisionPageSize = 100
	DefaultActivationLimit  = 100
)

// DecisionPageSize applies DecisionFilter.Limit's default and cap.
func DecisionPageSize(n int) int { return clampPageSize(n, DefaultDecisionPageSize) }

// ActivationLimit applies ListPolicyActivations' default and cap.
func ActivationLimit(n int) int { return clampPageSize(n, DefaultActivationLimit) }

// PrepareDecision is the decision PutDecision stores: Time now (if zero),
// cut to microseconds; InputDigest the SHA-256 of Input (if empty); and
// Input dropped when it is over MaxDecisionInputBytes (its digest stays).
func PrepareDecision(d Decision, now time.Time) (Decision, error) {
	if d.ID == "" {
		return d, errors.New("put decision: empty id")
	}
	if d.Time.IsZero() {
		d.Time = now
	}
	d.Time = Timestamp(d.Time)
	if len(d.Input) == 0 {
		d.Input = nil
	} else {
		if d.InputDigest == "" {
			sum := sha256.Sum256(d.Input)
			d.InputDigest = hex.EncodeToString(sum[:])
		}
		if len(d.Input) > MaxDecisionInputBytes {
			d.Input = nil
		}
	}
	return d, nil
}

// DecisionRules returns the distinct rule ids a decision result names in
// its deny, warn and approval lists, sorted. Stores index decisions by them
// (DecisionFilter.Rule). A result of another shape names no rules: elements
// that are not objects, or whose id is not a non-empty string, are skipped.
func DecisionRules(result json.RawMessage) []string {
	var lists map[string]json.RawMessage
	if json.Unmarshal(result, &lists) != nil {
		return nil
	}
	var rules []string
	for _, key := range []string{"deny", "warn", "approval"} {
		var elems []json.RawMessage
		if json.Unmarshal(lists[key], &elems) != nil {
			continue
		}
		for _, e := range elems {
			var v struct {
				ID *string `json:"id"`
			}
			if json.Unmarshal(e, &v) == nil && v.ID != nil && *v.ID != "" {
				rules = append(rules, *v.ID)
			}
		}
	}
	slices.Sort(rules)
	return slices.Compact(rules)
}

// PreparePolicyBundle is the bundle PutPolicyBundle stores: it refuses an
// empty revision, an archive over MaxPolicyArchiveBytes and a Digest that
// is not the archive's SHA-256 (an empty Digest is filled in), and sets
// PushTime (now, if zero) and the approvals' times (now, if zero), cut to
// microseconds.
func PreparePolicyBundle(b PolicyBundle, now time.Time) (PolicyBundle, error) {
	if b.Revision == "" {
		return b, errors.New("put policy bundle: empty revision")
	}
	if len(b.Archive) > MaxPolicyArchiveBytes {
		return b, fmt.Errorf("put policy bundle %s: the archive is %d bytes, over the limit of %d bytes (%d MiB)",
			b.Revision, len(b.Archive), MaxPolicyArchiveBytes, MaxPolicyArchiveBytes>>20)
	}
	sum := sha256.Sum256(b.Archive)
	digest := hex.EncodeToString(sum[:])
	switch b.Digest {
	case "":
		b.Digest = digest
	case digest:
	default:
		return b, fmt.Errorf("put policy bundle %s: digest %s is not the SHA-256 of the archive (%s)", b.Revision, b.Digest, digest)
	}
	if b.PushTime.IsZero() {
		b.PushTime = now
	}
	b.PushTime = Timestamp(b.PushTime)
	if len(b.Files) == 0 {
		b.Files = nil
	}
	b.Approvals = slices.Clone(b.Approvals)
	for i := range b.Approvals {
		b.Approvals[i] = PreparePolicyApproval(b.Approvals[i], now)
	}
	return b, nil
}

// PreparePolicyApproval sets a's Time (now, if zero), cut to microseconds.
func PreparePolicyApproval(a PolicyApproval, now time.Time) PolicyApproval {
	if a.Time.IsZero() {
		a.Time = now
	}
	a.Time = Timestamp(a.Time)
	return a
}

// EncodePolicyFiles returns the stored JSON array of a bundle's files.
func EncodePolicyFiles(files []string) ([]byte, error) {
	if files == nil {
		files = []string{}
	}
	return json.Marshal(files)
}

// DecodePolicyFiles reads what EncodePolicyFiles stored (nil when empty).
func DecodePolicyFiles(revision string, raw []byte) ([]string, error) {
	var files []string
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &files); err != nil {
			return nil, fmt.Errorf("policy bundle %s: decode stored files: %w", revision, err)
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	return files, nil
}

// PreparePolicyActivation is the activation AppendPolicyActivation stores
// (before its Seq is assigned): Action must be PolicyActivate or
// PolicyRollback; Time is now if zero, cut to microseconds.
func PreparePolicyActivation(a PolicyActivation, now time.Time) (PolicyActivation, error) {
	if a.Action != PolicyActivate && a.Action != PolicyRollback {
		return a, fmt.Errorf("append policy activation: action %q, want %q or %q", a.Action, PolicyActivate, PolicyRollback)
	}
	if a.Time.IsZero() {
		a.Time = now
	}
	a.Time = Timestamp(a.Time)
	return a, nil
}

// PrepareWaiver is the waiver PutWaiver stores: ID, Team, Loop, Rule and
// Until are required; GrantTime is now if zero; times are cut to
// microseconds.
func PrepareWaiver(w Waiver, now time.Time) (Waiver, error) {
	for _, f := range []struct{ name, val string }{{"id", w.ID}, {"team", w.Team}, {"loop", w.Loop}, {"rule", w.Rule}} {
		if f.val == "" {
			return w, fmt.Errorf("put waiver %q: empty %s", w.ID, f.name)
		}
	}
	if w.Until.IsZero() {
		return w, fmt.Errorf("put waiver %s: no expiry (until)", w.ID)
	}
	if w.GrantTime.IsZero() {
		w.GrantTime = now
	}
	w.Until, w.GrantTime, w.RevokeTime = Timestamp(w.Until), Timestamp(w.GrantTime), Timestamp(w.RevokeTime)
	return w, nil
}

// MaxWaiverPageTokenBytes bounds a ListWaivers page token: a longer one is
// refused unread.
const MaxWaiverPageTokenBytes = 1024

// waiverPageToken is the decoded form of a ListWaivers page token: the key
// of the last waiver of the previous page, and the listing it was issued
// for.
type waiverPageToken struct {
	Listing   string    `json:"f"`
	Team      string    `json:"t"`
	Loop      string    `json:"l"`
	Rule      string    `json:"r"`
	GrantTime time.Time `json:"g"`
	ID        string    `json:"i"`
}

// EncodeWaiverPageToken returns the opaque token for the page after w, in
// the listing the caller names by listing (e.g. its parent and filters): a
// keyset cursor, not an offset.
func EncodeWaiverPageToken(listing string, w Waiver) string {
	b, _ := json.Marshal(waiverPageToken{Listing: listing, Team: w.Team, Loop: w.Loop, Rule: w.Rule, GrantTime: Timestamp(w.GrantTime), ID: w.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeWaiverPageToken returns the key EncodeWaiverPageToken put in tok.
// It fails with ErrInvalidPageToken when tok is too long, malformed, or was
// issued for another listing.
func DecodeWaiverPageToken(listing, tok string) (*WaiverKey, error) {
	bad := fmt.Errorf("%w: not a token returned by a previous list call; list again without a page token", ErrInvalidPageToken)
	if len(tok) > MaxWaiverPageTokenBytes {
		return nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, bad
	}
	var pt waiverPageToken
	if json.Unmarshal(raw, &pt) != nil || pt.Team == "" || pt.Loop == "" || pt.Rule == "" || pt.ID == "" || pt.GrantTime.IsZero() {
		return nil, bad
	}
	if pt.Listing != listing {
		return nil, fmt.Errorf("%w: issued for another listing; keep the parent and filters the same while paging", ErrInvalidPageToken)
	}
	return &WaiverKey{Team: pt.Team, Loop: pt.Loop, Rule: pt.Rule, GrantTime: Timestamp(pt.GrantTime), ID: pt.ID}, nil
}
