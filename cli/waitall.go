package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// How `apply --wait` and `delete --wait` follow their loops: all at once,
// so that waiting takes about as long as the slowest loop, not the sum of
// them.
const (
	// waitFewMax is the most loops followed one by one: one GetLoop per
	// loop and poll, and every change of state and condition printed per
	// loop. More loops are polled with one ListLoops per team and poll
	// (waitPageSize loops a page) and summed up in one progress line.
	waitFewMax = 10
	// waitPageSize is the page size of those ListLoops (the server's most).
	waitPageSize = 1000
	// progressEvery is the least time between two progress lines.
	progressEvery = time.Second
	// pendingNamesMax is how many still pending loops a timeout names.
	pendingNamesMax = 20
)

// doneGone is the verdict of a loop that no longer exists: what
// `delete --wait` waits for; for `apply --wait` it disappeared while waited
// for (someone deleted it) and counts as failed.
const doneGone waitVerdict = -1

// waitMode is what a waiter waits for.
type waitMode int

const (
	// waitReady (apply --wait): each loop READY for its generation,
	// FAILED, REJECTED or PENDING_APPROVAL (judge).
	waitReady waitMode = iota
	// waitDeleted (delete --wait): each loop gone, or its deletion
	// FAILED (judgeDeletion).
	waitDeleted
)

// waitOutcome is what waitAll saw.
type waitOutcome struct {
	final    map[string]*loopgatev1.Loop // name -> the loop as last read
	failed   int                         // ended FAILED or REJECTED, or disappeared; or, deleted, their deletion FAILED
	timedOut bool
}

// waiter follows a set of loops until each is done, as its mode says.
type waiter struct {
	a              *app
	mode           waitMode
	stdout, stderr io.Writer
	table          bool // print progress (table output only)
	few            bool // follow loop by loop (see waitFewMax)
	perLoop        bool // poll with GetLoop (few loops, or ListLoops refused)

	names    []string // every loop, in file order, once
	pending  []string // those not done yet, in file order
	loops    map[string]*loopgatev1.Loop
	uids     map[string]string // waitDeleted: name -> uid of the loop deleted
	verdicts map[string]waitVerdict
	progress map[string]*progress
	failed   int

	start    time.Time
	lastLine string // counts of the last progress line, "" before the first
	lastAt   time.Time
}

// waitAll waits, within timeout in all, until every loop of loops is done,
// printing what happens. With waitReady (apply --wait, loops as applied) a
// loop is done once READY for its generation, FAILED, PENDING_APPROVAL or
// REJECTED; with waitDeleted (delete --wait, loops as their deletion was
// requested) once it is gone (a loop of its name with another uid is
// another loop: this one is gone) or its deletion FAILED. A loop named
// twice is followed once, as its last result. The error is ctx's or an RPC
// error that stops the wait; loops that failed and a timeout are in the
// outcome (and already printed on stderr).
func (a *app) waitAll(ctx context.Context, stdout, stderr io.Writer, mode waitMode, loops []*loopgatev1.Loop, timeout time.Duration) (waitOutcome, error) {
	w := &waiter{
		a: a, mode: mode, stdout: stdout, stderr: stderr, table: a.output == FormatTable,
		loops:    map[string]*loopgatev1.Loop{},
		uids:     map[string]string{},
		verdicts: map[string]waitVerdict{},
		progress: map[string]*progress{},
		start:    time.Now(),
	}
	latest := map[string]*loopgatev1.Loop{}
	for _, l := range loops {
		if _, seen := latest[l.GetName()]; !seen {
			w.names = append(w.names, l.GetName())
		}
		latest[l.GetName()] = l
		w.uids[l.GetName()] = l.GetUid()
	}
	w.few = len(w.names) <= waitFewMax
	w.perLoop = w.few
	w.pending = w.names
	for _, name := range w.names {
		p := &progress{}
		if len(w.names) > 1 {
			p.name = shortName(name)
		}
		w.progress[name] = p
		w.observe(name, latest[name])
	}
	w.prune()
	w.report(false)

	tick := newBackoff()
	deadline := w.start.Add(timeout)
	for len(w.pending) > 0 {
		if !sleepUntil(ctx, tick.next(), deadline) {
			if err := ctx.Err(); err != nil {
				return w.outcome(false), err
			}
			w.report(true)
			fmt.Fprintf(w.stderr, "error: %s\n", termSafeText(w.timeoutText(timeout)))
			return w.outcome(true), nil
		}
		if err := w.poll(ctx); err != nil {
			return w.outcome(false), err
		}
		w.prune()
		w.report(false)
	}
	w.report(true)
	return w.outcome(false), nil
}

func (w *waiter) outcome(timedOut bool) waitOutcome {
	return waitOutcome{final: w.loops, failed: w.failed, timedOut: timedOut}
}

// observe takes in the loop as just read and, once it is done, says so:
// READY (loop by loop only) and PENDING_APPROVAL on stdout, FAILED and
// REJECTED (or a deletion FAILED) on stderr, each once.
func (w *waiter) observe(name string, l *loopgatev1.Loop) {
	if _, done := w.verdicts[name]; done {
		return
	}
	if w.mode == waitDeleted && w.uids[name] != "" && l.GetUid() != "" && l.GetUid() != w.uids[name] {
		w.gone(name) // created again since: the loop deleted is gone
		return
	}
	w.loops[name] = l
	if w.few && w.table {
		w.progress[name].report(w.stdout, l)
	}
	v := judge(l)
	if w.mode == waitDeleted {
		v = judgeDeletion(l)
	}
	if v == keepWaiting {
		return
	}
	w.verdicts[name] = v
	switch v {
	case doneReady:
		if w.few && w.table {
			fmt.Fprintf(w.stdout, "%s is READY\n", termSafe(name))
		}
	case doneAwaitsAdmin:
		if w.table {
			fmt.Fprintf(w.stdout, "%s %s\n", termSafe(name), awaitingText(l))
		}
	case doneFailed:
		w.failed++
		what := "FAILED"
		if w.mode == waitDeleted {
			what = "deletion FAILED"
		}
		fmt.Fprintf(w.stderr, "error: %s\n", termSafeText(fmt.Sprintf("%s %s: %s", name, what, failureReason(l))))
	case doneRejected:
		w.failed++
		fmt.Fprintf(w.stderr, "error: %s\n", termSafeText(fmt.Sprintf("%s was REJECTED: change the spec (it is reviewed afresh) or delete the loop; `loopctl get %s` shows the reviews",
			name, shortName(name))))
	}
}

// gone records a loop that no longer exists: what waitDeleted waits for,
// a failure for waitReady.
func (w *waiter) gone(name string) {
	if _, done := w.verdicts[name]; done {
		return
	}
	w.verdicts[name] = doneGone
	if w.mode == waitDeleted {
		if w.few && w.table {
			fmt.Fprintf(w.stdout, "%s is deleted\n", termSafe(name))
		}
		return
	}
	w.failed++
	fmt.Fprintf(w.stderr, "error: %s\n", termSafeText(fmt.Sprintf("%s no longer exists: it was deleted while loopctl waited for it", name)))
}

// prune drops the loops that are done from pending.
func (w *waiter) prune() {
	w.pending = slices.DeleteFunc(slices.Clone(w.pending), func(name string) bool {
		_, done := w.verdicts[name]
		return done
	})
}

// poll reads every pending loop once: with one GetLoop each, or with one
// ListLoops per team (paged; it stops as soon as every pending loop of the
// team was seen). A loop a listing misses is read with GetLoop, so that
// only a loop that really is gone counts as gone (for delete --wait: as
// deleted). A server that refuses ListLoops makes the wait fall back to
// GetLoop.
func (w *waiter) poll(ctx context.Context) error {
	if w.perLoop {
		return w.getEach(ctx, w.pending)
	}
	byTeam := map[string]map[string]bool{}
	var teams []string
	for _, name := range w.pending {
		team, _ := splitName(name)
		if byTeam[team] == nil {
			byTeam[team] = map[string]bool{}
			teams = append(teams, team)
		}
		byTeam[team][name] = true
	}
	slices.Sort(teams)
	var missed []string
	for _, team := range teams {
		want := byTeam[team]
		seen, err := w.listTeam(ctx, team, want)
		if isCode(err, codes.PermissionDenied) || isCode(err, codes.Unimplemented) {
			w.perLoop = true
			return w.getEach(ctx, w.pending)
		}
		if err != nil {
			return err
		}
		for _, name := range w.pending {
			if want[name] && !seen[name] {
				missed = append(missed, name)
			}
		}
	}
	return w.getEach(ctx, missed)
}

// listTeam lists the loops of team until every loop of want was seen or
// the last page, observing those of want; it returns the ones seen.
func (w *waiter) listTeam(ctx context.Context, team string, want map[string]bool) (map[string]bool, error) {
	seen := map[string]bool{}
	token := ""
	for {
		rctx, cancel := rpcContext(ctx)
		resp, err := w.a.loops.ListLoops(rctx, &loopgatev1.ListLoopsRequest{
			Parent: "teams/" + team, PageSize: waitPageSize, PageToken: token,
		})
		cancel()
		if err != nil {
			return seen, err
		}
		for _, l := range resp.GetLoops() {
			if want[l.GetName()] && !seen[l.GetName()] {
				seen[l.GetName()] = true
				w.observe(l.GetName(), l)
			}
		}
		token = resp.GetNextPageToken()
		if token == "" || len(seen) == len(want) {
			return seen, nil
		}
	}
}

// getEach reads each of names with GetLoop.
func (w *waiter) getEach(ctx context.Context, names []string) error {
	for _, name := range names {
		rctx, cancel := rpcContext(ctx)
		l, err := w.a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
		cancel()
		switch {
		case isCode(err, codes.NotFound):
			w.gone(name)
		case err != nil:
			return err
		default:
			w.observe(name, l)
		}
	}
	return nil
}

// report prints, when more than waitFewMax loops are followed, a line that
// counts the loops per state, e.g.
//
//	waiting for 1000 loops: 812 READY, 3 PENDING_APPROVAL, 1 FAILED, 184 PROVISIONING (4.1s)
//	waiting for 1000 loops to be deleted: 988 gone, 12 DELETING (2.3s)
//
// but only when a count changed, and at most once every progressEvery;
// final prints the last line regardless.
func (w *waiter) report(final bool) {
	if w.few || !w.table {
		return
	}
	counts := w.counts()
	now := time.Now()
	if !final && (counts == w.lastLine || (w.lastLine != "" && now.Sub(w.lastAt) < progressEvery)) {
		return
	}
	w.lastLine, w.lastAt = counts, now
	verb := "waiting for"
	if final && len(w.pending) == 0 {
		verb = "waited for"
	}
	fmt.Fprintf(w.stdout, "%s %d loops%s: %s (%.1fs)\n", verb, len(w.names), w.purpose(), counts, now.Sub(w.start).Seconds())
}

// purpose is what the loops are waited for, after "N loops" in messages:
// nothing for waitReady (its verdicts say it).
func (w *waiter) purpose() string {
	if w.mode == waitDeleted {
		return " to be deleted"
	}
	return ""
}

// counts says how many loops are in which state: first those done (READY,
// PENDING_APPROVAL, FAILED, REJECTED, DELETED; for waitDeleted gone and
// FAILED), then those still pending by their state, where (for waitReady)
// UPDATING is a loop whose READY or FAILED still describes an earlier
// generation.
func (w *waiter) counts() string {
	done := map[waitVerdict]int{}
	pending := map[string]int{}
	for _, name := range w.names {
		if v, ok := w.verdicts[name]; ok {
			done[v]++
			continue
		}
		state := w.loops[name].GetStatus().GetState()
		label := state.String()
		if w.mode == waitReady && (state == loopgatev1.Loop_READY || state == loopgatev1.Loop_FAILED) {
			label = "UPDATING"
		}
		pending[termSafe(label)]++
	}
	type doneLabel struct {
		v     waitVerdict
		label string
	}
	labelsDone := []doneLabel{{doneReady, "READY"}, {doneAwaitsAdmin, "PENDING_APPROVAL"}, {doneFailed, "FAILED"}, {doneRejected, "REJECTED"}, {doneGone, "DELETED"}}
	if w.mode == waitDeleted {
		labelsDone = []doneLabel{{doneGone, "gone"}, {doneFailed, "FAILED"}}
	}
	var parts []string
	for _, d := range labelsDone {
		if n := done[d.v]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, d.label))
		}
	}
	labels := make([]string, 0, len(pending))
	for label := range pending {
		labels = append(labels, label)
	}
	slices.Sort(labels)
	for _, label := range labels {
		parts = append(parts, fmt.Sprintf("%d %s", pending[label], label))
	}
	return strings.Join(parts, ", ")
}

// timeoutText says which loops were still pending when timeout passed: up
// to pendingNamesMax of them, with their state.
func (w *waiter) timeoutText(timeout time.Duration) string {
	if len(w.pending) == 1 {
		name := w.pending[0]
		return fmt.Sprintf("timed out after %s waiting for %s%s (state %s); raise --timeout or check `loopctl get %s`",
			timeout, name, w.purpose(), w.loops[name].GetStatus().GetState(), shortName(name))
	}
	var named []string
	for _, name := range w.pending[:min(len(w.pending), pendingNamesMax)] {
		named = append(named, fmt.Sprintf("%s (%s)", shortName(name), w.loops[name].GetStatus().GetState()))
	}
	list := strings.Join(named, ", ")
	if more := len(w.pending) - len(named); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	return fmt.Sprintf("timed out after %s waiting for %d of %d loops%s, still pending: %s; raise --timeout or check them with `loopctl get TEAM/NAME`",
		timeout, len(w.pending), len(w.names), w.purpose(), list)
}
