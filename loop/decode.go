package loop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/schemas"
)

// Decoding loop documents.
//
// A file holds one or more YAML documents separated by "---", as kubectl
// reads them; empty documents are skipped but still counted, so "document 3"
// is the third document a reader sees in the file.
//
// Decoding is strict and reports every problem of a document at once, each
// with its document index, line and field path. yaml.v3 can refuse unknown
// fields (Decoder.KnownFields) but its errors name Go types instead of field
// paths and it cannot report unit errors alongside them, so we let yaml.v3
// parse each document into a yaml.Node tree and walk that tree ourselves
// against the YAML-facing structs below (decodeNode): unknown fields,
// duplicate keys, wrong shapes and bad units all become FieldErrors.
//
// Bounded input. A file is read only up to MaxFileBytes, and the walk of
// one document visits at most its own nodes plus MaxAliasExpansion nodes
// reached through aliases: a yaml.Node tree keeps an alias as a pointer,
// but walking it expands it, so a few KB of nested aliases ("billion
// laughs") would otherwise expand into billions of values. At most
// MaxReportedProblems problems are reported per file.

// Input bounds of Parse and Load.
const (
	// MaxFileBytes is the largest file (all its documents) Parse reads.
	// The largest loop the limits allow is 256 KiB of JSON; YAML parsing
	// takes up to about 100 times the input in memory.
	MaxFileBytes = 4 << 20
	// MaxAliasExpansion is how many nodes one document may reach through
	// aliases in all, beyond its own nodes. Sharing a streams list among
	// every producer and consumer of the largest loop takes a few
	// thousand.
	MaxAliasExpansion = 100_000
)

// The YAML-facing shape of a loop document (docs/loop-spec.md). Field tags are the
// names users write; durations and sizes are human units. Format encodes
// the same structs, so what Parse accepts and what Format writes cannot
// drift apart.
type (
	documentYAML struct {
		APIVersion string        `yaml:"apiVersion"`
		Kind       string        `yaml:"kind"`
		Metadata   *metadataYAML `yaml:"metadata"`
		Spec       *specYAML     `yaml:"spec"`
	}
	metadataYAML struct {
		Name   string            `yaml:"name"`
		Team   string            `yaml:"team"`
		Labels map[string]string `yaml:"labels,omitempty"`
	}
	specYAML struct {
		Description    string         `yaml:"description,omitempty"`
		Owners         []string       `yaml:"owners"`
		Classification string         `yaml:"classification"`
		Residency      string         `yaml:"residency"`
		Retention      durationValue  `yaml:"retention"`
		SLO            sloYAML        `yaml:"slo"`
		Throughput     throughputYAML `yaml:"throughput"`
		Streams        []streamYAML   `yaml:"streams"`
		Producers      []producerYAML `yaml:"producers,omitempty"`
		Consumers      []consumerYAML `yaml:"consumers,omitempty"`
		Action         *actionYAML    `yaml:"action,omitempty"`
	}
	sloYAML struct {
		LatencyP99 durationValue `yaml:"latencyP99"`
		Freshness  durationValue `yaml:"freshness,omitempty"`
	}
	throughputYAML struct {
		BytesPerSecond sizeValue `yaml:"bytesPerSecond"`
		PeakFactor     float64   `yaml:"peakFactor,omitempty"`
		RecordBytes    sizeValue `yaml:"recordBytes,omitempty"`
	}
	streamYAML struct {
		Name       string     `yaml:"name"`
		Partitions int32      `yaml:"partitions,omitempty"`
		Schema     schemaYAML `yaml:"schema"`
		External   bool       `yaml:"external,omitempty"`
	}
	schemaYAML struct {
		Format        string `yaml:"format"`
		Compatibility string `yaml:"compatibility,omitempty"`
		Definition    string `yaml:"definition"`
	}
	producerYAML struct {
		Principal string   `yaml:"principal"`
		Streams   []string `yaml:"streams"`
	}
	consumerYAML struct {
		Principal string   `yaml:"principal"`
		Group     string   `yaml:"group,omitempty"`
		Streams   []string `yaml:"streams"`
	}
	actionYAML struct {
		Stream string `yaml:"stream"`
	}
)

// durationValue is a duration in milliseconds, written in YAML as "72h".
type durationValue int64

// MarshalYAML writes the duration in human units.
func (d durationValue) MarshalYAML() (any, error) { return FormatDuration(int64(d)), nil }

// sizeValue is a size in bytes, written in YAML as "2MiB" or a bare number.
type sizeValue int64

// MarshalYAML writes the size in human units, or as a bare byte count.
func (s sizeValue) MarshalYAML() (any, error) {
	f := FormatSize(int64(s))
	if n, err := strconv.ParseInt(f, 10, 64); err == nil {
		return n, nil
	}
	return f, nil
}

var (
	durationType = reflect.TypeFor[durationValue]()
	sizeType     = reflect.TypeFor[sizeValue]()
)

// Parse reads every loop document from r. Defaults (see Default) are
// applied; the loops are not validated (see Validate, or Load for both).
//
// On any problem Parse returns nil loops and a FieldErrors listing every
// problem of every document, each with its document index and line: unknown
// fields, bad units, wrong shapes, wrong apiVersion or kind, the same loop
// twice. A YAML syntax error stops reading at that point, since nothing
// after it can be trusted.
func Parse(r io.Reader) ([]*Loop, error) {
	docs, err := parseDocuments(r)
	if err != nil {
		return nil, err
	}
	out := make([]*Loop, len(docs))
	for i, d := range docs {
		out[i] = d.loop
	}
	return out, nil
}

// ParseBytes is Parse on a byte slice.
func ParseBytes(b []byte) ([]*Loop, error) { return Parse(bytes.NewReader(b)) }

// Load is Parse followed by Validate of every loop: what file imports use.
// Validation problems carry the document index and, where the field was
// written, its line.
func Load(r io.Reader) ([]*Loop, error) {
	return LoadWithLimits(r, catalog.DefaultLimits())
}

// LoadWithLimits is Parse followed by ValidateWithLimits of every loop.
// loopctl uses it with catalog.CeilingLimits: it does not know the limits
// of the server it talks to, which checks its own.
func LoadWithLimits(r io.Reader, lim catalog.Limits) ([]*Loop, error) {
	docs, err := parseDocuments(r)
	if err != nil {
		return nil, err
	}
	var all FieldErrors
	out := make([]*Loop, len(docs))
	for i, d := range docs {
		out[i] = d.loop
		for _, fe := range ValidateWithLimits(d.loop, lim) {
			fe.Document = d.index
			fe.Line = d.lineOf(fe.Field)
			all = append(all, fe)
		}
		if len(all) > MaxReportedProblems {
			break // the rest of the file would not be reported anyway
		}
	}
	all = capProblems(all)
	if err := all.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parsedDocument is one decoded loop with where it came from.
type parsedDocument struct {
	loop  *Loop
	index int            // 1-based position in the file
	lines map[string]int // field path -> line where it was written
}

// lineOf returns the line of field, or of its nearest written parent.
func (d parsedDocument) lineOf(field string) int {
	for f := field; f != ""; {
		if l, ok := d.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func parseDocuments(r io.Reader) ([]parsedDocument, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxFileBytes {
		return nil, FieldErrors{{Message: fmt.Sprintf("the file is larger than %d bytes (%s), the most a loop file may be; split it into several files",
			MaxFileBytes, FormatSize(MaxFileBytes))}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var (
		docs []parsedDocument
		errs FieldErrors
		seen = map[string]int{} // team/name -> document index
	)
	for index := 1; ; index++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fe := FieldError{Document: index, Message: clip(strings.TrimPrefix(err.Error(), "yaml: ")) + " (fix the YAML syntax)"}
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
				fe.Line, _ = strconv.Atoi(m[1])
				fe.Message = strings.TrimSpace(strings.Replace(fe.Message, m[0]+":", "", 1))
			}
			errs = append(errs, fe)
			break
		}
		if len(errs) > MaxReportedProblems {
			break // the rest of the file would not be reported anyway
		}
		if isEmptyDocument(&root) {
			continue
		}
		doc, derrs := decodeDocument(&root, index)
		if len(derrs) > 0 {
			errs = append(errs, derrs...)
			continue
		}
		key := doc.loop.Metadata.Key()
		if first, dup := seen[key]; dup && doc.loop.Metadata.Name != "" && doc.loop.Metadata.Team != "" {
			errs = append(errs, FieldError{Document: index, Line: doc.lines["metadata.name"], Field: "metadata.name",
				Message: fmt.Sprintf("loop %s is already defined in document %d (each loop may appear once per file)", clip(key), first)})
			continue
		}
		seen[key] = index
		docs = append(docs, doc)
	}
	if err := capProblems(errs).Err(); err != nil {
		return nil, err
	}
	return docs, nil
}

// isEmptyDocument reports a document with no content or only comments.
func isEmptyDocument(n *yaml.Node) bool {
	if n.Kind == 0 {
		return true
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		c := n.Content[0]
		return c.Kind == yaml.ScalarNode && c.Tag == "!!null"
	}
	return false
}

func decodeDocument(root *yaml.Node, index int) (parsedDocument, FieldErrors) {
	d := &nodeDecoder{lines: map[string]int{}, budget: countNodes(root) + MaxAliasExpansion}
	body := root
	if body.Kind == yaml.DocumentNode {
		body = body.Content[0]
	}
	var doc documentYAML
	d.decodeNode(body, reflect.ValueOf(&doc).Elem(), "")

	// A wrong header makes every other error noise: report only the header.
	var header FieldErrors
	switch {
	case doc.APIVersion == "" && body.Kind == yaml.MappingNode:
		header.add("apiVersion", "is missing (write apiVersion: %s)", APIVersion)
	case doc.APIVersion != "" && doc.APIVersion != APIVersion:
		header.add("apiVersion", "must be %q, not %s", APIVersion, quote(doc.APIVersion))
	}
	switch {
	case doc.Kind == "" && body.Kind == yaml.MappingNode:
		header.add("kind", "is missing (write kind: %s)", Kind)
	case doc.Kind != "" && doc.Kind != Kind:
		header.add("kind", "must be %q, not %s (this file may describe something other than a loop)", Kind, quote(doc.Kind))
	}
	errs := d.errs
	if d.exhausted {
		header = nil // the document was not read to the end: nothing else is sure
	}
	if len(header) > 0 {
		errs = header
		for i := range errs {
			errs[i].Line = d.lines[errs[i].Field]
		}
	} else if body.Kind == yaml.MappingNode && !d.exhausted {
		if doc.Metadata == nil {
			errs = append(errs, FieldError{Field: "metadata", Message: "is missing (a loop needs metadata.name and metadata.team)"})
		}
		if doc.Spec == nil {
			errs = append(errs, FieldError{Field: "spec", Message: "is missing (see examples/checkout-nudge.yaml)"})
		}
	}
	for i := range errs {
		errs[i].Document = index
		if errs[i].Line == 0 {
			errs[i].Line = body.Line
		}
	}
	if len(errs) > 0 {
		return parsedDocument{}, errs
	}
	l := doc.toLoop()
	Default(l)
	return parsedDocument{loop: l, index: index, lines: d.lines}, nil
}

// nodeDecoder walks a yaml.Node tree into a YAML-facing struct, collecting
// every problem with its path and line, and remembering the line of every
// path it sets. It visits at most budget nodes (aliases expanded), then
// stops with one problem saying so.
type nodeDecoder struct {
	errs      FieldErrors
	lines     map[string]int
	budget    int
	exhausted bool
}

func (d *nodeDecoder) fail(path string, n *yaml.Node, format string, args ...any) {
	if len(d.errs) > MaxReportedProblems {
		return // capped later; do not spend memory on what is not reported
	}
	d.errs = append(d.errs, FieldError{Field: path, Line: n.Line, Message: fmt.Sprintf(format, args...)})
}

// countNodes counts the nodes of a tree without following aliases: the
// size of what yaml.v3 built, linear in the input.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, ch := range n.Content {
		c += countNodes(ch)
	}
	return c
}

func (d *nodeDecoder) decodeNode(n *yaml.Node, v reflect.Value, path string) {
	if d.exhausted {
		return
	}
	for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil; hops++ {
		if hops == 100 {
			d.fail(path, n, "an alias of an alias of ... (100 deep)")
			return
		}
		n = n.Alias
	}
	if d.budget--; d.budget < 0 {
		d.exhausted = true
		d.errs = append(d.errs, FieldError{Field: orDocument(path), Line: n.Line, Message: fmt.Sprintf(
			"the document expands YAML aliases to more than %d values; write the values out or use fewer aliases (each use of an alias repeats everything it names)",
			MaxAliasExpansion)})
		return
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value; Validate says what is required
	}
	switch t := v.Type(); {
	case t == durationType:
		if !d.scalar(n, path, "a duration such as 72h or 500ms") {
			return
		}
		ms, err := ParseDuration(n.Value)
		if err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		v.SetInt(ms)
		return
	case t == sizeType:
		if !d.scalar(n, path, "a size such as 2MiB or 600") {
			return
		}
		b, err := ParseSize(n.Value)
		if err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		v.SetInt(b)
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decodeNode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "must be a list, not %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decodeNode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map: // map[string]string: labels
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "must be a mapping of key: value, not %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := mapKeyPath(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.fail(kp, k, "duplicate key (first written on line %d)", first)
				continue
			}
			seen[k.Value] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decodeNode(val, elem, kp)
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(m)
	case reflect.String:
		if d.scalar(n, path, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Int32, reflect.Int64:
		if !d.scalar(n, path, "a whole number") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 10, v.Type().Bits())
		if errors.Is(err, strconv.ErrRange) {
			d.fail(path, n, "%s is too large", n.Value)
			return
		}
		if err != nil || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			d.fail(path, n, "must be a whole number, not %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		switch {
		case n.Value == "true" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0:
			v.SetBool(true)
		case n.Value == "false" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0:
			v.SetBool(false)
		default:
			d.fail(path, n, "must be true or false, not %s", describe(n))
		}
	case reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			d.fail(path, n, "must be a number, not %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// Only reachable if a YAML-facing struct gains a field of a new
		// kind without decoder support: a programming error.
		panic(fmt.Sprintf("loop: decodeNode: unsupported type %s at %s", v.Type(), path))
	}
}

// scalar checks that n is a single value.
func (d *nodeDecoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "must be %s, not %s", want, describe(n))
		return false
	}
	return true
}

func (d *nodeDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "must be a mapping of fields, not %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := mapKeyPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(kp, k, "duplicate key (first written on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			d.fail(kp, k, "unknown field%s", suggest(k.Value, fields))
			continue
		}
		d.decodeNode(val, v.Field(idx), kp)
	}
}

// yamlFields maps YAML names to struct field indexes.
func yamlFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

// suggest returns ` (did you mean "streams"?)` for a near miss, or the list
// of valid fields when nothing is close.
func suggest(got string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	if len(got) > 64 {
		// Nothing is close; and edit distances of a long key cost too much.
		return fmt.Sprintf(" (valid fields here: %s)", strings.Join(names, ", "))
	}
	best, bestDist := "", 1<<30
	for _, f := range names {
		dist := editDistance(strings.ToLower(got), strings.ToLower(f))
		if dist < bestDist {
			best, bestDist = f, dist
		}
	}
	if bestDist <= 2 || (bestDist <= 4 && len(got) > 6) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (valid fields here: %s)", strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quote(n.Value)
	}
	return "an unexpected YAML node"
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// mapKeyPath is parent.key, or parent["key"] when the key is not a plain
// identifier of at most 64 characters (label keys may contain dots and
// slashes); a key longer than maxQuoted bytes is clipped.
func mapKeyPath(parent, key string) string {
	if plainKeyRE.MatchString(key) {
		return joinPath(parent, key)
	}
	return parent + "[" + quote(key) + "]"
}

// orDocument is path, or "document" for the document itself.
func orDocument(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// toLoop converts the YAML shape to the domain shape (canonical units).
func (doc *documentYAML) toLoop() *Loop {
	md, sp := doc.Metadata, doc.Spec
	l := &Loop{
		Metadata: Metadata{Name: md.Name, Team: md.Team, Labels: md.Labels},
		Spec: Spec{
			Description:    sp.Description,
			Owners:         sp.Owners,
			Classification: Classification(sp.Classification),
			Residency:      sp.Residency,
			RetentionMs:    int64(sp.Retention),
			SLO: SLO{
				LatencyP99Ms: int64(sp.SLO.LatencyP99),
				FreshnessMs:  int64(sp.SLO.Freshness),
			},
			Throughput: Throughput{
				BytesPerSecond: int64(sp.Throughput.BytesPerSecond),
				PeakFactor:     sp.Throughput.PeakFactor,
				RecordBytes:    int64(sp.Throughput.RecordBytes),
			},
		},
	}
	for _, s := range sp.Streams {
		l.Spec.Streams = append(l.Spec.Streams, Stream{
			Name:       s.Name,
			Partitions: s.Partitions,
			Schema:     Schema(s.Schema),
			External:   s.External,
		})
	}
	for _, p := range sp.Producers {
		l.Spec.Producers = append(l.Spec.Producers, Producer(p))
	}
	for _, c := range sp.Consumers {
		l.Spec.Consumers = append(l.Spec.Consumers, Consumer(c))
	}
	if sp.Action != nil {
		l.Spec.Action = &Action{Stream: sp.Action.Stream}
	}
	return l
}

// Default fills in what a spec may omit: throughput.peakFactor 1, a
// consumer's group (DefaultGroup), and for every stream schema.format
// "avro" and schema.compatibility "BACKWARD".
// Parse applies it; API handlers should apply it before Validate.
func Default(l *Loop) {
	if l.Spec.Throughput.PeakFactor == 0 {
		l.Spec.Throughput.PeakFactor = 1
	}
	for i := range l.Spec.Consumers {
		c := &l.Spec.Consumers[i]
		if c.Group == "" && c.Principal != "" && l.Metadata.Team != "" && l.Metadata.Name != "" {
			c.Group = DefaultGroup(l.Metadata.Team, l.Metadata.Name, c.Principal)
		}
	}
	for i := range l.Spec.Streams {
		s := &l.Spec.Streams[i].Schema
		if s.Format == "" {
			s.Format = "avro"
		}
		if s.Compatibility == "" {
			s.Compatibility = schemas.DefaultMode
		}
	}
}
