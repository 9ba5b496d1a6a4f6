package store

import (
	"fmt"

	"github.com/loopgate/loopgate/audit"
)

// ChainHead is where the audit chain ends, as a store records it apart from
// the events themselves (and moves in the same transaction as every
// append). The hashes alone cannot show events cut off the end of the
// chain; the head can.
type ChainHead struct {
	Seq  int64  // 0 for an empty chain
	Hash string // audit.GenesisHash for an empty chain
}

// VerifyChain streams the events of rows (in Seq order, read in the same
// snapshot as head) through an audit.Verifier, then checks that the chain
// ends where head says. Every store's VerifyAudit uses it.
func VerifyChain(rows Rows, scan func(Rows) (audit.Event, error), head ChainHead) (audit.VerifyResult, error) {
	var (
		v          audit.Verifier
		last       audit.Event
		beyondHead *audit.Event // the first event past the recorded head
	)
	for rows.Next() {
		ev, err := scan(rows)
		if err != nil {
			return audit.VerifyResult{}, err
		}
		v.Add(ev)
		last = ev
		if ev.Seq > head.Seq && beyondHead == nil {
			e := ev
			beyondHead = &e
		}
	}
	if err := rows.Err(); err != nil {
		return audit.VerifyResult{}, err
	}
	res := v.Result()
	if !res.OK {
		return res, nil
	}
	switch {
	case last.Seq < head.Seq:
		res.OK = false
		res.FirstBroken = &audit.BrokenLink{Seq: last.Seq + 1, Reason: fmt.Sprintf(
			"events %d to %d are missing: the chain ends at event %d but the audit head records %d events; events were removed from the end",
			last.Seq+1, head.Seq, last.Seq, head.Seq)}
	case beyondHead != nil:
		res.OK = false
		res.FirstBroken = &audit.BrokenLink{Seq: beyondHead.Seq, ID: beyondHead.ID, Reason: fmt.Sprintf(
			"event %d is past the end of the chain the audit head records (%d events): it was not appended by loopgate",
			beyondHead.Seq, head.Seq)}
	case head.Seq > 0 && last.Hash != head.Hash:
		res.OK = false
		res.FirstBroken = &audit.BrokenLink{Seq: last.Seq, ID: last.ID, Reason: fmt.Sprintf(
			"the last event's hash %s is not the one the audit head records (%s): the chain was rewritten", last.Hash, head.Hash)}
	}
	return res, nil
}
