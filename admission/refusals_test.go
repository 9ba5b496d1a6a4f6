package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/audit"
)

// recorder is an audit sink with a clock the test moves.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	now    time.Time
}

func (r *recorder) write(_ context.Context, ev audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *recorder) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func refusalEvent(actor, method string) audit.Event {
	return audit.Event{ID: audit.NewID(), Actor: actor, Action: method, Outcome: audit.OutcomeForbidden}
}

func TestRefusalFloodIsCollapsedNotLost(t *testing.T) {
	rec := &recorder{now: time.Unix(1_700_000_000, 0)}
	log := newRefusalLog(rec.write, rec.clock)
	defer log.close()
	ctx := context.Background()
	key := refusalKey{source: "10.0.0.1", actor: "mallory", method: "/loopgate.v1.LoopService/GetLoop", reason: "TEAM_SCOPE"}
	for range 1000 {
		if err := log.record(ctx, key, refusalEvent("mallory", "loop.get")); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("1000 identical refusals wrote %d events at once, want 1 (the first)", n)
	}
	// Another reason, method or source is another kind: recorded at once.
	for _, k := range []refusalKey{
		{source: key.source, actor: key.actor, method: key.method, reason: "ROLE_REQUIRED"},
		{source: key.source, actor: key.actor, method: "/loopgate.v1.LoopService/DeleteLoop", reason: key.reason},
		{source: "10.0.0.2", actor: key.actor, method: key.method, reason: key.reason},
	} {
		_ = log.record(ctx, k, refusalEvent("mallory", "loop.get"))
	}
	if n := rec.count(); n != 4 {
		t.Fatalf("distinct refusals: %d events, want 4", n)
	}
	// When the window ends, one event carries the count of repeats.
	rec.advance(refusalWindow + time.Second)
	log.flush(false)
	if n := rec.count(); n != 5 {
		t.Fatalf("after the window: %d events, want 5", n)
	}
	var details map[string]any
	_ = json.Unmarshal(rec.events[4].Details, &details)
	if details["repeated"] != float64(999) || rec.events[4].Actor != "mallory" {
		t.Errorf("collapsed event = %+v %v, want actor mallory, repeated 999", rec.events[4], details)
	}
	// A new window starts afresh; close writes what is pending.
	_ = log.record(ctx, key, refusalEvent("mallory", "loop.get"))
	_ = log.record(ctx, key, refusalEvent("mallory", "loop.get"))
	log.close()
	if n := rec.count(); n != 7 {
		t.Fatalf("after close: %d events, want 7 (first of the new window, then its count)", n)
	}
}

func TestRefusalsFromManySourcesStayBounded(t *testing.T) {
	rec := &recorder{now: time.Unix(1_700_000_000, 0)}
	log := newRefusalLog(rec.write, rec.clock)
	defer log.close()
	for i := range 3 * maxRefusalKeys {
		k := refusalKey{source: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), actor: "anonymous", method: "/m", reason: "UNAUTHENTICATED"}
		_ = log.record(context.Background(), k, refusalEvent("anonymous", "auth.reject"))
	}
	// The first maxRefusalKeys kinds are recorded; the rest are counted
	// under one "many sources" kind per method and reason.
	if n := rec.count(); n > maxRefusalKeys+1 {
		t.Fatalf("%d refusals from distinct sources wrote %d events, want at most %d", 3*maxRefusalKeys, n, maxRefusalKeys+1)
	}
}
