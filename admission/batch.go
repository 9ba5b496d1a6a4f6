package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// Batch requests (BatchApplyLoops, BatchPlanLoops) carry many loops, e.g.
// a platform team's file of a thousand. Each item goes through the request
// path of its single RPC: authorized as that RPC (AuthorizeItems, before
// anything runs: one refused item refuses the whole request), validated,
// decided by policy and ownership, persisted with its decision, claims and
// audit event, and notified. Independent items (the default) are admitted
// concurrently, so that the group commit shares their transactions; an
// atomic batch is admitted in one transaction, or not at all.

// MaxBatchItems is the most items one batch request may carry. A request
// is bounded by the API's message size (4 MiB) too.
const MaxBatchItems = 1000

// The request-id record and the audit trail name a batch apply with these.
const (
	batchAction   = "loop.batchApply"
	batchResource = "loops:batchApply"
	planResource  = "loops:batchPlan"
)

// How many items of a batch are worked on at once: an apply item is mostly
// policy evaluation and store reads (its write shares the group commit); a
// plan item also reads its cluster.
const (
	batchConcurrency = 64
	planConcurrency  = 8
)

// BatchItem is one loop of a batch request as the request has it: name,
// labels and spec.
type BatchItem struct {
	Loop *loop.Loop
	// Etag, when set, must match the stored loop's: the item then only
	// updates (apply).
	Etag string
}

// Operation says what applying an item did to its loop.
type Operation string

// The operations of an applied item.
const (
	OpCreated   Operation = "CREATED"
	OpUpdated   Operation = "UPDATED"
	OpUnchanged Operation = "UNCHANGED"
)

// ApplyResult is what applying one item did: the loop and the operation,
// or the error its single RPC (CreateLoop, UpdateLoop) would have returned.
type ApplyResult struct {
	Loop      *loop.Loop
	Operation Operation
	Err       error
}

// PlanItemResult is the plan of one item, or the error PlanLoop would have
// returned.
type PlanItemResult struct {
	Plan *PlanResult
	Err  error
}

// BatchOptions are the options of a batch apply.
type BatchOptions struct {
	// ValidateOnly runs every check and changes nothing, not even the
	// audit trail (as a single validate-only request).
	ValidateOnly bool
	// Atomic admits every item in one transaction or none (see BatchApply).
	Atomic bool
	// RequestID makes retries safe (AIP-155), bound like a single
	// request's (see replay): to the caller and to the whole request.
	RequestID string
}

// ItemError is why one item of a batch failed.
type ItemError struct {
	Index int
	Name  string // teams/{team}/loops/{loop}
	Err   error  // what its single RPC would have returned
}

func (e *ItemError) Error() string { return fmt.Sprintf("loops[%d] (%s): %v", e.Index, e.Name, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }

// AtomicError refuses an atomic batch: some items failed, so nothing of the
// batch was persisted. Failed names each failing item with its own error.
type AtomicError struct {
	Items  int          // how many items the batch had
	Failed []*ItemError // in request order
}

// maxItemsInMessage bounds how many failing items an error message names;
// the error details (see package server) carry the rest as far as they fit.
const maxItemsInMessage = 10

func (e *AtomicError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "atomic batch refused, nothing was applied: %d of %d item(s) failed", len(e.Failed), e.Items)
	for i, f := range e.Failed {
		if i == maxItemsInMessage {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// CheckBatchSize refuses a batch of no items or of more than MaxBatchItems,
// as a field-level error on "loops". resource names the request (for the
// audit trail), e.g. "loops:batchApply".
func CheckBatchSize(resource string, n int) error {
	msg := ""
	switch {
	case n == 0:
		msg = fmt.Sprintf("no items: send 1 to %d loops", MaxBatchItems)
	case n > MaxBatchItems:
		msg = fmt.Sprintf("%d items: at most %d a request; split the loops into several requests (loopctl apply does)", n, MaxBatchItems)
	default:
		return nil
	}
	return &InvalidError{Resource: resource, Problems: loop.FieldErrors{{Field: "loops", Message: msg}}}
}

// AuthorizeItems is Authorize for a batch request, before anything of it
// runs: every item's resource is authorized for every one of actions (an
// apply item may create or update its loop). If any item is refused, the
// whole request is: the refusal names the first refused item (its index
// and name) and how many were refused, and is audited like every refusal.
// An empty batch (refused as invalid afterwards) is authorized as a request
// across teams.
func (c *Core) AuthorizeItems(ctx context.Context, id Identity, actions []string, items []Resource) error {
	if len(items) == 0 {
		for _, a := range actions {
			if err := c.Authorize(ctx, id, a, Resource{Team: AnyTeam}); err != nil {
				return err
			}
		}
		return nil
	}
	first, refused := -1, 0
	var (
		denial *Denial
		action string
	)
	for i, res := range items {
		for _, a := range actions {
			if d := c.authz().Authorize(id, a, res); d != nil {
				refused++
				if first < 0 {
					first, denial, action = i, d, a
				}
				break
			}
		}
	}
	if first < 0 {
		return nil
	}
	res := items[first]
	msg := fmt.Sprintf("loops[%d] (%s): %s", first, res.Name, denial.Message)
	if refused > 1 {
		msg += fmt.Sprintf(" (and %d more of the %d items are refused)", refused-1, len(items))
	}
	msg += "; nothing of the request was done"
	c.refuse(ctx, id, action, res.Name, audit.OutcomeForbidden, denial.Reason, msg)
	return &ForbiddenError{Reason: denial.Reason, Message: msg, Metadata: map[string]string{
		"item": strconv.Itoa(first), "resource": res.Name, "refused_items": strconv.Itoa(refused),
	}}
}

// BatchPlan plans every loop as Plan does, concurrently, and returns one
// result per loop in order. An invalid loop is that item's result (audited
// like an invalid PlanLoop); the others are planned regardless.
func (c *Core) BatchPlan(ctx context.Context, id Identity, loops []*loop.Loop) ([]PlanItemResult, error) {
	if err := CheckBatchSize(planResource, len(loops)); err != nil {
		return nil, err
	}
	ctx = withPartitionTotals(ctx)
	out := make([]PlanItemResult, len(loops))
	planned := make([]plannedLoop, len(loops))
	forEach(len(loops), planConcurrency, func(i int) {
		if err := ctx.Err(); err != nil {
			out[i].Err = err
			return
		}
		pp, err := c.preparePlan(ctx, id, loops[i])
		var invalid *InvalidError
		if errors.As(err, &invalid) && !invalid.Recorded {
			c.AuditInvalid(ctx, id, "loop.plan", invalid)
		}
		planned[i] = pp
		out[i] = PlanItemResult{Plan: pp.res, Err: err}
	})
	// One observation per cluster for all of the batch's loops on it: the
	// same Compute each loop's Plan runs, cut from one Observe.
	byCluster := map[string][]int{}
	var order []string
	for i, pp := range planned {
		if out[i].Err != nil || pp.admin == nil {
			continue
		}
		name := pp.res.Cluster.Name
		if byCluster[name] == nil {
			order = append(order, name)
		}
		byCluster[name] = append(byCluster[name], i)
	}
	for _, name := range order {
		idx := byCluster[name]
		next := make([]*loop.Loop, len(idx))
		for j, i := range idx {
			next[j] = planned[i].next
		}
		first := planned[idx[0]]
		computed, err := reconciler.ComputeBatch(ctx, c.peers(), first.admin, next, first.res.Cluster)
		for j, i := range idx {
			if err != nil {
				out[i] = PlanItemResult{Err: err}
				continue
			}
			planned[i].finish(computed[j])
		}
	}
	var logged []plannedLoop
	for i, pp := range planned {
		if out[i].Err == nil && pp.p != nil {
			logged = append(logged, pp)
		}
	}
	c.logPlans(ctx, logged)
	return out, nil
}

// BatchApply applies items as `loopctl apply` applies a file: an item whose
// loop does not exist is created as Create creates it; one that exists has
// its labels and spec replaced as Update replaces them (a no-op when they
// are the same: UNCHANGED). A loop may be named once: a later item naming
// it again fails (field "name").
//
// Without opts.Atomic every item is admitted on its own, concurrently: its
// outcome does not depend on the others'. With opts.Atomic every item is
// validated and decided first, against the state before the batch (each
// team's partition budget counting the items before it, and a name claimed
// by an earlier item of another team refused); if any fails, nothing is
// persisted, the failing items' refusals and the batch's are audited, and
// the error is an *AtomicError. Otherwise every item is written in one
// store transaction, whose conflicts (a loop changed or created since it was
// read, a name claimed meanwhile) abort the whole batch the same way.
//
// A request id binds the whole request (caller and every item) and each
// item's admission: item i is recorded under the request id with "#i"
// appended (or, for a long id, a digest of it; see itemRequestID). A retry
// returns each item's loop as it is now with the operation first done;
// without Atomic, items that failed or changed nothing are run again.
func (c *Core) BatchApply(ctx context.Context, id Identity, items []BatchItem, opts BatchOptions) ([]ApplyResult, error) {
	if err := CheckBatchSize(batchResource, len(items)); err != nil {
		return nil, err
	}
	if len(opts.RequestID) > maxRequestIDBytes {
		return nil, &InvalidError{Resource: batchResource, Problems: loop.FieldErrors{{Field: "request_id",
			Message: fmt.Sprintf("%d bytes: at most %d", len(opts.RequestID), maxRequestIDBytes)}}}
	}
	hash := batchHash(items, opts)
	replayed, err := c.batchReplay(ctx, id, hash, opts.RequestID)
	if err != nil {
		return nil, err
	}
	if opts.Atomic && replayed {
		return c.replayAtomic(ctx, id, items, opts), nil
	}
	refused := c.checkItems(ctx, id, items, opts)
	if opts.Atomic {
		return c.applyAtomic(ctx, id, items, refused, opts, hash)
	}
	return c.applyEach(ctx, id, items, refused, opts, hash), nil
}

// batchHash is what a batch's request id is bound to: every item, in
// order, and the options.
func batchHash(items []BatchItem, opts BatchOptions) string {
	list := make([]map[string]any, len(items))
	for i, it := range items {
		if it.Loop == nil {
			list[i] = map[string]any{}
			continue
		}
		list[i] = map[string]any{"name": it.Loop.Metadata.ResourceName(), "labels": it.Loop.Metadata.Labels, "spec": it.Loop.Spec, "etag": it.Etag}
	}
	return requestHash(map[string]any{"loops": list, "validateOnly": opts.ValidateOnly, "atomic": opts.Atomic})
}

// itemRequestID is the request id item i of a batch is admitted with: the
// batch's id with "#i" appended, or, when that would be longer than a
// request id may be, a digest of the batch's id with "#i".
func itemRequestID(requestID string, i int) string {
	if requestID == "" {
		return ""
	}
	if s := requestID + "#" + strconv.Itoa(i); len(s) <= maxRequestIDBytes {
		return s
	}
	sum := sha256.Sum256([]byte(requestID))
	return "sha256:" + hex.EncodeToString(sum[:16]) + "#" + strconv.Itoa(i)
}

// batchReplay checks a batch's request id: found when the same caller sent
// the same request with it before; a REQUEST_ID_REUSED refusal (audited)
// when it was used for anything else.
func (c *Core) batchReplay(ctx context.Context, id Identity, hash, requestID string) (bool, error) {
	if requestID == "" {
		return false, nil
	}
	r, found, err := c.Store.GetRequest(ctx, requestID)
	if err != nil || !found {
		return false, err
	}
	if r.Subject != id.Subject || r.Method != batchAction || r.Resource != batchResource || r.Hash != hash {
		msg := requestIDReused(requestID)
		c.auditRefusal(ctx, id, batchAction, batchResource, requestID, audit.OutcomeForbidden, "REQUEST_ID_REUSED", msg)
		return false, &PreconditionError{Reason: "REQUEST_ID_REUSED", Message: msg}
	}
	return true, nil
}

// replayItem answers item i of a retried batch from its request-id record,
// if it has one: the loop as it is now, with the operation first done.
// A record of anything else is refused as REQUEST_ID_REUSED.
func (c *Core) replayItem(ctx context.Context, id Identity, requestID string, it BatchItem, validateOnly bool) (*loop.Loop, Operation, bool, error) {
	if requestID == "" {
		return nil, "", false, nil
	}
	r, found, err := c.Store.GetRequest(ctx, requestID)
	if err != nil || !found {
		return nil, "", false, err
	}
	resource := it.Loop.Metadata.ResourceName()
	var (
		op   Operation
		hash string
	)
	switch r.Method {
	case "loop.create":
		op, hash = OpCreated, createHash(it.Loop, validateOnly)
	case "loop.update":
		op, hash = OpUpdated, updateHash(it.Loop, it.Etag, validateOnly)
	}
	if op == "" || r.Subject != id.Subject || r.Resource != resource || r.Hash != hash {
		msg := requestIDReused(requestID)
		c.auditRefusal(ctx, id, batchAction, resource, requestID, audit.OutcomeForbidden, "REQUEST_ID_REUSED", msg)
		return nil, "", false, &PreconditionError{Reason: "REQUEST_ID_REUSED", Message: msg}
	}
	l, err := c.Store.GetLoop(ctx, it.Loop.Metadata.Team, it.Loop.Metadata.Name)
	if err != nil {
		return nil, "", false, fmt.Errorf("loop %s: %w", it.Loop.Metadata.Key(), err)
	}
	return l, op, true, nil
}

// checkItems refuses the items no admission can take: a missing loop, and
// a loop named by an earlier item. Each refusal is audited like an invalid
// request (not for validate-only requests); the result has an error per
// refused item, nil for the others.
func (c *Core) checkItems(ctx context.Context, id Identity, items []BatchItem, opts BatchOptions) []error {
	out := make([]error, len(items))
	first := map[string]int{}
	for i, it := range items {
		var problem *InvalidError
		switch {
		case it.Loop == nil:
			problem = &InvalidError{Resource: batchResource, Problems: loop.FieldErrors{{Field: "loop", Message: "required"}}}
		default:
			name := it.Loop.Metadata.ResourceName()
			if j, dup := first[name]; dup {
				problem = &InvalidError{Resource: name, Problems: loop.FieldErrors{{Field: "name", Message: fmt.Sprintf(
					"%s is item loops[%d] of this batch already: a batch names each loop once (send the later version in another request)", name, j)}}}
				break
			}
			first[name] = i
		}
		if problem == nil {
			continue
		}
		problem.Recorded = opts.ValidateOnly // a dry run leaves no trace
		if !problem.Recorded {
			c.AuditInvalid(ctx, id, "loop.create", problem)
		}
		out[i] = problem
	}
	return out
}

// forEach calls fn(i) for every i below n, on at most workers goroutines,
// and returns when all calls have.
func forEach(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// applyEach admits every item on its own (not atomic).
func (c *Core) applyEach(ctx context.Context, id Identity, items []BatchItem, refused []error, opts BatchOptions, hash string) []ApplyResult {
	out := make([]ApplyResult, len(items))
	forEach(len(items), batchConcurrency, func(i int) {
		if refused[i] != nil {
			out[i].Err = refused[i]
			return
		}
		out[i] = c.applyItem(ctx, id, i, items[i], opts)
	})
	if opts.RequestID == "" || opts.ValidateOnly || !slices.ContainsFunc(out, func(r ApplyResult) bool {
		return r.Err == nil && r.Operation != OpUnchanged
	}) {
		return out // like a single request, one that changed nothing binds no id
	}
	err := c.write(ctx, func(tx store.Tx) error {
		err := tx.PutRequest(ctx, store.Request{ID: opts.RequestID, Subject: id.Subject, Method: batchAction, Resource: batchResource, Hash: hash})
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil // a retry: recorded by the first request
		}
		return err
	})
	if err != nil {
		// The items are committed and each is bound to its own id: a retry
		// is still answered item by item.
		c.logger().Warn("recording a batch's request id failed", "request_id", opts.RequestID, "err", err)
	}
	return out
}

// applyItem admits one item as Create or Update would.
func (c *Core) applyItem(ctx context.Context, id Identity, i int, it BatchItem, opts BatchOptions) ApplyResult {
	if err := ctx.Err(); err != nil {
		return ApplyResult{Err: err}
	}
	rid := itemRequestID(opts.RequestID, i)
	if l, op, ok, err := c.replayItem(ctx, id, rid, it, opts.ValidateOnly); err != nil || ok {
		return ApplyResult{Loop: l, Operation: op, Err: err}
	}
	wo := WriteOptions{ValidateOnly: opts.ValidateOnly, RequestID: rid}
	m := it.Loop.Metadata
	cur, err := c.Store.GetLoop(ctx, m.Team, m.Name)
	if errors.Is(err, store.ErrNotFound) {
		if it.Etag != "" {
			return ApplyResult{Err: fmt.Errorf("loop %s: %w (the item has an etag: it updates an existing loop)", m.Key(), err)}
		}
		created, err := c.Create(ctx, id, cloneLoop(it.Loop), wo)
		if !errors.Is(err, store.ErrAlreadyExists) {
			return ApplyResult{Loop: created, Operation: OpCreated, Err: err}
		}
		// Created by another request since it was read: update it, as a
		// second apply would.
		cur, err = c.Store.GetLoop(ctx, m.Team, m.Name)
	}
	if err != nil {
		return ApplyResult{Err: fmt.Errorf("loop %s: %w", m.Key(), err)}
	}
	updated, err := c.Update(ctx, id, cloneLoop(it.Loop), it.Etag, wo)
	if err != nil {
		return ApplyResult{Err: err}
	}
	op := OpUpdated
	if updated.Metadata.Generation == cur.Metadata.Generation && labelsEqual(updated.Metadata.Labels, cur.Metadata.Labels) {
		op = OpUnchanged
	}
	return ApplyResult{Loop: updated, Operation: op}
}

// staged is an item of an atomic batch, decided and on its way to the one
// transaction.
type staged struct {
	cur         *loop.Loop // the stored loop; nil when the item creates it
	next        *loop.Loop // what the item writes (cur itself when unchanged)
	specChanged bool
	unchanged   bool
	p           *prepared
	// partitions is how many more partitions the team uses once the item
	// is admitted (negative when it uses fewer).
	partitions int64
}

func (s *staged) op() (action, op string) {
	if s.cur == nil {
		return "loop.create", "CREATE"
	}
	return "loop.update", "UPDATE"
}

// stage reads item it's loop and decides it as Create or Update would,
// counting pending more partitions as used by its team. Invalid input is
// refused (and audited) here; a policy denial is left in the decision, for
// the batch-wide checks to add to.
func (c *Core) stage(ctx context.Context, id Identity, it BatchItem, pending int64, validateOnly bool) (*staged, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := cloneLoop(it.Loop) // prepare defaults it; a second stage starts afresh
	m := l.Metadata
	resource := m.ResourceName()
	wo := WriteOptions{ValidateOnly: validateOnly}
	cur, err := c.Store.GetLoop(ctx, m.Team, m.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if it.Etag != "" {
			return nil, fmt.Errorf("loop %s: %w (the item has an etag: it updates an existing loop)", m.Key(), err)
		}
		l.Status = loop.Status{}
		p, err := c.prepareIn(ctx, id, "CREATE", l, nil, pending)
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			return nil, c.rejectInvalid(ctx, id, "loop.create", resource, wo, invalid.Problems)
		}
		if err != nil {
			return nil, err
		}
		return &staged{next: l, specChanged: true, p: p, partitions: int64(p.derived.Partitions())}, nil
	case err != nil:
		return nil, fmt.Errorf("loop %s: %w", m.Key(), err)
	}
	if it.Etag != "" && it.Etag != cur.Metadata.Etag {
		return nil, fmt.Errorf("loop %s: %w", m.Key(), store.ErrEtagMismatch)
	}
	if !cur.Metadata.DeleteTime.IsZero() {
		return nil, &PreconditionError{Reason: "LOOP_DELETING", Message: fmt.Sprintf("loop %s is being deleted", m.Key())}
	}
	next, specChanged, changed := desiredNext(cur, l)
	if !changed {
		return &staged{cur: cur, next: cur, unchanged: true}, nil
	}
	p, err := c.prepareIn(ctx, id, "UPDATE", &next, cur, pending)
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		return nil, c.rejectInvalid(ctx, id, "loop.update", resource, wo, invalid.Problems)
	}
	if err != nil {
		return nil, err
	}
	s := &staged{cur: cur, next: &next, specChanged: specChanged, p: p}
	if specChanged {
		s.partitions = int64(p.derived.Partitions()) - int64(cur.Status.Partitions)
	}
	return s, nil
}

// applyAtomic admits every item in one transaction, or none (see
// BatchApply).
func (c *Core) applyAtomic(ctx context.Context, id Identity, items []BatchItem, refused []error, opts BatchOptions, hash string) ([]ApplyResult, error) {
	n := len(items)
	st := make([]*staged, n)
	errs := slices.Clone(refused)
	// Decide every item on the state before the batch.
	forEach(n, batchConcurrency, func(i int) {
		if errs[i] == nil {
			st[i], errs[i] = c.stage(ctx, id, items[i], 0, opts.ValidateOnly)
		}
	})
	// Each team's partition budget: an item counts what the items before
	// it of its team add; those that follow such items are decided again.
	pending := map[string]int64{}
	var again []int
	extra := make([]int64, n)
	for i, s := range st {
		if s == nil || s.unchanged {
			continue
		}
		team := s.next.Metadata.Team
		if pending[team] != 0 {
			extra[i] = pending[team]
			again = append(again, i)
		}
		pending[team] += s.partitions
	}
	forEach(len(again), batchConcurrency, func(k int) {
		i := again[k]
		st[i], errs[i] = c.stage(ctx, id, items[i], extra[i], opts.ValidateOnly)
	})
	// A free name claimed by items of two teams: the first one claims it.
	claimedBy := map[claim]int{}
	for i, s := range st {
		if s == nil || s.unchanged {
			continue
		}
		team := s.next.Metadata.Team
		for _, ref := range namesOf(s.next) {
			key := claim{ref.kind, ref.name}
			j, taken := claimedBy[key]
			if taken && st[j].next.Metadata.Team != team {
				s.p.decision.AddDeny(claimedInBatch(ref, j, st[j].next.Metadata.Team, team))
			}
		}
		for _, cl := range s.p.claims {
			if _, taken := claimedBy[cl]; !taken {
				claimedBy[cl] = i
			}
		}
	}
	// What policy and ownership deny is refused as Create and Update
	// refuse it (audited).
	for i, s := range st {
		if s != nil && !s.unchanged && !s.p.decision.Allowed() {
			action, op := s.op()
			errs[i] = c.deny(ctx, id, action, op, WriteOptions{ValidateOnly: opts.ValidateOnly}, s.next, s.p)
			st[i] = nil
		}
	}
	if failed := itemErrors(items, errs); len(failed) > 0 {
		return nil, c.abortAtomic(ctx, id, n, failed, opts)
	}

	now := c.now()
	for _, s := range st {
		switch {
		case s.unchanged:
		case s.cur == nil:
			admitNew(s.next, s.p, id, now)
		default:
			admitChange(s.next, s.cur, s.specChanged, s.p, id, now)
		}
	}
	if !opts.ValidateOnly {
		failedAt, replayed := -1, false
		err := c.Store.Update(ctx, func(tx store.Tx) error {
			for i, s := range st {
				if s.unchanged {
					continue
				}
				failedAt = i
				req := store.Request{ID: itemRequestID(opts.RequestID, i)}
				var err error
				if s.cur == nil {
					req.Hash = createHash(items[i].Loop, false)
					err = c.writeCreate(ctx, tx, id, s.next, s.p, req)
				} else {
					req.Hash = updateHash(items[i].Loop, items[i].Etag, false)
					err = c.writeUpdate(ctx, tx, id, s.next, s.cur, s.specChanged, s.p, req)
				}
				if err != nil {
					return err
				}
			}
			failedAt = -1
			if opts.RequestID == "" {
				return nil
			}
			err := tx.PutRequest(ctx, store.Request{ID: opts.RequestID, Subject: id.Subject, Method: batchAction, Resource: batchResource, Hash: hash})
			replayed = errors.Is(err, store.ErrAlreadyExists)
			return err
		})
		switch {
		case replayed:
			// The same request, retried concurrently, committed first:
			// answer with what it did.
			return c.replayAtomic(ctx, id, items, opts), nil
		case err != nil && failedAt >= 0:
			key := st[failedAt].next.Metadata.Key()
			if errors.Is(err, store.ErrAlreadyExists) && st[failedAt].cur == nil {
				err = fmt.Errorf("loop %s: %w (created since the batch read it; apply again)", key, err)
			} else {
				err = fmt.Errorf("loop %s: %w", key, err)
			}
			return nil, c.abortAtomic(ctx, id, n, []*ItemError{{Index: failedAt, Name: items[failedAt].Loop.Metadata.ResourceName(), Err: err}}, opts)
		case err != nil:
			return nil, err
		}
	}
	out := make([]ApplyResult, n)
	for i, s := range st {
		switch {
		case s.unchanged:
			out[i] = ApplyResult{Loop: s.cur, Operation: OpUnchanged}
		case s.cur == nil:
			out[i] = ApplyResult{Loop: s.next, Operation: OpCreated}
		default:
			out[i] = ApplyResult{Loop: s.next, Operation: OpUpdated}
			if !s.specChanged && labelsEqual(s.next.Metadata.Labels, s.cur.Metadata.Labels) {
				out[i].Operation = OpUnchanged
			}
		}
		if !opts.ValidateOnly && !s.unchanged {
			c.notify(s.next)
		}
	}
	return out, nil
}

// claimedInBatch is the denial of a name that an earlier item of the batch,
// of another team, claims.
func claimedInBatch(ref nameRef, item int, owner, team string) policy.Violation {
	v := notOwned(ref, owner, team)
	v.Msg = fmt.Sprintf("item loops[%d] of this batch claims it for team %s: %s", item, owner, v.Msg)
	return v
}

// itemErrors lists the items whose error is set, in order.
func itemErrors(items []BatchItem, errs []error) []*ItemError {
	var out []*ItemError
	for i, err := range errs {
		if err == nil {
			continue
		}
		name := batchResource
		if items[i].Loop != nil {
			name = items[i].Loop.Metadata.ResourceName()
		}
		out = append(out, &ItemError{Index: i, Name: name, Err: err})
	}
	return out
}

// abortAtomic refuses an atomic batch: the failing items' own refusals are
// audited already (as their single requests audit them); this records the
// batch's, naming every failing item.
func (c *Core) abortAtomic(ctx context.Context, id Identity, n int, failed []*ItemError, opts BatchOptions) error {
	err := &AtomicError{Items: n, Failed: failed}
	if opts.ValidateOnly {
		return err
	}
	outcome := audit.OutcomeFailed
	for _, f := range failed {
		var (
			denied  *DeniedError
			invalid *InvalidError
		)
		switch {
		case errors.As(f.Err, &denied):
			outcome = audit.OutcomeDenied
		case errors.As(f.Err, &invalid) && outcome != audit.OutcomeDenied:
			outcome = audit.OutcomeInvalid
		}
	}
	c.auditRefusal(ctx, id, batchAction, batchResource, opts.RequestID, outcome, "ATOMIC_BATCH_REFUSED", err.Error())
	return err
}

// replayAtomic answers a retried atomic batch that committed: each item's
// loop as it is now, with the operation first done (items without a
// record of their own changed nothing).
func (c *Core) replayAtomic(ctx context.Context, id Identity, items []BatchItem, opts BatchOptions) []ApplyResult {
	out := make([]ApplyResult, len(items))
	for i, it := range items {
		l, op, ok, err := c.replayItem(ctx, id, itemRequestID(opts.RequestID, i), it, opts.ValidateOnly)
		if err == nil && !ok {
			op = OpUnchanged
			l, err = c.Store.GetLoop(ctx, it.Loop.Metadata.Team, it.Loop.Metadata.Name)
			if err != nil {
				err = fmt.Errorf("loop %s: %w", it.Loop.Metadata.Key(), err)
			}
		}
		if err != nil {
			out[i] = ApplyResult{Err: err}
			continue
		}
		out[i] = ApplyResult{Loop: l, Operation: op}
	}
	return out
}
