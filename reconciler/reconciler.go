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
//  4. Before any write, one transaction re-reads the loop and checks that it
//     is still the generation that was planned, live or being deleted as it
//     was; claims in the loop's inventory every topic, group and principal
//     the plan is about to provision; and appends an audit event listing the
//     planned admin operations. A loop that changed meanwhile is not
//     applied: it is reconciled again from the fresh copy.
//  5. After the admin operations a second event records each operation's
//     result, and the loop's status (state, conditions, inventory) is
//     written in the same transaction — again after re-reading the loop, so
//     a result is only recorded on the generation it was computed for. A
//     crash between the two leaves the intent and the claims on record and
//     the next reconcile converges.
//  6. Errors are classified: retriable ones are retried with exponential
//     backoff, terminal ones park the loop (see "Errors" below).
//
// # Inventory and deletion
//
// Status.Inventory names every topic, group and principal loopgate may have
// provisioned for the loop. It only grows while anything could be on the
// cluster that it does not name: claims are written before the admin
// operations (step 4) and kept when the API writes the loop (the API merges
// the reconciler's inventory into its own writes), and it is pruned to what
// the current generation needs only after a plan for that very generation
// succeeded. A loop is in scope of everything its inventory or its spec
// names; when it is deleted the plan removes, from its cluster:
//
//   - every topic of its inventory (a topic its spec names that loopgate
//     never claimed belongs to someone else and is left alone);
//   - every ACL on those topics, and on the groups of its inventory and of
//     its last spec, that no live loop needs;
//   - the quotas of the principals of its inventory and last spec that no
//     live loop needs (shared ones are resized to what the others need);
//   - stray ACLs: bindings of those principals that no live loop names, on
//     topics or groups of the loop's own namespace ("team.loop."), found on
//     the cluster (admins implementing provisioning.PrincipalObserver).
//
// The deletion plan is idempotent (deleting what is gone succeeds); the loop
// is removed from the store only once every operation succeeded.
//
// # Concurrency
//
// A loop is never reconciled by two workers at once. Batches of different
// clusters run in parallel; batches of one cluster run one at a time,
// because loops of a cluster share group ACLs and quotas and two plans
// computed side by side for one shared resource could undo each other.
// What other loops need is read from a PeerIndex, which a resync's listing
// replaces and every read of a loop updates, in the order of the reads.
//
// # Errors
//
// A failure is recorded on the loop (state FAILED, or still DELETING, with
// the Provisioned and InSync conditions False) and classified:
//
//   - Terminal — provisioning.TerminalReason says so (authorization or
//     authentication failures, invalid configs, policy violations of the
//     cluster, a foreign topic), or the plan has problems (TopicNotOwned,
//     PlanRefused), or the loop's cluster is unknown (NoCluster). The
//     condition's reason names the class and its message the error. The
//     loop is parked: not retried until its spec changes (generation), it
//     is deleted, Retry is called, the process restarts (a catalog change
//     needs a restart) or Options.ParkedRecheck (10 minutes) has passed
//     since it was parked; resyncs skip it meanwhile.
//   - Retriable — everything else (network, timeouts, brokers or the
//     controller unavailable, coordinators loading, store errors): retried
//     with exponential backoff and full jitter (a random delay up to
//     Options.Backoff × 2^(failures-1), capped at Options.MaxBackoff).
//
// # Lifecycle
//
// Run owns every goroutine and timer of the reconciler and returns only
// once all of them stopped; a reconcile in flight when Run's context ends
// finishes, or is cut after Options.ShutdownGrace (see Run). Enqueue never
// blocks and does nothing outside Run, so store subscribers may call it at
// any time.
//
// Status writes are guarded by generation: a reconcile of generation G never
// overwrites the status of a newer generation written meanwhile.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Actor is the audit actor of everything the reconciler does.
const Actor = "loopgate/reconciler"

// Defaults of Options.
const (
	DefaultResync        = 30 * time.Second
	DefaultWorkers       = 4
	DefaultParkedRecheck = 10 * time.Minute
	DefaultBackoff       = 100 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultShutdownGrace = 10 * time.Second
	// DefaultFullResyncEvery: every 10th resync (5 minutes at the default
	// interval) lists the store.
	DefaultFullResyncEvery = 10
)

// Reconciler converges clusters to the persisted desired state.
type Reconciler struct {
	store   store.Store
	catalog *catalog.Catalog
	admins  map[string]provisioning.Admin // by cluster name; read-write
	peers   *PeerIndex
	drift   driftReports
	passes  int // resyncs of the current Run (Run's goroutine only)
	log     *slog.Logger
	now     func() time.Time
	opts    Options

	// clusters holds one token per cluster: a batch converging loops of a
	// cluster holds it (see the package doc, Concurrency).
	clusters map[string]chan struct{}

	running atomic.Bool // Enqueue is a no-op while no Run is active

	mu       sync.Mutex
	queued   map[string]bool      // keys waiting in the queue
	inflight map[string]bool      // keys being reconciled
	dirty    map[string]bool      // keys enqueued again while in flight
	failures map[string]int       // consecutive retriable failures, for backoff
	retryAt  map[string]time.Time // retries due, armed by the running Run
	parked   map[string]park      // loops parked by a terminal error
	queue    chan string
	wake     chan struct{} // tells Run that retryAt changed
}

// Options tunes a Reconciler.
type Options struct {
	Resync  time.Duration // 0 = 30s; how often every loop is re-checked
	Workers int           // 0 = 4; batches reconciled in parallel (never the same loop twice)
	// BatchSize caps how many queued loops one worker reconciles together
	// (see ReconcileBatch); 0 = DefaultBatchSize, 1 = one loop at a time.
	BatchSize int
	// ParkedRecheck is how long a loop parked by a terminal error waits
	// before it is tried again although nothing changed; 0 = 10 minutes.
	ParkedRecheck time.Duration
	// Backoff is the first retry's maximum delay after a retriable failure
	// (0 = 100ms); it doubles with every further failure up to MaxBackoff
	// (0 = 30s). The actual delay is uniformly random below it.
	Backoff, MaxBackoff time.Duration
	// ShutdownGrace is how long Run lets the reconciles in flight finish
	// after its context ended before it cuts them; 0 = 10s.
	ShutdownGrace time.Duration
	// FullResyncEvery makes every n-th resync list the store rather than
	// read the peer index (see resync); 0 = DefaultFullResyncEvery.
	FullResyncEvery int
	// Peers is the peer index to read and keep current; nil means one of
	// the reconciler's own. loopgate serve shares one with `:plan`.
	Peers  *PeerIndex
	Logger *slog.Logger
	Now    func() time.Time
	// Hooks observe passes and admin operations (metrics; observe.go).
	Hooks Hooks
}

// New returns a reconciler over the given per-cluster admin clients.
func New(st store.Store, cat *catalog.Catalog, admins map[string]provisioning.Admin, opts Options) *Reconciler {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Resync, DefaultResync)
	def(&opts.ParkedRecheck, DefaultParkedRecheck)
	def(&opts.Backoff, DefaultBackoff)
	def(&opts.MaxBackoff, DefaultMaxBackoff)
	def(&opts.ShutdownGrace, DefaultShutdownGrace)
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FullResyncEvery <= 0 {
		opts.FullResyncEvery = DefaultFullResyncEvery
	}
	if opts.Peers == nil {
		opts.Peers = NewPeerIndex(cat)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	clusters := map[string]chan struct{}{}
	for name := range admins {
		clusters[name] = make(chan struct{}, 1)
	}
	return &Reconciler{
		store: st, catalog: cat, admins: admins, peers: opts.Peers, log: opts.Logger, now: opts.Now, opts: opts,
		clusters: clusters,
		queued:   map[string]bool{}, inflight: map[string]bool{}, dirty: map[string]bool{},
		failures: map[string]int{}, retryAt: map[string]time.Time{}, parked: map[string]park{},
		queue: make(chan string, 1<<16), wake: make(chan struct{}, 1),
	}
}

// Enqueue asks for key ("team/name") to be reconciled soon. Enqueueing a key
// that is already waiting is a no-op; one being reconciled runs again after.
// It never blocks, and is a no-op while Run is not running (Run enqueues
// every loop when it starts), so a store subscriber may call it at any time.
func (r *Reconciler) Enqueue(key string) {
	if !r.running.Load() {
		return
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
//
// Run owns everything it starts — its workers, the resync ticker, the retry
// timer — and returns only once all of it stopped: no goroutine of the
// reconciler runs and no timer is armed after Run returned. When ctx ends,
// Run takes no new work and lets the reconciles in flight finish: their
// admin operations and status writes run under a context that is not
// cancelled with ctx, so an apply is not cut between the cluster and its
// audit record. After Options.ShutdownGrace that context is cancelled too
// and the remaining reconciles end with it (the next Run converges what
// they left). Retries scheduled by backoff belong to the Run that
// scheduled them; parked loops stay parked across Runs of one Reconciler.
//
// Run returns nil when ctx ends. It must not be called while another Run of
// the same Reconciler is running; it may be called again after (a
// process that loses and wins back a lease does).
func (r *Reconciler) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("reconciler: Run is already running")
	}
	defer r.running.Store(false)
	work, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()

	// Fill the peer index before the first reconcile needs it: the first
	// pass of a Run lists the store.
	r.passes = 0
	r.resync(ctx)
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() { r.work(ctx, work) })
	}
	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stop(&wg, cut)
			r.mu.Lock()
			clear(r.retryAt)
			r.mu.Unlock()
			return nil
		case <-resync.C:
			r.resync(ctx)
		case <-retry.C:
			r.retryDue()
		case <-r.wake:
		}
		r.armRetry(retry)
	}
}

// stop waits for the workers, cutting their reconciles after the grace.
func (r *Reconciler) stop(wg *sync.WaitGroup, cut context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	grace := time.NewTimer(r.opts.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		r.log.Warn("reconciles still in flight at the shutdown deadline; cancelling them", "grace", r.opts.ShutdownGrace)
		cut()
		<-done
	}
}

// work takes every key waiting in the queue (up to the batch size) and
// reconciles them together under the work context, then requeues what
// failed (with backoff) and what was enqueued again meanwhile. It returns
// when ctx (Run's) ends, after the batch in flight.
func (r *Reconciler) work(ctx, work context.Context) {
	for {
		keys := r.take(ctx)
		if keys == nil {
			return
		}
		start := time.Now()
		res := r.reconcile(work, keys, true)
		r.observeBatch(keys, res, time.Since(start))
		r.settle(ctx, keys, res)
	}
}

// take waits for a key and returns it with the others waiting (up to the
// batch size), marked in flight; nil once ctx ended.
func (r *Reconciler) take(ctx context.Context) []string {
	var first string
	select {
	case <-ctx.Done():
		return nil
	case first = <-r.queue:
	}
	keys := []string{first}
drain:
	for len(keys) < r.opts.BatchSize {
		select {
		case k := <-r.queue:
			keys = append(keys, k)
		default:
			break drain
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range keys {
		delete(r.queued, key)
		delete(r.retryAt, key) // this reconcile is the retry
	}
	if ctx.Err() != nil {
		return nil // dropped: the next Run enqueues every loop
	}
	for _, key := range keys {
		r.inflight[key] = true
	}
	return keys
}

// settle schedules what comes after a batch: a key enqueued again meanwhile
// (or whose loop changed under the reconcile) runs again now, a retriable
// failure after its backoff, a terminal one not at all (it is parked).
// Nothing is scheduled once ctx (Run's) ended.
func (r *Reconciler) settle(ctx context.Context, keys []string, res batchResult) {
	for _, key := range keys {
		err := res.errs[key]
		terminal := IsTerminal(err)
		r.mu.Lock()
		delete(r.inflight, key)
		again := r.dirty[key] || res.again[key]
		delete(r.dirty, key)
		var delay time.Duration
		if err != nil && !terminal {
			r.failures[key]++
			delay = backoff(r.failures[key], r.opts.Backoff, r.opts.MaxBackoff)
		} else {
			delete(r.failures, key)
		}
		r.mu.Unlock()

		if ctx.Err() != nil {
			continue
		}
		switch {
		case again:
			r.Enqueue(key)
		case terminal:
			r.log.Warn("reconcile failed with a terminal error; loop parked until it changes",
				"loop", key, "recheck", r.opts.ParkedRecheck, "err", err)
		case err != nil:
			r.log.Warn("reconcile failed; will retry", "loop", key, "backoff", delay, "err", err)
			r.retryAfter(key, delay)
		}
	}
}

// Reconcile converges one loop. It is safe to call at any time, any number
// of times: an unchanged, converged loop yields an empty plan and no writes.
// It ignores parking (an explicit call is an explicit retry).
func (r *Reconciler) Reconcile(ctx context.Context, key string) error {
	return r.ReconcileBatch(ctx, []string{key})[key]
}

// awaitingApproval reports whether the loop's current generation needs an
// approval it does not have.
func awaitingApproval(l *loop.Loop) bool {
	return l.Status.NeedsApproval && l.Status.ApprovedGeneration < l.Metadata.Generation
}

// deleting reports whether the loop's deletion was requested.
func deleting(l *loop.Loop) bool { return !l.Metadata.DeleteTime.IsZero() }

// sameDesired reports whether a and b are the same desired state of one
// loop: the same incarnation (UID), generation and deletion. Labels and
// status may differ.
func sameDesired(a, b *loop.Loop) bool {
	return a.Metadata.UID == b.Metadata.UID && a.Metadata.Generation == b.Metadata.Generation &&
		a.Metadata.DeleteTime.Equal(b.Metadata.DeleteTime)
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
// For a loop being deleted, stray ACLs are observed too (see the package
// doc).
func Compute(ctx context.Context, peers Peers, admin provisioning.Admin, l *loop.Loop, cl catalog.Cluster) (Computed, error) {
	desired, want, err := desiredState(ctx, peers, l, cl)
	if err != nil {
		return Computed{}, err
	}
	observed, err := admin.Observe(ctx, want)
	if err != nil {
		return Computed{}, fmt.Errorf("observing cluster %s: %w", cl.Name, err)
	}
	strays, err := strayACLs(ctx, admin, peers, l, cl)
	if err != nil {
		return Computed{}, fmt.Errorf("observing cluster %s: %w", cl.Name, err)
	}
	observed = withStrays(observed, strays)
	return Computed{Desired: desired, Observed: observed, Plan: planFor(l, desired, observed)}, nil
}

// ComputeBatch is Compute for several loops of one cluster, with one
// Observe for all of them: each loop's observation is cut out of it
// exactly as Observe would return it alone (see restrict), so each result
// equals what Compute returns for that loop. `:batchPlan` uses it.
func ComputeBatch(ctx context.Context, peers Peers, admin provisioning.Admin, loops []*loop.Loop, cl catalog.Cluster) ([]Computed, error) {
	items := make([]*item, len(loops))
	for i, l := range loops {
		desired, want, err := desiredState(ctx, peers, l, cl)
		if err != nil {
			return nil, err
		}
		strays, err := strayACLs(ctx, admin, peers, l, cl)
		if err != nil {
			return nil, fmt.Errorf("observing cluster %s: %w", cl.Name, err)
		}
		items[i] = &item{key: l.Metadata.Key(), l: l, cl: cl, desired: desired, want: want, strays: strays}
	}
	if len(items) == 0 {
		return nil, nil
	}
	observed, err := admin.Observe(ctx, unionOf(items))
	if err != nil {
		return nil, fmt.Errorf("observing cluster %s: %w", cl.Name, err)
	}
	obs := indexObservation(observed)
	out := make([]Computed, len(items))
	for i, it := range items {
		o := withStrays(obs.cut(it.want), it.strays)
		out[i] = Computed{Desired: it.desired, Observed: o, Plan: planFor(it.l, it.desired, o)}
	}
	return out, nil
}

// ReasonTopicNotOwned is the plan problem of a desired topic that exists on
// the cluster but that loopgate did not create for this loop.
const ReasonTopicNotOwned = provisioning.ReasonTopicNotOwned

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

// desiredState is Compute before observing: the desired resources of l on
// cl, and want, what Observe must read to plan them (desired plus the
// loop's whole scope, so that what it no longer needs is found).
func desiredState(ctx context.Context, peers Peers, l *loop.Loop, cl catalog.Cluster) (desired, want provisioning.Resources, err error) {
	last := provisioning.Derive(l, cl) // the current spec's, or a deleted loop's last
	var own provisioning.Resources
	if !deleting(l) {
		own = last
	}
	scope := scopeOf(l, last)

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

// scopeOf is every name l may hold on its cluster: what its inventory and
// its spec (last, derived from it) name. A loop being deleted keeps its
// last spec's groups and principals in scope, so that what was provisioned
// but never recorded is still found; its topics are its inventory's only,
// because a topic its spec names that loopgate never claimed belongs to
// someone else (see planFor).
func scopeOf(l *loop.Loop, last provisioning.Resources) scope {
	names := inventoryOf(last)
	topics := l.Status.Inventory.Topics
	if !deleting(l) {
		topics = union(names.Topics, topics)
	}
	return scope{
		topics:     union(topics, nil),
		groups:     union(names.Groups, l.Status.Inventory.Groups),
		principals: union(names.Principals, l.Status.Inventory.Principals),
	}
}

// strayACLs finds, for a loop being deleted, ACLs on the cluster that belong
// to it although neither its inventory nor its last spec names their
// resource: bindings of its principals that no other live loop on the
// cluster names, on a topic or group of the loop's own namespace
// ("team.loop."; its topics and default consumer groups are named so).
// Only an incomplete inventory (one written before claims existed) can miss
// them. It costs one DescribeACLs per such principal and only asks admins
// that implement provisioning.PrincipalObserver; a live loop has none.
func strayACLs(ctx context.Context, admin provisioning.Admin, peers Peers, l *loop.Loop, cl catalog.Cluster) ([]provisioning.ACL, error) {
	po, ok := admin.(provisioning.PrincipalObserver)
	if !deleting(l) || !ok {
		return nil, nil
	}
	others, err := peers.Others(ctx, l, cl)
	if err != nil {
		return nil, err
	}
	used := principalsOf(others)
	var orphans []string
	for _, p := range union(l.Status.Inventory.Principals, inventoryOf(provisioning.Derive(l, cl)).Principals) {
		if !used[p] {
			orphans = append(orphans, p)
		}
	}
	if len(orphans) == 0 {
		return nil, nil
	}
	acls, err := po.ObservePrincipalACLs(ctx, orphans)
	if err != nil {
		return nil, err
	}
	namespace := provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, "")
	var out []provisioning.ACL
	for _, a := range acls {
		if (a.ResourceType == provisioning.ResourceTopic || a.ResourceType == provisioning.ResourceGroup) &&
			strings.HasPrefix(a.ResourceName, namespace) {
			out = append(out, a)
		}
	}
	return out, nil
}

// withStrays adds stray ACLs to an observation, sorted and without
// duplicates.
func withStrays(observed provisioning.Resources, strays []provisioning.ACL) provisioning.Resources {
	if len(strays) == 0 {
		return observed
	}
	observed.ACLs = append(slices.Clone(observed.ACLs), strays...)
	observed.Sort()
	observed.ACLs = slices.Compact(observed.ACLs)
	return observed
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

func sameInventory(a, b loop.Inventory) bool {
	return slices.Equal(union(a.Topics, nil), union(b.Topics, nil)) &&
		slices.Equal(union(a.Groups, nil), union(b.Groups, nil)) &&
		slices.Equal(union(a.Principals, nil), union(b.Principals, nil))
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
