// Package census is test support: a census of what loopgate manages on a
// Kafka cluster, compared with what the stored loops need. It reads the
// cluster with an independent client (franz-go's, not loopgate's
// provisioning code), derives the expectation from the loops' status and
// spec by the rules of docs/loop-spec.md, and waits on a loopgate server
// for loops to converge or to say that their cluster is unreachable.
package census

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Census is what one cluster holds: every topic but Kafka's internal ones,
// every ACL, every client quota, every SCRAM user.
type Census struct {
	Topics map[string]int32            // topic -> partitions
	ACLs   map[string]bool             // "User:p OP TYPE name", plus any non-default pattern/permission/host
	Quotas map[string]map[string]int64 // "user=name" (or the entity) -> key -> value
	SCRAM  map[string]bool             // user names
}

// New is an empty census.
func New() Census {
	return Census{Topics: map[string]int32{}, ACLs: map[string]bool{}, Quotas: map[string]map[string]int64{}, SCRAM: map[string]bool{}}
}

// DescribeACLs asks the cluster for every ACL it has; an error code in the
// response is an error.
func DescribeACLs(ctx context.Context, kcl *kgo.Client) (*kmsg.DescribeACLsResponse, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, kcl)
	if err == nil && resp.ErrorCode != 0 {
		err = fmt.Errorf("error code %d", resp.ErrorCode)
	}
	return resp, err
}

// Take reads everything from the cluster named clusterName through kcl, an
// independent client of the cluster's admin user; any error fails the test.
func Take(t testing.TB, kcl *kgo.Client, clusterName string) Census {
	t.Helper()
	adm := kadm.NewClient(kcl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := New()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("census of %s: listing topics: %v", clusterName, err)
	}
	for name, d := range topics {
		if d.Err != nil {
			t.Fatalf("census of %s: topic %s: %v", clusterName, name, d.Err)
		}
		out.Topics[name] = int32(len(d.Partitions))
	}
	resp, err := DescribeACLs(ctx, kcl)
	if err != nil {
		t.Fatalf("census of %s: describing ACLs: %v", clusterName, err)
	}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			k := fmt.Sprintf("%s %s %s %s", a.Principal, a.Operation, r.ResourceType, r.ResourceName)
			if a.PermissionType != kmsg.ACLPermissionTypeAllow || r.ResourcePatternType != kmsg.ACLResourcePatternTypeLiteral || a.Host != "*" {
				k += fmt.Sprintf(" (%s %s host %s)", a.PermissionType, r.ResourcePatternType, a.Host)
			}
			out.ACLs[k] = true
		}
	}
	quotas, err := adm.DescribeClientQuotas(ctx, false, nil)
	if err != nil {
		t.Fatalf("census of %s: describing quotas: %v", clusterName, err)
	}
	for _, q := range quotas {
		var ent []string
		for _, e := range q.Entity {
			name := "<default>"
			if e.Name != nil {
				name = *e.Name
			}
			ent = append(ent, e.Type+"="+name)
		}
		m := map[string]int64{}
		for _, v := range q.Values {
			m[v.Key] = int64(v.Value)
		}
		out.Quotas[strings.Join(ent, ",")] = m
	}
	users, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatalf("census of %s: describing SCRAM users: %v", clusterName, err)
	}
	for name, u := range users {
		if u.Err != nil {
			t.Fatalf("census of %s: SCRAM user %s: %v", clusterName, name, u.Err)
		}
		out.SCRAM[name] = true
	}
	return out
}

// Want is what the cluster named clusterName must hold for the stored
// loops, from their status (topics, and what each principal may do) and
// spec (partitions, throughput), by the rules of docs/loop-spec.md:
// WRITE+DESCRIBE for producers, READ+DESCRIBE and READ on the group for
// consumers, per-principal quotas summed over the cluster's loops; no SCRAM
// user but loopgate's own, superuser (loops never create credentials; ""
// for none).
func Want(loops []*lgv1.Loop, clusterName, superuser string) Census {
	want := New()
	if superuser != "" {
		want.SCRAM[superuser] = true
	}
	for _, l := range loops {
		st := l.GetStatus()
		if st.GetCluster() != clusterName {
			continue
		}
		parts := map[string]int32{}
		peak := PeakRate(l.GetSpec())
		for _, s := range l.GetSpec().GetStreams() {
			p := s.GetPartitions()
			if p == 0 {
				p = DerivedPartitions(l.GetSpec())
			}
			parts[s.GetName()] = p
		}
		for _, s := range st.GetStreams() {
			if s.GetCluster() == clusterName {
				want.Topics[s.GetTopic()] = parts[s.GetStream()]
			}
		}
		for _, g := range st.GetPrincipals() {
			user := strings.TrimPrefix(g.GetPrincipal(), "User:")
			q := want.Quotas["user="+user]
			if q == nil {
				q = map[string]int64{}
				want.Quotas["user="+user] = q
			}
			for _, tp := range g.GetProduceTopics() {
				want.ACLs[g.GetPrincipal()+" WRITE TOPIC "+tp] = true
				want.ACLs[g.GetPrincipal()+" DESCRIBE TOPIC "+tp] = true
			}
			for _, tp := range g.GetConsumeTopics() {
				want.ACLs[g.GetPrincipal()+" READ TOPIC "+tp] = true
				want.ACLs[g.GetPrincipal()+" DESCRIBE TOPIC "+tp] = true
			}
			for _, gr := range g.GetGroups() {
				want.ACLs[g.GetPrincipal()+" READ GROUP "+gr] = true
			}
			if len(g.GetProduceTopics()) > 0 {
				q["producer_byte_rate"] = min(q["producer_byte_rate"]+peak, 1<<53)
			}
			if len(g.GetConsumeTopics()) > 0 {
				q["consumer_byte_rate"] = min(q["consumer_byte_rate"]+peak, 1<<53)
			}
		}
	}
	return want
}

// PeakRate is ceil(bytesPerSecond × peakFactor), peakFactor 0 meaning 1.
func PeakRate(s *lgv1.LoopSpec) int64 {
	f := float64(s.GetThroughput().GetPeakFactor())
	if f == 0 {
		f = 1
	}
	return int64(math.Ceil(float64(s.GetThroughput().GetBytesPerSecond()) * f))
}

// DerivedPartitions is the documented derivation on a replication factor 1
// cluster (the embedded ones): min(max(ceil(peak/budget), 1), 64).
func DerivedPartitions(s *lgv1.LoopSpec) int32 {
	budget := float64(1 << 20)
	if s.GetSlo().GetLatencyP99Ms() < 1000 {
		budget /= 2
	}
	n := int32(math.Ceil(float64(PeakRate(s)) / budget))
	return min(max(n, 1), 64)
}

// Diff lists, sorted, what got has that want does not (orphan), what it
// lacks (missing), and what differs.
func (want Census) Diff(got Census) []string {
	var out []string
	for name, p := range got.Topics {
		w, ok := want.Topics[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("orphan topic %s (%d partitions)", name, p))
		case w != p:
			out = append(out, fmt.Sprintf("topic %s has %d partitions, want %d", name, p, w))
		}
	}
	for name := range want.Topics {
		if _, ok := got.Topics[name]; !ok {
			out = append(out, "missing topic "+name)
		}
	}
	out = append(out, setDiff("ACL", want.ACLs, got.ACLs)...)
	for e, v := range got.Quotas {
		w, ok := want.Quotas[e]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("orphan quota %s %v", e, v))
		case !quotasEqual(w, v):
			out = append(out, fmt.Sprintf("quota %s is %v, want %v", e, v, w))
		}
	}
	for e, w := range want.Quotas {
		if _, ok := got.Quotas[e]; !ok {
			out = append(out, fmt.Sprintf("missing quota %s %v", e, w))
		}
	}
	out = append(out, setDiff("SCRAM user", want.SCRAM, got.SCRAM)...)
	sort.Strings(out)
	return out
}

// setDiff lists the members of got that want lacks ("orphan <what> m")
// and those of want that got lacks ("missing <what> m").
func setDiff(what string, want, got map[string]bool) []string {
	var out []string
	for m := range got {
		if !want[m] {
			out = append(out, "orphan "+what+" "+m)
		}
	}
	for m := range want {
		if !got[m] {
			out = append(out, "missing "+what+" "+m)
		}
	}
	return out
}

func quotasEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// String counts what the census holds.
func (c Census) String() string {
	return fmt.Sprintf("%d topics, %d ACLs, %d quotas, %d SCRAM users", len(c.Topics), len(c.ACLs), len(c.Quotas), len(c.SCRAM))
}

// Matches lists the loops stored on the server behind loops and takes
// censuses of the cluster named clusterName through kcl until it holds
// exactly what those loops need, or within has passed (within 0: one
// census); superuser is loopgate's own SCRAM user there. A cluster that
// still differs then is a test error (t.Errorf) that lists every
// difference. Apache Kafka's broker learns of quotas a moment after the
// controller: give it a few seconds.
func Matches(t testing.TB, ctx context.Context, loops lgv1.LoopServiceClient, kcl *kgo.Client, clusterName, superuser string, within time.Duration) bool {
	t.Helper()
	list, err := loops.ListLoops(ctx, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := Want(list.GetLoops(), clusterName, superuser)
	for deadline := time.Now().Add(within); ; {
		got := Take(t, kcl, clusterName)
		diff := want.Diff(got)
		if len(diff) == 0 {
			t.Logf("census of %s: %s, exactly what the %d loops need", clusterName, got, len(list.GetLoops()))
			return true
		}
		if !time.Now().Before(deadline) {
			t.Errorf("cluster %s differs from what the %d loops need:\n  %s", clusterName, len(list.GetLoops()), strings.Join(diff, "\n  "))
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}
