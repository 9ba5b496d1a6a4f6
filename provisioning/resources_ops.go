package provisioning

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Partitions is the partition count of all of r's topics.
func (r *Resources) Partitions() int32 {
	var n int32
	for _, t := range r.Topics {
		n += t.Partitions
	}
	return n
}

// Sort puts the resources in their canonical order: topics by name, ACLs by
// resource then principal then operation, quotas by principal.
func (r *Resources) Sort() {
	slices.SortFunc(r.Topics, func(a, b Topic) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(r.ACLs, compareACL)
	slices.SortFunc(r.Quotas, func(a, b Quota) int { return cmp.Compare(a.Principal, b.Principal) })
}

func compareACL(a, b ACL) int {
	return cmp.Or(
		cmp.Compare(a.ResourceType, b.ResourceType),
		cmp.Compare(a.ResourceName, b.ResourceName),
		cmp.Compare(a.PatternType, b.PatternType),
		cmp.Compare(a.Principal, b.Principal),
		cmp.Compare(a.Operation, b.Operation),
		cmp.Compare(a.Host, b.Host),
		cmp.Compare(a.Permission, b.Permission),
	)
}

// Validate checks every topic name and config against Kafka's rules and
// every ACL and quota principal, and returns all problems joined; each is
// prefixed with the resource it concerns. errors.Is(err,
// ErrInvalidTopicName), ErrInvalidTopicConfig or ErrInvalidPrincipal tell
// the kinds apart.
func (r *Resources) Validate() error {
	var errs []error
	for i, t := range r.Topics {
		if err := ValidateTopicName(t.Name); err != nil {
			errs = append(errs, fmt.Errorf("topics[%d]: %w", i, err))
		}
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("topics[%d] %q: partitions must be at least 1, got %d", i, t.Name, t.Partitions))
		}
		if err := ValidateTopicConfigs(t.Configs); err != nil {
			errs = append(errs, fmt.Errorf("topics[%d] %q: %w", i, t.Name, err))
		}
	}
	for i, a := range r.ACLs {
		if err := validatePrincipal(a.Principal); err != nil {
			errs = append(errs, fmt.Errorf("acls[%d]: %w", i, err))
		}
	}
	for i, q := range r.Quotas {
		if !isUserPrincipal(q.Principal) {
			errs = append(errs, fmt.Errorf("quotas[%d]: %w: %q: quotas apply to users; write it as User:<name>", i, ErrInvalidPrincipal, q.Principal))
		}
	}
	return errors.Join(errs...)
}

func validatePrincipal(p string) error {
	typ, name, ok := strings.Cut(p, ":")
	if !ok || typ == "" || name == "" {
		return fmt.Errorf("%w: %q: write it as Type:name, e.g. User:checkout-api", ErrInvalidPrincipal, p)
	}
	return nil
}

// Label is the human name of the topic in plans: "topic growth.x.events".
func (t Topic) Label() string { return "topic " + t.Name }

// Summary is a short description for a diff table:
// "partitions=6 rf=3 cleanup.policy=delete retention.ms=259200000".
func (t Topic) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partitions=%d rf=%d", t.Partitions, t.ReplicationFactor)
	for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
		fmt.Fprintf(&b, " %s=%s", k, t.Configs[k])
	}
	return b.String()
}

// Label is the human name of the ACL in plans:
// "acl User:nudge-engine READ GROUP nudge-engine". Host, pattern and
// permission are only shown when they are not loopgate's defaults.
func (a ACL) Label() string {
	s := fmt.Sprintf("acl %s %s %s %s", a.Principal, a.Operation, a.ResourceType, a.ResourceName)
	if a.PatternType != PatternLiteral {
		s += " pattern=" + a.PatternType
	}
	if a.Host != "*" {
		s += " host=" + a.Host
	}
	if a.Permission != PermissionAllow {
		s += " " + a.Permission
	}
	return s
}

// Label is the human name of the quota in plans: "quota User:checkout-api".
func (q Quota) Label() string { return "quota " + q.Principal }

// Summary is "producer_byte_rate=6291456 consumer_byte_rate=6291456",
// leaving out rates that are not set, or "none".
func (q Quota) Summary() string {
	var parts []string
	if q.ProducerByteRate > 0 {
		parts = append(parts, fmt.Sprintf("%s=%d", QuotaProducerByteRate, q.ProducerByteRate))
	}
	if q.ConsumerByteRate > 0 {
		parts = append(parts, fmt.Sprintf("%s=%d", QuotaConsumerByteRate, q.ConsumerByteRate))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Kafka client quota keys loopgate manages.
const (
	QuotaProducerByteRate = "producer_byte_rate"
	QuotaConsumerByteRate = "consumer_byte_rate"
)
