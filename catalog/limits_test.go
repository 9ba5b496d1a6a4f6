package catalog

import (
	"reflect"
	"testing"
)

// Every limit has a YAML key, a positive default and a ceiling at least
// as large as the default.
func TestLimitsDefaultsAndCeilings(t *testing.T) {
	d, c := reflect.ValueOf(DefaultLimits()), reflect.ValueOf(CeilingLimits())
	typ := d.Type()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Tag.Get("yaml") == "" || f.Tag.Get("json") == "" {
			t.Errorf("%s has no yaml or json key", f.Name)
		}
		if def, max := d.Field(i).Int(), c.Field(i).Int(); def <= 0 || max < def {
			t.Errorf("%s: default %d, ceiling %d", f.Name, def, max)
		}
	}
	if errs := CeilingLimits().Validate(); len(errs) > 0 {
		t.Errorf("the ceilings do not validate: %v", errs)
	}
}

func TestLimitsWithDefaultsFillsZeroFieldsOnly(t *testing.T) {
	got := Limits{MaxProducersPerLoop: 3}.WithDefaults()
	want := DefaultLimits()
	want.MaxProducersPerLoop = 3
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if (Limits{}).WithDefaults() != DefaultLimits() {
		t.Error("a zero Limits is not the defaults")
	}
}

func TestLimitKey(t *testing.T) {
	if got := LimitKey("MaxProducersPerLoop"); got != "limits.maxProducersPerLoop" {
		t.Errorf("LimitKey = %q", got)
	}
}
