package reconciler

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// A resync is a drift pass: it lists the store once, and for each cluster
// it derives the desired state of every converged loop from memory,
// observes the cluster with one Observe for all of them (a fixed number of
// batched admin requests: one Metadata, one DescribeConfigs, one
// DescribeACLs, one DescribeClientQuotas, whatever the number of loops),
// and plans each loop against its cut of that observation. Only loops
// whose plan is not empty are enqueued; their reconcile repairs the drift
// (with its intent and result events, and the InSync condition's reason
// DriftCorrected). A converged cluster costs the pass no store write and no
// reconcile. Loops that are not converged (pending, failed and due for a
// retry, being deleted) are enqueued as before.

// MaxDriftedNamed bounds how many drifted loops a DriftReport names.
const MaxDriftedNamed = 20

// DriftReport is what the last drift pass found on one cluster.
type DriftReport struct {
	Cluster  string
	Start    time.Time
	Duration time.Duration // the whole pass for this cluster
	Observe  time.Duration // of which observing the cluster
	Loops    int           // converged loops compared with the cluster
	Drifted  int           // of which differ from the cluster: enqueued for repair
	// Names are the first MaxDriftedNamed drifted loops ("team/name").
	Names []string
	// Unsettled is how many loops of the cluster were enqueued because
	// they are not converged (pending, failed, being deleted).
	Unsettled int
	// Err is why the pass could not observe the cluster ("" if it could);
	// the cluster's loops were then enqueued to find out each one's state.
	Err string
	// LastDriftAt and LastDrifted are the start and the drifted loops of
	// the last pass of this process that found drift on the cluster (this
	// one or an earlier one); zero if none did.
	LastDriftAt time.Time
	LastDrifted []string
}

// driftReports keeps the last report of each cluster.
type driftReports struct {
	mu   sync.Mutex
	last map[string]DriftReport
}

func (d *driftReports) put(rep DriftReport) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[string]DriftReport{}
	}
	if rep.Drifted > 0 {
		rep.LastDriftAt, rep.LastDrifted = rep.Start, rep.Names
	} else if prev, ok := d.last[rep.Cluster]; ok {
		rep.LastDriftAt, rep.LastDrifted = prev.LastDriftAt, prev.LastDrifted
	}
	d.last[rep.Cluster] = rep
}

// DriftReports returns the last drift pass's report of every cluster
// (empty until a pass ran in this process: only the process that runs the
// reconciler makes passes).
func (r *Reconciler) DriftReports() []DriftReport {
	r.drift.mu.Lock()
	defer r.drift.mu.Unlock()
	out := make([]DriftReport, 0, len(r.drift.last))
	for _, rep := range r.drift.last {
		rep.Names = slices.Clone(rep.Names)
		rep.LastDrifted = slices.Clone(rep.LastDrifted)
		out = append(out, rep)
	}
	slices.SortFunc(out, func(a, b DriftReport) int {
		switch {
		case a.Cluster < b.Cluster:
			return -1
		case a.Cluster > b.Cluster:
			return 1
		}
		return 0
	})
	return out
}

// settled reports whether l is converged as far as its status says: READY
// at its current generation, live. Such a loop needs a reconcile only if
// its cluster drifted; a drift pass finds out without reconciling it.
func settled(l *loop.Loop) bool {
	return !deleting(l) && l.Status.State == loop.StateReady && l.Status.ObservedGeneration == l.Metadata.Generation
}

// resync is one drift pass (see above): it lists every loop, makes the peer
// index what the listing found and enqueues every loop that is neither
// parked nor waiting for a retry and either is not converged or differs
// from its cluster.
//
// The loops come from the peer index, which every write of this process and
// every change another process publishes keeps current (see PeerIndex);
// every Options.FullResyncEvery-th pass, and the first of each Run, lists
// the store instead and replaces the index with what it found, so that a
// change whose notification was lost (a dropped PostgreSQL connection) is
// picked up within that many passes.
func (r *Reconciler) resync(ctx context.Context) {
	var all []*loop.Loop
	if r.passes%r.opts.FullResyncEvery == 0 {
		var err error
		if all, err = r.peers.Load(ctx, r.store); err != nil {
			if ctx.Err() == nil {
				r.log.Error("resync: listing loops", "err", err)
			}
			return
		}
	} else {
		all = r.peers.Loops()
	}
	r.passes++
	byCluster := map[string][]*loop.Loop{}
	var clusters []string
	unsettled := map[string]int{}
	for _, l := range all {
		key := l.Metadata.Key()
		if r.parkHolds(key, l) || r.retryPending(key) {
			continue
		}
		if !deleting(l) && awaitingApproval(l) {
			continue // a reconcile would leave it alone too (invariant 1)
		}
		cl, err := r.clusterOf(l)
		if !settled(l) || err != nil || r.admins[cl.Name] == nil {
			r.Enqueue(key) // its reconcile records what is wrong
			if err == nil {
				unsettled[cl.Name]++
			}
			continue
		}
		if byCluster[cl.Name] == nil {
			clusters = append(clusters, cl.Name)
		}
		byCluster[cl.Name] = append(byCluster[cl.Name], l)
	}
	for _, name := range clusters {
		if ctx.Err() != nil {
			return
		}
		cl, _ := r.catalog.ClusterByName(name)
		rep := r.driftPass(ctx, cl, byCluster[name])
		rep.Unsettled = unsettled[name]
		r.drift.put(rep)
		r.observeDrift(rep)
		level := r.log.Debug
		if rep.Drifted > 0 || rep.Err != "" {
			level = r.log.Info
		}
		level("drift pass", "cluster", name, "loops", rep.Loops, "drifted", rep.Drifted, "unsettled", rep.Unsettled,
			"duration", rep.Duration, "observe", rep.Observe, "drifted_loops", rep.Names, "err", rep.Err)
	}
}

// driftPass compares the converged loops of one cluster with one
// observation of it and enqueues those that differ. It holds the cluster's
// token while it observes, so that no batch is half applied under it.
func (r *Reconciler) driftPass(ctx context.Context, cl catalog.Cluster, loops []*loop.Loop) DriftReport {
	start := time.Now()
	rep := DriftReport{Cluster: cl.Name, Start: start, Loops: len(loops)}
	defer func() { rep.Duration = time.Since(start) }()
	enqueueAll := func(err error) DriftReport {
		rep.Err = err.Error()
		for _, l := range loops {
			r.Enqueue(l.Metadata.Key())
		}
		rep.Duration = time.Since(start)
		return rep
	}

	items := make([]*item, 0, len(loops))
	for _, l := range loops {
		desired, want, err := desiredState(ctx, r.peers, l, cl)
		if err != nil {
			return enqueueAll(err)
		}
		items = append(items, &item{key: l.Metadata.Key(), l: l, cl: cl, desired: desired, want: want})
	}
	release, err := r.lockCluster(ctx, cl.Name)
	if err != nil {
		return enqueueAll(err)
	}
	obsStart := time.Now()
	observed, err := r.admins[cl.Name].Observe(ctx, unionOf(items))
	release()
	rep.Observe = time.Since(obsStart)
	if err != nil {
		return enqueueAll(fmt.Errorf("observing cluster %s: %w", cl.Name, err))
	}
	obs := indexObservation(observed)
	for _, it := range items {
		plan := planFor(it.l, it.desired, obs.cut(it.want))
		if len(plan.Actions) == 0 && len(plan.Problems) == 0 {
			continue
		}
		rep.Drifted++
		if len(rep.Names) < MaxDriftedNamed {
			rep.Names = append(rep.Names, it.key)
		}
		r.Enqueue(it.key)
	}
	rep.Duration = time.Since(start)
	return rep
}

// observation is one Observe's result indexed for cutting out what each
// loop's Observe would have returned (restrict), in time proportional to
// the loop's resources rather than the cluster's.
type observation struct {
	topics map[string]provisioning.Topic
	acls   map[resourceKey][]provisioning.ACL
	quotas map[string]provisioning.Quota
}

type resourceKey struct{ typ, name string }

func indexObservation(all provisioning.Resources) *observation {
	o := &observation{
		topics: make(map[string]provisioning.Topic, len(all.Topics)),
		acls:   map[resourceKey][]provisioning.ACL{},
		quotas: make(map[string]provisioning.Quota, len(all.Quotas)),
	}
	for _, t := range all.Topics {
		o.topics[t.Name] = t
	}
	for _, a := range all.ACLs {
		k := resourceKey{a.ResourceType, a.ResourceName}
		o.acls[k] = append(o.acls[k], a)
	}
	for _, q := range all.Quotas {
		o.quotas[q.Principal] = q
	}
	return o
}
