package utf8clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBytesKeepsCharactersWhole(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abcdef", 3, "abc"},
		{"ééé", 3, "é"}, // é is 2 bytes: 3 bytes hold one
		{"ééé", 4, "éé"},
		{"日本語", 5, "日"},
		{"日本語", 2, ""},
		{"abc", 0, ""},
		{"abc", -1, ""},
	} {
		if got := Bytes(tc.s, tc.n); got != tc.want {
			t.Errorf("Bytes(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("añ日🙂", 100)
	for n := range len(long) + 1 {
		got := Bytes(long, n)
		if len(got) > n || !utf8.ValidString(got) || !strings.HasPrefix(long, got) || n-len(got) > 3 {
			t.Fatalf("Bytes(…, %d) = %d bytes, valid %v", n, len(got), utf8.ValidString(got))
		}
	}
}

func TestWithEllipsis(t *testing.T) {
	if got := WithEllipsis("short", 10, "…"); got != "short" {
		t.Errorf("got %q", got)
	}
	got := WithEllipsis(strings.Repeat("é", 10), 10, "…") // … is 3 bytes: 7 bytes left hold 3 é
	if got != "ééé…" || len(got) > 10 || !utf8.ValidString(got) {
		t.Errorf("got %q (%d bytes)", got, len(got))
	}
}
