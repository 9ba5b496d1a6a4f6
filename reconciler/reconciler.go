// Package reconciler converges Kafka clusters to the desired state that
// loopgate persisted. It is level-triggered, Kubernetes-controller style:
//
//  1. A loop key ("team/name") is enqueued when the API writes the loop,
//     and every loop is enqueued again on each resync (drift detection).
//  2. A worker reads the loop from the store. Loops awaiting approval are
//     left alone: nothing reaches a cluster that policy has not approved.
//  3. Compute derives the desired resources (plus what other loops on the
//     same cluster share: group ACLs, per-principal quotas), observes the
//     cluster and computes provisioning.Plan — the same function `:plan`
//     calls with a read-only admin client, so a plan shows exactly what
//     apply does.
//  4. Before any write an audit event lists the planned admin operations;
//     after them a second event records each operation's result, and the
//     loop's status (state, conditions, inventory) is written in the same
//     transaction. A crash between the two leaves the intent on record and
//     the next reconcile converges.
//  5. Errors are requeued with exponential backoff.
//
// Status writes are guarded by generation: a reconcile of generation G never
// overwrites the status of a newer generation written meanwhile.
package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Actor is the audit actor of everything the reconciler does.
const Actor = "loopgate/reconciler"

// Reconciler converges clusters to the persisted desired state.
type Reconciler struct {
	store   store.Store
	catalog *catalog.Catalog
	admins  map[string]provisioning.Admin // by cluster name; read-write
	peers   *PeerIndex
	log     *slog.Logger
	now     func() time.Time

	resync    time.Duration
	workers   int
	batchSize int

	running atomic.Bool // Enqueue is a no-op while no Run is active

	mu       sync.Mutex
	queued   map[string]bool // keys waiting in the queue
	inflight map[string]bool // keys being reconciled
	dirty    map[string]bool // keys enqueued again while in flight
	failures map[string]int  // consecutive failures, for backoff
	queue    chan string
}

// Options tunes a Reconciler.
type Options struct {
	Resync  time.Duration // 0 = 30s; how often every loop is re-checked
	Workers int           // 0 = 4; batches reconciled in parallel (never the same loop twice)
	// BatchSize caps how many queued loops one worker reconciles together
	// (see ReconcileBatch); 0 = DefaultBatchSize, 1 = one loop at a time.
	BatchSize int
	Logger    *slog.Logger
	Now       func() time.Time
}

// New returns a reconciler over the given per-cluster admin clients.
func New(st store.Store, cat *catalog.Catalog, admins map[string]provisioning.Admin, opts Options) *Reconciler {
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reconciler{
		store: st, catalog: cat, admins: admins, peers: NewPeerIndex(cat), log: opts.Logger, now: opts.Now,
		resync: opts.Resync, workers: opts.Workers, batchSize: opts.BatchSize,
		queued: map[string]bool{}, inflight: map[string]bool{}, dirty: map[string]bool{},
		failures: map[string]int{}, queue: make(chan string, 1<<16),
	}
}

// Enqueue asks for key ("team/name") to be reconciled soon. Enqueueing a key
// that is already waiting is a no-op; one being reconciled runs again after.
func (r *Reconciler) Enqueue(key string) {
	if !r.running.Load() {
		return // Run enqueues every loop when it starts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight[key] {
		r.dirty[key] = true
		return
	}
	if r.queued[key] {
		return
	}
	select {
	case r.queue <- key:
		r.queued[key] = true
	default:
		// The queue is full; the next resync picks the key up.
		r.log.Warn("reconcile queue full; key deferred to next resync", "loop", key)
	}
}

// Run reconciles until ctx ends: workers drain the queue and every loop is
// enqueued at start and on each resync.
func (r *Reconciler) Run(ctx context.Context) error {
	r.running.Store(true)
	defer r.running.Store(false)
	// Fill the peer index before the first reconcile needs it.
	r.enqueueAll(ctx)
	var wg sync.WaitGroup
	for range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx)
		}()
	}
	tick := time.NewTicker(r.resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			r.enqueueAll(ctx)
		}
	}
}

func (r *Reconciler) enqueueAll(ctx context.Context) {
	token := ""
	for {
		loops, next, err := r.store.ListLoops(ctx, store.ListOptions{PageSize: 1000, PageToken: token})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("resync: listing loops", "err", err)
			}
			return
		}
		for _, l := range loops {
			r.peers.Put(l)
			r.Enqueue(l.Metadata.Key())
		}
		if next == "" {
			return
		}
		token = next
	}
}

// work takes every key waiting in the queue (up to the batch size) and
// reconciles them together, then requeues what failed (with backoff) and
// what was enqueued again meanwhile.
func (r *Reconciler) work(ctx context.Context) {
	for {
		var first string
		select {
		case <-ctx.Done():
			return
		case first = <-r.queue:
		}
		keys := []string{first}
	drain:
		for len(keys) < r.batchSize {
			select {
			case k := <-r.queue:
				keys = append(keys, k)
			default:
				break drain
			}
		}
		r.mu.Lock()
		for _, key := range keys {
			delete(r.queued, key)
			r.inflight[key] = true
		}
		r.mu.Unlock()

		errs := r.ReconcileBatch(ctx, keys)

		for _, key := range keys {
			err := errs[key]
			r.mu.Lock()
			delete(r.inflight, key)
			again := r.dirty[key]
			delete(r.dirty, key)
			var backoff time.Duration
			if err != nil && ctx.Err() == nil {
				r.failures[key]++
				backoff = min(100*time.Millisecond<<min(r.failures[key], 9), 30*time.Second)
			} else {
				delete(r.failures, key)
			}
			r.mu.Unlock()

			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Warn("reconcile failed; will retry", "loop", key, "backoff", backoff, "err", err)
				time.AfterFunc(backoff, func() { r.Enqueue(key) })
			case again:
				r.Enqueue(key)
			}
		}
	}
}

// Reconcile converges one loop. It is safe to call at any time, any number
// of times: an unchanged, converged loop yields an empty plan and no writes.
func (r *Reconciler) Reconcile(ctx context.Context, key string) error {
	return r.ReconcileBatch(ctx, []string{key})[key]
}

// awaitingApproval reports whether the loop's current generation needs an
// approval it does not have.
func awaitingApproval(l *loop.Loop) bool {
	return l.Status.NeedsApproval && l.Status.ApprovedGeneration < l.Metadata.Generation
}

func (r *Reconciler) clusterOf(l *loop.Loop) (catalog.Cluster, error) {
	if l.Status.Cluster != "" {
		if cl, ok := r.catalog.ClusterByName(l.Status.Cluster); ok {
			return cl, nil
		}
	}
	return r.catalog.ClusterFor(l.Spec.Residency)
}

// Computed is what Compute found for one loop.
type Computed struct {
	Desired  provisioning.Resources // what the cluster should have in the loop's scope
	Observed provisioning.Resources // what it has
	Plan     provisioning.PlanResult
}

// Compute derives the desired state of l on cl, observes the cluster through
// admin and plans the difference. The API's `:plan` calls it with a
// read-only admin; the reconciler with a read-write one: one code path.
//
// The loop's scope is its own topics plus the groups and principals it uses
// now or used before (its inventory). Group ACLs and quotas can be shared
// with other loops on the same cluster, so those loops' needs are added to
// the desired state: a quota is the sum over every loop naming the principal.
func Compute(ctx context.Context, peers Peers, admin provisioning.Admin, l *loop.Loop, cl catalog.Cluster) (Computed, error) {
	desired, want, err := desiredState(ctx, peers, l, cl)
	if err != nil {
		return Computed{}, err
	}
	observed, err := admin.Observe(ctx, want)
	if err != nil {
		return Computed{}, fmt.Errorf("observing cluster %s: %w", cl.Name, err)
	}
	return Computed{Desired: desired, Observed: observed, Plan: planFor(l, desired, observed)}, nil
}

// ReasonTopicNotOwned is the plan problem of a desired topic that exists on
// the cluster but that loopgate did not create for this loop.
const ReasonTopicNotOwned = "TopicNotOwned"

// planFor is provisioning.Plan plus loopgate's ownership rule: a topic the
// loop wants that already exists but is not in the loop's inventory was
// created by someone else, and loopgate never takes it over (it would
// change another owner's partitions, configs and ACLs). The reconciler
// claims a topic in the inventory before creating it, so its own creates,
// even interrupted ones, are always recognised.
func planFor(l *loop.Loop, desired, observed provisioning.Resources) provisioning.PlanResult {
	plan := provisioning.Plan(desired, observed)
	exists := map[string]bool{}
	for _, t := range observed.Topics {
		exists[t.Name] = true
	}
	var foreign map[string]bool
	for _, t := range desired.Topics {
		if exists[t.Name] && !slices.Contains(l.Status.Inventory.Topics, t.Name) {
			if foreign == nil {
				foreign = map[string]bool{}
			}
			foreign[t.Name] = true
			plan.Problems = append(plan.Problems, provisioning.Problem{
				Resource: "topic " + t.Name, Reason: ReasonTopicNotOwned,
				Message: "exists on the cluster but was not created by loopgate for this loop; loopgate does not take over topics it did not create: rename the stream, or remove the topic",
			})
		}
	}
	if foreign != nil {
		// Nothing touches a foreign topic, not even its ACLs.
		plan.Actions = slices.DeleteFunc(plan.Actions, func(a provisioning.Action) bool {
			return a.Topic != nil && foreign[a.Topic.Name] || a.ACL != nil && a.ACL.ResourceType == provisioning.ResourceTopic && foreign[a.ACL.ResourceName]
		})
	}
	return plan
}

// claimTopics records, in the same transaction as the intent event, that
// the loop's CreateTopic actions are loopgate's: after a crash between the
// create and the status write, the next reconcile recognises the topics.
func claimTopics(ctx context.Context, tx store.Tx, l *loop.Loop, actions []provisioning.Action) error {
	var created []string
	for _, a := range actions {
		if a.Kind == provisioning.CreateTopic && a.Topic != nil {
			created = append(created, a.Topic.Name)
		}
	}
	if len(created) == 0 {
		return nil
	}
	cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if err != nil {
		return err
	}
	st := cur.Status
	st.Inventory.Topics = union(st.Inventory.Topics, created)
	l.Status.Inventory.Topics = st.Inventory.Topics
	return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st)
}

// unclaimFailedCreates removes from an inventory the topics whose create
// failed: they are not loopgate's (a foreign topic of another shape, or a
// create the broker refused).
func unclaimFailedCreates(inv *loop.Inventory, results []provisioning.OpResult) {
	for _, res := range results {
		if res.Kind == provisioning.CreateTopic && res.Err != "" {
			name := strings.TrimPrefix(res.Resource, "topic ")
			inv.Topics = slices.DeleteFunc(inv.Topics, func(t string) bool { return t == name })
		}
	}
}

// desiredState is Compute before observing: the desired resources of l on
// cl, and want, what Observe must read to plan them (desired plus the
// loop's whole scope, so that what it no longer needs is found).
func desiredState(ctx context.Context, peers Peers, l *loop.Loop, cl catalog.Cluster) (desired, want provisioning.Resources, err error) {
	var own provisioning.Resources
	if l.Metadata.DeleteTime.IsZero() {
		own = provisioning.Derive(l, cl)
	}
	scope := scopeOf(l, own)

	others, err := peers.Others(ctx, l, cl)
	if err != nil {
		return desired, want, err
	}
	desired = withShared(own, scope, others, cl)

	want = desired
	want.Topics = slices.Clone(desired.Topics)
	want.ACLs = slices.Clone(desired.ACLs)
	want.Quotas = slices.Clone(desired.Quotas)
	for _, t := range scope.topics {
		if !slices.ContainsFunc(want.Topics, func(x provisioning.Topic) bool { return x.Name == t }) {
			want.Topics = append(want.Topics, provisioning.Topic{Name: t})
		}
	}
	for _, g := range scope.groups {
		want.ACLs = append(want.ACLs, provisioning.ACL{ResourceType: provisioning.ResourceGroup, ResourceName: g})
	}
	for _, p := range scope.principals {
		if !slices.ContainsFunc(want.Quotas, func(q provisioning.Quota) bool { return q.Principal == p }) {
			want.Quotas = append(want.Quotas, provisioning.Quota{Principal: p})
		}
	}
	return desired, want, nil
}

type scope struct {
	topics, groups, principals []string
}

func scopeOf(l *loop.Loop, own provisioning.Resources) scope {
	inv := inventoryOf(own)
	s := scope{
		topics:     union(inv.Topics, l.Status.Inventory.Topics),
		groups:     union(inv.Groups, l.Status.Inventory.Groups),
		principals: union(inv.Principals, l.Status.Inventory.Principals),
	}
	return s
}

// inventoryOf lists the names of resources in r.
func inventoryOf(r provisioning.Resources) loop.Inventory {
	var inv loop.Inventory
	for _, t := range r.Topics {
		inv.Topics = append(inv.Topics, t.Name)
	}
	for _, a := range r.ACLs {
		if a.ResourceType == provisioning.ResourceGroup {
			inv.Groups = append(inv.Groups, a.ResourceName)
		}
		inv.Principals = append(inv.Principals, a.Principal)
	}
	for _, q := range r.Quotas {
		inv.Principals = append(inv.Principals, q.Principal)
	}
	inv.Topics = union(inv.Topics, nil)
	inv.Groups = union(inv.Groups, nil)
	inv.Principals = union(inv.Principals, nil)
	return inv
}

func union(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

// addRates sums two byte rates, saturating at the largest rate a loop may
// declare (loop.MaxPeakBytesPerSecond) instead of overflowing: a principal
// of many loops gets the largest quota Kafka holds exactly, never a
// negative one.
func addRates(a, b int64) int64 {
	if a > loop.MaxPeakBytesPerSecond-b {
		return loop.MaxPeakBytesPerSecond
	}
	return a + b
}

// withShared adds to own the group ACLs and quotas that peers need for the
// groups and principals in scope, summing quotas per principal.
func withShared(own provisioning.Resources, sc scope, peers []provisioning.Resources, cl catalog.Cluster) provisioning.Resources {
	out := provisioning.Resources{Topics: own.Topics}
	aclSeen := map[provisioning.ACL]bool{}
	addACL := func(a provisioning.ACL) {
		if !aclSeen[a] {
			aclSeen[a] = true
			out.ACLs = append(out.ACLs, a)
		}
	}
	for _, a := range own.ACLs {
		addACL(a)
	}
	quotas := map[string]*provisioning.Quota{}
	addQuota := func(q provisioning.Quota) {
		cur, ok := quotas[q.Principal]
		if !ok {
			c := q
			quotas[q.Principal] = &c
			return
		}
		cur.ProducerByteRate = addRates(cur.ProducerByteRate, q.ProducerByteRate)
		cur.ConsumerByteRate = addRates(cur.ConsumerByteRate, q.ConsumerByteRate)
	}
	for _, q := range own.Quotas {
		addQuota(q)
	}
	for _, p := range peers {
		for _, a := range p.ACLs {
			if a.ResourceType == provisioning.ResourceGroup && slices.Contains(sc.groups, a.ResourceName) {
				addACL(a)
			}
		}
		for _, q := range p.Quotas {
			if slices.Contains(sc.principals, q.Principal) {
				addQuota(q)
			}
		}
	}
	for _, q := range quotas {
		out.Quotas = append(out.Quotas, *q)
	}
	sort.Slice(out.ACLs, func(i, j int) bool { return aclKey(out.ACLs[i]) < aclKey(out.ACLs[j]) })
	sort.Slice(out.Quotas, func(i, j int) bool { return out.Quotas[i].Principal < out.Quotas[j].Principal })
	return out
}

func aclKey(a provisioning.ACL) string {
	return strings.Join([]string{a.ResourceType, a.ResourceName, a.Principal, a.Operation, a.Host, a.PatternType, a.Permission}, "|")
}

// intentEvent is the audit event listing the operations about to run on
// l's behalf; it is committed before any of them runs.
func (r *Reconciler) intentEvent(l *loop.Loop, cl catalog.Cluster, actions []provisioning.Action) audit.Event {
	ops := make([]string, len(actions))
	for i, a := range actions {
		ops[i] = describeAction(a)
	}
	action := "loop.provision.start"
	if !l.Metadata.DeleteTime.IsZero() {
		action = "loop.deprovision.start"
	}
	details := map[string]any{"generation": l.Metadata.Generation, "cluster": cl.Name, "planned": ops}
	return r.event(l, action, audit.OutcomeOK, details)
}

func (r *Reconciler) event(l *loop.Loop, action, outcome string, details map[string]any) audit.Event {
	raw, _ := json.Marshal(details)
	return audit.Event{
		ID: audit.NewID(), Actor: Actor, Action: action, Resource: l.Metadata.ResourceName(),
		DecisionID: l.Status.DecisionID, Outcome: outcome, Details: raw,
	}
}

func opsOf(results []provisioning.OpResult) []map[string]string {
	out := make([]map[string]string, len(results))
	for i, res := range results {
		m := map[string]string{"op": res.Op, "result": "OK"}
		if res.Err != "" {
			m["result"] = res.Err
		}
		out[i] = m
	}
	return out
}

// finishApply records success, inside tx: status READY plus, when anything was done,
// an audit event with every admin operation and its result.
func (r *Reconciler) finishApply(ctx context.Context, tx store.Tx, l *loop.Loop, cl catalog.Cluster, desired provisioning.Resources, results []provisioning.OpResult) error {
	now := r.now()
	gen := l.Metadata.Generation
	if len(results) > 0 {
		ev := r.event(l, "loop.provision", audit.OutcomeOK, map[string]any{
			"generation": gen, "cluster": cl.Name, "operations": opsOf(results),
		})
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
	}
	cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if err != nil {
		return err
	}
	if cur.Metadata.Generation != gen || !cur.Metadata.DeleteTime.IsZero() {
		return nil // a newer write happened; its own reconcile sets status
	}
	st := cur.Status
	if st.State == loop.StateReady && st.ObservedGeneration == gen && len(results) == 0 && st.Cluster == cl.Name {
		return nil // converged and already said so: no write
	}
	st.State = loop.StateReady
	st.ObservedGeneration = gen
	st.Cluster = cl.Name
	inv := inventoryOf(desired)
	own := inventoryOf(provisioning.Derive(l, cl))
	// Keep in the inventory only what this loop itself needs.
	st.Inventory = loop.Inventory{Topics: inv.Topics, Groups: intersect(inv.Groups, own.Groups), Principals: intersect(inv.Principals, own.Principals)}
	msg := "all topics, ACLs and quotas exist as approved"
	reason := "Provisioned"
	if len(results) > 0 && cur.Status.State == loop.StateReady && cur.Status.ObservedGeneration == gen {
		reason, msg = "DriftCorrected", fmt.Sprintf("corrected drift with %d admin operations", len(results))
	}
	st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.True, Reason: "Provisioned", Message: msg, ObservedGeneration: gen}, now)
	st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.True, Reason: reason, Message: msg, ObservedGeneration: gen}, now)
	return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// finishDelete removes the loop for good once its resources are gone,
// inside tx.
func (r *Reconciler) finishDelete(ctx context.Context, tx store.Tx, l *loop.Loop, cl catalog.Cluster, results []provisioning.OpResult) error {
	cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Metadata.DeleteTime.IsZero() || cur.Metadata.Etag != l.Metadata.Etag {
		return nil // recreated or changed meanwhile
	}
	ev := r.event(l, "loop.deprovision", audit.OutcomeOK, map[string]any{
		"generation": l.Metadata.Generation, "cluster": cl.Name, "operations": opsOf(results),
	})
	if _, err := tx.AppendAudit(ctx, ev); err != nil {
		return err
	}
	return tx.DeleteLoop(ctx, l.Metadata.Team, l.Metadata.Name)
}

// fail records a failed reconcile on the loop's status and the audit trail,
// then returns the cause so that the key is retried with backoff.
func (r *Reconciler) fail(ctx context.Context, l *loop.Loop, reason string, cause error, results []provisioning.OpResult) error {
	now := r.now()
	gen := l.Metadata.Generation
	werr := r.store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.GetLoop(ctx, l.Metadata.Team, l.Metadata.Name)
		if err != nil {
			return err
		}
		if len(results) > 0 || reason == "PlanRefused" {
			details := map[string]any{"generation": gen, "error": cause.Error(), "reason": reason}
			if len(results) > 0 {
				details["operations"] = opsOf(results)
			}
			action := "loop.provision"
			if !l.Metadata.DeleteTime.IsZero() {
				action = "loop.deprovision"
			}
			// Only audit a repeated failure when something was attempted or
			// the failure is new, so a retry loop does not flood the trail.
			prev := cur.Status.Condition(loop.CondProvisioned)
			if len(results) > 0 || prev == nil || prev.Reason != reason || prev.Message != cause.Error() {
				if _, err := tx.AppendAudit(ctx, r.event(l, action, audit.OutcomeFailed, details)); err != nil {
					return err
				}
			}
		}
		st := cur.Status
		unclaimFailedCreates(&st.Inventory, results)
		if cur.Metadata.Generation != gen {
			return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st) // only the inventory changes
		}
		if l.Metadata.DeleteTime.IsZero() {
			st.State = loop.StateFailed
		}
		st.ObservedGeneration = gen
		st.SetCondition(loop.Condition{Type: loop.CondProvisioned, Status: loop.False, Reason: reason, Message: cause.Error(), ObservedGeneration: gen}, now)
		st.SetCondition(loop.Condition{Type: loop.CondInSync, Status: loop.False, Reason: reason, Message: cause.Error(), ObservedGeneration: gen}, now)
		return tx.UpdateStatus(ctx, l.Metadata.Team, l.Metadata.Name, st)
	})
	if werr != nil {
		return errors.Join(cause, fmt.Errorf("recording the failure: %w", werr))
	}
	return cause
}

// describeAction is the audit form of a planned action.
func describeAction(a provisioning.Action) string {
	s := string(a.Kind) + " " + a.Resource
	if a.Current != "" {
		s += " from " + a.Current
	}
	if a.Desired != "" {
		s += " to " + a.Desired
	}
	return s
}
