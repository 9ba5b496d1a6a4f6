package app

import (
	"context"
	"time"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/store"
)

// WaiverCheckInterval bounds how long a process sleeps between two checks
// for expired waivers: it wakes at the earliest expiry it knows of or after
// this interval, whichever is sooner (a waiver granted meanwhile, perhaps
// by another replica, is known from the next check on). A loop kept
// compliant by a waiver is therefore flagged again at most this long (plus
// its evaluation) after the waiver expires. Tests shorten it.
var WaiverCheckInterval = time.Minute

// minWaiverWait keeps the loop from spinning when an expiry is due now.
const minWaiverWait = 10 * time.Millisecond

// followWaivers re-evaluates the loops whose waivers expire, when they
// expire, without anyone acting — in the process that runs the reconciler,
// or the only one (SQLite), like followPolicy. Its first pass looks back
// over every waiver that could still have been active (MaxWaiverDuration
// and a day), so expiries missed while no process was checking are caught
// up; a loop is re-evaluated idempotently. It returns when ctx ends.
func (s *Server) followWaivers(ctx context.Context) error {
	_, shared := s.Core.Store.(store.Elector)
	since := time.Now().Add(-admission.MaxWaiverDuration - 24*time.Hour)
	wait := time.Duration(0)
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		wait = WaiverCheckInterval
		if shared && !s.leading.Load() {
			continue
		}
		res, err := s.Core.ExpireWaivers(ctx, since)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			// A pass re-evaluates every loop it can, and returns the
			// failures of the others (or why it could not list waivers).
			// since stays: the next check retries them (re-evaluating the
			// others again is idempotent).
			s.log.Warn("re-evaluating loops whose waivers expired failed; retrying at the next check",
				"waivers", res.Expired, "loops", res.Loops, "changed", res.Changed, "failed", res.Failed, "err", err)
		default:
			since = res.Checked
			if res.Expired > 0 {
				s.log.Info("waivers expired; loops re-evaluated", "waivers", res.Expired, "loops", res.Loops, "changed", res.Changed)
			}
		}
		if !res.Next.IsZero() {
			wait = min(wait, max(time.Until(res.Next), minWaiverWait))
		}
	}
}
