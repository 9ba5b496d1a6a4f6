package loop

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounded messages. A FieldError repeats what the user wrote ("ab" must be
// 3-40 characters ...), and what was written can be megabytes long: every
// message and field path quotes input through quote or clip, which keep at
// most maxQuoted bytes of it and say how long it was. Lists of names in
// messages keep at most maxListed names.
const (
	maxQuoted = 200
	maxListed = 10
)

// clip returns s when it is at most maxQuoted bytes, else its first
// maxQuoted bytes (cut at a rune boundary) and "…(N bytes)".
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:cutAt(s, maxQuoted)] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// quote is strconv.Quote(s) when that is at most maxQuoted bytes (plus the
// quotes), else the quoted longest prefix of s that is, followed by
// "…(N bytes)": "aaaa…"…(5000 bytes) is never mistaken for the whole value.
// The bound is on what is written: escapes (\x81) take up to four bytes
// for one.
func quote(s string) string {
	cut := cutAt(s, maxQuoted)
	q := strconv.Quote(s[:cut])
	for len(q) > maxQuoted+2 {
		cut = cutAt(s, cut*3/4)
		q = strconv.Quote(s[:cut])
	}
	if cut == len(s) {
		return q
	}
	return q + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func cutAt(s string, max int) int {
	if max >= len(s) {
		return len(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return cut
}

// nameList joins names with ", ", each clipped, at most maxListed of them
// followed by "… (N in all)".
func nameList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i == maxListed {
			b.WriteString(", … (" + strconv.Itoa(len(names)) + " in all)")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(clip(n))
	}
	return b.String()
}
