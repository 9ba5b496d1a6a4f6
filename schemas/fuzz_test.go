package schemas

import (
	"errors"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/loopgate/loopgate/catalog"
)

// Native fuzz targets, e.g.
//
//	go test ./schemas -run '^$' -fuzz FuzzParseAvro -fuzztime 30s

func schemaSeeds() []string {
	return []string{
		record(fID),
		record(fID, fAString),
		record(fAInt, fBDefault),
		record(fAIntDefault, fBNoDefault),
		`{"type":"record","name":"CheckoutEvent","namespace":"shop",
		  "fields":[{"name":"user_id","type":"string"},
		            {"name":"address","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}},
		            {"name":"billing","type":"shop.Address"}]}`,
		`{"type":"record","name":"E","fields":[{"name":"e","type":{"type":"enum","name":"En","symbols":["A","B"]},"default":"A"},
		  {"name":"u","type":["null",{"type":"array","items":{"type":"map","values":"long"}}],"default":null},
		  {"name":"f","type":{"type":"fixed","name":"F","size":4}},{"name":"r","type":["null","E"]}]}`,
		`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"string","logicalType":"uuid"},"aliases":["b"]}]}`,
		`"string"`, `{"type":"array","items":"string"}`, `{"type":"record",`, ``, `{}`, `[]`,
		deepRecord(20), wideRecord(30), bigEnum(10),
	}
}

// checkSchemaError asserts that err is one of the documented errors and
// short.
func checkSchemaError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, ErrInvalidSchema) && !errors.Is(err, ErrIncompatible) && !errors.Is(err, ErrUnknownMode) {
		t.Fatalf("undocumented error %T: %.300v", err, err)
	}
	if n := len(err.Error()); n > 1200 {
		t.Fatalf("error of %d bytes: %.300q", n, err.Error())
	}
}

// FuzzParseAvro: no panic; errors are ErrInvalidSchema and short; a
// definition that parses is a record, within the limits, compatible with
// itself under every mode, and so is its canonical form.
func FuzzParseAvro(f *testing.F) {
	for _, s := range schemaSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, def string) {
		s, err := ParseAvro(def)
		checkSchemaError(t, err)
		if err != nil {
			if !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("ParseAvro error is not ErrInvalidSchema: %v", err)
			}
			return
		}
		if s.Type() != avro.Record {
			t.Fatalf("ParseAvro accepted a %s", s.Type())
		}
		st, err := prescan(def, catalog.DefaultLimits())
		if err != nil || st.check(catalog.DefaultLimits()) != nil {
			t.Fatalf("accepted a definition over the limits: %+v %v", st, err)
		}
		for _, mode := range Modes {
			if err := CheckCompatibility(mode, def, []string{def}); err != nil {
				t.Fatalf("a definition is not %s-compatible with itself: %v", mode, err)
			}
		}
		if _, err := ParseAvro(s.String()); err != nil {
			t.Fatalf("the canonical form %q does not parse: %v", s.String(), err)
		}
	})
}

// FuzzCheckCompatibility: no panic and only documented, short errors for
// any mode and pair of definitions; NONE accepts any valid pair.
func FuzzCheckCompatibility(f *testing.F) {
	seeds := schemaSeeds()
	for i, a := range seeds {
		b := seeds[(i+3)%len(seeds)]
		f.Add(Modes[i%len(Modes)], a, b)
	}
	f.Add("backward", record(fID), record(fID))
	f.Add(FullTransitive, record(fAInt), record(fAString))
	f.Fuzz(func(t *testing.T, mode, newDef, oldDef string) {
		err := CheckCompatibility(mode, newDef, []string{oldDef})
		checkSchemaError(t, err)
		if mode == None || mode == "" {
			return
		}
		if strings.TrimSpace(mode) != mode {
			return
		}
		_, errNew := ParseAvro(newDef)
		_, errOld := ParseAvro(oldDef)
		if errNew == nil && errOld == nil && CheckCompatibility(None, newDef, []string{oldDef}) != nil {
			t.Fatal("NONE refused two valid definitions")
		}
	})
}
