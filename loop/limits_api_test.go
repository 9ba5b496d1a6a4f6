package loop

import (
	"strconv"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/catalog"
)

// ValidateWithLimits checks against the limits it is given (the catalog's,
// from the server configuration); zero fields mean the defaults.
func TestValidateWithLimitsUsesTheGivenLimits(t *testing.T) {
	l := validLoop(t)
	if errs := ValidateWithLimits(l, catalog.Limits{}); len(errs) > 0 {
		t.Fatalf("zero limits (the defaults): %v", errs)
	}
	errs := ValidateWithLimits(l, catalog.Limits{MaxProducersPerLoop: 1, MaxSchemaFields: 2, MaxLabels: 1, MaxGrantsPerLoop: 2})
	for field, want := range map[string]string{
		"spec.producers":                    "2 producers; at most 1 (limits.maxProducersPerLoop)",
		"spec":                              "3 stream grants (the streams of every producer and consumer together; each becomes ACLs); at most 2 (limits.maxGrantsPerLoop)",
		"spec.streams[0].schema.definition": `stream "events": Avro schema over a limit: the definition has more than 2 fields`,
	} {
		if msg := problem(t, errs, field); !strings.Contains(msg, want) {
			t.Errorf("%s: %q, want %q", field, msg, want)
		}
	}
	// Raised limits accept what the defaults refuse.
	for i := range 70 {
		l.Metadata.Labels["k"+strconv.Itoa(i)] = "v"
	}
	if errs := Validate(l); len(errs) == 0 {
		t.Fatal("71 labels pass the default limit of 64")
	}
	if errs := ValidateWithLimits(l, catalog.Limits{MaxLabels: 100}); len(errs) > 0 {
		t.Fatalf("71 labels under a limit of 100: %v", errs)
	}
	// loopctl checks files against the ceilings.
	if errs := ValidateWithLimits(l, catalog.CeilingLimits()); len(errs) > 0 {
		t.Fatalf("71 labels under the ceilings: %v", errs)
	}
}
