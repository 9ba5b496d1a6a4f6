package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/open-policy-agent/opa/v1/ast"
)

// inputValue builds the policy input (documented in bundles/default/loop/loop.rego) directly as an AST value:
// OPA would otherwise convert it from Go values on every evaluation, and
// going through encoding/json costs about a third of a decision.
//
// The value must equal the JSON encoding of the same data exactly (omitempty,
// omitzero, nil slices as null, RFC 3339 times): that encoding is the
// canonical form policies are written against. TestInputValueIsCanonicalJSON
// compares the two over loops with every field set, so a field added to
// loop, catalog or provisioning types without being added here fails it.
func inputValue(in Input) (ast.Value, error) {
	if in.Loop == nil {
		return nil, errors.New("input.loop is nil: every request names the loop it is about")
	}
	l, err := loopTerm(in.Loop)
	if err != nil {
		return nil, fmt.Errorf("encoding input.loop: %w", err)
	}
	prev := ast.NullTerm()
	if in.Previous != nil {
		if prev, err = loopTerm(in.Previous); err != nil {
			return nil, fmt.Errorf("encoding input.previous: %w", err)
		}
	}
	waivers, err := waiversTerm(in.Waivers)
	if err != nil {
		return nil, fmt.Errorf("encoding input.waivers: %w", err)
	}
	return ast.NewObject(
		item("operation", str(in.Operation)),
		item("loop", l),
		item("previous", prev),
		item("derived", derivedTerm(in.Derived, in.Cost)),
		item("team", teamTerm(in.Team)),
		item("cluster", clusterTerm(in.Cluster)),
		item("regions", strs(in.Regions)),
		item("actor", ast.ObjectTerm(
			item("subject", str(in.Actor.Subject)),
			item("teams", strs(in.Actor.Teams)),
			item("roles", strs(in.Actor.Roles)),
		)),
		item("waivers", waivers),
	), nil
}

// waiversTerm encodes the waivers as [{rule, until, reason}]; nil is null.
func waiversTerm(ws []Waiver) (*ast.Term, error) {
	if ws == nil {
		return ast.NullTerm(), nil
	}
	ts := make([]*ast.Term, len(ws))
	for i, w := range ws {
		until, err := timeTerm(w.Until)
		if err != nil {
			return nil, fmt.Errorf("[%d].until: %w", i, err)
		}
		ts[i] = ast.ObjectTerm(item("rule", str(w.Rule)), item("until", until), item("reason", str(w.Reason)))
	}
	return ast.ArrayTerm(ts...), nil
}

// Intern the keys and the common values of the input once, so building an
// input does not allocate a term for each of them (OPA keeps interned terms
// in a read-only table shared by all evaluations).
func init() {
	ast.InternStringTerm(
		// keys
		"operation", "loop", "previous", "derived", "team", "cluster", "regions", "actor", "waivers",
		"rule", "until", "reason",
		"subject", "teams", "roles", "metadata", "spec", "name", "labels", "uid", "generation",
		"etag", "createTime", "updateTime", "deleteTime", "description", "owners",
		"classification", "residency", "retentionMs", "slo", "latencyP99Ms", "freshnessMs",
		"throughput", "bytesPerSecond", "peakFactor", "recordBytes", "streams", "partitions",
		"schema", "format", "compatibility", "definition", "producers", "consumers", "principal",
		"group", "action", "stream", "topics", "acls", "quotas", "replicationFactor", "configs",
		"host", "resourceType", "resourceName", "patternType", "permission", "producerByteRate",
		"consumerByteRate", "allowedRegions", "maxPartitionsPerLoop", "maxPartitions",
		"maxBytesPerSecond", "usedPartitions", "region", "zones", "bootstrapServers",
		"external", "securityProtocol", "credentials",
		"cost", "model", "currency", "priceList", "monthlyTotal", "items", "replayPerDay", "basis",
		"component", "detail", "monthly", "costApprovalThreshold",
		// values
		OpCreate, OpUpdate, OpDelete, "public", "internal", "confidential", "pii", "avro",
		"NONE", "BACKWARD", "FORWARD", "FULL", "BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE",
		"FULL_TRANSITIVE", "*", "TOPIC", "GROUP", "READ", "WRITE", "DESCRIBE", "LITERAL", "ALLOW",
		"retention.ms", "cleanup.policy", "min.insync.replicas", "delete", "compact",
	)
}

func item(key string, v *ast.Term) [2]*ast.Term { return ast.Item(ast.InternedTerm(key), v) }

func str(s string) *ast.Term { return ast.InternedTerm(s) }

func num[T int16 | int32 | int64](n T) *ast.Term { return ast.InternedTerm(int64(n)) }

// strs encodes a string slice; nil is null, as encoding/json writes it.
func strs(ss []string) *ast.Term {
	if ss == nil {
		return ast.NullTerm()
	}
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = str(s)
	}
	return ast.ArrayTerm(ts...)
}

// list encodes a slice with enc; nil is null.
func list[T any](xs []T, enc func(*T) *ast.Term) *ast.Term {
	if xs == nil {
		return ast.NullTerm()
	}
	ts := make([]*ast.Term, len(xs))
	for i := range xs {
		ts[i] = enc(&xs[i])
	}
	return ast.ArrayTerm(ts...)
}

// strMap encodes a map[string]string; nil is null.
func strMap(m map[string]string) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := make([][2]*ast.Term, len(keys))
	for i, k := range keys {
		items[i] = item(k, str(m[k]))
	}
	return ast.ObjectTerm(items...)
}

// fields collects object items, skipping omitempty fields.
type fields [][2]*ast.Term

func newFields(n int) fields { return make(fields, 0, n) }

func (f *fields) add(key string, v *ast.Term) { *f = append(*f, item(key, v)) }

func (f *fields) addIf(cond bool, key string, v func() *ast.Term) {
	if cond {
		f.add(key, v())
	}
}

func (f fields) term() *ast.Term { return ast.ObjectTerm(f...) }

func timeTerm(t time.Time) (*ast.Term, error) {
	raw, err := t.MarshalJSON() // validates the year range as encoding/json does
	if err != nil {
		return nil, err
	}
	return str(string(raw[1 : len(raw)-1])), nil
}

func loopTerm(l *loop.Loop) (*ast.Term, error) {
	m := l.Metadata
	md := newFields(9)
	md.add("name", str(m.Name))
	md.add("team", str(m.Team))
	md.addIf(len(m.Labels) > 0, "labels", func() *ast.Term { return strMap(m.Labels) })
	md.addIf(m.UID != "", "uid", func() *ast.Term { return str(m.UID) })
	md.addIf(m.Generation != 0, "generation", func() *ast.Term { return num(m.Generation) })
	md.addIf(m.Etag != "", "etag", func() *ast.Term { return str(m.Etag) })
	for _, tf := range []struct {
		key string
		t   time.Time
	}{{"createTime", m.CreateTime}, {"updateTime", m.UpdateTime}, {"deleteTime", m.DeleteTime}} {
		if tf.t.IsZero() {
			continue
		}
		t, err := timeTerm(tf.t)
		if err != nil {
			return nil, fmt.Errorf("metadata.%s: %w", tf.key, err)
		}
		md.add(tf.key, t)
	}

	s := &l.Spec
	peak, err := json.Marshal(s.Throughput.PeakFactor) // float formatting as encoding/json does it
	if err != nil {
		return nil, fmt.Errorf("spec.throughput.peakFactor: %w", err)
	}
	sp := newFields(11)
	sp.addIf(s.Description != "", "description", func() *ast.Term { return str(s.Description) })
	sp.add("owners", strs(s.Owners))
	sp.add("classification", str(string(s.Classification)))
	sp.add("residency", str(s.Residency))
	sp.add("retentionMs", num(s.RetentionMs))
	slo := newFields(2)
	slo.add("latencyP99Ms", num(s.SLO.LatencyP99Ms))
	slo.addIf(s.SLO.FreshnessMs != 0, "freshnessMs", func() *ast.Term { return num(s.SLO.FreshnessMs) })
	sp.add("slo", slo.term())
	tp := newFields(3)
	tp.add("bytesPerSecond", num(s.Throughput.BytesPerSecond))
	tp.add("peakFactor", ast.NumberTerm(json.Number(peak)))
	tp.addIf(s.Throughput.RecordBytes != 0, "recordBytes", func() *ast.Term { return num(s.Throughput.RecordBytes) })
	sp.add("throughput", tp.term())
	sp.add("streams", list(s.Streams, streamTerm))
	sp.addIf(len(s.Producers) > 0, "producers", func() *ast.Term {
		return list(s.Producers, func(p *loop.Producer) *ast.Term {
			return ast.ObjectTerm(item("principal", str(p.Principal)), item("streams", strs(p.Streams)))
		})
	})
	sp.addIf(len(s.Consumers) > 0, "consumers", func() *ast.Term {
		return list(s.Consumers, func(c *loop.Consumer) *ast.Term {
			return ast.ObjectTerm(item("principal", str(c.Principal)), item("group", str(c.Group)), item("streams", strs(c.Streams)))
		})
	})
	sp.addIf(s.Action != nil, "action", func() *ast.Term { return ast.ObjectTerm(item("stream", str(s.Action.Stream))) })

	return ast.ObjectTerm(item("metadata", md.term()), item("spec", sp.term())), nil
}

func streamTerm(st *loop.Stream) *ast.Term {
	f := newFields(4)
	f.add("name", str(st.Name))
	f.addIf(st.Partitions != 0, "partitions", func() *ast.Term { return num(st.Partitions) })
	sc := newFields(3)
	sc.add("format", str(st.Schema.Format))
	sc.addIf(st.Schema.Compatibility != "", "compatibility", func() *ast.Term { return str(st.Schema.Compatibility) })
	sc.add("definition", str(st.Schema.Definition))
	f.add("schema", sc.term())
	f.addIf(st.External, "external", func() *ast.Term { return ast.BooleanTerm(true) })
	return f.term()
}

// derivedTerm is input.derived: the resources, and the cost forecast when
// there is one.
func derivedTerm(r provisioning.Resources, c *cost.Estimate) *ast.Term {
	items := resourcesItems(r)
	if c != nil {
		items = append(items, item("cost", costTerm(c)))
	}
	return ast.ObjectTerm(items...)
}

func costTerm(c *cost.Estimate) *ast.Term {
	return ast.ObjectTerm(
		item("model", str(c.Model)),
		item("currency", str(c.Currency)),
		item("priceList", str(c.PriceList)),
		item("monthlyTotal", floatTerm(c.MonthlyTotal)),
		item("items", list(c.Items, func(it *cost.Item) *ast.Term {
			return ast.ObjectTerm(
				item("component", str(it.Component)),
				item("detail", ast.StringTerm(it.Detail)),
				item("monthly", floatTerm(it.Monthly)),
			)
		})),
		item("replayPerDay", floatTerm(c.ReplayPerDay)),
		item("basis", ast.StringTerm(c.Basis)),
	)
}

// floatTerm encodes a float64 as encoding/json writes it.
func floatTerm(f float64) *ast.Term {
	raw, err := json.Marshal(f)
	if err != nil { // NaN or ±Inf: not JSON; cost never produces them
		return ast.NumberTerm("0")
	}
	return ast.NumberTerm(json.Number(raw))
}

func resourcesItems(r provisioning.Resources) [][2]*ast.Term {
	return [][2]*ast.Term{
		item("topics", list(r.Topics, func(t *provisioning.Topic) *ast.Term {
			return ast.ObjectTerm(
				item("name", str(t.Name)),
				item("partitions", num(t.Partitions)),
				item("replicationFactor", num(t.ReplicationFactor)),
				item("configs", strMap(t.Configs)),
			)
		})),
		item("acls", list(r.ACLs, func(a *provisioning.ACL) *ast.Term {
			return ast.ObjectTerm(
				item("principal", str(a.Principal)),
				item("host", str(a.Host)),
				item("resourceType", str(a.ResourceType)),
				item("resourceName", str(a.ResourceName)),
				item("patternType", str(a.PatternType)),
				item("operation", str(a.Operation)),
				item("permission", str(a.Permission)),
			)
		})),
		item("quotas", list(r.Quotas, func(q *provisioning.Quota) *ast.Term {
			f := newFields(3)
			f.add("principal", str(q.Principal))
			f.addIf(q.ProducerByteRate != 0, "producerByteRate", func() *ast.Term { return num(q.ProducerByteRate) })
			f.addIf(q.ConsumerByteRate != 0, "consumerByteRate", func() *ast.Term { return num(q.ConsumerByteRate) })
			return f.term()
		})),
	}
}

func teamTerm(t catalog.Team) *ast.Term {
	return ast.ObjectTerm(
		item("name", str(t.Name)),
		item("allowedRegions", strs(t.AllowedRegions)),
		item("maxPartitionsPerLoop", num(t.MaxPartitionsPerLoop)),
		item("maxPartitions", num(t.MaxPartitions)),
		item("maxBytesPerSecond", num(t.MaxBytesPerSecond)),
		item("usedPartitions", num(t.UsedPartitions)),
		item("costApprovalThreshold", floatTerm(t.CostApprovalThreshold)),
	)
}

func clusterTerm(c catalog.Cluster) *ast.Term {
	f := newFields(7)
	f.add("name", str(c.Name))
	f.add("region", str(c.Region))
	f.addIf(len(c.Zones) > 0, "zones", func() *ast.Term { return strs(c.Zones) })
	f.add("replicationFactor", num(c.ReplicationFactor))
	f.add("bootstrapServers", strs(c.BootstrapServers))
	f.addIf(c.SecurityProtocol != "", "securityProtocol", func() *ast.Term { return str(c.SecurityProtocol) })
	f.addIf(c.Credentials != "", "credentials", func() *ast.Term { return str(c.Credentials) })
	return f.term()
}
