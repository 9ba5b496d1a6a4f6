package admission

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/loopgate/loopgate/audit"
)

// Refusals are audited so that security sees every attempt, but a client
// hammering the API must not bloat the audit trail. refusalLog records the
// first refusal of a kind at once and counts identical ones (same source,
// actor, method and reason) for a window; when the window ends, one event
// records how many followed. The collapsed event carries the count, the
// first and the last time, so nothing is lost but the repetition.

// refusalWindow is how long identical refusals are counted into one event.
const refusalWindow = 10 * time.Second

// Bounds on what a flood can make refusalLog hold or write.
const (
	// maxRefusalKeys bounds the kinds counted at once; when a flood of
	// distinct kinds reaches it, counting moves to one key per method and
	// reason ("many sources").
	maxRefusalKeys = 4096
)

type refusalKey struct {
	source, actor, method, reason string
}

type refusalCount struct {
	first   audit.Event // the event written for the first refusal
	repeats int64
	last    time.Time
	started time.Time
}

type refusalLog struct {
	write func(ctx context.Context, ev audit.Event) error
	now   func() time.Time

	mu      sync.Mutex
	counts  map[refusalKey]*refusalCount
	stop    chan struct{}
	stopped chan struct{}
}

func newRefusalLog(write func(context.Context, audit.Event) error, now func() time.Time) *refusalLog {
	r := &refusalLog{write: write, now: now, counts: map[refusalKey]*refusalCount{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go r.loop()
	return r
}

func (r *refusalLog) loop() {
	defer close(r.stopped)
	t := time.NewTicker(refusalWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.flush(true)
			return
		case <-t.C:
			r.flush(false)
		}
	}
}

// record audits ev, a refusal of kind k, unless an identical one is being
// counted.
func (r *refusalLog) record(ctx context.Context, k refusalKey, ev audit.Event) error {
	select {
	case <-r.stop: // closing: nobody would write the count, so write each
		return r.write(ctx, ev)
	default:
	}
	now := r.now()
	r.mu.Lock()
	if len(r.counts) >= maxRefusalKeys {
		if _, known := r.counts[k]; !known {
			k = refusalKey{source: "(many sources)", actor: "(many)", method: k.method, reason: k.reason}
		}
	}
	if c, ok := r.counts[k]; ok {
		c.repeats++
		c.last = now
		r.mu.Unlock()
		return nil
	}
	r.counts[k] = &refusalCount{first: ev, last: now, started: now}
	r.mu.Unlock()
	if err := r.write(ctx, ev); err != nil {
		r.mu.Lock()
		delete(r.counts, k) // not recorded: the next one must be
		r.mu.Unlock()
		return err
	}
	return nil
}

// flush writes one event for every kind whose window ended (all, at close).
func (r *refusalLog) flush(all bool) {
	now := r.now()
	var due []*refusalCount
	r.mu.Lock()
	for k, c := range r.counts {
		if all || now.Sub(c.started) >= refusalWindow || len(r.counts) >= maxRefusalKeys {
			delete(r.counts, k)
			if c.repeats > 0 {
				due = append(due, c)
			}
		}
	}
	r.mu.Unlock()
	for _, c := range due {
		ev := c.first
		ev.ID = audit.NewID()
		var details map[string]any
		_ = json.Unmarshal(ev.Details, &details)
		if details == nil {
			details = map[string]any{}
		}
		details["repeated"] = c.repeats
		details["firstRepeat"] = c.started.Format(time.RFC3339Nano)
		details["lastRepeat"] = c.last.Format(time.RFC3339Nano)
		ev.Details, _ = json.Marshal(details)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = r.write(ctx, ev) // the store logs its own failures
		cancel()
	}
}

// close writes every pending count and stops the flusher.
func (r *refusalLog) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.stopped
}
