package identity

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Authentication methods recorded in Identity.Method.
const (
	MethodToken = "token"
	MethodJWT   = "jwt"
	MethodMTLS  = "mtls"
)

// Bounds on what an identity may carry when it comes from a credential the
// caller controls (a JWT).
const (
	maxSubjectBytes = 256
	maxGroupEntries = 64
	maxGroupBytes   = 128
)

// Identity is an authenticated caller.
type Identity struct {
	Subject string
	Teams   []string
	Roles   []string
	Method  string    // "token" | "jwt" | "mtls"
	Issuer  string    // JWT issuer; "" otherwise
	Expiry  time.Time // JWT exp; zero when the credential does not expire
}

// clone returns a copy that shares no slices with id, so a caller that
// appends to the result cannot change the configured identity.
func (id Identity) clone() Identity {
	id.Teams = slices.Clone(id.Teams)
	id.Roles = slices.Clone(id.Roles)
	return id
}

// UnauthenticatedError means the credentials were missing or invalid.
// Message is safe to show to the caller: it never contains the credential.
type UnauthenticatedError struct {
	Message string
	// Kind is the same for every failure of one cause (an expired token,
	// an unknown key), whatever the detail in Message; refusals are
	// grouped by it. Empty means Message is the kind.
	Kind string
}

func (e *UnauthenticatedError) Error() string { return e.Message }

// unauthenticated builds an *UnauthenticatedError from a format string.
func unauthenticated(format string, args ...any) *UnauthenticatedError {
	return &UnauthenticatedError{Message: fmt.Sprintf(format, args...), Kind: format}
}

// checkName reports why s is not acceptable as a subject, team or role of
// at most max bytes: empty, too long, not UTF-8 or containing control
// characters (which would corrupt logs and audit records).
func checkName(s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > max:
		return fmt.Errorf("is longer than %d bytes", max)
	case !utf8.ValidString(s):
		return fmt.Errorf("is not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("contains control characters")
	}
	return nil
}

// quote renders an untrusted value for an error message: quoted, and cut
// short so a hostile token cannot inflate responses and logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
