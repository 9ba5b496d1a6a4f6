package provtest

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/loopgate/loopgate/provisioning"
)

// badConfigs are topic configs Kafka refuses: a non-numeric long and an
// unknown enum value.
var badConfigs = []map[string]string{
	{provisioning.ConfigRetentionMs: "abc"},
	{provisioning.ConfigCleanupPolicy: "bogus"},
}

// testErrors: the errors a reconciler acts on keep their identity through
// Observe and Execute.
func testErrors(t *testing.T, h *harness) {
	t.Run("AuthorizationFailureIsAnAuthErrorAndNotRetriable", func(t *testing.T) {
		t.Parallel()
		testAuthorizationFailure(t, h)
	})
	t.Run("InvalidConfigRefusedByLoopgate", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range badConfigs {
			err := provisioning.ValidateTopicConfigs(cfg)
			var ce *provisioning.ConfigError
			if !errors.Is(err, provisioning.ErrInvalidTopicConfig) || !errors.As(err, &ce) {
				t.Errorf("ValidateTopicConfigs(%v) = %v, want a *ConfigError wrapping ErrInvalidTopicConfig", cfg, err)
			}
		}
	})
	t.Run("InvalidConfigRefusedByBroker", func(t *testing.T) {
		t.Parallel()
		if !h.c.Real {
			t.Skipf("cluster %s is not a real Apache Kafka broker: kfake accepts any topic config (even retention.ms=abc); "+
				"InvalidConfigRefusedByLoopgate covers loopgate's own check, the Apache Kafka leg covers the broker's", h.c.Name)
		}
		testBrokerRefusesInvalidConfig(t, h)
	})
	t.Run("ForeignTopicIsErrTopicExists", func(t *testing.T) {
		t.Parallel()
		testForeignTopic(t, h)
	})
}

// testAuthorizationFailure: an admin logged in as a user without ACLs
// gets a *kadm.AuthError (wrapping a kerr authorization error) from Observe
// and Execute, not retriable, and changes nothing.
func testAuthorizationFailure(t *testing.T, h *harness) {
	l := newTestLoop(t)
	desired := h.derive(t, l)
	weakConn := h.newUser(t, "w-"+l.id)
	cl, err := provisioning.Connect(weakConn)
	if err != nil {
		t.Fatalf("Connect as the weak user: %v", err)
	}
	t.Cleanup(cl.Close)
	weak := provisioning.NewKafkaAdmin(cl)

	isAuthFailure := func(what string, err error) {
		t.Helper()
		t.Logf("%s as a user without ACLs: %v", what, err)
		var ae *kadm.AuthError
		if !errors.As(err, &ae) {
			t.Errorf("%s: err %v, want a *kadm.AuthError inside", what, err)
		}
		if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Errorf("%s: err %v, want kerr.TopicAuthorizationFailed or ClusterAuthorizationFailed inside", what, err)
		}
		if provisioning.IsRetriable(err) {
			t.Errorf("%s: an authorization failure must not be retriable", what)
		}
		if reason, ok := provisioning.TerminalReason(err); !ok || reason != provisioning.ReasonAuthorizationFailed {
			t.Errorf("%s: TerminalReason = %q, %v; want %q", what, reason, ok, provisioning.ReasonAuthorizationFailed)
		}
	}

	_, err = weak.Observe(testCtx(t), desired)
	isAuthFailure("Observe", err)

	actions := provisioning.Plan(desired, provisioning.Resources{}).Actions
	res, err := weak.Execute(testCtx(t), actions)
	isAuthFailure("Execute", err)
	var ee *provisioning.ExecuteError
	if !errors.As(err, &ee) || len(ee.Failed) != len(actions) {
		t.Errorf("Execute: %d of %d operations failed, want all:\n%s", failedCount(res), len(actions), provisioning.FormatResults(res))
	}
	for _, name := range topicNames(desired) {
		if _, ok, err := h.topic(testCtx(t), name); err != nil || ok {
			t.Errorf("topic %s: exists=%v err=%v, want absent", name, ok, err)
		}
	}
}

// testBrokerRefusesInvalidConfig: configs that bypass loopgate's own
// validation (actions built by hand) are refused by Apache Kafka with
// INVALID_CONFIG, which is not retriable, and the cluster is unchanged.
func testBrokerRefusesInvalidConfig(t *testing.T, h *harness) {
	l := newTestLoop(t)

	for _, cfg := range badConfigs {
		res, err := h.admin.Execute(testCtx(t), []provisioning.Action{{
			Kind: provisioning.CreateTopic, Resource: "topic " + l.events,
			Topic: &provisioning.Topic{Name: l.events, Partitions: 1, ReplicationFactor: h.c.RF, Configs: cfg},
		}})
		t.Logf("CreateTopics with %v: %v", cfg, err)
		if !errors.Is(err, kerr.InvalidConfig) {
			t.Errorf("CreateTopics with %v: err %v, want kerr.InvalidConfig\n%s", cfg, err, provisioning.FormatResults(res))
		}
		if provisioning.IsRetriable(err) {
			t.Errorf("CreateTopics with %v: an invalid config must not be retriable", cfg)
		}
		if reason, ok := provisioning.TerminalReason(err); !ok || reason != provisioning.ReasonInvalidConfig {
			t.Errorf("CreateTopics with %v: TerminalReason = %q, %v; want %q", cfg, reason, ok, provisioning.ReasonInvalidConfig)
		}
	}
	if _, ok, err := h.topic(testCtx(t), l.events); err != nil || ok {
		t.Errorf("topic %s: exists=%v err=%v, want absent after refused creates", l.events, ok, err)
	}

	desired := h.derive(t, l)
	h.converge(t, desired, desired)
	for _, cfg := range badConfigs {
		var keys []string
		for k := range cfg {
			keys = append(keys, k)
		}
		res, err := h.admin.Execute(testCtx(t), []provisioning.Action{{
			Kind: provisioning.AlterTopicConfigs, Resource: "topic " + l.events, ConfigKeys: keys,
			Topic: &provisioning.Topic{Name: l.events, Configs: cfg},
		}})
		t.Logf("IncrementalAlterConfigs with %v: %v", cfg, err)
		if !errors.Is(err, kerr.InvalidConfig) && !errors.Is(err, kerr.InvalidRequest) {
			t.Errorf("IncrementalAlterConfigs with %v: err %v, want kerr.InvalidConfig or InvalidRequest\n%s",
				cfg, err, provisioning.FormatResults(res))
		}
		if provisioning.IsRetriable(err) {
			t.Errorf("IncrementalAlterConfigs with %v: an invalid config must not be retriable", cfg)
		}
	}
	h.settled(t, desired, desired) // configs unchanged
}

// testForeignTopic: a topic created outside loopgate with another shape
// fails loopgate's create with ErrTopicExists and a message that says what
// differs and what to do; the other actions still succeed and the foreign
// topic is left alone.
func testForeignTopic(t *testing.T, h *harness) {
	l := newTestLoop(t)
	desired := h.derive(t, l)
	actions := provisioning.Plan(desired, provisioning.Resources{}).Actions // planned while absent
	if _, err := h.check.CreateTopic(testCtx(t), 1, h.c.RF, nil, l.events); err != nil {
		t.Fatalf("creating the foreign topic: %v", err)
	}
	h.waitTopic(t, l.events, 1, nil)

	res, err := h.admin.Execute(testCtx(t), actions)
	if !errors.Is(err, provisioning.ErrTopicExists) {
		t.Fatalf("err %v, want ErrTopicExists", err)
	}
	if provisioning.IsRetriable(err) {
		t.Errorf("ErrTopicExists must not be retriable")
	}
	if reason, ok := provisioning.TerminalReason(err); !ok || reason != provisioning.ReasonTopicNotOwned {
		t.Errorf("TerminalReason = %q, %v; want %q", reason, ok, provisioning.ReasonTopicNotOwned)
	}
	var ee *provisioning.ExecuteError
	if !errors.As(err, &ee) || len(ee.Failed) != 1 || ee.Failed[0].Resource != "topic "+l.events {
		t.Fatalf("want exactly the foreign topic's create to fail:\n%s", provisioning.FormatResults(res))
	}
	msg := ee.Failed[0].Err
	for _, want := range []string{l.events, "partitions=1", "partitions=3", "not created by this loop"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message %q does not mention %q", msg, want)
		}
	}
	h.waitTopic(t, l.events, 1, nil)
	h.waitTopic(t, l.actions, 2, nil)
}
