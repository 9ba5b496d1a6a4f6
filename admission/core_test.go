package admission

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// reconcilerRace writes, right after the API read a loop (outside any
// transaction), what a reconciler writes meanwhile: a claimed topic in the
// loop's inventory, through UpdateStatus, which does not change the etag.
type reconcilerRace struct {
	store.Store
	armed bool
}

func (r *reconcilerRace) GetLoop(ctx context.Context, team, name string) (*loop.Loop, error) {
	l, err := r.Store.GetLoop(ctx, team, name)
	if err != nil || !r.armed {
		return l, err
	}
	r.armed = false
	err = r.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.GetLoop(ctx, team, name)
		if err != nil {
			return err
		}
		st := cur.Status
		st.Inventory.Topics = []string{"growth.racy.events"}
		st.Cluster = "eu-embedded"
		st.State = loop.StateReady
		return tx.UpdateStatus(ctx, team, name, st)
	})
	return l, err
}

func testCore(t *testing.T, st store.Store) *Core {
	t.Helper()
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.NewEngine(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return &Core{Store: st, Policy: engine, Catalog: config.Embedded(t.TempDir()).Catalog()}
}

func racyLoop(retention string) *loop.Loop {
	loops, err := loop.ParseBytes([]byte(`apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: racy, team: growth}
spec:
  owners: [ana@example.com]
  classification: internal
  residency: eu
  retention: ` + retention + `
  slo: {latencyP99: 2s, freshness: 1s}
  throughput: {bytesPerSecond: 1MiB}
  streams:
    - name: events
      partitions: 3
      schema: {format: avro, definition: '{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}'}
  producers: [{principal: "User:p", streams: [events]}]
  consumers: [{principal: "User:c", group: g, streams: [events]}]
  action: {stream: events}
`))
	if err != nil {
		panic(err)
	}
	return loops[0]
}

// Regression: an update or delete wrote back the status it had read before
// its transaction, erasing a topic the reconciler claimed in between (the
// etag covers the desired state only, so the CAS did not catch it). The
// reconciler then refused its own topic as foreign (TopicNotOwned), or a
// delete would have left it behind.
func TestAPIWritesKeepTheReconcilersInventory(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	race := &reconcilerRace{Store: base}
	c := testCore(t, race)
	admin := Identity{Subject: "admin@example.com", Roles: []string{RoleAdmin}}

	if _, err := c.Create(ctx, admin, racyLoop("3d"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	race.armed = true
	if _, err := c.Update(ctx, admin, racyLoop("2d"), "", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := base.GetLoop(ctx, "growth", "racy")
	if !slices.Contains(got.Status.Inventory.Topics, "growth.racy.events") || got.Status.Cluster != "eu-embedded" {
		t.Fatalf("update erased the reconciler's inventory: %+v cluster %q", got.Status.Inventory, got.Status.Cluster)
	}

	// A labels-only update changes no generation and keeps the status the
	// reconciler wrote meanwhile as it is.
	labelled := racyLoop("2d")
	labelled.Metadata.Labels = map[string]string{"domain": "checkout"}
	race.armed = true
	if _, err := c.Update(ctx, admin, labelled, "", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ = base.GetLoop(ctx, "growth", "racy")
	if got.Status.State != loop.StateReady || got.Metadata.Generation != 2 || got.Metadata.Labels["domain"] != "checkout" {
		t.Fatalf("labels-only update: state %s, generation %d, labels %v; want READY, 2, domain=checkout", got.Status.State, got.Metadata.Generation, got.Metadata.Labels)
	}

	race.armed = true
	if _, err := c.Delete(ctx, admin, "growth", "racy", "", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ = base.GetLoop(ctx, "growth", "racy")
	if !slices.Contains(got.Status.Inventory.Topics, "growth.racy.events") || got.Metadata.DeleteTime.IsZero() || got.Status.State != loop.StateDeleting {
		t.Fatalf("delete erased the reconciler's inventory: %+v", got.Status.Inventory)
	}
}

// A clipped message never ends inside a UTF-8 character.
func TestClipKeepsUTF8(t *testing.T) {
	for n := 0; n < 12; n++ {
		if got := clip("règle-ünïcode-€€€", n); !utf8.ValidString(got) {
			t.Errorf("clip(…, %d) = %q: not valid UTF-8", n, got)
		}
	}
}
