package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
)

var updateInputSchema = flag.Bool("update-input-schema", false, "write "+inputSchemaPath+" from the Go types of the policy input")

const inputSchemaPath = "../docs/policy-input.schema.json"

// Descriptions of the schema, by "definition.property" ("input." for the
// top level). TestInputSchema fails on one that names no property.
var inputSchemaDescriptions = map[string]string{
	"input.operation": "CREATE, UPDATE or DELETE.",
	"input.loop":      "The requested loop (the current one on DELETE): its metadata and spec as loop files and the API give them, defaulted and validated (docs/loop-spec.md). Durations are in ms, sizes in bytes.",
	"input.previous":  "The current loop on UPDATE and DELETE; null on CREATE.",
	"input.derived":   "What provisioning would create for input.loop on input.cluster: topics (partitions always set, derived when the spec omits them), ACLs and quotas; and the loop's monthly cost forecast.",

	"derived.cost":               "The loop's monthly cost forecast on input.cluster's storage model and price list (docs/cost.md); absent when it was not computed.",
	"cost.Estimate.model":        "The cluster's storage model: broker-local, tiered or shared.",
	"cost.Estimate.currency":     "The currency of every amount, e.g. USD.",
	"cost.Estimate.priceList":    "The name of the catalog price list used.",
	"cost.Estimate.monthlyTotal": "The sum of items: what the loop costs per month (730 hours) in steady state.",
	"cost.Estimate.items":        "The components: storage, object-storage, cross-az, object-put, object-get, compute (which ones depends on the model).",
	"cost.Estimate.replayPerDay": "What re-reading one day of the loop's data once costs, on top of monthlyTotal.",
	"cost.Estimate.basis":        "What the forecast assumed, in one line.",
	"cost.Item.component":        "storage, object-storage, cross-az, object-put, object-get or compute.",
	"cost.Item.detail":           "How the amount was computed, in one line.",
	"cost.Item.monthly":          "The amount per month.",
	"input.team":                 "The owning team's catalog entry. Limits of 0 mean not limited.",
	"input.cluster":              "The cluster that serves the loop's residency (for an unknown region, a placeholder with that region and no name).",
	"input.regions":              "Every region of the cluster catalog, sorted.",
	"input.actor":                "The caller the decision is made for.",
	"input.waivers":              "The waivers of this loop that are active at evaluation time (expired and revoked ones are left out); null when there are none. The bundle decides how they apply.",

	"loop.metadata": "Name, team and labels of the loop; uid, generation, etag and times once it is stored.",
	"loop.spec":     "What the team asked for.",

	"catalog.Team.allowedRegions":        "Regions the team's loops may use.",
	"catalog.Team.maxPartitionsPerLoop":  "Most partitions one loop may have, all streams together (0: not limited).",
	"catalog.Team.maxPartitions":         "Most partitions all the team's loops may have together (0: not limited).",
	"catalog.Team.maxBytesPerSecond":     "Most declared steady throughput of one loop (0: not limited).",
	"catalog.Team.usedPartitions":        "Partitions of the team's other loops (not this one).",
	"catalog.Team.costApprovalThreshold": "Monthly cost forecast above which a loop of the team needs approval (0: no threshold).",

	"catalog.Cluster.credentials":      "The SCRAM mechanism loopgate issues credentials with on this cluster, absent when identities are managed elsewhere.",
	"catalog.Cluster.securityProtocol": "How clients connect: SASL_PLAINTEXT, SASL_SSL, SSL or PLAINTEXT.",

	"policy.Actor.subject": "Who called (a token subject or a certificate name).",
	"policy.Actor.teams":   "The teams the caller is a member of.",
	"policy.Actor.roles":   "The caller's roles (e.g. developer, team-admin, security-reviewer, admin).",

	"policy.Waiver.rule":   "The rule id the waiver lifts, e.g. OWNERS_REQUIRED.",
	"policy.Waiver.until":  "When the waiver stops applying (RFC 3339).",
	"policy.Waiver.reason": "Why it was granted.",
}

// Closed lists of values, by "definition.property".
var inputSchemaEnums = map[string][]string{
	"input.operation":          {OpCreate, OpUpdate, OpDelete},
	"loop.Spec.classification": {string(loop.Public), string(loop.Internal), string(loop.Confidential), string(loop.PII)},
}

// schemaGen builds a JSON Schema (draft 2020-12) from the JSON encoding of
// Go types: every struct field with its json name, required unless
// omitempty or omitzero, objects closed (additionalProperties false), nil
// slices, maps and pointers as null.
type schemaGen struct {
	defs map[string]any
	used map[string]bool // description and enum keys used
}

func (g *schemaGen) typeSchema(t reflect.Type) any {
	if t == reflect.TypeFor[time.Time]() {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": []any{"array", "null"}, "items": g.typeSchema(t.Elem())}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			panic(fmt.Sprintf("schema: map key %s is not a string", t.Key()))
		}
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.typeSchema(t.Elem())}
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{g.typeSchema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.Struct:
		name := defName(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // reserve against recursion
			g.defs[name] = g.objectSchema(name, t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	panic(fmt.Sprintf("schema: no schema for %s", t))
}

// defName names a struct's definition by its package and type (wireLoop,
// the loop as policy sees it, is "loop"; wireDerived is "derived").
func defName(t reflect.Type) string {
	if t == reflect.TypeFor[wireLoop]() {
		return "loop"
	}
	if t == reflect.TypeFor[wireDerived]() {
		return "derived"
	}
	pkg := t.PkgPath()
	return pkg[strings.LastIndex(pkg, "/")+1:] + "." + t.Name()
}

func (g *schemaGen) objectSchema(name string, t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []any{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		parts := strings.Split(tag, ",")
		key := parts[0]
		if key == "" {
			key = f.Name
		}
		optional := slices.Contains(parts[1:], "omitempty") || slices.Contains(parts[1:], "omitzero")
		var s any
		if optional && f.Type.Kind() == reflect.Pointer {
			s = g.typeSchema(f.Type.Elem()) // omitted when nil, never null
		} else {
			s = g.typeSchema(f.Type)
		}
		full := name + "." + key
		if d, ok := inputSchemaDescriptions[full]; ok {
			s = withKeyword(s, "description", d)
			g.used[full] = true
		}
		if e, ok := inputSchemaEnums[full]; ok {
			vals := make([]any, len(e))
			for i, v := range e {
				vals[i] = v
			}
			s = withKeyword(s, "enum", vals)
			g.used[full] = true
		}
		props[key] = s
		if !optional {
			required = append(required, key)
		}
	}
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// withKeyword returns a copy of a schema with one more keyword (beside a
// $ref too, as draft 2020-12 allows).
func withKeyword(s any, k string, v any) any {
	m := s.(map[string]any)
	out := make(map[string]any, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// generateInputSchema returns the JSON Schema of the policy input.
func generateInputSchema() ([]byte, map[string]bool, error) {
	g := &schemaGen{defs: map[string]any{}, used: map[string]bool{}}
	root := g.objectSchema("input", reflect.TypeFor[wireInput]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://github.com/loopgate/loopgate/docs/policy-input.schema.json"
	root["title"] = "loopgate policy input"
	root["description"] = "The input loopgate evaluates data.loopgate.loop with, for every create, update and delete of a loop (docs/policy.md). " +
		"Generated from the Go types by `go test ./policy -run TestInputSchema -update-input-schema`; do not edit."
	root["$defs"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), g.used, nil
}

// TestInputSchema keeps docs/policy-input.schema.json in step with the
// input the engine evaluates: it regenerates the schema (with
// -update-input-schema it writes it), and checks that the input of loops
// with every field set, and with none, is valid against it; the schema's
// objects are closed, so a field the encoding emits that the schema lacks
// fails.
func TestInputSchema(t *testing.T) {
	got, used, err := generateInputSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]string{inputSchemaDescriptions} {
		for k := range m {
			if !used[k] {
				t.Errorf("schema description %q names no property of the input", k)
			}
		}
	}
	for k := range inputSchemaEnums {
		if !used[k] {
			t.Errorf("schema enum %q names no property of the input", k)
		}
	}
	if *updateInputSchema {
		if err := os.WriteFile(inputSchemaPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(inputSchemaPath)
	if err != nil {
		t.Fatalf("%v: run go test ./policy -run TestInputSchema -update-input-schema", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./policy -run TestInputSchema -update-input-schema", inputSchemaPath)
	}

	var schema map[string]any
	if err := json.Unmarshal(got, &schema); err != nil {
		t.Fatal(err)
	}
	var full Input
	fill(reflect.ValueOf(&full).Elem())
	full.Operation = OpUpdate
	full.Loop.Spec.Classification = loop.PII
	full.Previous.Spec.Classification = loop.Internal
	zeroLoop := &loop.Loop{Spec: loop.Spec{Classification: loop.Public}}
	for name, in := range map[string]Input{
		"every field set": full,
		"nothing set":     {Operation: OpCreate, Loop: zeroLoop},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := InputJSON(in)
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range validate(schema, schema, doc, "input") {
				t.Errorf("%s", p)
			}
		})
	}

	// The validator does find what the schema does not allow.
	raw, err := InputJSON(full)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["extra"] = 1
	doc["operation"] = "PATCH"
	doc["waivers"].([]any)[0].(map[string]any)["until"] = "tomorrow"
	delete(doc["team"].(map[string]any), "name")
	problems := validate(schema, schema, doc, "input")
	for _, want := range []string{"input.extra: not allowed", "input.operation: \"PATCH\" is not one of", "input.waivers[0].until: not a date-time", "input.team: name is required"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("validating a bad input: no %q in %q", want, problems)
		}
	}
}

// validate checks doc against the subset of JSON Schema the generator
// writes ($ref, anyOf, type, properties, required, additionalProperties,
// items, enum, format date-time) and returns every problem.
func validate(root, s map[string]any, doc any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		def := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")]
		return validate(root, def.(map[string]any), doc, at)
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		for _, alt := range anyOf {
			if len(validate(root, alt.(map[string]any), doc, at)) == 0 {
				return nil
			}
		}
		return []string{at + ": matches none of anyOf"}
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, doc) {
		return []string{fmt.Sprintf("%s: %q is not one of %v", at, doc, e)}
	}
	var types []string
	switch ty := s["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	if jt := jsonType(doc); !slices.Contains(types, jt) && (jt != "integer" || !slices.Contains(types, "number")) {
		return []string{fmt.Sprintf("%s: a %s, want %v", at, jsonType(doc), types)}
	}
	var problems []string
	switch v := doc.(type) {
	case string:
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				problems = append(problems, fmt.Sprintf("%s: not a date-time: %q", at, v))
			}
		}
	case float64:
		if slices.Contains(types, "integer") && !slices.Contains(types, "number") && v != float64(int64(v)) {
			problems = append(problems, fmt.Sprintf("%s: %v is not an integer", at, v))
		}
	case []any:
		for i, x := range v {
			problems = append(problems, validate(root, s["items"].(map[string]any), x, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		required, _ := s["required"].([]any)
		for _, r := range required {
			if _, ok := v[r.(string)]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %s is required", at, r))
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k]; ok {
				problems = append(problems, validate(root, ps.(map[string]any), v[k], at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					problems = append(problems, fmt.Sprintf("%s.%s: not allowed", at, k))
				}
			case map[string]any:
				problems = append(problems, validate(root, ap, v[k], at+"."+k)...)
			}
		}
	}
	return problems
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
