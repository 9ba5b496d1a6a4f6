package reconciler

import (
	"context"
	"fmt"
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
	// Others returns the derived resources of every other live loop on cl.
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
// the store per call. `:plan` uses it; the reconciler keeps a PeerIndex.
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
				out = append(out, shared(provisioning.Derive(p, cl)))
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// shared keeps what another loop could share: group ACLs and quotas.
func shared(r provisioning.Resources) provisioning.Resources {
	out := provisioning.Resources{Quotas: r.Quotas}
	for _, a := range r.ACLs {
		if a.ResourceType == provisioning.ResourceGroup {
			out.ACLs = append(out.ACLs, a)
		}
	}
	return out
}

// PeerIndex is the reconciler's in-memory view of every loop's shareable
// resources, so that a reconcile does not list the whole store. It is
// filled by each resync's listing and updated whenever a loop is read for
// reconciling; only the process that reconciles keeps one.
type PeerIndex struct {
	catalog *catalog.Catalog
	mu      sync.RWMutex
	byKey   map[string]peerEntry
}

type peerEntry struct {
	cluster string
	res     provisioning.Resources
}

// NewPeerIndex returns an empty index.
func NewPeerIndex(cat *catalog.Catalog) *PeerIndex {
	return &PeerIndex{catalog: cat, byKey: map[string]peerEntry{}}
}

// Put records the current state of l (removing it if it holds nothing).
func (x *PeerIndex) Put(l *loop.Loop) {
	key := l.Metadata.Key()
	if !isPeer(l) {
		x.Remove(key)
		return
	}
	name := ClusterName(x.catalog, l)
	cl, _ := x.catalog.ClusterByName(name)
	e := peerEntry{cluster: name, res: shared(provisioning.Derive(l, cl))}
	x.mu.Lock()
	x.byKey[key] = e
	x.mu.Unlock()
}

// Remove forgets a loop.
func (x *PeerIndex) Remove(key string) {
	x.mu.Lock()
	delete(x.byKey, key)
	x.mu.Unlock()
}

// Others implements Peers.
func (x *PeerIndex) Others(_ context.Context, l *loop.Loop, cl catalog.Cluster) ([]provisioning.Resources, error) {
	key := l.Metadata.Key()
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []provisioning.Resources
	for k, e := range x.byKey {
		if k != key && e.cluster == cl.Name {
			out = append(out, e.res)
		}
	}
	return out, nil
}
