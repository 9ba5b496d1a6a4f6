package loop

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Native fuzz targets. Run one with e.g.
//
//	go test ./loop -run '^$' -fuzz FuzzLoad -fuzztime 30s
//
// Seeds are the example files, the specs of the tests, and the inputs the
// fuzzers once found a problem with (testdata/fuzz/<Target>).

// seedDocuments are the loop documents the seeds start from.
func seedDocuments(f *testing.F) []string {
	docs := []string{designExample, minimal, aliasBomb()[:2000]}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if len(files) == 0 {
		f.Fatal("no examples/*.yaml to seed from")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	docs = append(docs,
		designExample+"---\n"+minimal,
		strings.Replace(designExample, "retention: 72h", "retention: 72x", 1),
		strings.Replace(designExample, "  owners:", "  owner: [a]\n  owners:", 1),
		"apiVersion: loopgate.dev/v1\nkind: Loop\nmetadata: &m {name: a, team: b}\nspec: *m\n",
		"- a\n- b\n",
		"",
	)
	return docs
}

// checkProblems asserts what every error of Parse, Load and Validate must
// be: FieldErrors, at most MaxReportedProblems and one more, each with a
// message and a field (or the document it is about), all short.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var fes FieldErrors
	if !errors.As(err, &fes) {
		t.Fatalf("error %T is not FieldErrors: %v", err, err)
	}
	if len(fes) == 0 || len(fes) > MaxReportedProblems+1 {
		t.Fatalf("%d problems", len(fes))
	}
	for _, fe := range fes {
		if fe.Message == "" {
			t.Fatalf("problem without a message: %+v", fe)
		}
		if fe.Field == "" && fe.Document == 0 {
			t.Fatalf("problem without a field or document: %+v", fe)
		}
		if len(fe.Message) > 2000 || len(fe.Field) > 600 {
			t.Fatalf("problem of %d+%d bytes: %.300q", len(fe.Field), len(fe.Message), fe.Error())
		}
	}
}

// normalized returns the user-written part of l (name, team, labels, spec)
// with empty lists and maps as nil, for comparisons across encodings that
// do not keep the difference.
func normalized(l *Loop) Loop {
	var out Loop
	raw, err := json.Marshal(Loop{Metadata: Metadata{Name: l.Metadata.Name, Team: l.Metadata.Team, Labels: l.Metadata.Labels}, Spec: l.Spec})
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	if len(out.Metadata.Labels) == 0 {
		out.Metadata.Labels = nil
	}
	sp := &out.Spec
	if len(sp.Owners) == 0 {
		sp.Owners = nil
	}
	if len(sp.Streams) == 0 {
		sp.Streams = nil
	}
	if len(sp.Producers) == 0 {
		sp.Producers = nil
	}
	if len(sp.Consumers) == 0 {
		sp.Consumers = nil
	}
	for i := range sp.Producers {
		if len(sp.Producers[i].Streams) == 0 {
			sp.Producers[i].Streams = nil
		}
	}
	for i := range sp.Consumers {
		if len(sp.Consumers[i].Streams) == 0 {
			sp.Consumers[i].Streams = nil
		}
	}
	return out
}

// checkFormatRoundTrip asserts that a valid loop written by Format reads
// back the same and still valid.
func checkFormatRoundTrip(t *testing.T, l *Loop) {
	t.Helper()
	out, err := Format(l)
	if err != nil {
		t.Fatalf("Format of a valid loop: %v", err)
	}
	back, err := Load(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("Load(Format(l)): %v\n%s", err, out)
	}
	if len(back) != 1 {
		t.Fatalf("Format wrote %d loops", len(back))
	}
	if got, want := normalized(back[0]), normalized(l); !reflect.DeepEqual(got, want) {
		t.Fatalf("Format/Load changed the loop:\n got %+v\nwant %+v\n%s", got, want, out)
	}
}

// FuzzLoad reads arbitrary files as loopctl does. It must not panic; its
// errors are bounded FieldErrors; whatever it accepts is valid, and
// survives Format and Load, and the canonical JSON, unchanged.
func FuzzLoad(f *testing.F) {
	for _, d := range seedDocuments(f) {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, src string) {
		loops, err := Load(strings.NewReader(src))
		checkProblems(t, err)
		if err != nil {
			return
		}
		for _, l := range loops {
			if errs := Validate(l); len(errs) > 0 {
				t.Fatalf("Load returned an invalid loop: %v", errs)
			}
			checkFormatRoundTrip(t, l)
			raw, err := json.Marshal(l)
			if err != nil {
				t.Fatalf("canonical JSON of a loaded loop: %v", err)
			}
			var back Loop
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalized(&back), normalized(l)) {
				t.Fatalf("JSON round trip changed the loop:\n%s", raw)
			}
		}
	})
}

// FuzzValidateJSON decodes the canonical JSON form (what the store keeps
// and the API maps to) and validates it as the server does (Default, then
// Validate). Validation must not panic and reports bounded FieldErrors
// with a field; a valid loop re-encodes and decodes to the same loop, and
// its YAML form (Format) reads back the same.
func FuzzValidateJSON(f *testing.F) {
	for _, d := range seedDocuments(f) {
		loops, err := ParseBytes([]byte(d))
		if err != nil {
			continue
		}
		for _, l := range loops {
			raw, err := json.Marshal(l)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"metadata":{"name":"ab","labels":{"a/b":"c"}},"spec":{"owners":["x"],"streams":[{"name":"s","schema":{"definition":"{}"}}],"throughput":{"peakFactor":0.5}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var l Loop
		if err := json.Unmarshal(raw, &l); err != nil {
			return
		}
		Default(&l)
		errs := Validate(&l)
		checkProblems(t, errs.Err())
		for _, e := range errs {
			if e.Field == "" {
				t.Fatalf("validation problem without a field: %+v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		again, err := json.Marshal(&l)
		if err != nil {
			t.Fatalf("re-encoding a valid loop: %v", err)
		}
		var back Loop
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalized(&back), normalized(&l)) {
			t.Fatalf("JSON round trip changed the loop:\n%s", again)
		}
		if errs := Validate(&back); len(errs) > 0 {
			t.Fatalf("re-decoded loop is invalid: %v", errs)
		}
		checkFormatRoundTrip(t, &l)
	})
}

// FuzzUnits checks the units parsers: no panic; errors are short and
// never empty; what parses is not negative and survives Format and Parse.
func FuzzUnits(f *testing.F) {
	for _, s := range []string{"72h", "7d", "1h30m", "1.5s", "500ms", "0", "2w", "72", "-1h", "1.5.5s", ".s", "1e3s",
		"600", "600B", "2MiB", "1.5MiB", "10MB", "1 KiB", "2mb", "99999999999999999999TiB", "0.0001ms", strings.Repeat("9", 400) + "d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(kind string, v int64, err error, format func(int64) string, parse func(string) (int64, error)) {
			if err != nil {
				if msg := err.Error(); msg == "" || len(msg) > 700 || !utf8.ValidString(msg) && utf8.ValidString(s) {
					t.Fatalf("%s(%q): error %q", kind, s, msg)
				}
				return
			}
			if v < 0 {
				t.Fatalf("%s(%q) = %d", kind, s, v)
			}
			back, err := parse(format(v))
			if err != nil || back != v {
				t.Fatalf("%s(%q) = %d, written %q, read back %d, %v", kind, s, v, format(v), back, err)
			}
		}
		ms, err := ParseDuration(s)
		check("ParseDuration", ms, err, FormatDuration, ParseDuration)
		b, err := ParseSize(s)
		check("ParseSize", b, err, FormatSize, ParseSize)
	})
}
