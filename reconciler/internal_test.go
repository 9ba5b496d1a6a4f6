package reconciler

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// backoff is exponential with full jitter: uniformly below base·2^(n-1),
// capped, never negative, and actually random.
func TestBackoff(t *testing.T) {
	base, maxDelay := 100*time.Millisecond, 30*time.Second
	for n := 1; n <= 70; n++ {
		ceiling := maxDelay
		if n < 20 {
			ceiling = min(maxDelay, base<<(n-1))
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(n, base, maxDelay)
			if d < 0 || d >= ceiling {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("backoff(%d): %d distinct delays in 200, want jitter", n, len(seen))
		}
	}
}

func peerLoop(name, group string, gen int64, deleted bool) *loop.Loop {
	l := &loop.Loop{
		Metadata: loop.Metadata{Team: "t", Name: name, UID: name, Generation: gen},
		Spec: loop.Spec{
			Residency: "eu", Throughput: loop.Throughput{BytesPerSecond: 1 << 20, PeakFactor: 1},
			Streams:   []loop.Stream{{Name: "s", Partitions: 1}},
			Consumers: []loop.Consumer{{Principal: "User:c", Group: group, Streams: []string{"s"}}},
		},
		Status: loop.Status{State: loop.StateReady, ObservedGeneration: gen},
	}
	if deleted {
		l.Metadata.DeleteTime = time.Now()
	}
	return l
}

func groupsOf(t *testing.T, x Peers, cl catalog.Cluster) []string {
	t.Helper()
	// The probe names the principal every peerLoop uses, so every live
	// loop on cl is its peer.
	res, err := x.Others(context.Background(), peerLoop("self", "g-self", 1, false), cl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res {
		for _, a := range r.ACLs {
			out = append(out, a.ResourceName)
		}
	}
	return union(out, nil)
}

// The peer index applies updates in the order of the reads they reflect: a
// slow read never puts back a loop a later read saw deleted, and a resync
// listing drops what it did not list.
func TestPeerIndexOrdersUpdates(t *testing.T) {
	cat := &catalog.Catalog{Clusters: []catalog.Cluster{{Name: "c1", Region: "eu", ReplicationFactor: 1}}}
	cl := cat.Clusters[0]
	x := NewPeerIndex(cat)

	slow := x.Stamp() // a read of "a" begins, sees it live, and is slow
	x.Put(peerLoop("a", "g1", 1, true))
	x.PutAt(slow, peerLoop("a", "g1", 1, false))
	if got := groupsOf(t, x, cl); len(got) != 0 {
		t.Errorf("a stale read resurrected a deleted loop: %v", got)
	}

	x.Put(peerLoop("b", "g2", 1, false))
	x.Put(peerLoop("c", "g3", 1, false))
	listing := x.Stamp()
	x.Put(peerLoop("d", "g4", 1, false)) // read after the listing began
	x.Replace(listing, []*loop.Loop{peerLoop("b", "g2", 1, false)})
	if got := groupsOf(t, x, cl); !slices.Equal(got, []string{"g2", "g4"}) {
		t.Errorf("after Replace: %v, want g2 (listed) and g4 (newer read)", got)
	}
	x.PutAt(slow, peerLoop("c", "g3", 1, false)) // older than the listing
	if got := groupsOf(t, x, cl); !slices.Equal(got, []string{"g2", "g4"}) {
		t.Errorf("a read older than the last listing changed the index: %v", got)
	}

	// A loop contributes only what it claimed, unless its current
	// generation is provisioned.
	pending := peerLoop("e", "g5", 2, false)
	pending.Status.State, pending.Status.ObservedGeneration = loop.StateProvisioning, 1
	x.Put(pending)
	if got := groupsOf(t, x, cl); !slices.Equal(got, []string{"g2", "g4"}) {
		t.Errorf("an unclaimed group counted: %v", got)
	}
	pending.Status.Inventory = loop.Inventory{Groups: []string{"g5"}, Principals: []string{"User:c"}}
	x.Put(pending)
	if got := groupsOf(t, x, cl); !slices.Equal(got, []string{"g2", "g4", "g5"}) {
		t.Errorf("a claimed group did not count: %v", got)
	}
	// A batch counts its own loops whole.
	pending.Status.Inventory = loop.Inventory{}
	if got := groupsOf(t, newBatchPeers(x, []*loop.Loop{pending}), cl); !slices.Equal(got, []string{"g2", "g4", "g5"}) {
		t.Errorf("a batch's own loop did not count whole: %v", got)
	}
}

// The index finds a loop's peers by the names they share: a loop naming
// none of its principals or groups is not visited.
func TestPeerIndexVisitsOnlyLoopsSharingANameWithTheLoop(t *testing.T) {
	cat := &catalog.Catalog{Clusters: []catalog.Cluster{{Name: "c1", Region: "eu", ReplicationFactor: 1}}}
	cl := cat.Clusters[0]
	x := NewPeerIndex(cat)
	for i := range 1000 {
		stranger := peerLoop(fmt.Sprintf("x%d", i), fmt.Sprintf("gx%d", i), 1, false)
		stranger.Spec.Consumers[0].Principal = fmt.Sprintf("User:x%d", i)
		x.Put(stranger)
	}
	sharesGroup := peerLoop("same-group", "g-self", 1, false)
	sharesGroup.Spec.Consumers[0].Principal = "User:other"
	x.Put(sharesGroup)
	sharesPrincipal := peerLoop("same-principal", "g-other", 1, false)
	x.Put(sharesPrincipal)

	res, err := x.Others(context.Background(), peerLoop("self", "g-self", 1, false), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d peers, want the 2 sharing a group or a principal (of 1002 loops)", len(res))
	}
}
