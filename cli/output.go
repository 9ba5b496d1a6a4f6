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
	// Escaped before YAML too: yaml.v3 refuses a raw C1 control.
	b := escapeJSONText(indented.Bytes())
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
	b := escapeJSONText(buf.Bytes())
	if format == FormatYAML {
		var err error
		if b, err = jsonToYAML(b); err != nil {
			return err
		}
	}
	_, err := w.Write(b)
	return err
}

// escapeJSONText writes every character of JSON text that must not reach a
// terminal raw (see unsafeRune) as a \uXXXX escape. JSON encoders already
// escape C0 controls inside strings but leave DEL, C1 controls (U+009B is
// CSI) and bidirectional formatting characters raw; outside strings JSON
// has only ASCII, so the result is the same JSON value.
func escapeJSONText(b []byte) []byte {
	clean := true
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r >= 0x7f && unsafeRune(r, size) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return b
	}
	var out bytes.Buffer
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out.WriteString(`\ufffd`) // not UTF-8: not valid JSON either
		case r >= 0x7f && unsafeRune(r, size):
			fmt.Fprintf(&out, `\u%04x`, r)
		default:
			out.Write(b[i : i+size])
		}
		i += size
	}
	return out.Bytes()
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
	quoteUnsafe(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	return escapeYAMLText(buf.Bytes()), nil
}

// yamlTermSafe re-encodes one YAML document with every scalar that must not
// reach a terminal raw double-quoted and escaped; everything else (key
// order, block styles) is kept. The result means the same.
func yamlTermSafe(b []byte) ([]byte, error) {
	if termSafeText(string(b)) == string(b) {
		return b, nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("escaping YAML: %w", err)
	}
	quoteUnsafe(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("escaping YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("escaping YAML: %w", err)
	}
	return escapeYAMLText(buf.Bytes()), nil
}

// quoteUnsafe gives every scalar with a character that must not reach a
// terminal raw the double-quoted style: yaml.v3 then escapes control
// characters itself, and escapeYAMLText can escape the rest (it counts
// bidirectional formatting characters as printable) inside the quotes.
func quoteUnsafe(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && termSafeText(n.Value) != n.Value {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		quoteUnsafe(c)
	}
}

// escapeYAMLText writes every character above DEL that must not reach a
// terminal raw as a \uXXXX escape. quoteUnsafe put every scalar holding one
// in double quotes, where such an escape means the same character.
func escapeYAMLText(b []byte) []byte { return escapeJSONText(b) }

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

// termSafeText is termSafe for text of several lines: newlines are kept
// (and tabs, for indented text such as generated code); every other line
// is made safe as termSafe does.
func termSafeText(s string) string {
	if !strings.ContainsAny(s, "\n\t") {
		return termSafe(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = termSafe(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}

// termSafeWriter passes text through termSafeText on its way to w, one
// Write at a time (the callers write whole renderings).
type termSafeWriter struct{ w io.Writer }

func (t termSafeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(t.w, termSafeText(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
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
