package config

import (
	"strings"
	"testing"

	"github.com/loopgate/loopgate/catalog"
)

const minimalConfig = `
clusters:
  - {name: eu-1, region: eu, embedded: true}
teams:
  - {name: growth, allowedRegions: [eu]}
`

// Without a limits block the catalog carries the defaults.
func TestLoopLimitsDefaultWhenAbsent(t *testing.T) {
	c, err := Load(write(t, minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Catalog().Limits, catalog.DefaultLimits(); got != want {
		t.Errorf("catalog limits = %+v, want the defaults %+v", got, want)
	}
	if got := Embedded(t.TempDir()).Catalog().Limits; got != catalog.DefaultLimits() {
		t.Errorf("embedded catalog limits = %+v", got)
	}
}

// A limits block sets some limits; the others keep their defaults.
func TestLoopLimitsBlockOverridesSome(t *testing.T) {
	c, err := Load(write(t, minimalConfig+`
limits:
  maxProducersPerLoop: 128
  maxSchemaBytes: 262144
`))
	if err != nil {
		t.Fatal(err)
	}
	want := catalog.DefaultLimits()
	want.MaxProducersPerLoop, want.MaxSchemaBytes = 128, 262144
	if got := c.Catalog().Limits; got != want {
		t.Errorf("catalog limits = %+v, want %+v", got, want)
	}
}

// The block is decoded strictly and every bad value is reported with its
// key.
func TestLoopLimitsAreValidated(t *testing.T) {
	_, err := Load(write(t, minimalConfig+`
limits:
  maxProducersPerLoop: -1
  maxSpecBytes: 1073741824
`))
	for _, want := range []string{
		"limits.maxProducersPerLoop: -1 must not be negative (omit it or write 0 for the default, 64)",
		"limits.maxSpecBytes: 1073741824 is more than the ceiling 4194304",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load = %v, want %q", err, want)
		}
	}
	_, err = Load(write(t, minimalConfig+"limits:\n  maxProducers: 3\n"))
	if err == nil || !strings.Contains(err.Error(), "field maxProducers not found") {
		t.Errorf("unknown key: Load = %v, want it refused", err)
	}
}
