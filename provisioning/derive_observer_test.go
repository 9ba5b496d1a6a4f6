package provisioning_test

import (
	"slices"
	"testing"

	"github.com/loopgate/loopgate/provisioning"
)

// A cluster with an observer principal gives it READ and DESCRIBE on each
// loop's action topic, and nothing else; without one nothing changes.
func TestDeriveObserverACL(t *testing.T) {
	cl := euCluster
	cl.Observer = "loopgate-observer"
	without := provisioning.Derive(checkoutNudge(), euCluster)
	with := provisioning.Derive(checkoutNudge(), cl)
	const actions = "growth.checkout-nudge.actions"
	want := append(slices.Clone(without.ACLs),
		acl("User:loopgate-observer", "TOPIC", actions, "DESCRIBE"),
		acl("User:loopgate-observer", "TOPIC", actions, "READ"))
	got := provisioning.Resources{ACLs: slices.Clone(with.ACLs)}
	exp := provisioning.Resources{ACLs: want}
	got.Sort()
	exp.Sort()
	if !slices.Equal(got.ACLs, exp.ACLs) {
		t.Errorf("ACLs with an observer:\n%v\nwant\n%v", got, want)
	}
	if len(with.Topics) != len(without.Topics) || with.Topics[0].Name != without.Topics[0].Name || len(with.Quotas) != len(without.Quotas) {
		t.Errorf("the observer changed topics or quotas: %+v", with)
	}
	if err := with.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if got := provisioning.ObserverPrincipal(cl); got != "User:loopgate-observer" {
		t.Errorf("ObserverPrincipal = %q", got)
	}
	// A loop without an action stream gives the observer nothing.
	l := checkoutNudge()
	l.Spec.Action = nil
	for _, a := range provisioning.Derive(l, cl).ACLs {
		if a.Principal == "User:loopgate-observer" {
			t.Errorf("observer ACL for a loop without action: %v", a)
		}
	}
}
