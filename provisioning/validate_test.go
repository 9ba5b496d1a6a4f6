package provisioning_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/provisioning"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		wantErr string // substring; "" = valid
	}{
		{"design example", "growth.checkout-nudge.events", ""},
		{"all allowed characters", "A-z_0.9", ""},
		{"exactly 249 characters", strings.Repeat("a", 249), ""},
		{"empty", "", "empty"},
		{"dot", ".", "reserved"},
		{"dot dot", "..", "reserved"},
		{"250 characters", strings.Repeat("a", 250), "at most 249"},
		{"space", "growth events", "' '"},
		{"slash", "growth/events", "'/'"},
		{"non-ASCII", "grüße", "only letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := provisioning.ValidateTopicName(tt.topic)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateTopicName(%q) = %v, want nil", tt.topic, err)
				}
				return
			}
			if !errors.Is(err, provisioning.ErrInvalidTopicName) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateTopicName(%q) = %v, want ErrInvalidTopicName mentioning %q", tt.topic, err, tt.wantErr)
			}
		})
	}
}

func TestValidateTopicConfigs(t *testing.T) {
	tests := []struct {
		name    string
		configs map[string]string
		bad     []string // keys reported, in order
	}{
		{"loopgate defaults", map[string]string{"retention.ms": "259200000", "cleanup.policy": "delete", "min.insync.replicas": "2"}, nil},
		{"infinite retention", map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}, nil},
		{"compact,delete", map[string]string{"cleanup.policy": "compact,delete", "segment.ms": "3600000"}, nil},
		{"ratio and booleans", map[string]string{"min.cleanable.dirty.ratio": "0.5", "preallocate": "false"}, nil},
		{"retention not a number", map[string]string{"retention.ms": "abc"}, []string{"retention.ms"}},
		{"retention below -1", map[string]string{"retention.ms": "-2"}, []string{"retention.ms"}},
		{"unknown policy", map[string]string{"cleanup.policy": "forever"}, []string{"cleanup.policy"}},
		{"min ISR zero", map[string]string{"min.insync.replicas": "0"}, []string{"min.insync.replicas"}},
		{"max.message.bytes overflows int", map[string]string{"max.message.bytes": "3000000000"}, []string{"max.message.bytes"}},
		{"segment.ms zero", map[string]string{"segment.ms": "0"}, []string{"segment.ms"}},
		{"typo key", map[string]string{"retention.msec": "1"}, []string{"retention.msec"}},
		{"every problem reported, sorted", map[string]string{"segment.ms": "x", "cleanup.policy": "x", "bogus": "1"},
			[]string{"bogus", "cleanup.policy", "segment.ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := provisioning.ValidateTopicConfigs(tt.configs)
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var ce *provisioning.ConfigError
					if !errors.As(e, &ce) || !errors.Is(e, provisioning.ErrInvalidTopicConfig) {
						t.Fatalf("error %v is not a *ConfigError wrapping ErrInvalidTopicConfig", e)
					}
					got = append(got, ce.Key)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.bad, ",") {
				t.Fatalf("reported keys %v, want %v (err: %v)", got, tt.bad, err)
			}
		})
	}
}

// TestResourcesValidateNamesEveryProblem protects field-level errors: the
// error says which topic and which rule.
func TestResourcesValidateNamesEveryProblem(t *testing.T) {
	r := provisioning.Resources{
		Topics: []provisioning.Topic{
			{Name: "ok.topic", Partitions: 1, Configs: map[string]string{"retention.ms": "1"}},
			{Name: "bad topic", Partitions: 0, Configs: map[string]string{"retention.ms": "soon"}},
		},
		ACLs:   []provisioning.ACL{{Principal: "checkout-api"}},
		Quotas: []provisioning.Quota{{Principal: "Group:x", ProducerByteRate: 1}},
	}
	err := r.Validate()
	for _, want := range []string{"topics[1]: invalid topic name", `topics[1] "bad topic": partitions must be at least 1`,
		`topics[1] "bad topic": invalid topic config: retention.ms="soon"`, "acls[0]: invalid principal", "quotas[0]: invalid principal"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "topics[0]") {
		t.Errorf("valid topic reported: %v", err)
	}
}
