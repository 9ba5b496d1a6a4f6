package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Peers tells what the other loops on a cluster need, so that resources
// several loops share (a consumer group's ACL, a principal's quota) are
// neither removed while still needed nor sized for one loop only.
type Peers interface {
	// Others returns, for the other live loops on cl, the shareable
	// resources (group ACLs, quotas) a reconcile may provision and keep for
	// them (see claimedShare): at least every loop that names one of l's
	// principals or groups (its spec's or its inventory's) — the only ones
	// that can share anything with l. An implementation may return more.
	Others(ctx context.Context, l *loop.Loop, cl catalog.Cluster) ([]provisioning.Resources, error)
}

// isPeer reports whether p holds resources on a cluster: it is not being
// deleted and has been approved at least once (a loop awaiting its first
// approval has nothing on any cluster).
func isPeer(p *loop.Loop) bool {
	return p.Metadata.DeleteTime.IsZero() && !(awaitingApproval(p) && p.Status.ApprovedGeneration == 0)
}

// ClusterName is the cluster a loop lives on: the one recorded in its
// status, else the default cluster of its residency region.
func ClusterName(cat *catalog.Catalog, l *loop.Loop) string {
	if l.Status.Cluster != "" {
		return l.Status.Cluster
	}
	cl, err := cat.ClusterFor(l.Spec.Residency)
	if err != nil {
		return ""
	}
	return cl.Name
}

// StorePeers reads peers from a store, listing every loop: one pass over
// the store per call, for callers without a PeerIndex (tests, tools).
// loopgate serve keeps one PeerIndex that both `:plan` and the reconciler
// read.
type StorePeers struct {
	Store   store.Reader
	Catalog *catalog.Catalog
}

// Others implements Peers.
func (sp StorePeers) Others(ctx context.Context, l *loop.Loop, cl catalog.Cluster) ([]provisioning.Resources, error) {
	var out []provisioning.Resources
	token := ""
	for {
		page, next, err := sp.Store.ListLoops(ctx, store.ListOptions{PageSize: 1000, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing loops: %w", err)
		}
		for _, p := range page {
			if p.Metadata.Key() != l.Metadata.Key() && isPeer(p) && ClusterName(sp.Catalog, p) == cl.Name {
				out = append(out, claimedShare(p, cl))
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// claimedShare is what the reconcile of another loop on cl provisions and
// keeps for p: the group ACLs and quotas of p's spec (what loops can share)
// whose group and principal p has claimed in its inventory — or all of
// them when p's current generation is provisioned (READY), whose names are
// then in p's scope too.
//
// Only what p claimed counts: a name p's spec names but p never claimed
// (a generation superseded before it was applied) may be gone from p's
// spec before p's reconcile runs, and nothing would then remove a binding
// or quota made for it. What p needs but has not claimed yet, p's own
// reconcile provisions, after claiming it.
func claimedShare(p *loop.Loop, cl catalog.Cluster) provisioning.Resources {
	provisioned := p.Status.State == loop.StateReady && p.Status.ObservedGeneration == p.Metadata.Generation
	return shareOf(p, cl, provisioned)
}

// shareOf is the shareable part of p's derived resources: all of it, or
// only the part whose names p's inventory holds.
func shareOf(p *loop.Loop, cl catalog.Cluster, all bool) provisioning.Resources {
	derived := provisioning.Derive(p, cl)
	inv := p.Status.Inventory
	var out provisioning.Resources
	for _, a := range derived.ACLs {
		if a.ResourceType == provisioning.ResourceGroup &&
			(all || slices.Contains(inv.Groups, a.ResourceName) && slices.Contains(inv.Principals, a.Principal)) {
			out.ACLs = append(out.ACLs, a)
		}
	}
	for _, q := range derived.Quotas {
		if all || slices.Contains(inv.Principals, q.Principal) {
			out.Quotas = append(out.Quotas, q)
		}
	}
	return out
}

// principalsOf lists the principals the shared resources of peers name.
func principalsOf(peers []provisioning.Resources) map[string]bool {
	out := map[string]bool{}
	for _, p := range peers {
		for _, a := range p.ACLs {
			out[a.Principal] = true
		}
		for _, q := range p.Quotas {
			out[q.Principal] = true
		}
	}
	return out
}

// PeerIndex is the in-memory view of every loop's shareable resources, so
// that neither a reconcile nor a `:plan` lists the whole store: both read
// the same index (one code path computes both, see Compute). It is filled
// by a complete listing (Load, and each resync of the reconciler), and
// updated whenever a loop is read for reconciling and whenever a process
// commits or hears of a change (Refresh, from the store's change feed).
//
// Updates are ordered: each comes with a stamp taken (with Stamp) before
// the store read it reflects, and an update older than what the index
// already holds for the key is ignored. Otherwise a slow read could put
// back a loop that a later read saw deleted, and a deleted loop would be
// counted as a peer forever, keeping its share of a group ACL or quota on
// the cluster. A resync's listing replaces the index (Replace): keys it did
// not list are gone from the store.
type PeerIndex struct {
	catalog *catalog.Catalog
	mu      sync.RWMutex
	clock   uint64 // last stamp handed out
	floor   uint64 // the last Replace's stamp: older updates are stale
	byKey   map[string]peerEntry
	// byName indexes live entries by the names their share holds
	// ("p:"+principal, "g:"+group): a loop's peers are the entries naming
	// one of its principals or groups, found without visiting all N.
	byName map[string]map[string]struct{}
}

type peerEntry struct {
	stamp   uint64
	loop    *loop.Loop // as last read; nil once it is gone from the store
	live    bool       // false: the loop holds nothing on a cluster
	cluster string
	res     provisioning.Resources
}

// NewPeerIndex returns an empty index.
func NewPeerIndex(cat *catalog.Catalog) *PeerIndex {
	return &PeerIndex{catalog: cat, byKey: map[string]peerEntry{}, byName: map[string]map[string]struct{}{}}
}

// Stamp returns a stamp for an update: take it before reading the loop.
func (x *PeerIndex) Stamp() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.clock++
	return x.clock
}

// Put records the current state of l (a tombstone if it holds nothing), as
// read just now.
func (x *PeerIndex) Put(l *loop.Loop) { x.PutAt(x.Stamp(), l) }

// Remove forgets a loop, as just read to be gone.
func (x *PeerIndex) Remove(key string) { x.RemoveAt(x.Stamp(), key) }

// PutAt records l as read after stamp was taken, unless the index holds a
// newer view of it.
func (x *PeerIndex) PutAt(stamp uint64, l *loop.Loop) {
	x.set(stamp, l.Metadata.Key(), x.entry(l))
}

// RemoveAt records that key was read to be gone after stamp was taken.
func (x *PeerIndex) RemoveAt(stamp uint64, key string) {
	x.set(stamp, key, peerEntry{})
}

func (x *PeerIndex) entry(l *loop.Loop) peerEntry {
	e := peerEntryOf(x.catalog, l, false)
	e.loop = l
	return e
}

// peerEntryOf is l's entry: its claimed share, or with whole its whole
// share.
func peerEntryOf(cat *catalog.Catalog, l *loop.Loop, whole bool) peerEntry {
	if !isPeer(l) {
		return peerEntry{}
	}
	name := ClusterName(cat, l)
	cl, _ := cat.ClusterByName(name)
	res := claimedShare(l, cl)
	if whole {
		res = shareOf(l, cl, true)
	}
	return peerEntry{live: true, cluster: name, res: res}
}

func (x *PeerIndex) set(stamp uint64, key string, e peerEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if stamp < x.floor {
		return
	}
	cur, ok := x.byKey[key]
	if ok && cur.stamp > stamp {
		return
	}
	if ok {
		x.unindex(key, cur)
	}
	e.stamp = stamp
	x.byKey[key] = e
	x.index(key, e)
}

// namesOf lists the names an entry's share holds, as byName keys.
func namesOf(res provisioning.Resources) []string {
	var out []string
	for _, a := range res.ACLs {
		out = append(out, "p:"+a.Principal)
		if a.ResourceType == provisioning.ResourceGroup {
			out = append(out, "g:"+a.ResourceName)
		}
	}
	for _, q := range res.Quotas {
		out = append(out, "p:"+q.Principal)
	}
	return out
}

func (x *PeerIndex) index(key string, e peerEntry) {
	if !e.live {
		return
	}
	for _, n := range namesOf(e.res) {
		keys := x.byName[n]
		if keys == nil {
			keys = map[string]struct{}{}
			x.byName[n] = keys
		}
		keys[key] = struct{}{}
	}
}

func (x *PeerIndex) unindex(key string, e peerEntry) {
	for _, n := range namesOf(e.res) {
		if keys := x.byName[n]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(x.byName, n)
			}
		}
	}
}

// Replace makes the index what a complete listing of the store, started
// after stamp was taken, found: every listed loop, and nothing else, except
// keys updated by reads newer than the listing.
func (x *PeerIndex) Replace(stamp uint64, loops []*loop.Loop) {
	entries := make(map[string]peerEntry, len(loops))
	for _, l := range loops {
		e := x.entry(l)
		e.stamp = stamp
		entries[l.Metadata.Key()] = e
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, cur := range x.byKey {
		if cur.stamp > stamp {
			entries[k] = cur // read after the listing began: newer
		}
	}
	x.byKey = entries
	x.byName = map[string]map[string]struct{}{}
	for k, e := range entries {
		x.index(k, e)
	}
	x.floor = max(x.floor, stamp)
}

// Load makes the index what a complete listing of st finds now and
// returns the listed loops.
func (x *PeerIndex) Load(ctx context.Context, st store.Reader) ([]*loop.Loop, error) {
	stamp := x.Stamp()
	all, err := ListAll(ctx, st)
	if err != nil {
		return nil, err
	}
	x.Replace(stamp, all)
	return all, nil
}

// Refresh reads the loop key ("team/name") from st and records what it
// found. Processes call it for every change they commit or hear of (the
// store's change feed), so that `:plan` in any process sees the loops
// written a moment ago.
func (x *PeerIndex) Refresh(ctx context.Context, st store.Reader, key string) error {
	team, name, ok := strings.Cut(key, "/")
	if !ok {
		return fmt.Errorf("bad loop key %q: want team/name", key)
	}
	stamp := x.Stamp()
	l, err := st.GetLoop(ctx, team, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		x.RemoveAt(stamp, key)
	case err != nil:
		return fmt.Errorf("reading loop %s: %w", key, err)
	default:
		x.PutAt(stamp, l)
	}
	return nil
}

// Loops returns every loop the index holds, as last read, in key order.
// The loops are shared: callers must not modify them.
func (x *PeerIndex) Loops() []*loop.Loop {
	x.mu.RLock()
	out := make([]*loop.Loop, 0, len(x.byKey))
	for _, e := range x.byKey {
		if e.loop != nil {
			out = append(out, e.loop)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *loop.Loop) int { return strings.Compare(a.Metadata.Key(), b.Metadata.Key()) })
	return out
}

// Len is the number of loops the index holds (live or not).
func (x *PeerIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byKey)
}

// ListAll lists every loop of st, page by page.
func ListAll(ctx context.Context, st store.Reader) ([]*loop.Loop, error) {
	var all []*loop.Loop
	token := ""
	for {
		page, next, err := st.ListLoops(ctx, store.ListOptions{PageSize: store.MaxPageSize, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing loops: %w", err)
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

// Others implements Peers.
func (x *PeerIndex) Others(ctx context.Context, l *loop.Loop, cl catalog.Cluster) ([]provisioning.Resources, error) {
	return x.others(l, cl, nil), nil
}

// others is Others with the entries of over in place of the index's. Only
// entries that name one of l's principals or groups (its current spec's and
// its inventory's, the scope desiredState shares with peers) can matter, so
// only those are visited: a reconcile costs what the loop touches, not N.
func (x *PeerIndex) others(l *loop.Loop, cl catalog.Cluster, over map[string]peerEntry) []provisioning.Resources {
	key := l.Metadata.Key()
	var out []provisioning.Resources
	add := func(k string, e peerEntry) {
		if k != key && e.live && e.cluster == cl.Name {
			out = append(out, e.res)
		}
	}
	inv := inventoryOf(provisioning.Derive(l, cl))
	var names []string
	for _, p := range union(inv.Principals, l.Status.Inventory.Principals) {
		names = append(names, "p:"+p)
	}
	for _, g := range union(inv.Groups, l.Status.Inventory.Groups) {
		names = append(names, "g:"+g)
	}
	seen := map[string]bool{}
	x.mu.RLock()
	for _, n := range names {
		for k := range x.byName[n] {
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, ok := over[k]; !ok {
				add(k, x.byKey[k])
			}
		}
	}
	x.mu.RUnlock()
	for k, e := range over {
		add(k, e)
	}
	return out
}

// batchPeers is the peer index as one batch sees it: the batch's own loops
// count with their whole share, as just read, because the batch's intent
// transaction claims it for each of them before any admin operation runs
// (see claim); every other loop with its claimed share.
type batchPeers struct {
	index *PeerIndex
	batch map[string]peerEntry
}

func newBatchPeers(x *PeerIndex, loops []*loop.Loop) batchPeers {
	b := batchPeers{index: x, batch: map[string]peerEntry{}}
	for _, l := range loops {
		b.batch[l.Metadata.Key()] = peerEntryOf(x.catalog, l, true)
	}
	return b
}

// Others implements Peers.
func (b batchPeers) Others(_ context.Context, l *loop.Loop, cl catalog.Cluster) ([]provisioning.Resources, error) {
	return b.index.others(l, cl, b.batch), nil
}
