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
// Errors: a definition that does not parse wraps ErrInvalidSchema; an
// evolution that breaks the mode is an *IncompatibleError (errors.Is(err,
// ErrIncompatible) is true); an unknown mode wraps ErrUnknownMode.
package schemas

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrInvalidSchema means a definition is not a usable Avro record schema.
	ErrInvalidSchema = errors.New("invalid Avro schema")
	// ErrIncompatible means a new definition breaks the compatibility mode.
	ErrIncompatible = errors.New("incompatible schema change")
	// ErrUnknownMode means the compatibility mode is not one of Modes.
	ErrUnknownMode = errors.New("unknown compatibility mode")
)

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

// ParseAvro parses one stream's schema definition (Avro JSON).
//
// The top-level type must be a record: the definition is the value schema of
// a Kafka topic, and a record is what can evolve (fields added with defaults,
// renamed with aliases); a bare "string" or array would lock the topic into
// one shape forever and gives consumers nothing to name.
//
// Named types must be defined inside the definition itself; each call parses
// with its own fresh cache so nothing leaks between schemas.
func ParseAvro(definition string) (avro.Schema, error) {
	if r, ok := parsed.get(definition); ok {
		return r.schema, r.err
	}
	s, err := parseAvro(definition)
	parsed.put(definition, s, err)
	return s, err
}

func parseAvro(definition string) (avro.Schema, error) {
	if strings.TrimSpace(definition) == "" {
		return nil, fmt.Errorf("%w: the definition is empty (write an Avro record, e.g. {\"type\":\"record\",\"name\":\"Event\",\"fields\":[...]})", ErrInvalidSchema)
	}
	s, err := avro.ParseWithCache(definition, "", &avro.SchemaCache{})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "avro: ")
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
	if e.Direction == "backward" {
		return fmt.Sprintf("%s under %s: readers using the new schema cannot read data written with version %d: %v "+
			"(give added fields a default and keep field types compatible)",
			ErrIncompatible, e.Mode, e.Version, e.Err)
	}
	return fmt.Sprintf("%s under %s: readers using version %d cannot read data written with the new schema: %v "+
		"(only remove fields that have a default and keep field types compatible)",
		ErrIncompatible, e.Mode, e.Version, e.Err)
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

// CheckCompatibility checks that newDef may replace the previous definitions
// (oldest first) under mode. An empty mode means DefaultMode. With no
// previous definitions there is nothing to be compatible with and only
// newDef itself is checked. Previous definitions are parsed too: an invalid
// one is reported as such rather than silently skipped.
//
// It returns nil when compatible, an *IncompatibleError for the first
// version (newest first) that breaks the mode, or an error wrapping
// ErrInvalidSchema or ErrUnknownMode.
func CheckCompatibility(mode string, newDef string, previous []string) error {
	if mode == "" {
		mode = DefaultMode
	}
	if !ValidMode(mode) {
		return fmt.Errorf("%w %q (use one of %s)", ErrUnknownMode, mode, strings.Join(Modes, ", "))
	}
	newSchema, err := ParseAvro(newDef)
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
		old, err := ParseAvro(previous[i])
		if err != nil {
			return fmt.Errorf("previous schema version %d: %w", i+1, err)
		}
		if backward {
			// A fresh checker per call: see the package doc.
			if err := avro.NewSchemaCompatibility().Compatible(newSchema, old); err != nil {
				return &IncompatibleError{Mode: mode, Version: i + 1, Direction: "backward", Err: err}
			}
		}
		if forward {
			if err := avro.NewSchemaCompatibility().Compatible(old, newSchema); err != nil {
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
// sharing them is safe. The cache is bounded: it is emptied when full.
type parseCache struct {
	mu sync.Mutex
	m  map[string]parseResult
}

type parseResult struct {
	schema avro.Schema
	err    error
}

const parseCacheSize = 4096

var parsed = &parseCache{m: map[string]parseResult{}}

func (c *parseCache) get(def string) (parseResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[def]
	return r, ok
}

func (c *parseCache) put(def string, s avro.Schema, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= parseCacheSize {
		clear(c.m)
	}
	c.m[def] = parseResult{s, err}
}
