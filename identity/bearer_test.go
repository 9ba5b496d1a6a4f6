package identity

import (
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	tests := []struct {
		header string
		token  string // "" means an error is expected
		errMsg string
	}{
		{"Bearer abc123", "abc123", ""},
		{"bearer abc123", "abc123", ""},
		{"BEARER abc123", "abc123", ""},
		{"BeArEr abc123", "abc123", ""},
		{"Bearer   abc123", "abc123", ""},
		{"Bearer abc123  ", "abc123", ""},
		{"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", ""},
		{"Bearer a+b/c==", "a+b/c==", ""},
		{"", "", msgNoCredentials},
		{"   ", "", msgNoCredentials},
		{"Bearer", "", msgMalformedBearer},
		{"Bearer ", "", msgMalformedBearer},
		{"Bearer    ", "", msgMalformedBearer},
		{"Basic dXNlcjpwdw==", "", msgMalformedBearer},
		{"Bearerabc123", "", msgMalformedBearer},
		{"abc123", "", msgMalformedBearer},
		{"Token abc123", "", msgMalformedBearer},
		{"Bearer\tabc123", "", msgMalformedBearer},
		{"Bearer abc 123", "", msgMalformedBearer},
		{"Bearer abc\x00123", "", msgMalformedBearer},
		{"Bearer abcé123", "", msgMalformedBearer},
		{" Bearer abc123", "", msgMalformedBearer},
		{"Bearer " + strings.Repeat("a", maxAuthorizationHeader), "", "authorization header too large"},
	}
	for _, tt := range tests {
		token, err := ParseBearer(tt.header)
		name := tt.header
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if tt.token != "" {
			if err != nil || token != tt.token {
				t.Errorf("ParseBearer(%q) = %q, %v; want %q", name, token, err, tt.token)
			}
			continue
		}
		if token != "" {
			t.Errorf("ParseBearer(%q) returned token %q with an error expected", name, token)
		}
		wantUnauthenticated(t, err, tt.errMsg, "")
	}
}

func TestParseBearerMessages(t *testing.T) {
	_, err := ParseBearer("")
	if got, want := err.Error(), `no credentials: send "authorization: Bearer <token>" (loopctl: loopctl login, --token or LOOPGATE_TOKEN)`; got != want {
		t.Errorf("empty header: %q, want %q", got, want)
	}
	_, err = ParseBearer("Basic c2VjcmV0LXBhc3N3b3Jk")
	if got, want := err.Error(), `malformed authorization header: want "Bearer <token>"`; got != want {
		t.Errorf("other scheme: %q, want %q", got, want)
	}
}
