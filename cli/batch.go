package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// apply, plan and diff send the loops of their files in batch requests
// (BatchApplyLoops, BatchPlanLoops), one request at a time, in file order;
// each request's results are reported as they come, in file order too.
// A server without the batch RPCs (UNIMPLEMENTED) is sent one RPC per loop,
// as before.

// Bounds of one batch request. Variables so that tests can lower them.
var (
	// batchMaxItems is the server's admission.MaxBatchItems (a test checks
	// that they agree).
	batchMaxItems = 1000
	// batchMaxBytes bounds one request's encoded loops: the server takes
	// messages of up to 4 MiB; the rest is room for the envelope.
	batchMaxBytes = 4<<20 - 64<<10
)

const (
	// batchTimeout bounds one batch RPC: up to batchMaxItems loops, each
	// decided by policy (and, for a plan, compared with its cluster).
	batchTimeout = 5 * time.Minute
	// batchResponseBytes is the largest batch response loopctl accepts: a
	// result per loop, each with its status, outgrows the request.
	batchResponseBytes = 64 << 20
	// diffConcurrency is how many loops diff reads at once.
	diffConcurrency = 16
)

// span is the loops [from, to) of one batch request.
type span struct{ from, to int }

// batchSpans cuts loops into consecutive requests of at most batchMaxItems
// loops and batchMaxBytes encoded. With distinct, a loop named again starts
// a new request, so that it is applied after its earlier document is done,
// as if the file were applied loop by loop.
func batchSpans(loops []*loopgatev1.Loop, distinct bool) []span {
	var (
		out   []span
		from  int
		size  int
		names = map[string]bool{}
	)
	for i, l := range loops {
		n := batchItemSize(l)
		if i > from && (i-from == batchMaxItems || size+n > batchMaxBytes || distinct && names[l.GetName()]) {
			out = append(out, span{from, i})
			from, size = i, 0
			clear(names)
		}
		size += n
		names[l.GetName()] = true
	}
	return append(out, span{from, len(loops)})
}

// batchItemSize is what a loop adds to a batch request's encoding.
func batchItemSize(l *loopgatev1.Loop) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(l))
}

// checkAtomic refuses, before anything is sent, what `apply --atomic`
// cannot send as one request: a loop named twice, or more loops or bytes
// than one request may carry.
func checkAtomic(loops []*loop.Loop) error {
	protos := make([]*loopgatev1.Loop, len(loops))
	first := map[string]int{}
	size := 0
	for i, l := range loops {
		protos[i] = toProto(l)
		name := protos[i].GetName()
		if j, dup := first[name]; dup {
			return fmt.Errorf("--atomic: %s is loop %d and loop %d of the files: one request applies each loop once; remove one of them",
				termSafe(shortName(name)), j+1, i+1)
		}
		first[name] = i
		size += batchItemSize(protos[i])
	}
	if len(loops) > batchMaxItems || size > batchMaxBytes {
		return fmt.Errorf("--atomic sends every loop in one request, and these %d loops (%s encoded) are more than one request carries (%d loops, %s); nothing was sent: apply without --atomic, or split the files",
			len(loops), loop.FormatSize(int64(size)), batchMaxItems, loop.FormatSize(int64(batchMaxBytes)))
	}
	return nil
}

// batchApply sends one BatchApplyLoops request.
func (a *app) batchApply(ctx context.Context, loops []*loopgatev1.Loop, dryRun, atomic bool) (*loopgatev1.BatchApplyLoopsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	resp, err := a.loops.BatchApplyLoops(ctx, &loopgatev1.BatchApplyLoopsRequest{
		Loops: loops, ValidateOnly: dryRun, Atomic: atomic, RequestId: newRequestID(),
	}, grpc.MaxCallRecvMsgSize(batchResponseBytes))
	if err == nil && len(resp.GetResults()) != len(loops) {
		err = fmt.Errorf("the server answered %d results for %d loops", len(resp.GetResults()), len(loops))
	}
	return resp, err
}

var applyOutcomes = map[loopgatev1.BatchApplyLoopResult_Operation]string{
	loopgatev1.BatchApplyLoopResult_CREATED:   "created",
	loopgatev1.BatchApplyLoopResult_UPDATED:   "updated",
	loopgatev1.BatchApplyLoopResult_UNCHANGED: "unchanged",
}

// setApplied sets outs from a batch response (one result per loop).
func setApplied(outs []applied, resp *loopgatev1.BatchApplyLoopsResponse) {
	for j, r := range resp.GetResults() {
		if e := r.GetError(); e != nil {
			outs[j].err = resultError(e)
		} else if outcome, ok := applyOutcomes[r.GetOperation()]; ok && r.GetLoop() != nil {
			outs[j].result, outs[j].outcome = r.GetLoop(), outcome
		} else {
			outs[j].err = fmt.Errorf("the server answered %s for %s without a loop or an error", r.GetOperation(), termSafe(r.GetName()))
		}
		close(outs[j].done)
	}
}

// resultError is a failed batch result's status as an error, as the
// loop's single RPC would have returned it (a status with code OK would be
// no error: it is reported as unknown).
func resultError(e *spb.Status) error {
	st := status.FromProto(e)
	if st.Code() == codes.OK {
		return status.Error(codes.Unknown, e.GetMessage())
	}
	return st.Err()
}

// setRefused sets every loop of a request refused as a whole to err; it is
// reported once, for the first loop, with a note naming what was not sent.
func setRefused(outs []applied, loops []*loopgatev1.Loop, err error) {
	if len(outs) > 1 {
		outs[0].note = fmt.Sprintf("the request was refused as a whole: none of its %d loops (%s to %s) was applied",
			len(loops), shortName(loops[0].GetName()), shortName(loops[len(loops)-1].GetName()))
	}
	for j := range outs {
		outs[j].err, outs[j].repeat = err, j > 0
		close(outs[j].done)
	}
}

// sendBatches applies loops in batch requests, one after the other, and
// returns their outcomes in file order, each set as its request returns.
// A server without batch requests is sent one RPC per loop (sendEach). A
// request refused as a whole because one of its loops is not the caller's
// to change (PERMISSION_DENIED) is sent again loop by loop, so that the
// others are applied and that one is refused on its own, as before batches.
// Once ctx ends nothing more is sent.
func (a *app) sendBatches(ctx context.Context, loops []*loopgatev1.Loop, dryRun bool) []applied {
	outs := newApplied(len(loops))
	go func() {
		for k, s := range batchSpans(loops, true) {
			part, o := loops[s.from:s.to], outs[s.from:s.to]
			if err := ctx.Err(); err != nil {
				for j := s.from; j < len(outs); j++ {
					outs[j].err = err
					close(outs[j].done)
				}
				return
			}
			resp, err := a.batchApply(ctx, part, dryRun, false)
			switch {
			case err == nil:
				setApplied(o, resp)
			case k == 0 && isCode(err, codes.Unimplemented):
				a.sendEach(ctx, loops, outs, dryRun) // an older server
				return
			case isCode(err, codes.PermissionDenied):
				a.sendEach(ctx, part, o, dryRun)
				for j := range o {
					<-o[j].done // the next request may name these loops again
				}
			default:
				setRefused(o, part, err)
			}
		}
	}()
	return outs
}

// applyAtomic sends every loop in one BatchApplyLoops request with atomic
// set: all are applied or none. A refusal is printed with every failing
// loop and is an ExitError.
func (a *app) applyAtomic(ctx context.Context, stderr io.Writer, loops []*loopgatev1.Loop, dryRun bool) ([]applied, error) {
	resp, err := a.batchApply(ctx, loops, dryRun, true)
	switch {
	case isCode(err, codes.Unimplemented):
		return nil, fmt.Errorf("--atomic: the server at %s has no batch apply (BatchApplyLoops): upgrade it, or apply without --atomic", termSafe(a.conn.Server))
	case err != nil && (isCode(err, codes.Unavailable) || isCode(err, codes.Unauthenticated) || ctx.Err() != nil):
		return nil, err
	case err != nil:
		PrintError(stderr, err, a.conn)
		fmt.Fprintln(stderr, "  nothing was applied: --atomic applies every loop or none")
		return nil, &ExitError{Code: 1, Err: errors.New("--atomic: nothing was applied")}
	}
	outs := newApplied(len(loops))
	setApplied(outs, resp)
	return outs, nil
}

// planned is the plan of one loop of the files (and, for diff, how it
// differs), or why there is none; done is closed once it is set.
type planned struct {
	plan   *loopgatev1.PlanLoopResponse
	diff   *loopDiff
	err    error
	repeat bool   // err was reported already, for an earlier loop of its request
	note   string // a line to print after err
	done   chan struct{}
}

// planAll plans loops in batch requests, one after the other, and returns
// the plans in file order, each set as its request (and, with diff, the
// reads that compare it) returns. A server without batch requests is sent
// one PlanLoop per loop, as is a request refused as a whole because one of
// its loops is not the caller's (PERMISSION_DENIED). Once ctx ends nothing
// more is sent.
func (a *app) planAll(ctx context.Context, files []*loop.Loop, loops []*loopgatev1.Loop, diff bool) []planned {
	outs := make([]planned, len(loops))
	for i := range outs {
		outs[i].done = make(chan struct{})
	}
	go func() {
		perLoop := false // the server has no BatchPlanLoops
		for k, s := range batchSpans(loops, false) {
			part, o := loops[s.from:s.to], outs[s.from:s.to]
			if err := ctx.Err(); err != nil {
				for j := s.from; j < len(outs); j++ {
					outs[j].err = err
					close(outs[j].done)
				}
				return
			}
			var (
				resp *loopgatev1.BatchPlanLoopsResponse
				err  error
			)
			if !perLoop {
				resp, err = a.batchPlan(ctx, part)
				perLoop = k == 0 && isCode(err, codes.Unimplemented)
			}
			switch {
			case perLoop || isCode(err, codes.PermissionDenied):
				for j, l := range part {
					o[j].plan, o[j].err = a.planOne(ctx, l)
				}
			case err != nil:
				for j := range o {
					o[j].err, o[j].repeat = err, j > 0
				}
				if len(o) > 1 {
					o[0].note = fmt.Sprintf("the request was refused as a whole: none of its %d loops (%s to %s) was planned",
						len(part), shortName(part[0].GetName()), shortName(part[len(part)-1].GetName()))
				}
			default:
				for j, r := range resp.GetResults() {
					if e := r.GetError(); e != nil {
						o[j].err = resultError(e)
					} else if r.GetPlan() == nil {
						o[j].err = fmt.Errorf("the server answered no plan and no error for %s", termSafe(r.GetName()))
					} else {
						o[j].plan = r.GetPlan()
					}
				}
			}
			if diff {
				a.diffSpan(ctx, files[s.from:s.to], part, o)
			}
			for j := range o {
				close(o[j].done)
			}
		}
	}()
	return outs
}

// batchPlan sends one BatchPlanLoops request.
func (a *app) batchPlan(ctx context.Context, loops []*loopgatev1.Loop) (*loopgatev1.BatchPlanLoopsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	resp, err := a.loops.BatchPlanLoops(ctx, &loopgatev1.BatchPlanLoopsRequest{Loops: loops}, grpc.MaxCallRecvMsgSize(batchResponseBytes))
	if err == nil && len(resp.GetResults()) != len(loops) {
		err = fmt.Errorf("the server answered %d results for %d loops", len(resp.GetResults()), len(loops))
	}
	return resp, err
}

// diffSpan compares every planned loop of a request with the loop loopgate
// has (diffOne), diffConcurrency at a time.
func (a *app) diffSpan(ctx context.Context, files []*loop.Loop, loops []*loopgatev1.Loop, outs []planned) {
	sem := make(chan struct{}, diffConcurrency)
	var wg sync.WaitGroup
	for j := range outs {
		if outs[j].err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			outs[j].diff, outs[j].err = a.diffOne(ctx, files[j], loops[j], outs[j].plan)
		})
	}
	wg.Wait()
}

// printNote writes a note about an error just printed (e.g. that it
// refused a whole request), if there is one.
func printNote(w io.Writer, note string) {
	if note != "" {
		fmt.Fprintf(w, "  %s\n", termSafe(strings.TrimSpace(note)))
	}
}
