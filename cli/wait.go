package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// Polling of --wait: first after pollStart, then 1.5× longer each time, at
// most pollMax apart.
const (
	pollStart = 100 * time.Millisecond
	pollMax   = time.Second
)

// waitVerdict is what a loop's status means to `apply --wait` (judge) and
// to `delete --wait` (judgeDeletion).
type waitVerdict int

const (
	keepWaiting     waitVerdict = iota
	doneReady                   // READY for the current generation
	doneAwaitsAdmin             // PENDING_APPROVAL: a reviewer must approve
	doneFailed                  // FAILED for the current generation
	doneRejected                // REJECTED: a reviewer rejected the current generation
)

// judge tells whether waiting for l is over. A state only counts once the
// status describes the loop's current generation: right after an update the
// status may still be the previous generation's READY.
func judge(l *loopgatev1.Loop) waitVerdict {
	st := l.GetStatus()
	switch st.GetState() {
	case loopgatev1.Loop_PENDING_APPROVAL:
		return doneAwaitsAdmin
	case loopgatev1.Loop_REJECTED:
		return doneRejected
	case loopgatev1.Loop_READY:
		if st.GetObservedGeneration() >= l.GetGeneration() {
			return doneReady
		}
	case loopgatev1.Loop_FAILED:
		if st.GetObservedGeneration() >= l.GetGeneration() {
			return doneFailed
		}
	}
	return keepWaiting
}

// judgeDeletion tells whether waiting for the deletion of l, which still
// exists, is over: only when the deletion failed. A deletion request makes
// the loop DELETING with its InSync condition False for reason Deleting;
// the reconciler records a failed deletion on the loop, still DELETING, with
// InSync (and Provisioned) False for the failure's reason, and retries it.
// A loop FAILED while its deletion is requested counts as a failed
// deletion too.
func judgeDeletion(l *loopgatev1.Loop) waitVerdict {
	st := l.GetStatus()
	switch st.GetState() {
	case loopgatev1.Loop_FAILED:
		if l.GetDeleteTime() != nil {
			return doneFailed
		}
	case loopgatev1.Loop_DELETING:
		for _, c := range st.GetConditions() {
			if c.GetType() == loop.CondInSync && c.GetStatus() == string(loop.False) && c.GetReason() != reasonDeleting {
				return doneFailed
			}
		}
	}
	return keepWaiting
}

// reasonDeleting is the reason of the InSync condition a deletion request
// sets, until the reconciler records an outcome.
const reasonDeleting = "Deleting"

// progress remembers what was last printed about a loop, so that only
// changes are printed. With a name, each line says which loop it is about
// (when several loops are followed at once).
type progress struct {
	name       string
	state      loopgatev1.Loop_State
	conditions map[string]string // type -> "status reason message"
}

// report prints the state and the conditions of l that changed since the
// last call.
func (p *progress) report(w io.Writer, l *loopgatev1.Loop) {
	if p.conditions == nil {
		p.conditions = map[string]string{}
	}
	prefix := "  "
	if p.name != "" {
		prefix += p.name + ": "
	}
	st := l.GetStatus()
	if st.GetState() != p.state {
		fmt.Fprintf(w, "%sstate %s\n", termSafe(prefix), termSafe(st.GetState().String()))
		p.state = st.GetState()
	}
	for _, c := range st.GetConditions() {
		key := c.GetStatus() + "\x00" + c.GetReason() + "\x00" + c.GetMessage()
		if p.conditions[c.GetType()] == key {
			continue
		}
		p.conditions[c.GetType()] = key
		line := fmt.Sprintf("%scondition %s=%s", prefix, c.GetType(), c.GetStatus())
		if c.GetReason() != "" {
			line += " (" + c.GetReason() + ")"
		}
		if c.GetMessage() != "" {
			line += ": " + c.GetMessage()
		}
		fmt.Fprintln(w, termSafe(line)) // types, reasons and messages are the server's
	}
}

// failureReason is the message of the first False condition, else the state.
func failureReason(l *loopgatev1.Loop) string {
	for _, c := range l.GetStatus().GetConditions() {
		if c.GetStatus() == "False" && c.GetMessage() != "" {
			return c.GetType() + ": " + c.GetMessage()
		}
	}
	return "no condition says why; see `loopctl get " + shortName(l.GetName()) + "`"
}

// backoff yields growing poll intervals.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = pollStart
	} else {
		b.d = min(time.Duration(float64(b.d)*1.5), pollMax)
	}
	return b.d
}

// sleepUntil sleeps d, or less to stop at deadline; false when the deadline
// has passed or ctx is done.
func sleepUntil(ctx context.Context, d time.Duration, deadline time.Time) bool {
	left := time.Until(deadline)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
