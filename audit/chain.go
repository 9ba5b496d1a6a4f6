package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// GenesisHash is the PrevHash of the first event of a chain (Seq 1).
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ErrInvalidDetails means an event's Details are not a JSON object.
var ErrInvalidDetails = errors.New("audit event details must be a JSON object")

// NewID returns a fresh random event id (32 hex digits, 128 bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// CanonicalDetails returns details re-encoded with object keys sorted and
// insignificant whitespace removed, so that equal content has equal bytes
// (and therefore an equal hash) whatever the database did to the text.
// Empty input and JSON null canonicalise to nil (no details). Anything but
// a JSON object is refused with ErrInvalidDetails.
func CanonicalDetails(details json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(details)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // keep numbers as written: no float rounding
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDetails, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the object", ErrInvalidDetails)
	}
	// encoding/json sorts map keys at every level.
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDetails, err)
	}
	return out, nil
}

// canonicalEvent is the hashed form of an Event: every field except Hash,
// in a fixed order, with Time in UTC and Details canonicalised. Changing
// this struct changes every hash: never do it without a chain migration.
type canonicalEvent struct {
	Seq        int64           `json:"seq"`
	ID         string          `json:"id"`
	Time       string          `json:"time"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource"`
	RequestID  string          `json:"requestId"`
	DecisionID string          `json:"decisionId"`
	Outcome    string          `json:"outcome"`
	Details    json.RawMessage `json:"details"`
	PrevHash   string          `json:"prevHash"`
}

// CanonicalEncoding returns the bytes that ComputeHash hashes: a JSON
// object of every field except Hash, in declaration order, Time in UTC
// RFC 3339 with nanoseconds, Details canonicalised (see CanonicalDetails).
// Details that are not a JSON object are included verbatim, so they still
// affect the hash.
func (e Event) CanonicalEncoding() []byte {
	details, err := CanonicalDetails(e.Details)
	if err != nil {
		details, _ = json.Marshal(string(e.Details)) // hash the raw text as a JSON string
	}
	if details == nil {
		details = json.RawMessage("null")
	}
	b, err := json.Marshal(canonicalEvent{
		Seq:        e.Seq,
		ID:         e.ID,
		Time:       e.Time.UTC().Format(time.RFC3339Nano),
		Actor:      e.Actor,
		Action:     e.Action,
		Resource:   e.Resource,
		RequestID:  e.RequestID,
		DecisionID: e.DecisionID,
		Outcome:    e.Outcome,
		Details:    details,
		PrevHash:   e.PrevHash,
	})
	if err != nil {
		// Unreachable: every field is a string, an int or valid JSON.
		panic(fmt.Sprintf("audit: canonical encoding: %v", err))
	}
	return b
}

// ComputeHash returns the hex SHA-256 of the event's canonical encoding
// (every field except Hash itself, including Seq and PrevHash).
func (e Event) ComputeHash() string {
	sum := sha256.Sum256(e.CanonicalEncoding())
	return hex.EncodeToString(sum[:])
}

// Seal prepares ev to be stored as event seq after an event whose hash is
// prevHash (GenesisHash for seq 1): it assigns Seq and PrevHash, an ID if
// empty, Time (now if zero) in UTC truncated to microseconds — the
// precision every supported database keeps, so the stored time hashes as
// it was sealed — canonical Details, and finally Hash. Stores call it
// inside the appending transaction.
func Seal(ev Event, seq int64, prevHash string, now time.Time) (Event, error) {
	details, err := CanonicalDetails(ev.Details)
	if err != nil {
		return Event{}, fmt.Errorf("audit event %s on %s: %w", ev.Action, ev.Resource, err)
	}
	ev.Details = details
	ev.Seq = seq
	ev.PrevHash = prevHash
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.Time.IsZero() {
		ev.Time = now
	}
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	ev.Hash = ev.ComputeHash()
	return ev, nil
}

// Verifier recomputes a chain fed to it one event at a time, in Seq order,
// starting with the first event ever appended (Seq 1). It never holds more
// than the previous event, so chains of any length verify in constant
// memory. The zero value is ready to use.
//
// It detects a changed event (hash mismatch), an inserted or removed event
// (Seq gap or PrevHash not linking to its predecessor) and reordering.
// Removing events from the end of the chain leaves a valid, shorter chain:
// compare Result().Events with an independently kept count to catch that.
type Verifier struct {
	n      int64
	last   *Event
	broken *BrokenLink
}

// Add checks ev against its predecessor and its own hash. It returns the
// problem with ev, or nil when ev verifies. Only the first problem is kept
// for Result; later events are still checked against the event before them.
func (v *Verifier) Add(ev Event) *BrokenLink {
	v.n++
	bl := v.check(ev)
	prev := ev
	v.last = &prev
	if bl != nil && v.broken == nil {
		v.broken = bl
	}
	return bl
}

func (v *Verifier) check(ev Event) *BrokenLink {
	broken := func(format string, args ...any) *BrokenLink {
		return &BrokenLink{Seq: ev.Seq, ID: ev.ID, Reason: fmt.Sprintf(format, args...)}
	}
	wantSeq, wantPrev, prevDesc := int64(1), GenesisHash, "the genesis hash"
	if v.last != nil {
		wantSeq, wantPrev = v.last.Seq+1, v.last.Hash
		prevDesc = fmt.Sprintf("the hash of event %d", v.last.Seq)
	}
	switch {
	case ev.Seq < wantSeq:
		return broken("out of order: seq %d follows event %d (expected %d)", ev.Seq, wantSeq-1, wantSeq)
	case ev.Seq > wantSeq && wantSeq == 1:
		return broken("gap: the chain starts at seq %d, events 1..%d are missing", ev.Seq, ev.Seq-1)
	case ev.Seq > wantSeq:
		return broken("gap: seq %d follows event %d, events %d..%d are missing", ev.Seq, wantSeq-1, wantSeq, ev.Seq-1)
	case ev.PrevHash != wantPrev:
		return broken("prevHash does not match %s: an event before it was changed, inserted or removed", prevDesc)
	}
	if got := ev.ComputeHash(); got != ev.Hash {
		return broken("hash mismatch: the event was changed after it was recorded (stored %s, computed %s)",
			short(ev.Hash), short(got))
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// Result reports the events checked so far and the first broken link.
func (v *Verifier) Result() VerifyResult {
	return VerifyResult{OK: v.broken == nil, Events: v.n, FirstBroken: v.broken}
}

// Verify checks a whole chain held in memory, in the order given.
func Verify(events []Event) VerifyResult {
	var v Verifier
	for _, ev := range events {
		v.Add(ev)
	}
	return v.Result()
}
