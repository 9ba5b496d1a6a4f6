package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/embedded"
)

// floorResult is what raw batched admin calls take for the same topics on a
// fresh embedded cluster.
type floorResult struct {
	Topics int `json:"topics"`
	ACLs   int `json:"acls"`
	// ApplySec = CreateTopicsSec + CreateACLsSec: one CreateTopics request
	// for all topics, then one CreateACLs request for all ACLs.
	ApplySec        float64 `json:"applySec"`
	CreateTopicsSec float64 `json:"createTopicsSec"`
	CreateACLsSec   float64 `json:"createAclsSec"`
	// NoopDiffSec = MetadataSec + DescribeConfigsSec + DescribeACLsSec:
	// one Metadata request for the topics, one DescribeConfigs for their
	// configs, one DescribeACLs for every literal topic ACL.
	NoopDiffSec        float64 `json:"noopDiffSec"`
	MetadataSec        float64 `json:"metadataSec"`
	DescribeConfigsSec float64 `json:"describeConfigsSec"`
	DescribeACLsSec    float64 `json:"describeAclsSec"`
}

// floorConfigs are the configs loopgate gives each topic of these loops
// (provisioning.Derive: retention 24h, RF 1), so that the floor creates the
// same topics.
func floorConfigs() map[string]*string {
	return map[string]*string{
		"cleanup.policy":      kadm.StringPtr("delete"),
		"min.insync.replicas": kadm.StringPtr("1"),
		"retention.ms":        kadm.StringPtr("86400000"),
	}
}

// measureFloor starts a fresh embedded cluster the way loopgate starts its
// default (embedded.Start with a persisted DataDir) and times raw batched
// kadm/kmsg admin calls for n topics (6 partitions, RF 1) and 2 ACLs each
// (the producer's WRITE and the consumer's READ on the topic).
func measureFloor(ctx context.Context, dir string, n int, fr *floorResult) error {
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	c, err := embedded.Start(sctx, embedded.Options{Name: "floor", DataDir: filepath.Join(dir, "floor", "kafka", "floor")})
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		t := time.Now()
		c.Close()
		logf("[%d] floor cluster closed in %s", n, fmtDur(time.Since(t).Seconds()))
	}()
	conn := c.Conn()
	if conn.SASL == nil || conn.SASL.Mechanism != "SCRAM-SHA-512" {
		return fmt.Errorf("the embedded cluster has no SCRAM-SHA-512 superuser")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(conn.BootstrapServers...),
		kgo.SASL(scram.Auth{User: conn.SASL.Username, Pass: conn.SASL.Password}.AsSha512Mechanism()),
		// One request carries the whole estate: let it take its time.
		kgo.RequestTimeoutOverhead(10*time.Minute), kgo.RetryTimeout(10*time.Minute))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32((10 * time.Minute).Milliseconds()))
	fctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	// Connect and authenticate before anything is timed.
	if _, err := adm.BrokerMetadata(fctx); err != nil {
		return err
	}

	topics := make([]string, n)
	for i := range n {
		topics[i] = topicName(i)
	}
	fr.Topics, fr.ACLs = n, 2*n

	// Apply floor: one CreateTopics, one CreateACLs.
	t0 := time.Now()
	created, err := adm.CreateTopics(fctx, partitionsPerLoop, 1, floorConfigs(), topics...)
	if err != nil {
		return fmt.Errorf("CreateTopics: %w", err)
	}
	if err := created.Error(); err != nil {
		return fmt.Errorf("CreateTopics: %w", err)
	}
	t1 := time.Now()
	req := kmsg.NewCreateACLsRequest()
	for i := range n {
		for _, g := range []struct {
			principal string
			op        kmsg.ACLOperation
		}{{producerName(i), kmsg.ACLOperationWrite}, {consumerName(i), kmsg.ACLOperationRead}} {
			cr := kmsg.NewCreateACLsRequestCreation()
			cr.ResourceType = kmsg.ACLResourceTypeTopic
			cr.ResourceName = topics[i]
			cr.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
			cr.Principal = g.principal
			cr.Host = "*"
			cr.Operation = g.op
			cr.PermissionType = kmsg.ACLPermissionTypeAllow
			req.Creations = append(req.Creations, cr)
		}
	}
	aclResp, err := req.RequestWith(fctx, cl)
	if err != nil {
		return fmt.Errorf("CreateACLs: %w", err)
	}
	if len(aclResp.Results) != len(req.Creations) {
		return fmt.Errorf("CreateACLs: %d results for %d creations", len(aclResp.Results), len(req.Creations))
	}
	for _, r := range aclResp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("CreateACLs: %w", err)
		}
	}
	t2 := time.Now()
	fr.CreateTopicsSec, fr.CreateACLsSec, fr.ApplySec = t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t2.Sub(t0).Seconds()

	// No-op diff floor: read what a diff compares, one request each.
	t3 := time.Now()
	details, err := adm.ListTopics(fctx, topics...)
	if err != nil {
		return fmt.Errorf("Metadata: %w", err)
	}
	for _, t := range topics {
		if d, ok := details[t]; !ok || d.Err != nil || len(d.Partitions) != partitionsPerLoop {
			return fmt.Errorf("Metadata: topic %s missing or wrong (%v)", t, d.Err)
		}
	}
	t4 := time.Now()
	configs, err := adm.DescribeTopicConfigs(fctx, topics...)
	if err != nil {
		return fmt.Errorf("DescribeConfigs: %w", err)
	}
	if len(configs) != n {
		return fmt.Errorf("DescribeConfigs: %d of %d topics", len(configs), n)
	}
	for _, rc := range configs {
		if rc.Err != nil {
			return fmt.Errorf("DescribeConfigs of %s: %w", rc.Name, rc.Err)
		}
	}
	t5 := time.Now()
	dreq := kmsg.NewDescribeACLsRequest()
	dreq.ResourceType = kmsg.ACLResourceTypeTopic
	dreq.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
	dreq.Operation = kmsg.ACLOperationAny
	dreq.PermissionType = kmsg.ACLPermissionTypeAny
	dresp, err := dreq.RequestWith(fctx, cl)
	if err != nil {
		return fmt.Errorf("DescribeACLs: %w", err)
	}
	if err := kerr.ErrorForCode(dresp.ErrorCode); err != nil {
		return fmt.Errorf("DescribeACLs: %w", err)
	}
	got := 0
	for _, r := range dresp.Resources {
		got += len(r.ACLs)
	}
	if got != fr.ACLs {
		return fmt.Errorf("DescribeACLs: %d ACLs, want %d", got, fr.ACLs)
	}
	t6 := time.Now()
	fr.MetadataSec, fr.DescribeConfigsSec, fr.DescribeACLsSec = t4.Sub(t3).Seconds(), t5.Sub(t4).Seconds(), t6.Sub(t5).Seconds()
	fr.NoopDiffSec = t6.Sub(t3).Seconds()
	return nil
}
