package provisioning

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// ValidateTopicName applies Kafka's topic name rules: 1 to 249 characters
// from [a-zA-Z0-9._-], and not "." or "..". The error wraps
// ErrInvalidTopicName and says what to change.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved by Kafka; choose another name", ErrInvalidTopicName, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: %q is %d characters long, Kafka allows at most %d; shorten the team, loop or stream name",
			ErrInvalidTopicName, name, len(name), MaxTopicNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q at byte %d; Kafka allows only letters, digits, '.', '_' and '-'",
				ErrInvalidTopicName, name, rune(c), i)
		}
	}
	return nil
}

// configRule checks one topic config value; it returns a description of
// what is expected when the value is wrong.
type configRule func(v string) (expected string, ok bool)

func longAtLeast(min int64) configRule {
	return func(v string) (string, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		return fmt.Sprintf("an integer (long) ≥ %d", min), err == nil && n >= min
	}
}

func intAtLeast(min int64) configRule {
	return func(v string) (string, bool) {
		n, err := strconv.ParseInt(v, 10, 32)
		return fmt.Sprintf("an integer (int) ≥ %d", min), err == nil && n >= min
	}
}

func oneOf(values ...string) configRule {
	return func(v string) (string, bool) {
		return "one of " + strings.Join(values, ", "), slices.Contains(values, v)
	}
}

func boolean(v string) (string, bool) {
	return "true or false", v == "true" || v == "false"
}

func ratio(v string) (string, bool) {
	f, err := strconv.ParseFloat(v, 64)
	return "a number between 0 and 1", err == nil && f >= 0 && f <= 1
}

func anyString(string) (string, bool) { return "", true }

// topicConfigRules are Kafka's topic-level configs (Kafka 3.x/4.x topic
// configs documentation) with their types and ranges.
var topicConfigRules = map[string]configRule{
	"cleanup.policy":                          oneOf("delete", "compact", "compact,delete", "delete,compact"),
	"compression.type":                        oneOf("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
	"compression.gzip.level":                  intAtLeast(-1),
	"compression.lz4.level":                   intAtLeast(1),
	"compression.zstd.level":                  intAtLeast(-131072),
	"delete.retention.ms":                     longAtLeast(0),
	"file.delete.delay.ms":                    longAtLeast(0),
	"flush.messages":                          longAtLeast(1),
	"flush.ms":                                longAtLeast(0),
	"follower.replication.throttled.replicas": anyString,
	"leader.replication.throttled.replicas":   anyString,
	"index.interval.bytes":                    intAtLeast(0),
	"local.retention.bytes":                   longAtLeast(-2),
	"local.retention.ms":                      longAtLeast(-2),
	"max.compaction.lag.ms":                   longAtLeast(1),
	"max.message.bytes":                       intAtLeast(0),
	"message.downconversion.enable":           boolean,
	"message.timestamp.after.max.ms":          longAtLeast(0),
	"message.timestamp.before.max.ms":         longAtLeast(0),
	"message.timestamp.difference.max.ms":     longAtLeast(0),
	"message.timestamp.type":                  oneOf("CreateTime", "LogAppendTime"),
	"min.cleanable.dirty.ratio":               ratio,
	"min.compaction.lag.ms":                   longAtLeast(0),
	"min.insync.replicas":                     intAtLeast(1),
	"preallocate":                             boolean,
	"remote.storage.enable":                   boolean,
	"retention.bytes":                         longAtLeast(-1),
	"retention.ms":                            longAtLeast(-1),
	"segment.bytes":                           intAtLeast(14),
	"segment.index.bytes":                     intAtLeast(4),
	"segment.jitter.ms":                       longAtLeast(0),
	"segment.ms":                              longAtLeast(1),
	"unclean.leader.election.enable":          boolean,
}

// KnownTopicConfig reports whether key is a Kafka topic-level config.
func KnownTopicConfig(key string) bool {
	_, ok := topicConfigRules[key]
	return ok
}

// ConfigError is one invalid topic config. It wraps ErrInvalidTopicConfig.
type ConfigError struct {
	Key, Value string
	Expected   string // what a valid value looks like; "" for an unknown key
}

func (e *ConfigError) Error() string {
	if e.Expected == "" {
		return fmt.Sprintf("%s: %q is not a Kafka topic config; check the spelling (e.g. retention.ms, cleanup.policy)",
			ErrInvalidTopicConfig, e.Key)
	}
	return fmt.Sprintf("%s: %s=%q: expected %s", ErrInvalidTopicConfig, e.Key, e.Value, e.Expected)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidTopicConfig }

// ValidateTopicConfigs checks every key against Kafka's topic configs and
// every value against its type and range. It returns all problems, sorted
// by key, joined; each is a *ConfigError.
func ValidateTopicConfigs(configs map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		v := configs[k]
		rule, ok := topicConfigRules[k]
		if !ok {
			errs = append(errs, &ConfigError{Key: k, Value: v})
			continue
		}
		if expected, ok := rule(v); !ok {
			errs = append(errs, &ConfigError{Key: k, Value: v, Expected: expected})
		}
	}
	return errors.Join(errs...)
}
