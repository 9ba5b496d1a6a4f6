package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/open-policy-agent/opa/v1/ast"
)

// wireLoop is a loop as the policy sees it: its metadata and spec (status is
// not policy input).
type wireLoop struct {
	Metadata loop.Metadata `json:"metadata"`
	Spec     loop.Spec     `json:"spec"`
}

// wireInput is the policy input as Go types: its JSON encoding is the
// canonical form that inputValue must reproduce (canonicalInput) and that
// the input's JSON Schema describes (schema_internal_test.go).
type wireInput struct {
	Operation string          `json:"operation"`
	Loop      wireLoop        `json:"loop"`
	Previous  *wireLoop       `json:"previous"`
	Derived   wireDerived     `json:"derived"`
	Team      catalog.Team    `json:"team"`
	Cluster   catalog.Cluster `json:"cluster"`
	Regions   []string        `json:"regions"`
	Actor     Actor           `json:"actor"`
	Waivers   []Waiver        `json:"waivers"`
}

// wireDerived is input.derived: provisioning's resources and the cost
// forecast.
type wireDerived struct {
	Topics []provisioning.Topic `json:"topics"`
	ACLs   []provisioning.ACL   `json:"acls"`
	Quotas []provisioning.Quota `json:"quotas"`
	Cost   *cost.Estimate       `json:"cost,omitempty"`
}

func toWire(in Input) wireInput {
	w := wireInput{
		Operation: in.Operation, Team: in.Team, Cluster: in.Cluster,
		Derived: wireDerived{Topics: in.Derived.Topics, ACLs: in.Derived.ACLs, Quotas: in.Derived.Quotas, Cost: in.Cost},
		Regions: in.Regions, Actor: in.Actor, Waivers: in.Waivers,
	}
	if in.Loop != nil {
		w.Loop = wireLoop{in.Loop.Metadata, in.Loop.Spec}
	}
	if in.Previous != nil {
		w.Previous = &wireLoop{in.Previous.Metadata, in.Previous.Spec}
	}
	return w
}

// canonicalInput is the reference encoding of the policy input: the JSON
// encoding of the Go types (documented in bundles/default/loop/loop.rego),
// which inputValue must reproduce.
func canonicalInput(t testing.TB, in Input) ast.Value {
	t.Helper()
	raw, err := json.Marshal(toWire(in))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fill sets every field reachable from v to a non-zero value (one element in
// slices and maps), so a field that inputValue forgets shows up as a
// difference.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x-" + v.Type().Name())
	case reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(7)
	case reflect.Float64:
		v.SetFloat(2.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 3, 10, 4, 5, 600, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

func TestInputValueIsCanonicalJSON(t *testing.T) {
	var full Input
	fill(reflect.ValueOf(&full).Elem())
	full.Loop.Status = loop.Status{} // status is not policy input

	zeroLoop := &loop.Loop{} // nil slices, empty strings, zero times
	derivedOnly := provisioning.Resources{Topics: []provisioning.Topic{{Name: "t", Partitions: 3}}}

	for name, in := range map[string]Input{
		"every field set": full,
		"zero values":     {Loop: zeroLoop},
		"nil and empty":   {Operation: OpUpdate, Loop: zeroLoop, Previous: zeroLoop, Derived: derivedOnly, Regions: []string{}, Team: catalog.Team{AllowedRegions: []string{}}},
		"whole numbers":   {Loop: &loop.Loop{Spec: loop.Spec{Throughput: loop.Throughput{PeakFactor: 3}, RetentionMs: -1}}},
		"waivers":         {Loop: zeroLoop, Waivers: []Waiver{{Rule: "A", Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("", 3600)), Reason: "<b> & \"c\""}}},
		"no waivers":      {Loop: zeroLoop, Waivers: []Waiver{}},
		"cost":            {Loop: zeroLoop, Cost: &cost.Estimate{Model: "shared", MonthlyTotal: 4526.4, Items: []cost.Item{{Component: "cross-az", Detail: "<a> & b", Monthly: 2452.8}, {Component: "compute"}}, ReplayPerDay: 0.1}},
		"whole amounts":   {Loop: zeroLoop, Team: catalog.Team{CostApprovalThreshold: 2000}, Cost: &cost.Estimate{MonthlyTotal: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := inputValue(in)
			if err != nil {
				t.Fatal(err)
			}
			want := canonicalInput(t, in)
			if got.Compare(want) != 0 {
				t.Errorf("inputValue differs from the JSON encoding\n got: %v\nwant: %v", got, want)
			}
			// InputJSON is the same document, as JSON.
			raw, err := InputJSON(in)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ast.ValueFromReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("InputJSON is not JSON: %v\n%s", err, raw)
			}
			if back.Compare(want) != 0 {
				t.Errorf("InputJSON differs from the JSON encoding\n got: %s\nwant: %v", raw, want)
			}
		})
	}
}

// The status of the loop must not reach policy: it is observed, not desired.
func TestInputValueOmitsStatus(t *testing.T) {
	v, err := inputValue(Input{Loop: &loop.Loop{Status: loop.Status{State: loop.StateReady}}})
	if err != nil {
		t.Fatal(err)
	}
	if v.(ast.Object).Get(ast.StringTerm("loop")).Get(ast.StringTerm("status")) != nil {
		t.Errorf("input.loop.status is set: %v", v)
	}
}

func TestDecisionIDsAreUniqueAndOrdered(t *testing.T) {
	a := newDecisionID()
	time.Sleep(2 * time.Millisecond)
	b := newDecisionID()
	if a == b || a >= b {
		t.Errorf("ids %s, %s: want distinct and increasing over time", a, b)
	}
	for _, c := range a[4:] {
		if !bytes.ContainsRune([]byte("0123456789ABCDEFGHJKMNPQRSTVWXYZ"), c) {
			t.Fatalf("id %s has %q, not a Crockford base32 digit", a, c)
		}
	}
}

// BenchmarkInputEncoding compares building the input AST directly (what the
// engine does) with the JSON round trip it replaces.
func BenchmarkInputEncoding(b *testing.B) {
	var in Input
	fill(reflect.ValueOf(&in).Elem())
	b.Run("ast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := inputValue(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			canonicalInput(b, in)
		}
	})
}
