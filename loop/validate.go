package loop

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/schemas"
)

// Limits enforced by Validate.
const (
	// MaxPartitions is the most partitions one stream may ask for.
	MaxPartitions = 1024
	// maxTopicName is Kafka's limit on topic name length.
	maxTopicName = 249
	// MaxPeakBytesPerSecond bounds bytesPerSecond × peakFactor: 2^53, the
	// largest integer a Kafka client quota (a double) holds exactly. Quotas
	// are derived from this product, so it must not overflow.
	MaxPeakBytesPerSecond = 1 << 53
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

// Validate checks a loop's metadata and spec and returns every problem at
// once, each with its field path (YAML names, e.g.
// "spec.streams[0].schema.definition"); nil means valid. It does not apply
// defaults: call Default first (Parse does). It checks what can be checked
// from the loop alone — names, units, references between fields, Avro
// schemas — and leaves organisational rules (allowed regions, budgets,
// latency floors) to policy.
func Validate(l *Loop) FieldErrors {
	var errs FieldErrors
	validateMetadata(&errs, &l.Metadata)
	validateSpec(&errs, l)
	return errs
}

func validateMetadata(errs *FieldErrors, m *Metadata) {
	switch {
	case m.Name == "":
		errs.add("metadata.name", "is required")
	case !nameRE.MatchString(m.Name):
		errs.add("metadata.name", "%q must be 3-40 characters of lower-case letters, digits and '-', starting with a letter and not ending with '-' (e.g. checkout-nudge)", m.Name)
	}
	switch {
	case m.Team == "":
		errs.add("metadata.team", "is required (the owning team from the team catalog)")
	case !teamRE.MatchString(m.Team):
		errs.add("metadata.team", "%q must be 1-40 characters of lower-case letters, digits and '-', starting with a letter", m.Team)
	}
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := mapKeyPath("metadata.labels", k)
		if !labelKeyRE.MatchString(k) {
			errs.add(p, "label key %q must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'", k)
		}
		if v := m.Labels[k]; !labelValueRE.MatchString(v) {
			errs.add(p, "label value %q must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
		}
	}
}

func validateSpec(errs *FieldErrors, l *Loop) {
	sp := &l.Spec

	if len(sp.Owners) == 0 {
		errs.add("spec.owners", "at least one owner is required (the people accountable for this loop, e.g. [ana@example.com])")
	}
	seenOwner := map[string]int{}
	for i, o := range sp.Owners {
		p := fmt.Sprintf("spec.owners[%d]", i)
		if !emailRE.MatchString(o) {
			errs.add(p, "%q is not an email address", o)
			continue
		}
		if first, dup := seenOwner[strings.ToLower(o)]; dup {
			errs.add(p, "%q is listed twice (also spec.owners[%d])", o, first)
			continue
		}
		seenOwner[strings.ToLower(o)] = i
	}

	switch {
	case sp.Classification == "":
		errs.add("spec.classification", "is required (one of %s)", classificationList())
	case !slices.Contains(Classifications, sp.Classification):
		errs.add("spec.classification", "%q is not a classification (use one of %s)", sp.Classification, classificationList())
	}
	switch {
	case sp.Residency == "":
		errs.add("spec.residency", "is required (the region whose cluster holds the data, e.g. eu)")
	case !regionRE.MatchString(sp.Residency):
		errs.add("spec.residency", "%q is not a region key (lower-case letters, digits and '-', e.g. eu)", sp.Residency)
	}
	if sp.RetentionMs <= 0 {
		errs.add("spec.retention", "must be greater than 0 (e.g. 72h or 7d)")
	}
	if sp.SLO.LatencyP99Ms <= 0 {
		errs.add("spec.slo.latencyP99", "must be greater than 0 (event produced to action taken, e.g. 2s)")
	}
	if sp.SLO.FreshnessMs < 0 {
		errs.add("spec.slo.freshness", "must not be negative")
	}
	if sp.Throughput.BytesPerSecond <= 0 {
		errs.add("spec.throughput.bytesPerSecond", "must be greater than 0 (the steady ingress, e.g. 2MiB)")
	}
	if pf := sp.Throughput.PeakFactor; math.IsNaN(pf) || math.IsInf(pf, 0) || pf < 1 {
		errs.add("spec.throughput.peakFactor", "must be at least 1 (peak ingress / steady ingress; omit it for 1)")
	}
	if bps, pf := sp.Throughput.BytesPerSecond, sp.Throughput.PeakFactor; bps > 0 && pf >= 1 && !math.IsInf(pf, 0) &&
		float64(bps)*pf > MaxPeakBytesPerSecond {
		errs.add("spec.throughput", "bytesPerSecond × peakFactor = %.4g bytes/s is more than the %d bytes/s a Kafka quota can hold; declare the real ingress", float64(bps)*pf, int64(MaxPeakBytesPerSecond))
	}
	if sp.Throughput.RecordBytes < 0 {
		errs.add("spec.throughput.recordBytes", "must not be negative")
	}

	streams := validateStreams(errs, l)

	seenProducer := map[string]int{}
	for i, p := range sp.Producers {
		path := fmt.Sprintf("spec.producers[%d]", i)
		validatePrincipal(errs, path+".principal", p.Principal)
		if first, dup := seenProducer[p.Principal]; dup && p.Principal != "" {
			errs.add(path+".principal", "%q is already listed in spec.producers[%d] (list its streams there)", p.Principal, first)
		} else {
			seenProducer[p.Principal] = i
		}
		validateStreamRefs(errs, path+".streams", p.Streams, streams)
	}
	seenConsumer := map[[2]string]int{}
	for i, c := range sp.Consumers {
		path := fmt.Sprintf("spec.consumers[%d]", i)
		validatePrincipal(errs, path+".principal", c.Principal)
		switch {
		case c.Group == "":
			errs.add(path+".group", "is required (the consumer group id, e.g. %s)", principalName(c.Principal, "nudge-engine"))
		case !groupRE.MatchString(c.Group):
			errs.add(path+".group", "%q must be 1-249 letters, digits, '.', '_' or '-'", c.Group)
		}
		key := [2]string{c.Principal, c.Group}
		if first, dup := seenConsumer[key]; dup && c.Principal != "" && c.Group != "" {
			errs.add(path, "principal %q with group %q is already listed in spec.consumers[%d]", c.Principal, c.Group, first)
		} else {
			seenConsumer[key] = i
		}
		validateStreamRefs(errs, path+".streams", c.Streams, streams)
	}
	validateWriters(errs, l, streams)
	if sp.Action != nil {
		switch {
		case sp.Action.Stream == "":
			errs.add("spec.action.stream", "is required when action is set (the stream where the loop closes)")
		case !streams[sp.Action.Stream]:
			errs.add("spec.action.stream", "unknown stream %q (declared: %s)", sp.Action.Stream, streamList(l))
		}
	}
}

// validateWriters checks that the loop closes: every stream is written by
// a producer of the loop unless it is marked external (written by something
// outside the loop), and the action stream always has a producer — the
// acting service that writes it.
func validateWriters(errs *FieldErrors, l *Loop, declared map[string]bool) {
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
			errs.add(path, "stream %q is the action stream but no producer writes it: add the acting service's principal to spec.producers with streams: [%s]", s.Name, s.Name)
		case !s.External:
			errs.add(path, "stream %q has no producer: list the principal that writes it in spec.producers, or set external: true if something outside the loop writes it (e.g. CDC)", s.Name)
		}
	}
}

// validateStreams checks spec.streams and returns the set of declared names.
func validateStreams(errs *FieldErrors, l *Loop) map[string]bool {
	sp := &l.Spec
	declared := map[string]bool{}
	if len(sp.Streams) == 0 {
		errs.add("spec.streams", "at least one stream is required")
	}
	first := map[string]int{}
	for i, s := range sp.Streams {
		path := fmt.Sprintf("spec.streams[%d]", i)
		switch {
		case s.Name == "":
			errs.add(path+".name", "is required")
		case !streamRE.MatchString(s.Name):
			errs.add(path+".name", "%q must be 1-63 lower-case letters, digits and '-', starting with a letter (e.g. events)", s.Name)
		default:
			if j, dup := first[s.Name]; dup {
				errs.add(path+".name", "stream %q is already declared at spec.streams[%d]", s.Name, j)
			} else {
				first[s.Name] = i
			}
			if t := TopicName(l.Metadata.Team, l.Metadata.Name, s.Name); l.Metadata.Team != "" && l.Metadata.Name != "" {
				if len(t) > maxTopicName || !topicRE.MatchString(t) {
					errs.add(path+".name", "topic name %q is not a valid Kafka topic name (at most %d characters of letters, digits, '.', '_' and '-'); shorten the loop or stream name", t, maxTopicName)
				}
			}
		}
		declared[s.Name] = s.Name != ""
		if s.Partitions < 0 || s.Partitions > MaxPartitions {
			errs.add(path+".partitions", "%d is out of range (0 to %d; omit it to derive from throughput and the SLO)", s.Partitions, MaxPartitions)
		}
		validateSchema(errs, path+".schema", s)
	}
	return declared
}

func validateSchema(errs *FieldErrors, path string, s Stream) {
	sc := s.Schema
	if sc.Format != "avro" {
		errs.add(path+".format", "%q is not supported (use avro)", sc.Format)
	}
	if sc.Compatibility != "" && !slices.Contains(Compatibilities, sc.Compatibility) {
		errs.add(path+".compatibility", "%q is not a compatibility mode (use one of %s)", sc.Compatibility, strings.Join(Compatibilities, ", "))
	}
	if sc.Format != "avro" {
		return // cannot judge a definition in an unknown format
	}
	if strings.TrimSpace(sc.Definition) == "" {
		errs.add(path+".definition", "stream %q: is required (the Avro record schema of the stream's values)", s.Name)
		return
	}
	if _, err := schemas.ParseAvro(sc.Definition); err != nil {
		errs.add(path+".definition", "stream %q: %v", s.Name, err)
	}
}

func validatePrincipal(errs *FieldErrors, path, principal string) {
	switch {
	case principal == "":
		errs.add(path, "is required (e.g. User:checkout-api)")
	case !principalRE.MatchString(principal):
		errs.add(path, "%q must look like User:<name>, the name 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit (no wildcards)", principal)
	}
}

func validateStreamRefs(errs *FieldErrors, path string, refs []string, declared map[string]bool) {
	if len(refs) == 0 {
		errs.add(path, "at least one stream is required")
	}
	seen := map[string]int{}
	for i, r := range refs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !declared[r] {
			errs.add(p, "unknown stream %q%s", r, suggestStream(r, declared))
			continue
		}
		if j, dup := seen[r]; dup {
			errs.add(p, "stream %q is listed twice (also %s[%d])", r, path, j)
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
	for _, n := range names {
		if editDistance(got, n) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf(" (declared: %s)", strings.Join(names, ", "))
}

func streamList(l *Loop) string {
	names := l.Spec.StreamNames()
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
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
