package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Helpers shared by the store implementations, so that every backend
// produces the same page tokens, etags, page sizes and timestamps.

// ErrInvalidPageToken means a page token was not produced by ListLoops.
var ErrInvalidPageToken = errors.New("invalid page token")

// Page size limits of ListLoops and ListAudit.
const (
	DefaultLoopPageSize  = 50
	DefaultAuditPageSize = 100
	MaxPageSize          = 1000
)

// LoopPageSize applies ListOptions.PageSize's default and cap.
func LoopPageSize(n int) int { return clampPageSize(n, DefaultLoopPageSize) }

// AuditPageSize applies AuditFilter.PageSize's default and cap.
func AuditPageSize(n int) int { return clampPageSize(n, DefaultAuditPageSize) }

func clampPageSize(n, def int) int {
	switch {
	case n <= 0:
		return def
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// pageToken is the decoded form of a ListLoops page token: the key of the
// last loop of the previous page, and the team filter it was issued for.
type pageToken struct {
	Filter string `json:"f,omitempty"`
	Team   string `json:"t"`
	Name   string `json:"n"`
}

// EncodePageToken returns the opaque token for the page after the loop
// team/name, listed with the given team filter ("" = all teams).
func EncodePageToken(filterTeam, team, name string) string {
	b, _ := json.Marshal(pageToken{Filter: filterTeam, Team: team, Name: name})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken returns the last key of the previous page. It fails with
// ErrInvalidPageToken when tok is malformed or was issued for a different
// team filter.
func DecodePageToken(filterTeam, tok string) (team, name string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", "", fmt.Errorf("%w: not a token returned by a previous list call; start again without a page token", ErrInvalidPageToken)
	}
	var pt pageToken
	if err := json.Unmarshal(raw, &pt); err != nil || pt.Team == "" || pt.Name == "" {
		return "", "", fmt.Errorf("%w: not a token returned by a previous list call; start again without a page token", ErrInvalidPageToken)
	}
	if pt.Filter != filterTeam {
		return "", "", fmt.Errorf("%w: issued for team filter %q, used with %q; keep the filter the same while paging", ErrInvalidPageToken, pt.Filter, filterTeam)
	}
	return pt.Team, pt.Name, nil
}

// NewEtag returns a fresh opaque etag (128 random bits).
func NewEtag() string { return randomHex(16) }

// NewUID returns a fresh loop UID in the UUID text layout (random, v4).
func NewUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// Timestamp normalises t for storage: UTC, truncated to microseconds (the
// precision of PostgreSQL timestamps), so every backend returns exactly
// what it stored.
func Timestamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}
