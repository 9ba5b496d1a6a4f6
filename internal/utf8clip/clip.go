// Package utf8clip shortens strings to a byte budget without cutting a UTF-8
// character in two: a clipped string stays valid UTF-8, which protobuf,
// JSON and HTML all need.
package utf8clip

import "unicode/utf8"

// Bytes returns s cut to at most n bytes, at a character boundary.
func Bytes(s string, n int) string {
	if n < 0 {
		n = 0
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// WithEllipsis returns s cut to at most n bytes followed by mark when it
// is longer, the whole result within n bytes (mark itself is kept whole
// when n is smaller than mark).
func WithEllipsis(s string, n int, mark string) string {
	if len(s) <= n {
		return s
	}
	return Bytes(s, n-len(mark)) + mark
}
