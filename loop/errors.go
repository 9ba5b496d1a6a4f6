package loop

import (
	"fmt"
	"strings"
)

// FieldError is one problem with a loop document or spec: what is wrong
// (Message) and where (Field, a path such as
// "spec.streams[1].schema.definition", written with the YAML names a user
// sees; plus the 1-based Document index in the file and source Line when the
// problem was found while reading YAML, else 0).
type FieldError struct {
	Field    string
	Message  string
	Document int
	Line     int
}

// Error renders e.g.
// `document 2 line 14: spec.retention: "72x" is not a duration (use e.g. 72h, 7d)`.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.Document > 0 {
		fmt.Fprintf(&b, "document %d", e.Document)
	}
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "line %d", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// FieldErrors is every problem found at once, in document order. A nil or
// empty FieldErrors means no problem; use Err to turn it into an error
// without creating a non-nil error interface around an empty list.
type FieldErrors []FieldError

// Error lists every problem, one per line.
func (fe FieldErrors) Error() string {
	switch len(fe) {
	case 0:
		return "no problems"
	case 1:
		return fe[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(fe))
	for _, e := range fe {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Err returns fe as an error, or nil when fe is empty.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return fe
}

// Unwrap exposes each FieldError to errors.As.
func (fe FieldErrors) Unwrap() []error {
	out := make([]error, len(fe))
	for i, e := range fe {
		out[i] = e
	}
	return out
}

// add appends a problem at field.
func (fe *FieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}
