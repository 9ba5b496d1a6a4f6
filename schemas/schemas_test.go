package schemas

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// record builds a record schema named shop.Event with the given field JSON.
func record(fields ...string) string {
	return `{"type":"record","name":"Event","namespace":"shop","fields":[` + strings.Join(fields, ",") + `]}`
}

const (
	fID          = `{"name":"id","type":"string"}`
	fAString     = `{"name":"a","type":"string"}`
	fAInt        = `{"name":"a","type":"int"}`
	fAIntDefault = `{"name":"a","type":"int","default":0}`
	fBDefault    = `{"name":"b","type":"int","default":0}`
	fBNoDefault  = `{"name":"b","type":"int"}`
)

func TestParseAvroAcceptsSelfContainedRecord(t *testing.T) {
	s, err := ParseAvro(`{"type":"record","name":"CheckoutEvent","namespace":"shop",
	  "fields":[{"name":"user_id","type":"string"},
	            {"name":"address","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}},
	            {"name":"billing","type":"shop.Address"}]}`)
	if err != nil {
		t.Fatalf("ParseAvro: %v", err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		t.Fatalf("got %T, want *avro.RecordSchema", s)
	}
	if rec.FullName() != "shop.CheckoutEvent" || len(rec.Fields()) != 3 {
		t.Fatalf("got %s with %d fields, want shop.CheckoutEvent with 3", rec.FullName(), len(rec.Fields()))
	}
}

func TestParseAvroRejects(t *testing.T) {
	tests := []struct {
		name, def, wantMsg string
	}{
		{"empty definition", "  \n", "definition is empty"},
		{"not JSON", `{"type":"record",`, "invalid Avro schema"},
		{"top-level primitive", `"string"`, `top-level type is "string"`},
		{"top-level array", `{"type":"array","items":"string"}`, `top-level type is "array"`},
		{"unknown field type", record(`{"name":"a","type":"strng"}`), "invalid Avro schema"},
		{"record without name", `{"type":"record","fields":[]}`, "invalid Avro schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAvro(tt.def)
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("ParseAvro(%q) = %v, want an error wrapping ErrInvalidSchema", tt.def, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// Regression guard for the hamba/avro global cache: avro.Parse registers
// named types process-wide, so a schema that uses shop.Address without
// defining it parses once any unrelated schema defined shop.Address.
// ParseAvro must refuse it: a stream's definition has to be self-contained.
func TestParseAvroDoesNotSeeTypesDefinedByUnrelatedSchemas(t *testing.T) {
	if _, err := avro.Parse(`{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}`); err != nil {
		t.Fatalf("defining shop.Address globally: %v", err)
	}
	dangling := `{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"ship_to","type":"shop.Address"}]}`
	if _, err := avro.Parse(dangling); err != nil {
		t.Logf("note: avro.Parse no longer resolves types from its global cache (%v); ParseAvro's fresh cache is still correct", err)
	}
	_, err := ParseAvro(dangling)
	if !errors.Is(err, ErrInvalidSchema) {
		t.Fatalf("ParseAvro accepted a reference to an undefined named type: err = %v", err)
	}
	if !strings.Contains(err.Error(), "shop.Address") {
		t.Errorf("error %q should name the undefined type", err)
	}
	// And a definition parsed earlier by ParseAvro does not leak either.
	if _, err := ParseAvro(record(`{"name":"x","type":{"type":"record","name":"Inner","fields":[]}}`)); err != nil {
		t.Fatalf("ParseAvro: %v", err)
	}
	if _, err := ParseAvro(record(`{"name":"y","type":"shop.Inner"}`)); !errors.Is(err, ErrInvalidSchema) {
		t.Fatalf("shop.Inner defined by an earlier ParseAvro call leaked into a later one: err = %v", err)
	}
}

func TestCheckCompatibilityModes(t *testing.T) {
	v1 := record(fID, fAString)
	tests := []struct {
		name     string
		mode     string
		newDef   string
		previous []string
		wantOK   bool
		wantDir  string // for failures: "backward" or "forward"
		wantVer  int
	}{
		// Adding a field with a default is safe in both directions.
		{"backward: add field with default", Backward, record(fID, fAString, fBDefault), []string{v1}, true, "", 0},
		{"forward: add field with default", Forward, record(fID, fAString, fBDefault), []string{v1}, true, "", 0},
		{"full: add field with default", Full, record(fID, fAString, fBDefault), []string{v1}, true, "", 0},

		// Adding a field without a default: new readers cannot fill it from old data.
		{"backward: add field without default", Backward, record(fID, fAString, fBNoDefault), []string{v1}, false, "backward", 1},
		{"forward: add field without default", Forward, record(fID, fAString, fBNoDefault), []string{v1}, true, "", 0},
		{"full: add field without default", Full, record(fID, fAString, fBNoDefault), []string{v1}, false, "backward", 1},

		// Removing a field without default: old readers cannot fill it from new data.
		{"backward: remove field", Backward, record(fID), []string{v1}, true, "", 0},
		{"forward: remove field", Forward, record(fID), []string{v1}, false, "forward", 1},
		{"full: remove field", Full, record(fID), []string{v1}, false, "forward", 1},

		// Changing a type incompatibly breaks everything but NONE.
		{"backward: string to int", Backward, record(fID, fAInt), []string{v1}, false, "backward", 1},
		{"forward: string to int", Forward, record(fID, fAInt), []string{v1}, false, "forward", 1},
		{"none: string to int", None, record(fID, fAInt), []string{v1}, true, "", 0},
		{"empty mode means BACKWARD", "", record(fID, fAString, fBNoDefault), []string{v1}, false, "backward", 1},

		{"no previous version", Full, record(fID), nil, true, "", 0},

		// v1 {id, a:string} -> v2 {id} -> v3 {id, a:int=0}: each step is
		// backward compatible with the one before, but v3 cannot read v1's a.
		{"backward checks the latest only", Backward, record(fID, fAIntDefault),
			[]string{v1, record(fID)}, true, "", 0},
		{"backward transitive checks every version", BackwardTransitive, record(fID, fAIntDefault),
			[]string{v1, record(fID)}, false, "backward", 1},
		{"full transitive checks every version", FullTransitive, record(fID, fAIntDefault),
			[]string{v1, record(fID)}, false, "backward", 1},

		// v1 {id, a:int=0} -> v2 {id} -> v3 {id, a:string}: v1 readers
		// cannot read v3's a.
		{"forward checks the latest only", Forward, record(fID, fAString),
			[]string{record(fID, fAIntDefault), record(fID)}, true, "", 0},
		{"forward transitive checks every version", ForwardTransitive, record(fID, fAString),
			[]string{record(fID, fAIntDefault), record(fID)}, false, "forward", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCompatibility(tt.mode, tt.newDef, tt.previous)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("CheckCompatibility: %v, want compatible", err)
				}
				return
			}
			var ie *IncompatibleError
			if !errors.As(err, &ie) {
				t.Fatalf("CheckCompatibility = %v, want *IncompatibleError", err)
			}
			if !errors.Is(err, ErrIncompatible) {
				t.Errorf("errors.Is(err, ErrIncompatible) = false for %v", err)
			}
			if ie.Direction != tt.wantDir || ie.Version != tt.wantVer {
				t.Errorf("got direction %q version %d, want %q version %d (%v)", ie.Direction, ie.Version, tt.wantDir, tt.wantVer, err)
			}
			if !strings.Contains(err.Error(), "version 1") {
				t.Errorf("error %q does not name the version", err)
			}
		})
	}
}

func TestCheckCompatibilityErrorNamesTheField(t *testing.T) {
	err := CheckCompatibility(Backward, record(fID, fAString, fBNoDefault), []string{record(fID, fAString)})
	if err == nil || !strings.Contains(err.Error(), "b") || !strings.Contains(err.Error(), "no default") {
		t.Fatalf("error %v should say field b has no default", err)
	}
}

// Regression guard for the hamba/avro checker cache: it caches verdicts by
// canonical-form fingerprint, and the canonical form drops defaults, so
// "add b with default" and "add b without default" look identical to a
// reused checker. CheckCompatibility must judge each on its own.
func TestCheckCompatibilityDefaultOnlyDifferences(t *testing.T) {
	v1 := record(fID, fAString)
	withDefault := record(fID, fAString, fBDefault)
	withoutDefault := record(fID, fAString, fBNoDefault)

	shared := avro.NewSchemaCompatibility()
	oldS, newWith, newWithout := mustParse(t, v1), mustParse(t, withDefault), mustParse(t, withoutDefault)
	if err := shared.Compatible(newWith, oldS); err != nil {
		t.Fatalf("with default should be backward compatible: %v", err)
	}
	if err := shared.Compatible(newWithout, oldS); err == nil {
		t.Logf("the reused checker still answers from its cache (the reason CheckCompatibility uses a fresh one)")
	} else {
		t.Logf("note: hamba/avro's reused checker no longer confuses defaults: %v", err)
	}

	if err := CheckCompatibility(Backward, withDefault, []string{v1}); err != nil {
		t.Fatalf("with default: %v, want compatible", err)
	}
	if err := CheckCompatibility(Backward, withoutDefault, []string{v1}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("without default after with default: %v, want ErrIncompatible", err)
	}
	// And in the other order.
	if err := CheckCompatibility(Backward, withoutDefault, []string{v1}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("without default: %v, want ErrIncompatible", err)
	}
	if err := CheckCompatibility(Backward, withDefault, []string{v1}); err != nil {
		t.Fatalf("with default after without default: %v, want compatible", err)
	}
}

func TestCheckCompatibilityRejectsBadInput(t *testing.T) {
	v1 := record(fID)
	if err := CheckCompatibility("SIDEWAYS", v1, nil); !errors.Is(err, ErrUnknownMode) {
		t.Errorf("unknown mode: %v, want ErrUnknownMode", err)
	}
	if err := CheckCompatibility("backward", v1, nil); !errors.Is(err, ErrUnknownMode) {
		t.Errorf("modes are upper case: %v, want ErrUnknownMode", err)
	}
	err := CheckCompatibility(Backward, `{"type":"record"`, []string{v1})
	if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "new schema") {
		t.Errorf("invalid new schema: %v, want ErrInvalidSchema naming the new schema", err)
	}
	err = CheckCompatibility(BackwardTransitive, v1, []string{`"int"`, v1})
	if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "previous schema version 1") {
		t.Errorf("invalid previous schema: %v, want ErrInvalidSchema naming version 1", err)
	}
	// NONE still requires the new schema itself to be valid.
	if err := CheckCompatibility(None, `"string"`, []string{v1}); !errors.Is(err, ErrInvalidSchema) {
		t.Errorf("NONE with a non-record schema: %v, want ErrInvalidSchema", err)
	}
}

func mustParse(t *testing.T, def string) avro.Schema {
	t.Helper()
	s, err := ParseAvro(def)
	if err != nil {
		t.Fatalf("ParseAvro(%s): %v", def, err)
	}
	return s
}

func BenchmarkCheckCompatibilityFull(b *testing.B) {
	prev := []string{record(fID, fAString), record(fID, fAString, fBDefault)}
	next := record(fID, fAString, fBDefault, `{"name":"c","type":["null","string"],"default":null}`)
	for b.Loop() {
		if err := CheckCompatibility(FullTransitive, next, prev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseAvroIsSafeForConcurrentUse(t *testing.T) {
	defs := []string{record(fID), record(fID, fAString), `"string"`, record(fID, fBDefault)}
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 200 {
				def := defs[(g+i)%len(defs)]
				_, perr := ParseAvro(def)
				if wantErr := def == `"string"`; (perr != nil) != wantErr {
					err = fmt.Errorf("ParseAvro(%s) = %v, want error: %v", def, perr, wantErr)
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Errorf("concurrent ParseAvro: %v", err)
		}
	}
}
