package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Size limits of one audit event. Every store applies Bound to an event
// before sealing it (store.Tx.AppendAudit), so the hash chain covers the
// bounded event and no single event can outgrow a response (the gRPC
// message limit is 4 MiB): one loop with 10,000 producers once wrote
// events of 6–12 MB listing every ACL and quota.
const (
	// MaxDetailsBytes is the largest canonical Details (see
	// CanonicalDetails) an event keeps as given. Larger Details are
	// replaced by a summary no larger than this (see Bound).
	MaxDetailsBytes = 64 << 10
	// MaxFieldBytes is the largest ID, Actor, Action, Resource, RequestID,
	// DecisionID or Outcome an event keeps as given; longer values are
	// clipped to at most this many bytes, ending in "…(N bytes)" with N
	// the original length.
	MaxFieldBytes = 512
)

// Limits of the summary that replaces oversized Details.
const (
	// summaryValueBytes: a top-level value whose JSON is at most this long
	// is kept whole; a longer string is clipped to about this many bytes,
	// a longer array keeps its first items (summaryArrayItems at most,
	// summaryArrayBytes in all, each at most summaryValueBytes), and any
	// other longer value is omitted.
	summaryValueBytes = 1 << 10
	summaryArrayItems = 10
	summaryArrayBytes = 4 << 10
	// summaryKeyBytes: a top-level key longer than this is omitted, and
	// its name clipped to this length in the omitted list.
	summaryKeyBytes = 128
	// summaryOmittedNames and summaryOmittedBytes cap the omitted list
	// (omittedCount always has the full count).
	summaryOmittedNames = 64
	summaryOmittedBytes = 8 << 10
	// summaryKeptBytes is the room for kept values and their
	// "shortened" notes; the rest of MaxDetailsBytes is ample for the
	// summary's own fields and the omitted list.
	summaryKeptBytes = MaxDetailsBytes - 16<<10
)

// Keys of a details summary. A top-level key of the original details with
// one of these names is omitted rather than kept, so the summary's own
// fields are never ambiguous.
const (
	// SummaryTruncated is true in a summary: the details were cut.
	SummaryTruncated = "truncated"
	// SummaryOriginalBytes is the length of the full canonical details.
	SummaryOriginalBytes = "originalBytes"
	// SummaryOriginalSHA256 is the hex SHA-256 of the full canonical
	// details (CanonicalDetails), so a copy kept elsewhere can be matched.
	SummaryOriginalSHA256 = "originalSha256"
	// SummaryOmitted lists the top-level keys dropped entirely, sorted
	// (at most 64 names, each clipped to 128 bytes).
	SummaryOmitted = "omitted"
	// SummaryOmittedCount is how many top-level keys were dropped (it can
	// exceed the length of the omitted list).
	SummaryOmittedCount = "omittedCount"
	// SummaryShortened maps each kept key whose value was cut to what was
	// kept: {"items": N, "kept": K} for an array (its first K of N items
	// are kept) or {"bytes": N, "kept": K} for a string (its first K of
	// N bytes are kept, followed by a "…(N bytes)" marker).
	SummaryShortened = "shortened"
)

var summaryKeys = []string{SummaryTruncated, SummaryOriginalBytes, SummaryOriginalSHA256,
	SummaryOmitted, SummaryOmittedCount, SummaryShortened}

// Bound returns ev cut down to the size limits, deterministically:
//
//   - ID, Actor, Action, Resource, RequestID, DecisionID and Outcome
//     longer than MaxFieldBytes are clipped to at most MaxFieldBytes,
//     ending in "…(N bytes)" where N is the original length (cut at a
//     UTF-8 character boundary);
//   - Details whose canonical encoding is longer than MaxDetailsBytes are
//     replaced by a summary of at most MaxDetailsBytes: the small
//     top-level fields (values up to 1 KiB; long strings clipped; the
//     first items of long arrays), plus "truncated": true,
//     "originalBytes", "originalSha256" (the hex SHA-256 of the full
//     canonical details), "omitted" (the top-level keys dropped),
//     "omittedCount" and, when a kept value was cut, "shortened" (see
//     the Summary* constants).
//
// An event within the limits is returned unchanged, byte for byte, and
// Bound(Bound(ev)) == Bound(ev). Details that are not a JSON object are
// left as they are, for Seal to refuse. Seq, Time, PrevHash and Hash are
// never touched: a store bounds an event before sealing it, so the hash
// covers what is stored; a reader may bound a stored (pre-limit) event for
// display, which then no longer matches its hash — its details say
// "truncated": true.
func Bound(ev Event) Event {
	for _, f := range []*string{&ev.ID, &ev.Actor, &ev.Action, &ev.Resource, &ev.RequestID, &ev.DecisionID, &ev.Outcome} {
		*f = ClipString(*f, MaxFieldBytes)
	}
	ev.Details = boundDetails(ev.Details)
	return ev
}

// DetailsTruncated reports whether details say "truncated": true, as a
// summary made by Bound does.
func DetailsTruncated(details json.RawMessage) bool {
	var s struct {
		Truncated bool `json:"truncated"`
	}
	return json.Unmarshal(details, &s) == nil && s.Truncated
}

// ClipString returns s if it is at most limit bytes long, else a prefix of
// s (cut at a UTF-8 character boundary) followed by "…(N bytes)", N being
// len(s), at most limit bytes in all (just the marker, itself clipped, if
// limit is smaller than the marker).
func ClipString(s string, limit int) string {
	out, _ := clip(s, limit)
	return out
}

// clip is ClipString, also returning how many bytes of s it kept.
func clip(s string, limit int) (string, int) {
	if len(s) <= limit {
		return s, len(s)
	}
	marker := "…(" + strconv.Itoa(len(s)) + " bytes)"
	cut := limit - len(marker)
	if cut < 0 {
		return marker[:runeCut(marker, limit)], 0
	}
	cut = runeCut(s, cut)
	return s[:cut] + marker, cut
}

// runeCut returns the largest n <= cut such that s[:n] does not split a
// UTF-8 sequence.
func runeCut(s string, cut int) int {
	if cut >= len(s) {
		return len(s)
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return cut
}

// maxCanonicalGrowth is how many times longer than the text it came from
// canonical details can be: encoding/json escapes '<', '>' and '&' as
// \u003c etc. (one byte becomes six).
const maxCanonicalGrowth = 6

func boundDetails(details json.RawMessage) json.RawMessage {
	if len(details)*maxCanonicalGrowth <= MaxDetailsBytes {
		return details // cannot be too long even once canonical: skip the parse
	}
	canon, err := CanonicalDetails(details)
	if err != nil || len(canon) <= MaxDetailsBytes {
		return details // Seal refuses the former and canonicalises the latter
	}
	return summarize(canon)
}

// summarize builds the summary of canonical details longer than
// MaxDetailsBytes (see Bound).
func summarize(canon json.RawMessage) json.RawMessage {
	digest := sha256.Sum256(canon)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(canon, &obj); err != nil {
		obj = nil // unreachable: canon is a canonical JSON object
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic choice of what is kept

	kept := map[string]json.RawMessage{}
	shortened := map[string]json.RawMessage{}
	omitted := []string{}
	omittedCount, omittedBytes, used := 0, 0, 0
	omit := func(k string) {
		omittedCount++
		name := ClipString(k, summaryKeyBytes)
		n := len(marshal(name)) + 1
		if len(omitted) < summaryOmittedNames && omittedBytes+n <= summaryOmittedBytes {
			omitted = append(omitted, name)
			omittedBytes += n
		}
	}
	for _, k := range keys {
		if len(k) > summaryKeyBytes || slices.Contains(summaryKeys, k) {
			omit(k)
			continue
		}
		v, note := shrink(obj[k])
		if v == nil {
			omit(k)
			continue
		}
		key := marshal(k)
		cost := len(key) + len(v) + 2 // "key":value,
		if note != nil {
			cost += len(key) + len(note) + 2
		}
		if used+cost > summaryKeptBytes {
			omit(k)
			continue
		}
		used += cost
		kept[k] = v
		if note != nil {
			shortened[k] = note
		}
	}

	out := kept
	out[SummaryTruncated] = json.RawMessage("true")
	out[SummaryOriginalBytes] = marshal(len(canon))
	out[SummaryOriginalSHA256] = marshal(hex.EncodeToString(digest[:]))
	out[SummaryOmitted] = marshal(omitted)
	out[SummaryOmittedCount] = marshal(omittedCount)
	if len(shortened) > 0 {
		out[SummaryShortened] = marshal(shortened)
	}
	b := marshal(out)
	if len(b) > MaxDetailsBytes { // unreachable by the limits above; stay bounded regardless
		b = marshal(map[string]any{
			SummaryTruncated: true, SummaryOriginalBytes: len(canon), SummaryOriginalSHA256: hex.EncodeToString(digest[:]),
			SummaryOmitted: []string{}, SummaryOmittedCount: len(keys),
		})
	}
	return b
}

// shrink returns the top-level value v as a summary keeps it, and a
// "shortened" note when it was cut; nil when it is omitted.
func shrink(v json.RawMessage) (json.RawMessage, json.RawMessage) {
	if len(v) <= summaryValueBytes {
		return v, nil
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, nil
		}
		clipped, kept := clip(s, summaryValueBytes)
		return marshal(clipped), marshal(map[string]int{"bytes": len(s), "kept": kept})
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return nil, nil
		}
		keep := []json.RawMessage{}
		size := 2
		for _, it := range items {
			if len(keep) == summaryArrayItems || len(it) > summaryValueBytes || size+len(it)+1 > summaryArrayBytes {
				break // keep a prefix only: "the first K items"
			}
			keep = append(keep, it)
			size += len(it) + 1
		}
		return marshal(keep), marshal(map[string]int{"items": len(items), "kept": len(keep)})
	}
	return nil, nil // a large object, or an absurdly long number
}

func marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("audit: " + err.Error()) // unreachable: only strings, ints and valid JSON
	}
	return b
}
