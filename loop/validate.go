package loop

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/schemas"
)

// Limits enforced by Validate.
const (
	// MaxPartitions is the most partitions one stream may ask for.
	MaxPartitions = 1024
	// maxTopicName is Kafka's limit on topic name length.
	maxTopicName = 249
	// maxStreamName is the longest stream name (streamRE).
	maxStreamName = 63
	// MaxPeakBytesPerSecond bounds bytesPerSecond × peakFactor: 2^53, the
	// largest integer a Kafka client quota (a double) holds exactly. Quotas
	// are derived from this product, so it must not overflow.
	MaxPeakBytesPerSecond = 1 << 53
	// MaxReportedProblems is the most problems Validate reports for one
	// loop (and Load or Parse for one file); past it a last problem says
	// how many more there are. It bounds error responses and the audit
	// event of a refused request, whatever the input.
	MaxReportedProblems = 100
	// maxOwnerBytes is the longest email address (RFC 5321).
	maxOwnerBytes = 254
)

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)
	teamRE       = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)
	streamRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	labelKeyRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$`)
	emailRE      = regexp.MustCompile(`^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$`)
	regionRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	principalRE  = regexp.MustCompile(`^User:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	groupRE      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	topicRE      = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// ValidPrincipalName reports whether name (without "User:") can name a
// principal: 1-128 letters, digits, '.', '_' or '-', starting with a letter
// or digit.
func ValidPrincipalName(name string) bool { return principalRE.MatchString("User:" + name) }

// ValidGroup reports whether g is a valid consumer group id.
func ValidGroup(g string) bool { return groupRE.MatchString(g) }

// TopicName is the Kafka topic of a stream: <team>.<loop>.<stream>.
func TopicName(team, loopName, stream string) string {
	return team + "." + loopName + "." + stream
}

// Validate is ValidateWithLimits with the default limits
// (catalog.DefaultLimits).
func Validate(l *Loop) FieldErrors {
	return ValidateWithLimits(l, catalog.DefaultLimits())
}

// ValidateWithLimits checks a loop's metadata and spec and returns every
// problem at once (at most MaxReportedProblems), each with its field path
// (YAML names, e.g. "spec.streams[0].schema.definition"); nil means valid.
// It does not apply defaults: call Default first (Parse does). It checks
// what can be checked from the loop alone — names, units, references
// between fields, Avro schemas — and leaves organisational rules (allowed
// regions, budgets, latency floors) to policy.
//
// It first checks the loop against lim (zero fields mean the defaults),
// with errors such as
// `spec.producers: 10000 producers; at most 64 (limits.maxProducersPerLoop)`.
// The items of a list over its limit are not checked one by one, and no
// schema is parsed when the loop is over limits.maxSpecBytes, so the cost
// of validating any input is bounded by the limits.
func ValidateWithLimits(l *Loop, lim catalog.Limits) FieldErrors {
	v := &validator{lim: lim.WithDefaults()}
	v.checkLimits(l)
	v.validateMetadata(&l.Metadata)
	v.validateSpec(l)
	return capProblems(v.errs)
}

// validator collects the problems of one loop under one set of limits.
type validator struct {
	lim  catalog.Limits
	errs FieldErrors
	over struct { // lists and sizes over their limits: not checked item by item
		labels, owners, streams, producers, consumers, spec bool
	}
}

func (v *validator) add(field, format string, args ...any) { v.errs.add(field, format, args...) }

// overLimit reports (once) that field holds n of what, more than the limit
// named by the Limits field limitField.
func (v *validator) overLimit(field string, n int, what, limitField string, max int) {
	v.add(field, "%d %s; at most %d (%s)", n, what, max, catalog.LimitKey(limitField))
}

// checkLimits checks the loop against v.lim and remembers what is over.
func (v *validator) checkLimits(l *Loop) {
	lim, sp := v.lim, &l.Spec
	if n := len(l.Metadata.Labels); n > lim.MaxLabels {
		v.overLimit("metadata.labels", n, "labels", "MaxLabels", lim.MaxLabels)
		v.over.labels = true
	}
	if n := len(sp.Description); n > lim.MaxDescriptionBytes {
		v.overLimit("spec.description", n, "bytes", "MaxDescriptionBytes", lim.MaxDescriptionBytes)
	}
	if n := len(sp.Owners); n > lim.MaxOwners {
		v.overLimit("spec.owners", n, "owners", "MaxOwners", lim.MaxOwners)
		v.over.owners = true
	}
	if n := len(sp.Streams); n > lim.MaxStreamsPerLoop {
		v.overLimit("spec.streams", n, "streams", "MaxStreamsPerLoop", lim.MaxStreamsPerLoop)
		v.over.streams = true
	}
	if n := len(sp.Producers); n > lim.MaxProducersPerLoop {
		v.overLimit("spec.producers", n, "producers", "MaxProducersPerLoop", lim.MaxProducersPerLoop)
		v.over.producers = true
	}
	if n := len(sp.Consumers); n > lim.MaxConsumersPerLoop {
		v.overLimit("spec.consumers", n, "consumers", "MaxConsumersPerLoop", lim.MaxConsumersPerLoop)
		v.over.consumers = true
	}
	grants := 0
	for _, p := range sp.Producers {
		grants += len(p.Streams)
	}
	for _, c := range sp.Consumers {
		grants += len(c.Streams)
	}
	if grants > lim.MaxGrantsPerLoop {
		v.add("spec", "%d stream grants (the streams of every producer and consumer together; each becomes ACLs); at most %d (%s)",
			grants, lim.MaxGrantsPerLoop, catalog.LimitKey("MaxGrantsPerLoop"))
	}
	if n, exact := specBytes(l, lim.MaxSpecBytes); n > lim.MaxSpecBytes {
		v.over.spec = true
		what := "bytes"
		if !exact {
			what = "bytes or more"
		}
		v.add("spec", "the loop is %d %s of JSON (metadata and spec, schema definitions included); at most %d (%s)",
			n, what, lim.MaxSpecBytes, catalog.LimitKey("MaxSpecBytes"))
	}
}

// specBytes returns the size of the canonical JSON of the loop's metadata
// (name, team, labels) and spec. When the strings alone already exceed max
// it returns their total without encoding anything (exact is false).
func specBytes(l *Loop, max int) (n int, exact bool) {
	sp := &l.Spec
	n = len(l.Metadata.Name) + len(l.Metadata.Team) + len(sp.Description) + len(sp.Classification) + len(sp.Residency)
	for k, val := range l.Metadata.Labels {
		n += len(k) + len(val)
	}
	for _, o := range sp.Owners {
		n += len(o)
	}
	for _, s := range sp.Streams {
		n += len(s.Name) + len(s.Schema.Format) + len(s.Schema.Compatibility) + len(s.Schema.Definition)
	}
	for _, p := range sp.Producers {
		n += len(p.Principal)
		for _, s := range p.Streams {
			n += len(s)
		}
	}
	for _, c := range sp.Consumers {
		n += len(c.Principal) + len(c.Group)
		for _, s := range c.Streams {
			n += len(s)
		}
	}
	if n > max {
		return n, false
	}
	raw, err := json.Marshal(struct {
		Name   string            `json:"name"`
		Team   string            `json:"team"`
		Labels map[string]string `json:"labels,omitempty"`
		Spec   *Spec             `json:"spec"`
	}{l.Metadata.Name, l.Metadata.Team, l.Metadata.Labels, sp})
	if err != nil { // a NaN peakFactor: the field check reports it
		return n, false
	}
	return len(raw), true
}

// capProblems keeps the first MaxReportedProblems problems and says how many
// more there were.
func capProblems(errs FieldErrors) FieldErrors {
	if len(errs) <= MaxReportedProblems {
		return errs
	}
	more, next := len(errs)-MaxReportedProblems, errs[MaxReportedProblems]
	out := errs[:MaxReportedProblems:MaxReportedProblems]
	return append(out, FieldError{Field: next.Field, Document: next.Document, Line: next.Line,
		Message: fmt.Sprintf("and %d more problem(s) not listed (at most %d are reported at once; fix these first)", more, MaxReportedProblems)})
}

func (v *validator) validateMetadata(m *Metadata) {
	switch {
	case m.Name == "":
		v.add("metadata.name", "is required")
	case !nameRE.MatchString(m.Name):
		v.add("metadata.name", "%s must be 3-40 characters of lower-case letters, digits and '-', starting with a letter and not ending with '-' (e.g. checkout-nudge)", quote(m.Name))
	}
	switch {
	case m.Team == "":
		v.add("metadata.team", "is required (the owning team from the team catalog)")
	case !teamRE.MatchString(m.Team):
		v.add("metadata.team", "%s must be 1-40 characters of lower-case letters, digits and '-', starting with a letter", quote(m.Team))
	}
	if v.over.labels {
		return
	}
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := mapKeyPath("metadata.labels", k)
		switch {
		case len(k) > v.lim.MaxLabelKeyBytes:
			v.add(p, "label key is %d bytes; at most %d (%s)", len(k), v.lim.MaxLabelKeyBytes, catalog.LimitKey("MaxLabelKeyBytes"))
		case !labelKeyRE.MatchString(k):
			v.add(p, "label key %s must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'", quote(k))
		}
		switch val := m.Labels[k]; {
		case len(val) > v.lim.MaxLabelValueBytes:
			v.add(p, "label value is %d bytes; at most %d (%s)", len(val), v.lim.MaxLabelValueBytes, catalog.LimitKey("MaxLabelValueBytes"))
		case !labelValueRE.MatchString(val):
			v.add(p, "label value %s must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", quote(val))
		}
	}
}

func (v *validator) validateSpec(l *Loop) {
	sp := &l.Spec

	if len(sp.Owners) == 0 {
		v.add("spec.owners", "at least one owner is required (the people accountable for this loop, e.g. [ana@example.com])")
	}
	seenOwner := map[string]int{}
	for i, o := range sp.Owners {
		if v.over.owners {
			break
		}
		p := fmt.Sprintf("spec.owners[%d]", i)
		if len(o) > maxOwnerBytes {
			v.add(p, "%s is %d bytes; an email address is at most %d", quote(o), len(o), maxOwnerBytes)
			continue
		}
		if !emailRE.MatchString(o) {
			v.add(p, "%s is not an email address", quote(o))
			continue
		}
		if first, dup := seenOwner[strings.ToLower(o)]; dup {
			v.add(p, "%s is listed twice (also spec.owners[%d])", quote(o), first)
			continue
		}
		seenOwner[strings.ToLower(o)] = i
	}

	switch {
	case sp.Classification == "":
		v.add("spec.classification", "is required (one of %s)", classificationList())
	case !slices.Contains(Classifications, sp.Classification):
		v.add("spec.classification", "%s is not a classification (use one of %s)", quote(string(sp.Classification)), classificationList())
	}
	switch {
	case sp.Residency == "":
		v.add("spec.residency", "is required (the region whose cluster holds the data, e.g. eu)")
	case !regionRE.MatchString(sp.Residency):
		v.add("spec.residency", "%s is not a region key (lower-case letters, digits and '-', e.g. eu)", quote(sp.Residency))
	}
	if sp.RetentionMs <= 0 {
		v.add("spec.retention", "must be greater than 0 (e.g. 72h or 7d)")
	}
	if sp.SLO.LatencyP99Ms <= 0 {
		v.add("spec.slo.latencyP99", "must be greater than 0 (event produced to action taken, e.g. 2s)")
	}
	if sp.SLO.FreshnessMs < 0 {
		v.add("spec.slo.freshness", "must not be negative")
	}
	if sp.Throughput.BytesPerSecond <= 0 {
		v.add("spec.throughput.bytesPerSecond", "must be greater than 0 (the steady ingress, e.g. 2MiB)")
	}
	if pf := sp.Throughput.PeakFactor; math.IsNaN(pf) || math.IsInf(pf, 0) || pf < 1 {
		v.add("spec.throughput.peakFactor", "must be at least 1 (peak ingress / steady ingress; omit it for 1)")
	}
	if bps, pf := sp.Throughput.BytesPerSecond, sp.Throughput.PeakFactor; bps > 0 && pf >= 1 && !math.IsInf(pf, 0) &&
		float64(bps)*pf > MaxPeakBytesPerSecond {
		v.add("spec.throughput", "bytesPerSecond × peakFactor = %.4g bytes/s is more than the %d bytes/s a Kafka quota can hold; declare the real ingress", float64(bps)*pf, int64(MaxPeakBytesPerSecond))
	}
	if sp.Throughput.RecordBytes < 0 {
		v.add("spec.throughput.recordBytes", "must not be negative")
	}

	if v.over.streams {
		// Without the streams, every reference would be unknown: the
		// limit error is the one to fix first.
		return
	}
	streams := v.validateStreams(l)

	seenProducer := map[string]int{}
	for i, p := range sp.Producers {
		if v.over.producers {
			break
		}
		path := fmt.Sprintf("spec.producers[%d]", i)
		v.validatePrincipal(path+".principal", p.Principal)
		if first, dup := seenProducer[p.Principal]; dup && p.Principal != "" {
			v.add(path+".principal", "%s is already listed in spec.producers[%d] (list its streams there)", quote(p.Principal), first)
		} else {
			seenProducer[p.Principal] = i
		}
		v.validateStreamRefs(path+".streams", p.Streams, streams)
	}
	seenConsumer := map[[2]string]int{}
	for i, c := range sp.Consumers {
		if v.over.consumers {
			break
		}
		path := fmt.Sprintf("spec.consumers[%d]", i)
		v.validatePrincipal(path+".principal", c.Principal)
		switch {
		case c.Group == "":
			v.add(path+".group", "is required (the consumer group id, e.g. %s)", clip(principalName(c.Principal, "nudge-engine")))
		case !groupRE.MatchString(c.Group):
			v.add(path+".group", "%s must be 1-249 letters, digits, '.', '_' or '-'", quote(c.Group))
		}
		key := [2]string{c.Principal, c.Group}
		if first, dup := seenConsumer[key]; dup && c.Principal != "" && c.Group != "" {
			v.add(path, "principal %s with group %s is already listed in spec.consumers[%d]", quote(c.Principal), quote(c.Group), first)
		} else {
			seenConsumer[key] = i
		}
		v.validateStreamRefs(path+".streams", c.Streams, streams)
	}
	if !v.over.producers {
		v.validateWriters(l, streams)
	}
	if sp.Action != nil {
		switch {
		case sp.Action.Stream == "":
			v.add("spec.action.stream", "is required when action is set (the stream where the loop closes)")
		case !streams[sp.Action.Stream]:
			v.add("spec.action.stream", "unknown stream %s (declared: %s)", quote(sp.Action.Stream), streamList(l))
		}
	}
}

// validateWriters checks that the loop closes: every stream is written by
// a producer of the loop unless it is marked external (written by something
// outside the loop), and the action stream always has a producer — the
// acting service that writes it.
func (v *validator) validateWriters(l *Loop, declared map[string]bool) {
	sp := &l.Spec
	written := map[string]bool{}
	for _, p := range sp.Producers {
		for _, s := range p.Streams {
			written[s] = true
		}
	}
	action := ""
	if sp.Action != nil {
		action = sp.Action.Stream
	}
	for i, s := range sp.Streams {
		if !declared[s.Name] || written[s.Name] {
			continue
		}
		path := fmt.Sprintf("spec.streams[%d]", i)
		switch {
		case s.Name == action:
			v.add(path, "stream %q is the action stream but no producer writes it: add the acting service's principal to spec.producers with streams: [%s]", s.Name, s.Name)
		case !s.External:
			v.add(path, "stream %q has no producer: list the principal that writes it in spec.producers, or set external: true if something outside the loop writes it (e.g. CDC)", s.Name)
		}
	}
}

// validateStreams checks spec.streams and returns the set of declared names.
func (v *validator) validateStreams(l *Loop) map[string]bool {
	sp := &l.Spec
	declared := map[string]bool{}
	if len(sp.Streams) == 0 {
		v.add("spec.streams", "at least one stream is required")
	}
	first := map[string]int{}
	for i, s := range sp.Streams {
		path := fmt.Sprintf("spec.streams[%d]", i)
		switch {
		case s.Name == "":
			v.add(path+".name", "is required")
		case !streamRE.MatchString(s.Name):
			v.add(path+".name", "%s must be 1-63 lower-case letters, digits and '-', starting with a letter (e.g. events)", quote(s.Name))
		default:
			if j, dup := first[s.Name]; dup {
				v.add(path+".name", "stream %q is already declared at spec.streams[%d]", s.Name, j)
			} else {
				first[s.Name] = i
			}
			if t := TopicName(l.Metadata.Team, l.Metadata.Name, s.Name); l.Metadata.Team != "" && l.Metadata.Name != "" {
				if len(t) > maxTopicName || !topicRE.MatchString(t) {
					v.add(path+".name", "topic name %s is not a valid Kafka topic name (at most %d characters of letters, digits, '.', '_' and '-'); shorten the loop or stream name", quote(t), maxTopicName)
				}
			}
		}
		declared[s.Name] = s.Name != ""
		if s.Partitions < 0 || s.Partitions > MaxPartitions {
			v.add(path+".partitions", "%d is out of range (0 to %d; omit it to derive from throughput and the SLO)", s.Partitions, MaxPartitions)
		}
		v.validateSchema(path+".schema", s)
	}
	return declared
}

func (v *validator) validateSchema(path string, s Stream) {
	sc := s.Schema
	if sc.Format != "avro" {
		v.add(path+".format", "%s is not supported (use avro)", quote(sc.Format))
	}
	if sc.Compatibility != "" && !slices.Contains(Compatibilities, sc.Compatibility) {
		v.add(path+".compatibility", "%s is not a compatibility mode (use one of %s)", quote(sc.Compatibility), strings.Join(Compatibilities, ", "))
	}
	if sc.Format != "avro" {
		return // cannot judge a definition in an unknown format
	}
	if strings.TrimSpace(sc.Definition) == "" {
		v.add(path+".definition", "stream %s: is required (the Avro record schema of the stream's values)", quote(s.Name))
		return
	}
	if v.over.spec && len(sc.Definition) <= v.lim.MaxSchemaBytes {
		// The loop is over limits.maxSpecBytes: parsing every definition
		// would cost more than the limits allow. Fix that first.
		return
	}
	if _, err := schemas.ParseAvroWithLimits(sc.Definition, v.lim); err != nil {
		v.add(path+".definition", "stream %s: %v", quote(s.Name), err)
	}
}

func (v *validator) validatePrincipal(path, principal string) {
	switch {
	case principal == "":
		v.add(path, "is required (e.g. User:checkout-api)")
	case !principalRE.MatchString(principal):
		v.add(path, "%s must look like User:<name>, the name 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit (no wildcards)", quote(principal))
	}
}

func (v *validator) validateStreamRefs(path string, refs []string, declared map[string]bool) {
	if len(refs) == 0 {
		v.add(path, "at least one stream is required")
	}
	if n := len(refs); n > v.lim.MaxStreamsPerLoop {
		// A longer list names a stream twice or an unknown one.
		v.overLimit(path, n, "streams", "MaxStreamsPerLoop", v.lim.MaxStreamsPerLoop)
		return
	}
	seen := map[string]int{}
	for i, r := range refs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !declared[r] {
			v.add(p, "unknown stream %s%s", quote(r), suggestStream(r, declared))
			continue
		}
		if j, dup := seen[r]; dup {
			v.add(p, "stream %q is listed twice (also %s[%d])", r, path, j)
			continue
		}
		seen[r] = i
	}
}

func suggestStream(got string, declared map[string]bool) string {
	var names []string
	for n, ok := range declared {
		if ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(got) <= 2*maxStreamName {
		for _, n := range names {
			if editDistance(got, n) <= 2 {
				return fmt.Sprintf(" (did you mean %q?)", n)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf(" (declared: %s)", nameList(names))
}

func streamList(l *Loop) string {
	names := l.Spec.StreamNames()
	if len(names) == 0 {
		return "none"
	}
	return nameList(names)
}

func classificationList() string {
	s := make([]string, len(Classifications))
	for i, c := range Classifications {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// principalName returns the name part of "User:name", or fallback.
func principalName(principal, fallback string) string {
	if n, ok := strings.CutPrefix(principal, "User:"); ok && n != "" {
		return n
	}
	return fallback
}
