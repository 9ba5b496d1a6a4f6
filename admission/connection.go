package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/contract"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Connection is what a team's applications need to use a loop: where each
// stream lives and what each principal may do. It is computed from the
// spec and the catalog when a loop is read, so it always shows the
// cluster's current bootstrap servers.
type Connection struct {
	Streams    []StreamEndpoint
	Principals []PrincipalGrants
}

// StreamEndpoint is where one stream of a loop lives.
type StreamEndpoint struct {
	Stream, Topic, Cluster, Region string
	BootstrapServers               []string
	External                       bool
}

// PrincipalGrants is what one principal may do in a loop.
type PrincipalGrants struct {
	Principal, Resource          string
	ProduceTopics, ConsumeTopics []string
	Groups                       []string
	// Quota is the principal's client quota on the loop's cluster; nil
	// when it gets none (provisioning.QuotaOf).
	Quota *provisioning.Quota
}

// ConnectionOf computes the connection info of l.
func (c *Core) ConnectionOf(l *loop.Loop) Connection {
	cl, ok := c.clusterOf(l)
	if !ok {
		cl = catalog.Cluster{Region: l.Spec.Residency}
	}
	var out Connection
	for _, st := range l.Spec.Streams {
		out.Streams = append(out.Streams, StreamEndpoint{
			Stream: st.Name, Topic: provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, st.Name),
			Cluster: cl.Name, Region: cl.Region, BootstrapServers: cl.BootstrapServers, External: st.External,
		})
	}
	grants := map[string]*PrincipalGrants{}
	grant := func(p string) *PrincipalGrants {
		g := grants[p]
		if g == nil {
			g = &PrincipalGrants{Principal: p, Resource: OwnedResource(store.KindPrincipal, l.Metadata.Team, loop.PrincipalName(p))}
			grants[p] = g
		}
		return g
	}
	topic := func(s string) string { return provisioning.TopicName(l.Metadata.Team, l.Metadata.Name, s) }
	for _, p := range l.Spec.Producers {
		g := grant(p.Principal)
		for _, s := range p.Streams {
			g.ProduceTopics = appendUnique(g.ProduceTopics, topic(s))
		}
	}
	for _, cs := range l.Spec.Consumers {
		g := grant(cs.Principal)
		for _, s := range cs.Streams {
			g.ConsumeTopics = appendUnique(g.ConsumeTopics, topic(s))
		}
		if cs.Group != "" {
			g.Groups = appendUnique(g.Groups, cs.Group)
		}
	}
	for _, p := range l.Spec.Principals() {
		g := grants[p]
		if q, ok := provisioning.QuotaOf(l, p); ok {
			g.Quota = &q
		}
		out.Principals = append(out.Principals, *g)
	}
	return out
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// LoopContract is the client contract of one principal of a loop.
type LoopContract struct {
	contract.Contract
	Cluster            catalog.Cluster
	CredentialsManaged bool
}

// Contract returns the ready-to-use client configuration of one principal
// of a loop (principal "" = the loop's only principal). It never carries a
// password.
func (c *Core) Contract(ctx context.Context, id Identity, team, name, principal string) (*LoopContract, error) {
	l, err := c.Get(ctx, id, team, name)
	if err != nil {
		return nil, err
	}
	conn := c.ConnectionOf(l)
	var names []string
	for _, g := range conn.Principals {
		names = append(names, g.Principal)
	}
	if principal != "" && !strings.HasPrefix(principal, "User:") {
		principal = "User:" + principal
	}
	if principal == "" {
		if len(names) != 1 {
			return nil, &InvalidError{Resource: l.Metadata.ResourceName(), Problems: loop.FieldErrors{{Field: "principal",
				Message: fmt.Sprintf("loop %s has %d principals (%s): name one", l.Metadata.Key(), len(names), strings.Join(names, ", "))}}}
		}
		principal = names[0]
	}
	i := slices.IndexFunc(conn.Principals, func(g PrincipalGrants) bool { return g.Principal == principal })
	if i < 0 {
		return nil, &InvalidError{Resource: l.Metadata.ResourceName(), Problems: loop.FieldErrors{{Field: "principal",
			Message: fmt.Sprintf("%s is not a principal of loop %s (its principals: %s)", principal, l.Metadata.Key(), strings.Join(names, ", "))}}}
	}
	g := conn.Principals[i]
	cl, _ := c.clusterOf(l)
	group := ""
	if len(g.Groups) > 0 {
		group = g.Groups[0]
	}
	parts := map[string]int32{}
	for _, t := range provisioning.Derive(l, cl).Topics {
		parts[t.Name] = t.Partitions
	}
	ct := contract.Build(contract.Input{
		Loop: l, Principal: principal, Bootstrap: cl.BootstrapServers,
		SecurityProtocol: cl.SecurityProtocol, Mechanism: cl.Credentials,
		Produce: g.ProduceTopics, Consume: g.ConsumeTopics, Group: group, Partitions: parts,
	})
	return &LoopContract{Contract: ct, Cluster: cl, CredentialsManaged: cl.Credentials != ""}, nil
}
