// Package schemas parses the Avro record schemas of a loop's streams and
// checks schema evolution against a compatibility mode, the way Confluent's
// schema registry does.
//
// Start with ParseAvro (is this definition a usable topic value schema?) and
// CheckCompatibility (may this new definition replace the previous ones under
// mode M?). Both wrap github.com/hamba/avro/v2 and work around two of its
// traps, documented in /work/shared/tech-notes.md:
//
//   - avro.Parse shares a process-wide cache of named types, so a schema that
//     references a type it never defines would parse just because some
//     unrelated, earlier schema defined it. ParseAvro gives every definition
//     its own fresh cache: a definition must be self-contained.
//   - avro.SchemaCompatibility caches verdicts by canonical-form fingerprint,
//     and the canonical form drops defaults, so a reused checker can answer
//     for a different schema that differs only in defaults. Every pairwise
//     check here uses a new checker.
//
// Errors: a definition that does not parse wraps ErrInvalidSchema; one over
// a size limit wraps ErrTooLarge (and ErrInvalidSchema); an evolution that
// breaks the mode is an *IncompatibleError (errors.Is(err, ErrIncompatible)
// is true); an unknown mode wraps ErrUnknownMode. Error messages never
// repeat more than maxQuoted bytes of a definition.
//
// Cost. hamba/avro's parser and, above all, its canonical form (computed by
// every compatibility check, quadratic in the number of fields of a record)
// are expensive on large inputs: a 60,000-field definition took seconds of
// CPU and hundreds of MB. So every definition is first measured by a cheap,
// bounded pass over its JSON tokens (prescan) against the limits
// (catalog.Limits: bytes, fields, nesting depth), and only a definition
// within them reaches the library.
package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	"github.com/loopgate/loopgate/catalog"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidSchema means a definition is not a usable Avro record schema.
	ErrInvalidSchema = errors.New("invalid Avro schema")
	// ErrIncompatible means a new definition breaks the compatibility mode.
	ErrIncompatible = errors.New("incompatible schema change")
	// ErrUnknownMode means the compatibility mode is not one of Modes.
	ErrUnknownMode = errors.New("unknown compatibility mode")
	// ErrTooLarge means a definition is over a limit (bytes, fields or
	// nesting depth) and was not parsed. Errors wrapping it also match
	// ErrInvalidSchema.
	ErrTooLarge = errors.New("Avro schema over a limit")
)

// tooLargeError is an ErrTooLarge error; it matches ErrInvalidSchema too.
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string { return ErrTooLarge.Error() + ": " + e.msg }

func (e *tooLargeError) Is(target error) bool {
	return target == ErrTooLarge || target == ErrInvalidSchema
}

func tooLarge(format string, args ...any) error {
	return &tooLargeError{msg: fmt.Sprintf(format, args...)}
}

// maxQuoted is how much of an input (a definition, a name) an error message
// repeats; the rest is replaced by "…(N bytes)".
const maxQuoted = 200

// clip returns s when it is at most max bytes, else its first max bytes (cut
// at a rune boundary) followed by "…(N bytes)", N the length of s.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// Compatibility modes, as in Confluent's schema registry.
//
//   - BACKWARD: consumers using the new schema can read data written with the
//     previous one (delete fields, add fields with defaults). Upgrade
//     consumers first.
//   - FORWARD: consumers using the previous schema can read data written with
//     the new one (add fields, delete fields that had defaults). Upgrade
//     producers first.
//   - FULL: both.
//   - NONE: no check.
//
// The plain modes compare with the latest previous version only; the
// _TRANSITIVE modes compare with every previous version.
const (
	None               = "NONE"
	Backward           = "BACKWARD"
	Forward            = "FORWARD"
	Full               = "FULL"
	BackwardTransitive = "BACKWARD_TRANSITIVE"
	ForwardTransitive  = "FORWARD_TRANSITIVE"
	FullTransitive     = "FULL_TRANSITIVE"
)

// Modes lists every accepted compatibility mode.
var Modes = []string{None, Backward, Forward, Full, BackwardTransitive, ForwardTransitive, FullTransitive}

// DefaultMode is the mode used when a stream does not name one.
const DefaultMode = Backward

// ParseAvro parses one stream's schema definition (Avro JSON) within the
// default limits (catalog.DefaultLimits); see ParseAvroWithLimits.
func ParseAvro(definition string) (avro.Schema, error) {
	return ParseAvroWithLimits(definition, catalog.DefaultLimits())
}

// ParseAvroWithLimits parses one stream's schema definition (Avro JSON).
//
// The definition must be within lim (zero fields mean the defaults):
// MaxSchemaBytes long, at most MaxSchemaFields fields and MaxSchemaDepth
// levels of nesting. These are checked before the definition is parsed,
// and an error wrapping ErrTooLarge says which limit it is over.
//
// The top-level type must be a record: the definition is the value schema of
// a Kafka topic, and a record is what can evolve (fields added with defaults,
// renamed with aliases); a bare "string" or array would lock the topic into
// one shape forever and gives consumers nothing to name.
//
// Named types must be defined inside the definition itself; each call parses
// with its own fresh cache so nothing leaks between schemas.
func ParseAvroWithLimits(definition string, lim catalog.Limits) (avro.Schema, error) {
	lim = lim.WithDefaults()
	if len(definition) > lim.MaxSchemaBytes {
		return nil, tooLarge("the definition is %d bytes; at most %d (%s)", len(definition), lim.MaxSchemaBytes, catalog.LimitKey("MaxSchemaBytes"))
	}
	if r, ok := parsed.get(definition); ok {
		if err := r.stats.check(lim); err != nil {
			return nil, err
		}
		return r.schema, r.err
	}
	st, err := prescan(definition, lim)
	if err != nil {
		return nil, err
	}
	s, err := parseAvro(definition)
	parsed.put(definition, parseResult{schema: s, err: err, stats: st})
	return s, err
}

// scanStats is what prescan measured of a definition.
type scanStats struct {
	fields int // JSON objects with a "type" key, plus enum symbols
	depth  int // deepest nesting of JSON objects and arrays
}

// check reports the first limit of lim that st is over.
func (st scanStats) check(lim catalog.Limits) error {
	if st.depth > lim.MaxSchemaDepth {
		return tooLarge("the definition nests more than %d levels deep (JSON objects and arrays); at most %d (%s)",
			lim.MaxSchemaDepth, lim.MaxSchemaDepth, catalog.LimitKey("MaxSchemaDepth"))
	}
	if st.fields > lim.MaxSchemaFields {
		return tooLarge("the definition has more than %d fields (record fields, nested types and enum symbols); at most %d (%s)",
			lim.MaxSchemaFields, lim.MaxSchemaFields, catalog.LimitKey("MaxSchemaFields"))
	}
	return nil
}

// scanFrame is one open JSON object or array of prescan.
type scanFrame struct {
	array     bool
	countElem bool   // an array whose elements count as fields (enum symbols)
	wantKey   bool   // object: the next token is a key
	key       string // object: the key of the value being read
	typed     bool   // object: has a "type" key (counted once)
	union     bool   // array: the value of "type", "items" or "values": a union
	elems     int    // array: elements so far
}

// prescan walks the JSON tokens of a definition once, without building it,
// and stops as soon as the definition is over a depth or field limit of lim.
// It also refuses what is not a single JSON value. Its cost is linear in the
// (already bounded) length of the definition and its memory in the depth.
func prescan(definition string, lim catalog.Limits) (scanStats, error) {
	var (
		st    scanStats
		stack []scanFrame
		done  bool // the top-level value is complete
	)
	dec := json.NewDecoder(strings.NewReader(definition))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !done {
				break // empty: parseAvro says so
			}
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("%w: not valid JSON: %s", ErrInvalidSchema, clip(err.Error(), maxQuoted))
		}
		if done {
			return st, fmt.Errorf("%w: unexpected content after the schema's JSON value", ErrInvalidSchema)
		}
		var top *scanFrame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && !top.array && top.wantKey {
			// A key (the decoder returns keys as strings; a closing '}'
			// comes as a Delim and is handled below).
			if k, ok := tok.(string); ok {
				top.key, top.wantKey = k, false
				if k == "type" && !top.typed {
					top.typed = true
					st.fields++
				}
				if err := st.check(lim); err != nil {
					return st, err
				}
				continue
			}
		}
		if top != nil && top.array {
			if d, ok := tok.(json.Delim); !ok || d == '{' || d == '[' {
				top.elems++
			}
		}
		if top != nil && top.array && top.countElem {
			if d, ok := tok.(json.Delim); !ok || d == '{' || d == '[' {
				st.fields++
				if err := st.check(lim); err != nil {
					return st, err
				}
			}
		}
		switch d, _ := tok.(json.Delim); d {
		case '{', '[':
			f := scanFrame{array: d == '[', wantKey: d == '{'}
			if d == '[' && top != nil && !top.array {
				f.countElem = top.key == "symbols"
				f.union = top.key == "type" || top.key == "items" || top.key == "values"
			}
			stack = append(stack, f)
			if len(stack) > st.depth {
				st.depth = len(stack)
				if err := st.check(lim); err != nil {
					return st, err
				}
			}
			continue
		case '}', ']':
			if f := stack[len(stack)-1]; f.union && f.elems == 0 {
				// The library accepts it, but no value fits an empty
				// union (and with a default it panics).
				return st, fmt.Errorf("%w: a union (a list of types) must name at least one type", ErrInvalidSchema)
			}
			stack = stack[:len(stack)-1]
		}
		// A value is complete: the enclosing object wants a key next.
		if len(stack) == 0 {
			done = true
		} else if p := &stack[len(stack)-1]; !p.array {
			p.wantKey = true
		}
	}
	return st, nil
}

func parseAvro(definition string) (s avro.Schema, err error) {
	// hamba/avro panics on some definitions (an empty union with a
	// default: index out of range): a definition must not be able to
	// crash the server.
	defer recoverAs(&err, "parsing it")
	if strings.TrimSpace(definition) == "" {
		return nil, fmt.Errorf("%w: the definition is empty (write an Avro record, e.g. {\"type\":\"record\",\"name\":\"Event\",\"fields\":[...]})", ErrInvalidSchema)
	}
	s, err = avro.ParseWithCache(definition, "", &avro.SchemaCache{})
	if err != nil {
		// The library's messages can repeat the whole offending JSON
		// (e.g. "unknown type: {...}" of a deeply nested definition).
		msg := clip(strings.TrimPrefix(err.Error(), "avro: "), maxQuoted)
		if strings.HasPrefix(msg, "unknown type") {
			msg += " (a primitive type or a named type defined earlier in this same definition is required)"
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidSchema, msg)
	}
	if s.Type() != avro.Record {
		return nil, fmt.Errorf("%w: the top-level type is %q; a stream's schema must be a record (wrap the value in {\"type\":\"record\",\"name\":...,\"fields\":[...]})",
			ErrInvalidSchema, s.Type())
	}
	return s, nil
}

// recoverAs turns a panic of the Avro library into an ErrInvalidSchema error
// in *err; call it deferred.
func recoverAs(err *error, doing string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: the Avro library failed %s (%s); simplify the definition",
			ErrInvalidSchema, doing, clip(fmt.Sprint(r), maxQuoted))
	}
}

// compatible is hamba/avro's reader/writer check with a fresh checker (see
// the package doc), its panics turned into errors.
func compatible(reader, writer avro.Schema) (err error) {
	defer recoverAs(&err, "comparing the definitions")
	return avro.NewSchemaCompatibility().Compatible(reader, writer)
}

// IncompatibleError says which previous version a new schema is incompatible
// with, in which direction, and why.
type IncompatibleError struct {
	Mode string
	// Version is the 1-based position of the offending definition in the
	// previous list given to CheckCompatibility (oldest first).
	Version int
	// Direction is "backward" (the new schema cannot read data written with
	// the old one) or "forward" (the old schema cannot read data written with
	// the new one).
	Direction string
	// Err is the reason given by the Avro resolver.
	Err error
}

func (e *IncompatibleError) Error() string {
	// The resolver's reason names fields and types of the definitions.
	reason := clip(fmt.Sprint(e.Err), maxQuoted)
	if e.Direction == "backward" {
		return fmt.Sprintf("%s under %s: readers using the new schema cannot read data written with version %d: %s "+
			"(give added fields a default and keep field types compatible)",
			ErrIncompatible, e.Mode, e.Version, reason)
	}
	return fmt.Sprintf("%s under %s: readers using version %d cannot read data written with the new schema: %s "+
		"(only remove fields that have a default and keep field types compatible)",
		ErrIncompatible, e.Mode, e.Version, reason)
}

// Is makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Is(target error) bool { return target == ErrIncompatible }

// Unwrap returns the resolver's reason.
func (e *IncompatibleError) Unwrap() error { return e.Err }

// ValidMode reports whether mode is one of Modes.
func ValidMode(mode string) bool {
	for _, m := range Modes {
		if m == mode {
			return true
		}
	}
	return false
}

// CheckCompatibility is CheckCompatibilityWithLimits with the default limits
// (catalog.DefaultLimits).
func CheckCompatibility(mode string, newDef string, previous []string) error {
	return CheckCompatibilityWithLimits(mode, newDef, previous, catalog.DefaultLimits())
}

// CheckCompatibilityWithLimits checks that newDef may replace the previous
// definitions (oldest first) under mode. Every definition, new and
// previous, must be within lim (see ParseAvroWithLimits): the check's cost
// is quadratic in their fields. An empty mode means DefaultMode. With no
// previous definitions there is nothing to be compatible with and only
// newDef itself is checked. Previous definitions are parsed too: an invalid
// one is reported as such rather than silently skipped.
//
// It returns nil when compatible, an *IncompatibleError for the first
// version (newest first) that breaks the mode, or an error wrapping
// ErrInvalidSchema or ErrUnknownMode.
func CheckCompatibilityWithLimits(mode string, newDef string, previous []string, lim catalog.Limits) error {
	if mode == "" {
		mode = DefaultMode
	}
	if !ValidMode(mode) {
		return fmt.Errorf("%w %q (use one of %s)", ErrUnknownMode, clip(mode, maxQuoted), strings.Join(Modes, ", "))
	}
	newSchema, err := ParseAvroWithLimits(newDef, lim)
	if err != nil {
		return fmt.Errorf("new schema: %w", err)
	}
	if mode == None || len(previous) == 0 {
		return nil
	}

	backward := mode == Backward || mode == BackwardTransitive || mode == Full || mode == FullTransitive
	forward := mode == Forward || mode == ForwardTransitive || mode == Full || mode == FullTransitive
	transitive := strings.HasSuffix(mode, "_TRANSITIVE")

	first := len(previous) - 1 // non-transitive: the latest only
	if transitive {
		first = 0
	}
	// Newest first: the most recent break is the most useful one to report.
	for i := len(previous) - 1; i >= first; i-- {
		old, err := ParseAvroWithLimits(previous[i], lim)
		if err != nil {
			return fmt.Errorf("previous schema version %d: %w", i+1, err)
		}
		if backward {
			if err := compatible(newSchema, old); err != nil {
				if errors.Is(err, ErrInvalidSchema) {
					return err
				}
				return &IncompatibleError{Mode: mode, Version: i + 1, Direction: "backward", Err: err}
			}
		}
		if forward {
			if err := compatible(old, newSchema); err != nil {
				if errors.Is(err, ErrInvalidSchema) {
					return err
				}
				return &IncompatibleError{Mode: mode, Version: i + 1, Direction: "forward", Err: err}
			}
		}
	}
	return nil
}

// parseCache remembers parse results by exact definition text. A request
// validates a loop and then checks its schemas' compatibility, and a file of
// many loops often repeats definitions; hamba/avro's parser costs tens of
// microseconds per schema. The result depends only on the text (each parse
// has its own named-type cache), and parsed schemas are not mutated, so
// sharing them is safe. Each entry keeps what prescan measured, so a later
// call with stricter limits still refuses it. The cache is bounded in
// entries and in bytes of definitions (a parsed schema takes several times
// its text): it is emptied when full, and definitions larger than
// parseCacheMaxDef are not kept.
type parseCache struct {
	mu    sync.Mutex
	m     map[string]parseResult
	bytes int
}

type parseResult struct {
	schema avro.Schema
	err    error
	stats  scanStats
}

const (
	parseCacheSize   = 4096
	parseCacheBytes  = 8 << 20
	parseCacheMaxDef = 64 << 10
)

var parsed = &parseCache{m: map[string]parseResult{}}

func (c *parseCache) get(def string) (parseResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[def]
	return r, ok
}

func (c *parseCache) put(def string, r parseResult) {
	if len(def) > parseCacheMaxDef {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[def]; ok {
		return
	}
	if len(c.m) >= parseCacheSize || c.bytes+len(def) > parseCacheBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[def] = r
	c.bytes += len(def)
}
