package reconciler_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// failingAfter executes the first n actions of each Execute and fails the
// rest with a retriable error, as a cluster that drops mid-way would.
type failingAfter struct {
	provisioning.Admin
	n int
}

var errDropped = errors.New("connection reset by the broker")

func (a failingAfter) Execute(ctx context.Context, actions []provisioning.Action) ([]provisioning.OpResult, error) {
	if len(actions) <= a.n {
		return a.Admin.Execute(ctx, actions)
	}
	res, _ := a.Admin.Execute(ctx, actions[:a.n])
	for _, act := range actions[a.n:] {
		res = append(res, provisioning.OpResult{Kind: act.Kind, Resource: act.Resource, Op: string(act.Kind), Err: errDropped.Error()})
	}
	return res, errDropped
}

// Deleting a loop removes everything ever provisioned for it, even what its
// inventory does not name: the groups and principals of its last spec
// (an inventory written by an older reconciler named only topics) and
// stray ACLs of its principals on its own namespace. ACLs outside the
// namespace and other loops' resources stay. An interrupted deletion is
// resumed by the next reconcile.
func TestDeleteRemovesEverythingEverProvisioned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l := testLoop("legacy", "legacy-group")
	l.Spec.Producers[0].Principal = "User:legacy-producer"
	l.Spec.Consumers[0].Principal = "User:legacy-consumer"
	f.create(t, l)
	f.create(t, testLoop("keeper", "keeper-group"))
	f.reconcile(t, "growth/legacy")
	f.reconcile(t, "growth/keeper")
	if c := f.takeCensus(t); !c.clean() {
		t.Fatalf("census after provisioning: %v", c)
	}

	// The inventory an older reconciler left: topics only.
	err := f.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.GetLoop(ctx, "growth", "legacy")
		if err != nil {
			return err
		}
		st := cur.Status
		st.Inventory = loop.Inventory{Topics: []string{"growth.legacy.events"}}
		return tx.UpdateStatus(ctx, "growth", "legacy", st)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Strays: bindings of the loop's principals that nothing names any
	// more, two in its namespace, one outside it.
	outside := kadm.NewACLs().Allow("User:legacy-consumer").AllowHosts("*").Groups("someone-elses-group").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:legacy-consumer").AllowHosts("*").Groups("growth.legacy.retired-group").
			Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Allow("User:legacy-producer").AllowHosts("*").Topics("growth.legacy.retired").
			Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral),
		outside,
	} {
		if _, err := f.kadm.CreateACLs(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	f.markDeleted(t, "legacy")
	interrupted := reconciler.New(f.st, f.cat, map[string]provisioning.Admin{"eu-test": failingAfter{Admin: f.admin, n: 2}}, reconciler.Options{})
	if err := interrupted.Reconcile(ctx, "growth/legacy"); !errors.Is(err, errDropped) {
		t.Fatalf("interrupted deletion: %v, want the dropped connection", err)
	}
	if got := f.get(t, "legacy").Status.State; got != loop.StateDeleting {
		t.Errorf("state after an interrupted deletion = %s, want DELETING", got)
	}
	f.reconcile(t, "growth/legacy")
	if _, err := f.st.GetLoop(ctx, "growth", "legacy"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deleted loop is still stored: %v", err)
	}

	// Everything is gone but the binding outside the loop's namespace.
	c := f.takeCensus(t)
	want := []string{"acl User:legacy-consumer READ GROUP:someone-elses-group LITERAL * ALLOW"}
	if !slices.Equal(c.orphans, want) || len(c.missing) != 0 {
		t.Errorf("census after the deletion: %v; want only the orphan %v", c, want)
	}
	if n := f.groupACLs(t, "keeper-group"); n != 1 {
		t.Errorf("the other loop's group ACLs: %d, want 1", n)
	}
	// And the other loop has nothing to do.
	res, err := reconciler.Compute(ctx, reconciler.StorePeers{Store: f.st, Catalog: f.cat}, f.admin, f.get(t, "keeper"), f.cat.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	if !res.Plan.Empty() {
		t.Errorf("keeper's plan after the deletion: %+v", res.Plan)
	}
	if res, err := f.st.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("audit chain: %+v %v", res, err)
	}
}
