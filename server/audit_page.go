package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/audit"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// auditPageBytes is the most one ListAuditEvents response may carry,
// well under gRPC's default 4 MiB message limit (which the REST gateway,
// a gRPC client, is held to as well): one event must never make a page,
// and so every later page, unreadable.
const auditPageBytes = 3 << 20

// auditTokenBytes is room kept for next_page_token ("seq-" and an int64).
const auditTokenBytes = 64

// auditPage turns events, as the store listed them (in page order), into
// a response of at most auditPageBytes:
//
//   - the page ends early, before the first event that would not fit, and
//     its next_page_token continues after (or, newest first, before) the
//     last event included — the usual "seq-N" token;
//   - an event too large for a page on its own (stored before the audit
//     size limits existed) is listed through audit.Bound: its details
//     replaced by the truncation summary (original length and SHA-256 of
//     the stored details, omitted keys), its long strings clipped. Seq,
//     hashes and time are the stored ones; VerifyAuditChain still checks
//     the stored bytes.
//
// full says the store returned a whole page (there may be more events).
func auditPage(events []audit.Event, full bool) *lgv1.ListAuditEventsResponse {
	out := &lgv1.ListAuditEventsResponse{}
	used := auditTokenBytes
	for i, e := range events {
		p, n := auditEventProto(e)
		if used+n > auditPageBytes && len(out.Events) > 0 {
			out.NextPageToken = auditPageToken(events[i-1].Seq)
			return out
		}
		out.Events = append(out.Events, p)
		used += n
	}
	if full && len(events) > 0 {
		// The page is full: the next one continues after (or, newest
		// first, before) its last event.
		out.NextPageToken = auditPageToken(events[len(events)-1].Seq)
	}
	return out
}

func auditPageToken(seq int64) string { return fmt.Sprintf("seq-%d", seq) }

// auditEventProto returns e as listed and its size within a response: e
// itself if it fits a page alone, else e bounded for display.
func auditEventProto(e audit.Event) (*lgv1.AuditEvent, int) {
	e = validUTF8(e)
	p := auditToProto(e)
	n := repeatedSize(p)
	if auditTokenBytes+n <= auditPageBytes {
		return p, n
	}
	p = auditToProto(audit.Bound(e))
	n = repeatedSize(p)
	if auditTokenBytes+n > auditPageBytes {
		// Unreachable (a bounded event is a few hundred KiB at most as
		// protobuf); never let one event fail the listing regardless.
		b, _ := json.Marshal(map[string]any{audit.SummaryTruncated: true, audit.SummaryOriginalBytes: len(e.Details)})
		e = audit.Bound(e)
		e.Details = b
		p = auditToProto(e)
		n = repeatedSize(p)
	}
	return p, n
}

// repeatedSize is the size of p as one element of the response's events.
func repeatedSize(p *lgv1.AuditEvent) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(p))
}

// validUTF8 replaces invalid UTF-8 in e's strings (a database can hold
// any bytes; protobuf refuses to marshal such a string, which would fail
// the whole page). Valid strings, i.e. anything loopgate wrote, are kept.
func validUTF8(e audit.Event) audit.Event {
	for _, f := range []*string{&e.ID, &e.Actor, &e.Action, &e.Resource, &e.RequestID, &e.DecisionID, &e.Outcome, &e.PrevHash, &e.Hash} {
		if !utf8.ValidString(*f) {
			*f = strings.ToValidUTF8(*f, "\uFFFD")
		}
	}
	return e
}
