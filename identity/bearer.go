package identity

import (
	"strings"
)

// maxAuthorizationHeader bounds the authorization header ParseBearer accepts.
const maxAuthorizationHeader = 16 << 10

// Messages of the errors ParseBearer returns.
const (
	msgNoCredentials   = `no credentials: send "authorization: Bearer <token>" (loopctl: loopctl login, --token or LOOPGATE_TOKEN)`
	msgMalformedBearer = `malformed authorization header: want "Bearer <token>"`
)

// ParseBearer extracts the token from an authorization header of the form
// "Bearer <token>". The scheme is case-insensitive and may be followed by
// one or more spaces. The token must be non-empty visible ASCII with no
// whitespace (RFC 6750 tokens are a subset of that).
//
// Every failure is an *UnauthenticatedError: an empty header says how to
// send credentials, anything else is reported as malformed.
func ParseBearer(header string) (token string, err error) {
	if len(header) > maxAuthorizationHeader {
		return "", unauthenticated("authorization header too large (more than %d bytes)", maxAuthorizationHeader)
	}
	if strings.TrimSpace(header) == "" {
		return "", &UnauthenticatedError{Message: msgNoCredentials}
	}
	scheme, rest, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", &UnauthenticatedError{Message: msgMalformedBearer}
	}
	token = strings.TrimRight(strings.TrimLeft(rest, " "), " ")
	if !validToken(token) {
		return "", &UnauthenticatedError{Message: msgMalformedBearer}
	}
	return token, nil
}

// validToken reports whether token is non-empty and made of visible ASCII
// characters only: no spaces, control characters or non-ASCII bytes.
func validToken(token string) bool {
	if token == "" {
		return false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
