package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
)

// newLoop returns a realistic loop team/name as the service would store it.
func newLoop(team, name string) *loop.Loop {
	return &loop.Loop{
		Metadata: loop.Metadata{Team: team, Name: name, Labels: map[string]string{"domain": "checkout"}},
		Spec: loop.Spec{
			Description:    "Nudge shoppers who abandon checkout while the session is live",
			Owners:         []string{"ana@example.com"},
			Classification: loop.PII,
			Residency:      "eu",
			RetentionMs:    72 * 3600 * 1000,
			SLO:            loop.SLO{LatencyP99Ms: 2000, FreshnessMs: 30000},
			Throughput:     loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3, RecordBytes: 600},
			Streams: []loop.Stream{
				{Name: "events", Partitions: 12, Schema: loop.Schema{Format: "avro", Compatibility: "BACKWARD",
					Definition: `{"type":"record","name":"CheckoutEvent","namespace":"shop","fields":[{"name":"user_id","type":"string"},{"name":"cart_value","type":"double"}]}`}},
				{Name: "actions", Schema: loop.Schema{Format: "avro",
					Definition: `{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}`}},
			},
			Producers: []loop.Producer{{Principal: "User:checkout-api", Streams: []string{"events"}}},
			Consumers: []loop.Consumer{{Principal: "User:nudge-engine", Group: "nudge-engine", Streams: []string{"events"}}},
			Action:    &loop.Action{Stream: "actions"},
		},
		Status: loop.Status{State: loop.StatePendingApproval, DecisionID: "dec-1", NeedsApproval: true},
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// create stores l in its own transaction and returns it as written back.
func create(t *testing.T, s store.Store, l *loop.Loop) *loop.Loop {
	t.Helper()
	if err := s.Update(ctxFor(t), func(tx store.Tx) error { return tx.CreateLoop(ctxFor(t), l) }); err != nil {
		t.Fatalf("create loop %s: %v", l.Metadata.Key(), err)
	}
	return l
}

// createMany stores the loops in one transaction.
func createMany(t *testing.T, s store.Store, loops []*loop.Loop) {
	t.Helper()
	err := s.Update(ctxFor(t), func(tx store.Tx) error {
		for _, l := range loops {
			if err := tx.CreateLoop(ctxFor(t), l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create %d loops: %v", len(loops), err)
	}
}

func mustGet(t *testing.T, s store.Reader, team, name string) *loop.Loop {
	t.Helper()
	l, err := s.GetLoop(ctxFor(t), team, name)
	if err != nil {
		t.Fatalf("GetLoop(%s/%s): %v", team, name, err)
	}
	return l
}

// assertSameLoop compares two loops by their JSON form (the form the store
// persists), and their timestamps as instants.
func assertSameLoop(t *testing.T, what string, got, want *loop.Loop) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []struct {
		name string
		a, b time.Time
	}{
		{"createTime", g.Metadata.CreateTime, w.Metadata.CreateTime},
		{"updateTime", g.Metadata.UpdateTime, w.Metadata.UpdateTime},
		{"deleteTime", g.Metadata.DeleteTime, w.Metadata.DeleteTime},
	} {
		if !p.a.Equal(p.b) {
			t.Errorf("%s: metadata.%s = %v, want %v", what, p.name, p.a, p.b)
		}
	}
	g.Metadata.CreateTime, g.Metadata.UpdateTime, g.Metadata.DeleteTime = time.Time{}, time.Time{}, time.Time{}
	w.Metadata.CreateTime, w.Metadata.UpdateTime, w.Metadata.DeleteTime = time.Time{}, time.Time{}, time.Time{}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if string(gj) != string(wj) {
		t.Errorf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want %v", what, err, target)
	}
}

// appendEvent appends one event in its own transaction.
func appendEvent(t *testing.T, s store.Store, ev audit.Event) audit.Event {
	t.Helper()
	var stored audit.Event
	err := s.Update(ctxFor(t), func(tx store.Tx) error {
		var err error
		stored, err = tx.AppendAudit(ctxFor(t), ev)
		return err
	})
	if err != nil {
		t.Fatalf("append audit event %s: %v", ev.Action, err)
	}
	return stored
}

func event(actor, action, resource string, n int) audit.Event {
	return audit.Event{
		Actor: actor, Action: action, Resource: resource, Outcome: audit.OutcomeOK,
		RequestID: fmt.Sprintf("req-%d", n),
		Details:   json.RawMessage(fmt.Sprintf(`{"n": %d, "admin": {"ops": ["CreateTopics"], "count": 1}}`, n)),
	}
}

func mustVerify(t *testing.T, s store.Store) audit.VerifyResult {
	t.Helper()
	res, err := s.VerifyAudit(ctxFor(t))
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	return res
}
