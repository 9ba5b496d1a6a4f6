package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// DefaultBatchSize is how many queued loops a worker reconciles together
// when Options.BatchSize is 0.
const DefaultBatchSize = 256

// ReconcileBatch converges several loops together and returns the error of
// each loop that failed, by key (a converged loop has no entry; a failure
// is a *Failure). It ignores parking, like Reconcile.
//
// Every loop gets exactly what Reconcile would give it alone — its own
// desired state, plan, intent event, result event and status, with the
// same generation guard, approval hold and deletion handling — but the
// loops of one cluster share the expensive steps:
//
//   - one Observe for the union of their scopes, from which each loop's
//     observation is cut out exactly as Observe would return it alone;
//   - one transaction re-reading every loop, claiming its inventory and
//     recording its intent event;
//   - one Execute with every loop's actions (an action several loops plan
//     identically, e.g. a shared quota, runs once and its result is
//     recorded for each of them);
//   - one transaction writing every loop's result event and status.
//
// A loop whose actions contradict another loop's in the batch (two
// different actions on one resource) is not executed with the batch: it is
// reconciled alone afterwards, observing the cluster again, as it would be
// if reconciled after the others one by one. A loop that changed between
// its read and its intent transaction is not executed at all: the worker
// reconciles it again from the fresh copy.
func (r *Reconciler) ReconcileBatch(ctx context.Context, keys []string) map[string]error {
	return r.reconcile(ctx, keys, false).errs
}

// batchResult is the outcome of reconcile.
type batchResult struct {
	errs  map[string]error // failed loops, by key
	again map[string]bool  // loops that changed during the reconcile: run again now
}

// reconcile is ReconcileBatch; with honourParks, loops parked by a
// terminal error whose desired state did not change are skipped.
func (r *Reconciler) reconcile(ctx context.Context, keys []string, honourParks bool) batchResult {
	errs := map[string]error{}
	var (
		items    []*item
		clusters []string // cluster names in first-seen order
		byClust  = map[string][]*item{}
		seen     = map[string]bool{}
	)
	// Read every loop and update the peer index before computing any
	// desired state, so that all loops of the batch see each other.
	for _, key := range keys {
		if seen[key] {
			continue
		}
		seen[key] = true
		team, name, ok := strings.Cut(key, "/")
		if !ok {
			errs[key] = fmt.Errorf("bad loop key %q: want team/name", key)
			continue
		}
		stamp := r.peers.Stamp()
		l, err := r.store.GetLoop(ctx, team, name)
		if errors.Is(err, store.ErrNotFound) {
			r.peers.RemoveAt(stamp, key)
			r.unpark(key)
			continue // deleted meanwhile: nothing to converge
		}
		if err != nil {
			errs[key] = fmt.Errorf("reading loop %s: %w", key, err)
			continue
		}
		r.peers.PutAt(stamp, l)
		if honourParks && r.parkHolds(key, l) {
			continue
		}
		items = append(items, &item{key: key, l: l})
	}
	for _, it := range items {
		l := it.l
		if !deleting(l) && awaitingApproval(l) {
			continue // invariant 1: nothing unapproved reaches a cluster
		}
		cl, err := r.clusterOf(l)
		if err != nil {
			errs[it.key] = r.fail(ctx, l, ReasonNoCluster, &terminalError{reason: ReasonNoCluster, err: err}, nil, nil)
			continue
		}
		if r.admins[cl.Name] == nil {
			errs[it.key] = r.fail(ctx, l, ReasonNoCluster,
				&terminalError{reason: ReasonNoCluster, err: fmt.Errorf("no admin client for cluster %q", cl.Name)}, nil, nil)
			continue
		}
		it.cl = cl
		if byClust[cl.Name] == nil {
			clusters = append(clusters, cl.Name)
		}
		byClust[cl.Name] = append(byClust[cl.Name], it)
	}
	again := map[string]bool{}
	for _, name := range clusters {
		deferred := r.converge(ctx, r.admins[name], byClust[name], errs)
		for _, it := range deferred {
			sub := r.reconcile(ctx, []string{it.key}, honourParks)
			if err := sub.errs[it.key]; err != nil {
				errs[it.key] = err
			}
			if sub.again[it.key] {
				again[it.key] = true
			}
		}
	}

	for key, err := range errs {
		if errors.Is(err, errSuperseded) {
			delete(errs, key)
			again[key] = true
		}
	}
	for _, it := range items {
		switch err := errs[it.key]; {
		case IsTerminal(err):
			r.park(it.key, it.l)
		case err == nil && !again[it.key]:
			r.unpark(it.key)
		}
		// The index learns the status just written (READY, FAILED), so
		// that the next drift pass compares a converged loop instead of
		// reconciling it again.
		if err := r.peers.Refresh(ctx, r.store, it.key); err != nil && ctx.Err() == nil {
			r.log.Warn("refreshing the peer index failed; the next full resync corrects it", "loop", it.key, "err", err)
		}
	}
	return batchResult{errs: errs, again: again}
}

// item is one loop of a batch on its way through converge.
type item struct {
	key     string
	l       *loop.Loop
	cl      catalog.Cluster
	desired provisioning.Resources
	want    provisioning.Resources
	strays  []provisioning.ACL // stray ACLs of a loop being deleted (see strayACLs)
	plan    provisioning.PlanResult
	actions []int // indexes of the loop's actions in the batch's Execute
	results []provisioning.OpResult
	unclaim []string // topics whose create met a foreign topic
	done    bool     // an outcome (error or failure status) is already recorded
}

// lockCluster takes the cluster's token: one batch per cluster at a time.
func (r *Reconciler) lockCluster(ctx context.Context, name string) (release func(), err error) {
	token := r.clusters[name]
	if token == nil {
		return func() {}, nil
	}
	select {
	case token <- struct{}{}:
		return func() { <-token }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// converge reconciles loops that all live on the cluster admin manages,
// recording each loop's error in errs. It returns the loops it deferred
// because their plans contradict another loop's.
func (r *Reconciler) converge(ctx context.Context, admin provisioning.Admin, items []*item, errs map[string]error) (deferred []*item) {
	cl := items[0].cl
	release, err := r.lockCluster(ctx, cl.Name)
	if err != nil {
		for _, it := range items {
			errs[it.key] = fmt.Errorf("waiting for cluster %s: %w", cl.Name, err)
		}
		return nil
	}
	defer release()

	start := time.Now()
	loops := make([]*loop.Loop, len(items))
	for i, it := range items {
		loops[i] = it.l
	}
	peers := newBatchPeers(r.peers, loops)
	// failAll records that the cluster cannot be reached for every loop of
	// the batch not yet decided, and ends the batch.
	failAll := func(cause error) []*item {
		for _, it := range items {
			if _, decided := errs[it.key]; !decided && !it.done {
				errs[it.key] = r.fail(ctx, it.l, ReasonClusterUnreachable, unreachable(cl.Name, cause), nil, nil)
				it.done = true
			}
		}
		return nil
	}
	var live []*item
	for _, it := range items {
		desired, want, err := desiredState(ctx, peers, it.l, it.cl)
		if err == nil {
			it.strays, err = strayACLs(ctx, admin, peers, it.l, it.cl)
		}
		if provisioning.Unreachable(err) {
			return failAll(err)
		}
		if err != nil {
			errs[it.key] = r.fail(ctx, it.l, ReasonObserveFailed, err, nil, nil)
			continue
		}
		it.desired, it.want = desired, want
		live = append(live, it)
	}
	if len(live) == 0 {
		return nil
	}
	observed, err := admin.Observe(ctx, unionOf(live))
	if provisioning.Unreachable(err) {
		return failAll(err)
	}
	if err != nil && len(live) > 1 {
		// One loop's resource may be what fails: observe each loop alone
		// so the others are not held back by it.
		for _, it := range live {
			obs, err := admin.Observe(ctx, it.want)
			if err != nil {
				errs[it.key] = r.fail(ctx, it.l, ReasonObserveFailed, fmt.Errorf("observing cluster %s: %w", cl.Name, err), nil, nil)
				it.done = true
				continue
			}
			it.plan = planFor(it.l, it.desired, withStrays(obs, it.strays))
		}
	} else if err != nil {
		it := live[0]
		errs[it.key] = r.fail(ctx, it.l, ReasonObserveFailed, fmt.Errorf("observing cluster %s: %w", cl.Name, err), nil, nil)
		return nil
	} else {
		obs := indexObservation(observed)
		for _, it := range live {
			it.plan = planFor(it.l, it.desired, withStrays(obs.cut(it.want), it.strays))
		}
	}
	observedIn := time.Since(start)

	// Plan problems refuse the loop; the others' actions are merged, each
	// distinct action once.
	var candidates []*item
	for _, it := range live {
		switch {
		case it.done:
		case len(it.plan.Problems) > 0:
			errs[it.key] = r.fail(ctx, it.l, ReasonPlanRefused, planRefusal(it.plan.Problems), nil, nil)
		default:
			candidates = append(candidates, it)
		}
	}
	_, planned, deferred := merge(candidates)

	// Intent first (invariant: recorded before any admin operation), and
	// only for loops still as they were planned.
	r.recordIntent(ctx, items, planned, errs)
	var run []*item
	for _, it := range planned {
		if !it.done {
			run = append(run, it)
		}
	}
	actions, run, _ := merge(run) // a subset: no new conflicts
	if len(actions) > 0 {
		results, execErr := admin.Execute(ctx, actions)
		r.observeActions(actions, results, execErr)
		r.attribute(ctx, run, actions, results, execErr, errs)
	}
	executedIn := time.Since(start) - observedIn

	var finish []*item
	for _, it := range run {
		if !it.done {
			finish = append(finish, it)
		}
	}
	r.finish(ctx, finish, errs)
	r.log.Debug("reconciled batch", "cluster", cl.Name, "loops", len(items), "actions", len(actions),
		"deferred", len(deferred), "observe", observedIn, "execute", executedIn, "total", time.Since(start))
	return deferred
}

// merge collects the actions of items, each distinct action once, setting
// every merged item's indexes into them. An item with an action that
// contradicts one already collected (two different actions on one
// resource) is left out, in conflicting.
func merge(items []*item) (actions []provisioning.Action, merged, conflicting []*item) {
	index := map[string]int{}       // exact action -> index in actions
	resource := map[string]string{} // resource -> exact action planned for it
	for _, it := range items {
		keys := make([]string, len(it.plan.Actions))
		conflict := false
		for i, a := range it.plan.Actions {
			keys[i] = actionKey(a)
			if prev, ok := resource[a.Resource]; ok && prev != keys[i] {
				conflict = true
			}
		}
		if conflict {
			conflicting = append(conflicting, it)
			continue
		}
		it.actions = it.actions[:0]
		for i, a := range it.plan.Actions {
			idx, ok := index[keys[i]]
			if !ok {
				idx = len(actions)
				actions = append(actions, a)
				index[keys[i]] = idx
				resource[a.Resource] = keys[i]
			}
			it.actions = append(it.actions, idx)
		}
		merged = append(merged, it)
	}
	return actions, merged, conflicting
}

// recordIntent writes, in one transaction and before any admin operation
// of the batch, the claims of every live loop of the batch (whose whole
// share the batch's plans counted, see batchPeers) and the intent events
// of the planned loops that have actions (see claim). Nothing is written
// when no loop has actions: nothing will run. A planned loop that changed
// is marked done with errSuperseded. The peer index learns every loop as
// the transaction left it.
func (r *Reconciler) recordIntent(ctx context.Context, batch, planned []*item, errs map[string]error) {
	acting := map[*item]bool{}
	for _, it := range planned {
		if len(it.plan.Actions) > 0 {
			acting[it] = true
		}
	}
	if len(acting) == 0 {
		return
	}
	stamp := r.peers.Stamp()
	fresh := map[*item]*loop.Loop{}
	stale := map[*item]bool{}
	err := r.store.Update(ctx, func(tx store.Tx) error {
		clear(fresh)
		clear(stale)
		for _, it := range batch {
			cur, ok, err := r.claim(ctx, tx, it, acting[it])
			if err != nil {
				return err
			}
			fresh[it], stale[it] = cur, !ok
		}
		return nil
	})
	if err != nil {
		for it := range acting {
			errs[it.key] = fmt.Errorf("recording the intent to provision %s: %w", it.key, err)
			it.done = true
		}
		return
	}
	for it, cur := range fresh {
		if cur == nil {
			r.peers.RemoveAt(stamp, it.key)
		} else {
			r.peers.PutAt(stamp, cur)
		}
		if acting[it] && stale[it] {
			errs[it.key] = errSuperseded
			it.done = true
		}
	}
}

// attribute hands each loop the results of its own actions and records a
// failure on every loop one of whose actions failed.
func (r *Reconciler) attribute(ctx context.Context, planned []*item, actions []provisioning.Action, results []provisioning.OpResult, execErr error, errs map[string]error) {
	var ee *provisioning.ExecuteError
	causes := map[int]error{} // action index -> its error
	if errors.As(execErr, &ee) {
		unwrapped := ee.Unwrap()
		next := 0
		for i, res := range results {
			if res.Err != "" && next < len(unwrapped) {
				causes[i] = unwrapped[next]
				next++
			}
		}
	}
	for _, it := range planned {
		if len(it.actions) == 0 {
			continue
		}
		it.results = make([]provisioning.OpResult, len(it.actions))
		var failed []provisioning.OpResult
		var why []error
		for j, idx := range it.actions {
			if idx < len(results) {
				it.results[j] = results[idx]
			} else {
				it.results[j] = provisioning.OpResult{Kind: actions[idx].Kind, Resource: actions[idx].Resource, Op: string(actions[idx].Kind)}
			}
			if it.results[j].Err != "" {
				failed = append(failed, it.results[j])
				if c := causes[idx]; c != nil {
					why = append(why, c)
					if a := actions[idx]; a.Kind == provisioning.CreateTopic && a.Topic != nil && errors.Is(c, provisioning.ErrTopicExists) {
						it.unclaim = append(it.unclaim, a.Topic.Name)
					}
				}
			}
		}
		var cause error
		reason := ReasonKafkaError
		switch {
		case firstUnreachableOf(why) != nil:
			cause, reason = unreachable(it.cl.Name, firstUnreachableOf(why)), ReasonClusterUnreachable
		case len(planned) == 1 && execErr != nil:
			cause = execErr // the loop's own error, exactly as Execute said it
		case len(failed) > 0:
			cause = &loopExecError{ExecuteError: &provisioning.ExecuteError{Failed: failed}, causes: why}
		case execErr != nil && ee == nil:
			cause = execErr // not about single actions (e.g. the context ended)
		}
		if cause != nil {
			errs[it.key] = r.fail(ctx, it.l, reason, cause, it.results, it.unclaim)
			it.done = true
		}
	}
}

// loopExecError is the part of a batch's *provisioning.ExecuteError that
// concerns one loop: it reads like one and unwraps to it and to the causes
// of the loop's own failed operations.
type loopExecError struct {
	*provisioning.ExecuteError
	causes []error
}

func (e *loopExecError) Unwrap() []error {
	return append([]error{e.ExecuteError}, e.causes...)
}

// finish writes each loop's result event and status (or deletes a
// deprovisioned loop) in one transaction. Should that transaction fail, each
// loop is finished in a transaction of its own, so that the error is the
// right loop's.
func (r *Reconciler) finish(ctx context.Context, items []*item, errs map[string]error) {
	if len(items) == 0 {
		return
	}
	superseded := map[*item]bool{}
	finishOne := func(tx store.Tx, it *item) error {
		var stale bool
		var err error
		if deleting(it.l) {
			stale, err = r.finishDelete(ctx, tx, it.l, it.cl, it.results)
		} else {
			stale, err = r.finishApply(ctx, tx, it.l, it.cl, it.results)
		}
		superseded[it] = stale
		return err
	}
	record := func() {
		for it, stale := range superseded {
			if stale {
				errs[it.key] = errSuperseded
			}
		}
	}
	err := r.store.Update(ctx, func(tx store.Tx) error {
		clear(superseded)
		for _, it := range items {
			if err := finishOne(tx, it); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		record()
		return
	}
	if len(items) == 1 {
		errs[items[0].key] = err
		return
	}
	for _, it := range items {
		clear(superseded)
		if err := r.store.Update(ctx, func(tx store.Tx) error { return finishOne(tx, it) }); err != nil {
			errs[it.key] = err
			continue
		}
		record()
	}
}

// actionKey identifies an action exactly: two loops planning the same key
// need one admin operation.
func actionKey(a provisioning.Action) string {
	b, _ := json.Marshal(a)
	return string(b)
}

// unionOf is what one Observe must read for every loop of items.
func unionOf(items []*item) provisioning.Resources {
	var out provisioning.Resources
	topics := map[string]int{}
	type res struct{ typ, name string }
	acls := map[res]bool{}
	quotas := map[string]bool{}
	for _, it := range items {
		for _, t := range it.want.Topics {
			i, ok := topics[t.Name]
			if !ok {
				topics[t.Name] = len(out.Topics)
				out.Topics = append(out.Topics, provisioning.Topic{Name: t.Name, Configs: maps.Clone(managedConfigs(t))})
				continue
			}
			maps.Copy(out.Topics[i].Configs, managedConfigs(t))
		}
		for _, a := range it.want.ACLs {
			k := res{a.ResourceType, a.ResourceName}
			if !acls[k] {
				acls[k] = true
				out.ACLs = append(out.ACLs, provisioning.ACL{ResourceType: a.ResourceType, ResourceName: a.ResourceName})
			}
		}
		for _, q := range it.want.Quotas {
			if !quotas[q.Principal] {
				quotas[q.Principal] = true
				out.Quotas = append(out.Quotas, provisioning.Quota{Principal: q.Principal})
			}
		}
	}
	return out
}

// managedConfigs is the set of config keys Observe reads for t, as a map
// (only the keys matter).
func managedConfigs(t provisioning.Topic) map[string]string {
	if len(t.Configs) > 0 {
		return t.Configs
	}
	m := map[string]string{}
	for _, k := range provisioning.DefaultManagedConfigs {
		m[k] = ""
	}
	return m
}

// restrict cuts out of a union observation exactly what Observe(want)
// would have returned: want's topics with want's managed config keys, the
// ACLs on want's topics and ACL resources, and the quotas of want's user
// principals.
func restrict(all provisioning.Resources, want provisioning.Resources) provisioning.Resources {
	return indexObservation(all).cut(want)
}

// cut is restrict over an indexed observation: it visits want's resources
// only, so cutting every loop of a cluster out of one observation costs
// what the loops hold, not loops × cluster.
func (o *observation) cut(want provisioning.Resources) provisioning.Resources {
	var out provisioning.Resources
	topicKeys := map[string]map[string]string{}
	resources := map[resourceKey]bool{}
	var order []resourceKey
	addResource := func(k resourceKey) {
		if !resources[k] {
			resources[k] = true
			order = append(order, k)
		}
	}
	var topicOrder []string
	for _, t := range want.Topics {
		if topicKeys[t.Name] == nil {
			topicKeys[t.Name] = map[string]string{}
			topicOrder = append(topicOrder, t.Name)
		}
		maps.Copy(topicKeys[t.Name], managedConfigs(t))
		addResource(resourceKey{provisioning.ResourceTopic, t.Name})
	}
	for _, a := range want.ACLs {
		if a.ResourceType != "" && a.ResourceName != "" {
			addResource(resourceKey{a.ResourceType, a.ResourceName})
		}
	}
	for _, name := range topicOrder {
		t, ok := o.topics[name]
		if !ok {
			continue
		}
		keys := topicKeys[name]
		c := t
		c.Configs = map[string]string{}
		for k, v := range t.Configs {
			if _, ok := keys[k]; ok {
				c.Configs[k] = v
			}
		}
		out.Topics = append(out.Topics, c)
	}
	for _, k := range order {
		out.ACLs = append(out.ACLs, o.acls[k]...)
	}
	seen := map[string]bool{}
	for _, q := range want.Quotas {
		name, ok := strings.CutPrefix(q.Principal, "User:") // Observe reads user quotas only
		if !ok || name == "" || seen[q.Principal] {
			continue
		}
		seen[q.Principal] = true
		if got, ok := o.quotas[q.Principal]; ok {
			out.Quotas = append(out.Quotas, got)
		}
	}
	out.Sort()
	return out
}

// firstUnreachableOf returns the first error of errs that says the cluster
// cannot be reached.
func firstUnreachableOf(errs []error) error {
	for _, err := range errs {
		if provisioning.Unreachable(err) {
			return err
		}
	}
	return nil
}
