package reconciler_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// census compares the cluster, read with the fixture's independent client,
// with what the live loops of the store need (their derived topics, ACLs
// and per-principal quota sums). orphans is what the cluster has that no
// live loop needs, missing what a live loop needs that the cluster lacks;
// a quota with the wrong rates counts as both.
type census struct {
	orphans, missing []string
}

func (c census) clean() bool { return len(c.orphans) == 0 && len(c.missing) == 0 }

func (c census) String() string {
	return fmt.Sprintf("%d orphans %v, %d missing %v", len(c.orphans), c.orphans, len(c.missing), c.missing)
}

func (f *fixture) liveLoops(t testing.TB) (live, all []*loop.Loop) {
	t.Helper()
	token := ""
	for {
		page, next, err := f.st.ListLoops(context.Background(), store.ListOptions{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	for _, l := range all {
		if l.Metadata.DeleteTime.IsZero() {
			live = append(live, l)
		}
	}
	return live, all
}

func aclString(a provisioning.ACL) string {
	return fmt.Sprintf("acl %s %s %s:%s %s %s %s", a.Principal, a.Operation, a.ResourceType, a.ResourceName, a.PatternType, a.Host, a.Permission)
}

func (f *fixture) takeCensus(t *testing.T) census {
	t.Helper()
	ctx := context.Background()
	live, _ := f.liveLoops(t)
	cl := f.cat.Clusters[0]

	needTopics := map[string]bool{}
	needACLs := map[string]bool{}
	type rates struct{ producer, consumer int64 }
	needQuotas := map[string]rates{}
	for _, l := range live {
		r := provisioning.Derive(l, cl)
		for _, tp := range r.Topics {
			needTopics[tp.Name] = true
		}
		for _, a := range r.ACLs {
			needACLs[aclString(a)] = true
		}
		for _, q := range r.Quotas {
			cur := needQuotas[q.Principal]
			cur.producer += q.ProducerByteRate
			cur.consumer += q.ConsumerByteRate
			needQuotas[q.Principal] = cur
		}
	}

	var c census
	for _, name := range f.rawTopics(t) {
		if !needTopics[name] {
			c.orphans = append(c.orphans, "topic "+name)
		}
		delete(needTopics, name)
	}
	for name := range needTopics {
		c.missing = append(c.missing, "topic "+name)
	}

	req := kmsg.NewDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, f.kcl)
	if err == nil && resp.ErrorCode != 0 {
		err = fmt.Errorf("DescribeACLs error code %d", resp.ErrorCode)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resp.Resources {
		for _, b := range res.ACLs {
			s := aclString(provisioning.ACL{
				Principal: b.Principal, Host: b.Host, ResourceType: res.ResourceType.String(), ResourceName: res.ResourceName,
				PatternType: res.ResourcePatternType.String(), Operation: b.Operation.String(), Permission: b.PermissionType.String(),
			})
			if !needACLs[s] {
				c.orphans = append(c.orphans, s)
			}
			delete(needACLs, s)
		}
	}
	for s := range needACLs {
		c.missing = append(c.missing, s)
	}

	for user, values := range f.quotas(t) {
		principal := "User:" + user
		got := rates{int64(values[provisioning.QuotaProducerByteRate]), int64(values[provisioning.QuotaConsumerByteRate])}
		want, ok := needQuotas[principal]
		delete(needQuotas, principal)
		switch {
		case !ok && got != (rates{}):
			c.orphans = append(c.orphans, fmt.Sprintf("quota %s %+v", principal, got))
		case ok && got != want:
			c.orphans = append(c.orphans, fmt.Sprintf("quota %s %+v (want %+v)", principal, got, want))
			c.missing = append(c.missing, fmt.Sprintf("quota %s %+v", principal, want))
		}
	}
	for principal, want := range needQuotas {
		if want != (rates{}) {
			c.missing = append(c.missing, fmt.Sprintf("quota %s %+v", principal, want))
		}
	}
	sort.Strings(c.orphans)
	sort.Strings(c.missing)
	return c
}

// rawTopics lists the cluster's topics of team growth with a Metadata
// request of its own: kadm's ListTopics may answer from the client's
// metadata cache (MetadataMinAge), which can still hold a topic deleted a
// moment ago.
func (f *fixture) rawTopics(t *testing.T) []string {
	t.Helper()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), f.kcl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tp := range resp.Topics {
		if tp.Topic != nil && tp.ErrorCode == 0 && strings.HasPrefix(*tp.Topic, "growth.") {
			out = append(out, *tp.Topic)
		}
	}
	return out
}

// states summarises the loops of the store, for failure messages.
func (f *fixture) states(t testing.TB) string {
	_, all := f.liveLoops(t)
	var out []string
	for _, l := range all {
		s := fmt.Sprintf("%s gen=%d observed=%d %s", l.Metadata.Name, l.Metadata.Generation, l.Status.ObservedGeneration, l.Status.State)
		if c := l.Status.Condition(loop.CondProvisioned); c != nil && c.Status == loop.False {
			s += " (" + c.Reason + ": " + c.Message + ")"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}
