package provtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/provisioning"
)

// testACLsEnforced proves the derived ACLs by behaviour, logging in as the
// loop's own principals: loop A's producer can write A's topic and not
// loop B's; A's consumer can read A's topic with A's group and commit, and
// is refused any other group.
func testACLsEnforced(t *testing.T, h *harness) {
	a, b := newTestLoop(t), newTestLoop(t)
	for _, l := range []*testLoop{a, b} {
		r := h.derive(t, l)
		h.converge(t, r, r)
	}
	producer := h.newUser(t, a.producer)
	consumer := h.newUser(t, a.reader)
	value := "contract-" + a.id

	// ACL changes reach Apache Kafka's authorizer a moment after the admin
	// call returns: the allowed paths are retried until they work, the
	// denied ones are checked once they do.
	h.eventually(t, "A's producer writes A's topic", func(ctx context.Context) error {
		return produce(ctx, t, producer, a.events, value)
	})
	err := produce(testCtx(t), t, producer, b.events, value)
	t.Logf("A's producer writing B's topic: %v", err)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("A's producer writing B's topic %s: err %v, want TOPIC_AUTHORIZATION_FAILED", b.events, err)
	}

	h.eventually(t, "A's consumer reads A's topic with group "+a.group+" and commits", func(ctx context.Context) error {
		return consumeAndCommit(ctx, t, consumer, a.group, a.events, value)
	})
	offsets, err := h.check.FetchOffsets(testCtx(t), a.group)
	if err != nil {
		t.Fatalf("FetchOffsets %s: %v", a.group, err)
	}
	var committed int64
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Topic == a.events && o.Err == nil {
			committed += o.At
		}
	})
	if committed < 1 {
		t.Errorf("group %s has committed %d records of %s, want at least the one it read", a.group, committed, a.events)
	}

	other := "other-" + a.id
	err = consumeAndCommit(testCtx(t), t, consumer, other, a.events, value)
	t.Logf("A's consumer with group %s: %v", other, err)
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("A's consumer with group %s: err %v, want GROUP_AUTHORIZATION_FAILED", other, err)
	}
}

// userClient logs in as conn's user with short timeouts.
func userClient(t testing.TB, conn provisioning.ClusterConn, opts ...kgo.Opt) (*kgo.Client, error) {
	base := append(clientOpts(t, conn),
		kgo.ClientID("provtest-user"),
		kgo.RequestTimeoutOverhead(5*time.Second),
		kgo.RetryTimeout(5*time.Second),
		kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.MetadataMinAge(50*time.Millisecond),
	)
	return kgo.NewClient(append(base, opts...)...)
}

// produce writes one record to topic as conn's user.
func produce(ctx context.Context, t testing.TB, conn provisioning.ClusterConn, topic, value string) error {
	cl, err := userClient(t, conn)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

// consumeAndCommit joins group as conn's user, reads topic until it sees
// value, and commits what it read. A group error (such as an
// authorization failure) is returned as soon as the client reports it.
func consumeAndCommit(ctx context.Context, t testing.TB, conn provisioning.ClusterConn, group, topic, value string) error {
	cl, err := userClient(t, conn,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("record %q not read from %s with group %s: %w", value, topic, group, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("consuming %s with group %s: %w", topic, group, errs[0].Err)
		}
		found := false
		fetches.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
		if found {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				return fmt.Errorf("committing %s for group %s: %w", topic, group, err)
			}
			return nil
		}
	}
}
