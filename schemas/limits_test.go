package schemas

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/catalog"
)

// deepRecord nests depth records, each the only field of the one outside
// it: 2.5 MB at depth 40,000.
func deepRecord(depth int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, `{"type":"record","name":"R%d","fields":[{"name":"f","type":`, i)
	}
	b.WriteString(`"strng"`)
	b.WriteString(strings.Repeat("}]}", depth))
	return b.String()
}

// wideRecord has n int fields.
func wideRecord(n int) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"W","fields":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"f%d","type":"int"}`, i)
	}
	b.WriteString("]}")
	return b.String()
}

// bigEnum has n symbols: the canonical form of an enum is quadratic too.
func bigEnum(n int) string {
	syms := make([]string, n)
	for i := range syms {
		syms[i] = fmt.Sprintf(`"S%d"`, i)
	}
	return `{"type":"record","name":"E","fields":[{"name":"e","type":{"type":"enum","name":"En","symbols":[` + strings.Join(syms, ",") + `]}}]}`
}

// allocated returns the bytes f allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Hostile definitions are refused by a limit before hamba/avro sees them:
// the error says which limit, its message is short, and (rather than
// asserting on time) little memory is spent.
func TestParseAvroRefusesHostileDefinitionsBeforeParsing(t *testing.T) {
	raised := catalog.Limits{MaxSchemaBytes: 64 << 20} // to reach the other limits with big inputs
	tests := []struct {
		name string
		def  string
		lim  catalog.Limits
		want string
	}{
		{"2.5 MB of nested records", deepRecord(40_000), catalog.Limits{}, "the definition is 2588897 bytes; at most 131072 (limits.maxSchemaBytes)"},
		{"2.5 MB of nested records, bytes allowed", deepRecord(40_000), raised, "nests more than 64 levels deep (JSON objects and arrays); at most 64 (limits.maxSchemaDepth)"},
		{"60,000 fields", wideRecord(60_000), catalog.Limits{}, "at most 131072 (limits.maxSchemaBytes)"},
		{"60,000 fields, bytes allowed", wideRecord(60_000), raised, "has more than 1000 fields (record fields, nested types and enum symbols); at most 1000 (limits.maxSchemaFields)"},
		{"30,000 enum symbols", bigEnum(30_000), raised, "at most 1000 (limits.maxSchemaFields)"},
		{"1,001 fields", wideRecord(1001), catalog.Limits{}, "at most 1000 (limits.maxSchemaFields)"},
		{"deep arrays", `{"type":"record","name":"R","fields":[{"name":"a","type":` + strings.Repeat(`{"type":"array","items":`, 100) + `"int"` + strings.Repeat("}", 100) + `}]}`,
			catalog.Limits{}, "(limits.maxSchemaDepth)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = ParseAvroWithLimits(tt.def, tt.lim) })
			if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalidSchema) {
				t.Fatalf("err = %.300v, want ErrTooLarge (and ErrInvalidSchema)", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("message is %d bytes", len(err.Error()))
			}
			if alloc > 32<<20 {
				t.Errorf("refusing it allocated %d MB", alloc>>20)
			}
		})
	}
}

// The plain API (default limits) refuses them too, compatibility checks
// included, and the new or the previous definition may be the hostile one.
func TestDefaultLimitsGuardParseAndCompatibility(t *testing.T) {
	for _, def := range []string{deepRecord(40_000), wideRecord(60_000), wideRecord(4000)} {
		var errs []error
		alloc := allocated(func() {
			_, err := ParseAvro(def)
			errs = append(errs, err,
				CheckCompatibility(Full, def, []string{record(fID)}),
				CheckCompatibility(Full, record(fID), []string{def}))
		})
		for i, err := range errs {
			if !errors.Is(err, ErrTooLarge) || len(err.Error()) > 400 {
				t.Errorf("%d bytes, check %d: err = %.300v (%d bytes), want a short ErrTooLarge", len(def), i, err, len(fmt.Sprint(err)))
			}
		}
		if alloc > 64<<20 {
			t.Errorf("%d bytes: refusing allocated %d MB", len(def), alloc>>20)
		}
	}
}

// Within the limits, errors that quote the definition are clipped: the
// library's "unknown type: {...}" repeats the whole offending JSON.
func TestParseAvroClipsTheDefinitionInErrors(t *testing.T) {
	// The library reports a type object it does not know as
	// "unknown type: map[doc:... type:...]", all of it.
	def := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":{"type":"array","items":"int"},"doc":"` + strings.Repeat("x", 100_000) + `"}}]}`
	_, err := ParseAvro(def)
	if !errors.Is(err, ErrInvalidSchema) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %.300v, want ErrInvalidSchema only", err)
	}
	if !strings.Contains(err.Error(), "unknown type: map[doc:xxx") || !strings.Contains(err.Error(), "…(100") {
		t.Errorf("err = %.400q, want the quoted JSON clipped with its length", err)
	}
	if len(err.Error()) > 400 {
		t.Errorf("message is %d bytes", len(err.Error()))
	}
}

// A definition at the limits still parses and checks.
func TestParseAvroAcceptsDefinitionsAtTheLimits(t *testing.T) {
	def := wideRecord(999) // 999 fields + the record = 1000
	if _, err := ParseAvro(def); err != nil {
		t.Fatalf("ParseAvro: %v", err)
	}
	if err := CheckCompatibility(Full, def, []string{def}); err != nil {
		t.Fatalf("CheckCompatibility: %v", err)
	}
	nested := `{"type":"record","name":"R","fields":[{"name":"a","type":` + strings.Repeat(`{"type":"array","items":`, 61) + `"int"` + strings.Repeat("}", 61) + `}]}`
	if _, err := ParseAvro(nested); err != nil { // 3 levels + 61 arrays = 64
		t.Fatalf("ParseAvro at depth 64: %v", err)
	}
}

// A definition parsed and cached under generous limits is still refused
// under stricter ones.
func TestParseCacheRespectsStricterLimits(t *testing.T) {
	def := wideRecord(50)
	if _, err := ParseAvro(def); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAvroWithLimits(def, catalog.Limits{MaxSchemaFields: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("cached definition under a 10-field limit: err = %v", err)
	}
	if _, err := ParseAvroWithLimits(def, catalog.Limits{MaxSchemaDepth: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("cached definition under a depth limit of 2: err = %v", err)
	}
}

func TestPrescanRefusesWhatIsNotOneJSONValue(t *testing.T) {
	for _, def := range []string{
		record(fID) + ` {"type":"record"}`,
		record(fID) + `]`,
		`{"type":"record",`,
	} {
		if _, err := ParseAvro(def); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("ParseAvro(%q) = %v, want ErrInvalidSchema", def, err)
		}
	}
}

func TestPrescanCounts(t *testing.T) {
	st, err := prescan(`{"type":"record","name":"R","fields":[
		{"name":"a","type":["null",{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]}]},
		{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}, "default":"A"}]}`, catalog.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	// R, a, N, x, e, E + 3 symbols; R{ fields[ a{ [ N{ fields[ x{
	if st.fields != 9 || st.depth != 7 {
		t.Errorf("prescan = %+v, want 9 fields, depth 7", st)
	}
}

// The fuzzer found that hamba/avro panics (index out of range) on a field
// whose type is an empty union with a default, and accepts one without: a
// loop spec could crash the server. Empty unions are refused before the
// library sees them, and any panic of the library is an error.
func TestEmptyUnionsAndLibraryPanicsAreErrors(t *testing.T) {
	withDefault := `{"type":"record","name":"R","fields":[{"name":"a","type":[],"default":null}]}`
	for _, def := range []string{
		withDefault,
		`{"type":"record","name":"R","fields":[{"name":"a","type":[]}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":[]}}]}`,
	} {
		_, err := ParseAvro(def)
		if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "a union (a list of types) must name at least one type") {
			t.Errorf("ParseAvro(%s) = %v", def, err)
		}
		if err := CheckCompatibility(Full, record(fID), []string{def}); !errors.Is(err, ErrInvalidSchema) {
			t.Errorf("CheckCompatibility with previous %s = %v", def, err)
		}
	}
	// Past the prescan, the library's panic is recovered.
	if _, err := parseAvro(withDefault); !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "the Avro library failed parsing it") {
		t.Errorf("parseAvro = %v, want the panic as ErrInvalidSchema", err)
	}
}
