package catalog

import (
	"fmt"
	"reflect"
	"strings"
)

// Limits bound everything one loop may hold, so that no single loop can
// cost loopgate (validation, policy, the store, the audit trail, the
// cluster) more than a known amount. Validation checks them before policy
// runs (loop.ValidateWithLimits); a loop over a limit is invalid, with a
// field error naming the limit, e.g.
//
//	spec.producers: 10000 producers; at most 64 (limits.maxProducersPerLoop)
//
// The server configuration may set them in its optional `limits:` block
// (keys are the YAML names below). A zero field means the default
// (DefaultLimits); a configured value must be between 1 and the ceiling
// (CeilingLimits). All the numbers live in this file.
//
// Sizing. With the defaults the largest loop is at most 256 KiB of
// canonical JSON (MaxSpecBytes), and it derives at most
// 2 × MaxGrantsPerLoop + MaxConsumersPerLoop = 576 ACLs, 128 quotas and 32
// topics: the audit event that lists every planned operation of such a
// loop (loop.provision.start) is about 56 KB with short names and 231 KB
// with every name at its longest — well under 1 MiB (measured by
// TestLargestLoopWithinTheLimitsHasABoundedAuditEvent). A loop that is
// refused lists at most loop.MaxReportedProblems (100) problems, each
// message clipped, so its audit event stays under about 100 KB.
type Limits struct {
	// MaxStreamsPerLoop bounds spec.streams (each is a topic). It also
	// bounds the streams list of one producer or consumer: a longer list
	// must name a stream twice or an unknown one.
	MaxStreamsPerLoop int `json:"maxStreamsPerLoop" yaml:"maxStreamsPerLoop"`
	// MaxProducersPerLoop bounds spec.producers.
	MaxProducersPerLoop int `json:"maxProducersPerLoop" yaml:"maxProducersPerLoop"`
	// MaxConsumersPerLoop bounds spec.consumers.
	MaxConsumersPerLoop int `json:"maxConsumersPerLoop" yaml:"maxConsumersPerLoop"`
	// MaxGrantsPerLoop bounds the principal-to-stream grants of a loop:
	// the stream references of every producer and consumer together (the
	// principals of all the streams lists). Each grant becomes two ACLs,
	// so this is what bounds the ACLs a loop derives.
	MaxGrantsPerLoop int `json:"maxGrantsPerLoop" yaml:"maxGrantsPerLoop"`
	// MaxLabels bounds metadata.labels.
	MaxLabels int `json:"maxLabels" yaml:"maxLabels"`
	// MaxLabelKeyBytes bounds one label key; the label syntax allows at
	// most 317 bytes (a 253-byte DNS prefix, '/', a 63-byte name).
	MaxLabelKeyBytes int `json:"maxLabelKeyBytes" yaml:"maxLabelKeyBytes"`
	// MaxLabelValueBytes bounds one label value; the label syntax allows
	// at most 63 bytes.
	MaxLabelValueBytes int `json:"maxLabelValueBytes" yaml:"maxLabelValueBytes"`
	// MaxDescriptionBytes bounds spec.description.
	MaxDescriptionBytes int `json:"maxDescriptionBytes" yaml:"maxDescriptionBytes"`
	// MaxOwners bounds spec.owners.
	MaxOwners int `json:"maxOwners" yaml:"maxOwners"`
	// MaxSchemaBytes bounds one stream's schema.definition, checked before
	// the definition is parsed.
	MaxSchemaBytes int `json:"maxSchemaBytes" yaml:"maxSchemaBytes"`
	// MaxSchemaFields bounds the fields of one schema definition, counted
	// over the whole definition before it is parsed: every JSON object
	// with a "type" key (record fields, nested type definitions) and every
	// enum symbol. The Avro library's canonical form, computed by every
	// compatibility check, costs time and memory quadratic in this number
	// (about 60 ms and 60 MB for 1000 fields; 20× that for 5000).
	MaxSchemaFields int `json:"maxSchemaFields" yaml:"maxSchemaFields"`
	// MaxSchemaDepth bounds how deep JSON objects and arrays nest in one
	// schema definition. A nullable nested record takes four levels
	// (field object, union array, record object, fields array), so 64
	// allows 16 nested records.
	MaxSchemaDepth int `json:"maxSchemaDepth" yaml:"maxSchemaDepth"`
	// MaxSpecBytes bounds the whole loop: the size of the canonical JSON of
	// its metadata (name, team, labels) and spec, schema definitions
	// included. It bounds what the store keeps and every response, and the
	// total Avro parsing work of one validation.
	MaxSpecBytes int `json:"maxSpecBytes" yaml:"maxSpecBytes"`
}

// DefaultLimits are the limits of a configuration that sets none.
func DefaultLimits() Limits {
	return Limits{
		MaxStreamsPerLoop:   32,
		MaxProducersPerLoop: 64,
		MaxConsumersPerLoop: 64,
		MaxGrantsPerLoop:    256,
		MaxLabels:           64,
		MaxLabelKeyBytes:    317,
		MaxLabelValueBytes:  63,
		MaxDescriptionBytes: 4 << 10,
		MaxOwners:           16,
		MaxSchemaBytes:      128 << 10,
		MaxSchemaFields:     1000,
		MaxSchemaDepth:      64,
		MaxSpecBytes:        256 << 10,
	}
}

// CeilingLimits are the largest limits a configuration may set. loopctl
// checks files against them (it does not know the server's limits), so it
// never refuses a loop some server could accept, and they keep even a
// generously configured server's costs bounded: the label sizes are the
// label syntax's own maxima, MaxSpecBytes is the gRPC message size, and
// MaxSchemaFields stays where a compatibility check costs about a second.
func CeilingLimits() Limits {
	return Limits{
		MaxStreamsPerLoop:   256,
		MaxProducersPerLoop: 1024,
		MaxConsumersPerLoop: 1024,
		MaxGrantsPerLoop:    4096,
		MaxLabels:           256,
		MaxLabelKeyBytes:    317,
		MaxLabelValueBytes:  63,
		MaxDescriptionBytes: 64 << 10,
		MaxOwners:           256,
		MaxSchemaBytes:      1 << 20,
		MaxSchemaFields:     5000,
		MaxSchemaDepth:      256,
		MaxSpecBytes:        4 << 20,
	}
}

// WithDefaults returns l with every zero (or negative) field set to its
// default, so that a zero Limits (a Catalog built without configuration)
// means DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := reflect.ValueOf(DefaultLimits())
	v := reflect.ValueOf(&l).Elem()
	for i := range v.NumField() {
		if v.Field(i).Int() <= 0 {
			v.Field(i).SetInt(d.Field(i).Int())
		}
	}
	return l
}

// Validate reports every field of a configured Limits that is negative or
// above its ceiling, as "limits.<key>: ..." (zero is allowed: the default).
func (l Limits) Validate() []error {
	var errs []error
	c := reflect.ValueOf(CeilingLimits())
	v := reflect.ValueOf(l)
	t := v.Type()
	for i := range v.NumField() {
		key := LimitKey(t.Field(i).Name)
		switch n, max := v.Field(i).Int(), c.Field(i).Int(); {
		case n < 0:
			errs = append(errs, fmt.Errorf("%s: %d must not be negative (omit it or write 0 for the default, %d)", key, n, reflect.ValueOf(DefaultLimits()).Field(i).Int()))
		case n > max:
			errs = append(errs, fmt.Errorf("%s: %d is more than the ceiling %d", key, n, max))
		}
	}
	return errs
}

// LimitKey returns the configuration key of a Limits field, e.g.
// "limits.maxProducersPerLoop" for "MaxProducersPerLoop": what limit
// errors name so an operator knows what to raise.
func LimitKey(field string) string {
	f, ok := reflect.TypeFor[Limits]().FieldByName(field)
	if !ok {
		return "limits." + field
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return "limits." + name
}
