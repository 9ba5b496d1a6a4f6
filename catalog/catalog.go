// Package catalog describes the organisation loopgate serves: its teams (what
// each may use) and its Kafka clusters (one or more per residency region).
// The catalog comes from configuration; policy sees a team's entry as
// input.team and the target cluster as input.cluster.
package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Team is a team's catalog entry: what its loops may use.
type Team struct {
	Name           string   `json:"name" yaml:"name"`
	AllowedRegions []string `json:"allowedRegions" yaml:"allowedRegions"`
	// MaxPartitionsPerLoop caps the partitions of one loop (all streams).
	MaxPartitionsPerLoop int32 `json:"maxPartitionsPerLoop" yaml:"maxPartitionsPerLoop"`
	// MaxPartitions caps the partitions of all the team's loops together.
	MaxPartitions int32 `json:"maxPartitions" yaml:"maxPartitions"`
	// MaxBytesPerSecond caps the declared steady throughput of one loop.
	MaxBytesPerSecond int64 `json:"maxBytesPerSecond" yaml:"maxBytesPerSecond"`
	// UsedPartitions is filled in at decision time: partitions of the team's
	// other loops (not the one being decided).
	UsedPartitions int32 `json:"usedPartitions" yaml:"-"`
	// CostApprovalThreshold is the monthly cost forecast (in the currency
	// of the cluster's price list, USD by default) above which a loop of
	// the team needs approval (the default bundle's COST_ABOVE_BUDGET); 0
	// means no threshold.
	CostApprovalThreshold float64 `json:"costApprovalThreshold" yaml:"costApprovalThreshold"`
}

// Cluster is one Kafka cluster loopgate provisions on.
type Cluster struct {
	Name              string   `json:"name" yaml:"name"`
	Region            string   `json:"region" yaml:"region"`
	Zones             []string `json:"zones,omitempty" yaml:"zones"`
	ReplicationFactor int16    `json:"replicationFactor" yaml:"replicationFactor"`
	BootstrapServers  []string `json:"bootstrapServers" yaml:"bootstrapServers"`
	// SecurityProtocol is how clients connect: SASL_PLAINTEXT, SASL_SSL,
	// SSL or PLAINTEXT.
	SecurityProtocol string `json:"securityProtocol,omitempty" yaml:"-"`
	// Credentials is the SCRAM mechanism loopgate issues principals'
	// credentials with on this cluster ("SCRAM-SHA-512" or
	// "SCRAM-SHA-256"), or "" when identities are managed outside loopgate.
	Credentials string `json:"credentials,omitempty" yaml:"-"`
	// Storage is the cluster's storage model and Prices its price list,
	// for the cost forecast (package cost). Not policy input as such:
	// policy sees the forecast (input.derived.cost).
	Storage Storage   `json:"-" yaml:"-"`
	Prices  PriceList `json:"-" yaml:"-"`
	// Observer is loopgate's read-only observer principal on the cluster
	// (name without "User:"), or "" when none is configured. Loops get
	// READ and DESCRIBE on their action topic for it (provisioning.Derive),
	// so that loopgate can sample producer-to-action latency.
	Observer string `json:"-" yaml:"-"`
}

// Catalog is the set of teams and clusters.
type Catalog struct {
	Teams    map[string]Team
	Clusters []Cluster
	// Reserved are principal names (without "User:") that no loop may name
	// and no team may own, with why: loopgate's own admin principals and
	// every configured superuser.
	Reserved map[string]string
	// Limits bound what one loop may hold (see Limits); zero fields mean
	// the defaults, so use Limits.WithDefaults() (loop.ValidateWithLimits
	// does).
	Limits Limits
}

// ReservedPrincipal reports whether the principal name (without "User:")
// is reserved, and why. Wildcards are always reserved.
func (c *Catalog) ReservedPrincipal(name string) (string, bool) {
	if strings.ContainsAny(name, "*?") {
		return "a wildcard", true
	}
	if why, ok := c.Reserved[name]; ok {
		return why, true
	}
	return "", false
}

// Reserve marks a principal name as reserved (keeping the first reason).
func (c *Catalog) Reserve(name, why string) {
	name = strings.TrimPrefix(name, "User:")
	if name == "" {
		return
	}
	if c.Reserved == nil {
		c.Reserved = map[string]string{}
	}
	if _, ok := c.Reserved[name]; !ok {
		c.Reserved[name] = why
	}
}

// Team returns the team's entry.
func (c *Catalog) Team(name string) (Team, bool) {
	t, ok := c.Teams[name]
	return t, ok
}

// Regions returns the sorted region keys that have at least one cluster.
func (c *Catalog) Regions() []string {
	seen := map[string]bool{}
	var out []string
	for _, cl := range c.Clusters {
		if !seen[cl.Region] {
			seen[cl.Region] = true
			out = append(out, cl.Region)
		}
	}
	sort.Strings(out)
	return out
}

// ClusterFor returns the cluster that serves a residency region. With
// several clusters in a region the first listed is the region's default.
func (c *Catalog) ClusterFor(region string) (Cluster, error) {
	for _, cl := range c.Clusters {
		if cl.Region == region {
			return cl, nil
		}
	}
	return Cluster{}, fmt.Errorf("no cluster serves region %q (regions: %v)", region, c.Regions())
}

// ClusterByName returns the named cluster.
func (c *Catalog) ClusterByName(name string) (Cluster, bool) {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl, true
		}
	}
	return Cluster{}, false
}
