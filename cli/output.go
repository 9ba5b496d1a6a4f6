package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"
)

// Output formats of -o.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

func checkFormat(f string) error {
	switch f {
	case FormatTable, FormatJSON, FormatYAML:
		return nil
	}
	return fmt.Errorf("-o %q: unknown output format (use table, json or yaml)", f)
}

// printMessage prints a proto message as JSON (protojson: the REST API's
// camelCase names) or YAML (the same JSON, re-encoded as YAML with the field
// order kept).
func printMessage(w io.Writer, format string, m proto.Message) error {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	// protojson varies its whitespace on purpose; json.Indent makes the
	// output stable for people and scripts that diff it.
	var indented bytes.Buffer
	if err := json.Indent(&indented, raw, "", "  "); err != nil {
		return fmt.Errorf("indenting JSON: %w", err)
	}
	b := indented.Bytes()
	if format == FormatYAML {
		if b, err = jsonToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printValue prints a Go value (a struct with json tags) as indented JSON,
// or as YAML with the same keys in the same order. Unlike json.Marshal it
// leaves <, > and & as they are.
func printValue(w io.Writer, format string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	b := buf.Bytes()
	if format == FormatYAML {
		var err error
		if b, err = jsonToYAML(b); err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

// jsonToYAML re-encodes a JSON document as block-style YAML. JSON is YAML,
// so decoding into a yaml.Node keeps the key order; clearing the node styles
// turns flow style into block style, and the encoder quotes strings that
// would otherwise read as another type ("true", "12").
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	clearStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func clearStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// table writes aligned columns with tabwriter: call row for the header and
// each line, then flush.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, termSafe(orDash(c)))
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// age renders how long ago ts was, kubectl style: 45s, 12m, 3h, 5d.
func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil || !ts.IsValid() || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	return shortDuration(now.Sub(ts.AsTime()))
}

// shortDuration renders d kubectl style: 45s, 12m, 3h, 5d; 0s when negative.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// timeString renders a timestamp in UTC, RFC 3339, or "-".
func timeString(ts *timestamppb.Timestamp) string {
	if ts == nil || !ts.IsValid() || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// shortTime renders a timestamp in UTC to the minute, "2026-11-30 10:00",
// or "-".
func shortTime(ts *timestamppb.Timestamp) string {
	if ts == nil || !ts.IsValid() || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04")
}

// termSafe makes text that came from the server (descriptions, names,
// messages) safe to print on a terminal: tabs, newlines and carriage returns
// become spaces, so they cannot break a table or a "Key: value" line, and
// every other control character (C0 with ESC, DEL, C1 with CSI), every
// bidirectional formatting character and every byte that is not UTF-8 is
// written as a visible Go escape (\x1b, \u202e) instead of raw, so that
// text cannot move the cursor, recolour or retitle the terminal, or reorder
// what is shown.
func termSafe(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size) || r == '\t' || r == '\n' || r == '\r' {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r, size) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r, size):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether r (decoded from size bytes) must not reach a
// terminal raw: a control character, a bidirectional formatting character
// or an invalid byte.
func unsafeRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20 || (r >= 0x7f && r <= 0x9f):
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, (r >= 0x202a && r <= 0x202e), (r >= 0x2066 && r <= 0x2069):
		return true
	}
	return false
}
