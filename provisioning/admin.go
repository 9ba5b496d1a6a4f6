package provisioning

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin is the narrow interface through which loopgate reads and changes a
// Kafka cluster. KafkaAdmin implements it; everything Kafka-specific stays
// behind it.
type Admin interface {
	// Observe reads the current state of everything named in want: its
	// topics (those that exist, with partitions, replication factor and the
	// configs whose keys loopgate manages), every literal ACL on one of
	// want's topics or on a resource named by want's ACLs (for any
	// principal, so extras are found), and the quotas of want's principals.
	// Only names matter in want: a Topic with just a Name, an ACL with just
	// ResourceType and ResourceName and a Quota with just a Principal are
	// enough. The result is sorted.
	Observe(ctx context.Context, want Resources) (Resources, error)
	// Execute carries out actions in batched admin calls (one request per
	// kind of admin operation) and returns one OpResult per action, in the
	// order of actions. The error is non-nil when any action failed; it is
	// an *ExecuteError unwrapping to every cause.
	Execute(ctx context.Context, actions []Action) ([]OpResult, error)
}

// PrincipalObserver is implemented by admins that can list every ACL of a
// principal, whatever its resource (KafkaAdmin does). The reconciler uses it
// when a loop is deleted to find bindings of the loop's principals on the
// loop's names that its inventory does not list (see reconciler's
// package doc); an Admin without it simply skips that search.
type PrincipalObserver interface {
	// ObservePrincipalACLs returns every literal ACL binding of the given
	// principals, on any resource, sorted. It only reads.
	ObservePrincipalACLs(ctx context.Context, principals []string) ([]ACL, error)
}

var _ PrincipalObserver = (*KafkaAdmin)(nil)

// OpResult is the outcome of one action: the exact admin operation and the
// broker's answer. It is what the audit trail records.
type OpResult struct {
	Kind     ActionKind `json:"kind"`
	Resource string     `json:"resource"`
	// Op is the admin operation and its arguments, e.g. "CreateTopics
	// name=growth.x.events partitions=12 replicationFactor=3
	// configs=cleanup.policy=delete,retention.ms=259200000".
	Op string `json:"op"`
	// Err is "" on success, else the error.
	Err string `json:"err,omitempty"`
}

// Option configures a KafkaAdmin.
type Option func(*KafkaAdmin)

// ReadOnly makes Execute refuse every write with ErrReadOnly. "plan" and
// validate_only use a read-only admin, so a dry run cannot change a cluster
// even if a code path tried to apply.
func ReadOnly() Option { return func(a *KafkaAdmin) { a.readOnly = true } }

// ACLListThreshold is the number of resources above which Observe fetches
// every literal ACL of the cluster in one request and filters locally,
// instead of one DescribeACLs request per resource.
const ACLListThreshold = 64

// brokerTimeoutMillis is the timeout loopgate gives brokers for admin
// operations that wait on the controller.
const brokerTimeoutMillis = 30_000

// KafkaAdmin is the Admin of a real Kafka-protocol cluster (Apache Kafka,
// Redpanda, kfake, ...), speaking through a franz-go client.
//
// Idempotency: Execute is safe to repeat after a crash or a lost response.
//   - CreateTopic of a topic that already exists succeeds when the existing
//     topic has the desired partitions, replication factor and configs (a
//     retry of our own create); otherwise it fails with ErrTopicExists,
//     because the topic was made outside this loop and loopgate does not
//     adopt it silently.
//   - AddPartitions to a topic that already has the desired count succeeds.
//   - DeleteTopic of a topic that is gone, and DeleteACL of an ACL that is
//     gone, succeed. CreateACL and SetQuota are idempotent in Kafka.
type KafkaAdmin struct {
	cl       *kgo.Client
	readOnly bool
}

var _ Admin = (*KafkaAdmin)(nil)

// NewKafkaAdmin returns an Admin that uses cl. The caller owns cl and
// closes it. Build cl with Connect, which lowers kgo's metadata cache age.
func NewKafkaAdmin(cl *kgo.Client, opts ...Option) *KafkaAdmin {
	a := &KafkaAdmin{cl: cl}
	for _, o := range opts {
		o(a)
	}
	return a
}

// IsReadOnly reports whether the admin was built with ReadOnly.
func (a *KafkaAdmin) IsReadOnly() bool { return a.readOnly }

// DefaultManagedConfigs are the config keys Observe reports for a topic
// that want lists without configs (typically a topic about to be deleted).
var DefaultManagedConfigs = []string{ConfigCleanupPolicy, ConfigMinInsyncReplicas, ConfigRetentionMs}

// ---------------------------------------------------------------- Observe

// Observe implements Admin.
func (a *KafkaAdmin) Observe(ctx context.Context, want Resources) (Resources, error) {
	var out Resources
	managed := map[string][]string{}
	for _, t := range want.Topics {
		keys := slices.Collect(maps.Keys(t.Configs))
		if len(keys) == 0 {
			keys = DefaultManagedConfigs
		}
		managed[t.Name] = append(managed[t.Name], keys...)
	}
	topics, err := a.observeTopics(ctx, managed)
	if err != nil {
		return Resources{}, err
	}
	out.Topics = topics

	type res struct{ typ, name string }
	resources := map[res]bool{}
	for _, t := range want.Topics {
		resources[res{ResourceTopic, t.Name}] = true
	}
	for _, acl := range want.ACLs {
		if acl.ResourceType != "" && acl.ResourceName != "" {
			resources[res{acl.ResourceType, acl.ResourceName}] = true
		}
	}
	var filters []kmsg.DescribeACLsRequest
	if len(resources) > ACLListThreshold {
		f := kmsg.NewDescribeACLsRequest()
		f.ResourceType = kmsg.ACLResourceTypeAny
		f.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
		f.Operation = kmsg.ACLOperationAny
		f.PermissionType = kmsg.ACLPermissionTypeAny
		filters = append(filters, f)
	} else {
		for r := range resources {
			typ, err := kmsg.ParseACLResourceType(r.typ)
			if err != nil {
				return Resources{}, fmt.Errorf("observe: resource type %q of %q: %w", r.typ, r.name, err)
			}
			f := kmsg.NewDescribeACLsRequest()
			f.ResourceType = typ
			f.ResourceName = kmsg.StringPtr(r.name)
			f.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
			f.Operation = kmsg.ACLOperationAny
			f.PermissionType = kmsg.ACLPermissionTypeAny
			filters = append(filters, f)
		}
	}
	acls, err := a.describeACLs(ctx, filters)
	if err != nil {
		return Resources{}, err
	}
	for _, acl := range acls {
		if resources[res{acl.ResourceType, acl.ResourceName}] {
			out.ACLs = append(out.ACLs, acl)
		}
	}

	principals := map[string]bool{}
	for _, q := range want.Quotas {
		if isUserPrincipal(q.Principal) {
			principals[q.Principal] = true
		}
	}
	if len(principals) > 0 {
		quotas, err := a.describeUserQuotas(ctx)
		if err != nil {
			return Resources{}, err
		}
		for _, q := range quotas {
			if principals[q.Principal] {
				out.Quotas = append(out.Quotas, q)
			}
		}
	}
	out.Sort()
	return out, nil
}

// ObservePrincipalACLs implements PrincipalObserver: one DescribeACLs
// filter per principal (any resource, literal pattern, any operation and
// permission), issued concurrently.
func (a *KafkaAdmin) ObservePrincipalACLs(ctx context.Context, principals []string) ([]ACL, error) {
	var filters []kmsg.DescribeACLsRequest
	for _, p := range slices.Compact(slices.Sorted(slices.Values(principals))) {
		if err := validatePrincipal(p); err != nil {
			return nil, fmt.Errorf("observe: ACLs of principal: %w", err)
		}
		f := kmsg.NewDescribeACLsRequest()
		f.ResourceType = kmsg.ACLResourceTypeAny
		f.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
		f.Principal = kmsg.StringPtr(p)
		f.Operation = kmsg.ACLOperationAny
		f.PermissionType = kmsg.ACLPermissionTypeAny
		filters = append(filters, f)
	}
	acls, err := a.describeACLs(ctx, filters)
	if err != nil {
		return nil, err
	}
	out := Resources{ACLs: acls}
	out.Sort()
	return slices.Compact(out.ACLs), nil
}

// observeTopics returns the topics of managed that exist, with the values
// of their managed config keys. It asks the brokers directly (not kgo's
// metadata cache), so a topic created a moment ago is seen.
func (a *KafkaAdmin) observeTopics(ctx context.Context, managed map[string][]string) ([]Topic, error) {
	if len(managed) == 0 {
		return nil, nil
	}
	names := slices.Sorted(maps.Keys(managed))
	req := kmsg.NewMetadataRequest()
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("observe: metadata of %d topic(s): %w", len(names), err)
	}
	var topics []Topic
	for _, t := range resp.Topics {
		if t.Topic == nil || managed[*t.Topic] == nil {
			continue
		}
		if err := kafkaErr(t.ErrorCode, nil); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				continue // absent
			}
			return nil, fmt.Errorf("observe: metadata of topic %s: %w", *t.Topic, err)
		}
		topic := Topic{Name: *t.Topic, Partitions: int32(len(t.Partitions)), Configs: map[string]string{}}
		for _, p := range t.Partitions {
			topic.ReplicationFactor = max(topic.ReplicationFactor, int16(len(p.Replicas)))
		}
		topics = append(topics, topic)
	}
	if len(topics) == 0 {
		return nil, nil
	}

	dreq := kmsg.NewDescribeConfigsRequest()
	for _, t := range topics {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = t.Name
		r.ConfigNames = slices.Compact(slices.Sorted(slices.Values(managed[t.Name])))
		dreq.Resources = append(dreq.Resources, r)
	}
	dresp, err := dreq.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("observe: configs of %d topic(s): %w", len(topics), err)
	}
	byName := make(map[string]*Topic, len(topics))
	for i := range topics {
		byName[topics[i].Name] = &topics[i]
	}
	for _, r := range dresp.Resources {
		t := byName[r.ResourceName]
		if t == nil {
			continue
		}
		if err := kafkaErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, fmt.Errorf("observe: configs of topic %s: %w", r.ResourceName, err)
		}
		keys := managed[r.ResourceName]
		for _, c := range r.Configs {
			if c.Value != nil && slices.Contains(keys, c.Name) {
				t.Configs[c.Name] = *c.Value
			}
		}
	}
	return topics, nil
}

// describeACLs issues the filters concurrently and returns every binding
// found.
func (a *KafkaAdmin) describeACLs(ctx context.Context, filters []kmsg.DescribeACLsRequest) ([]ACL, error) {
	var (
		mu   sync.Mutex
		out  []ACL
		errs []error
		wg   sync.WaitGroup
	)
	for i := range filters {
		wg.Go(func() {
			f := &filters[i]
			resp, err := f.RequestWith(ctx, a.cl)
			if err == nil {
				err = kafkaErr(resp.ErrorCode, resp.ErrorMessage)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				what := fmt.Sprintf("%s *", f.ResourceType)
				switch {
				case f.ResourceName != nil:
					what = fmt.Sprintf("%s %s", f.ResourceType, *f.ResourceName)
				case f.Principal != nil:
					what = "principal " + *f.Principal
				}
				errs = append(errs, fmt.Errorf("observe: ACLs of %s: %w", what, err))
				return
			}
			for _, r := range resp.Resources {
				for _, b := range r.ACLs {
					out = append(out, ACL{
						Principal:    b.Principal,
						Host:         b.Host,
						ResourceType: r.ResourceType.String(),
						ResourceName: r.ResourceName,
						PatternType:  r.ResourcePatternType.String(),
						Operation:    b.Operation.String(),
						Permission:   b.PermissionType.String(),
					})
				}
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// describeUserQuotas returns the quotas of every named user (entity "user"
// alone, not combined with a client id) in one request.
func (a *KafkaAdmin) describeUserQuotas(ctx context.Context) ([]Quota, error) {
	req := kmsg.NewDescribeClientQuotasRequest()
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType = "user"
	c.MatchType = kmsg.QuotasMatchTypeAny
	req.Components = append(req.Components, c)
	req.Strict = true
	resp, err := req.RequestWith(ctx, a.cl)
	if err == nil {
		err = kafkaErr(resp.ErrorCode, resp.ErrorMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("observe: client quotas: %w", err)
	}
	var out []Quota
	for _, e := range resp.Entries {
		if len(e.Entity) != 1 || e.Entity[0].Type != "user" || e.Entity[0].Name == nil {
			continue
		}
		q := Quota{Principal: "User:" + *e.Entity[0].Name}
		for _, v := range e.Values {
			switch v.Key {
			case QuotaProducerByteRate:
				q.ProducerByteRate = int64(v.Value)
			case QuotaConsumerByteRate:
				q.ConsumerByteRate = int64(v.Value)
			}
		}
		if q.ProducerByteRate > 0 || q.ConsumerByteRate > 0 {
			out = append(out, q)
		}
	}
	return out, nil
}

// ---------------------------------------------------------------- Execute

// Execute implements Admin. The batches run in this order, each one admin
// request: CreateTopics, CreatePartitions, IncrementalAlterConfigs,
// CreateACLs, AlterClientQuotas (sets and deletes), DeleteACLs,
// DeleteTopics. A failed batch does not stop later ones: every action gets
// its own result and the next reconcile retries what failed.
func (a *KafkaAdmin) Execute(ctx context.Context, actions []Action) ([]OpResult, error) {
	results := make([]OpResult, len(actions))
	errs := make([]error, len(actions))
	byKind := map[ActionKind][]int{}
	for i, act := range actions {
		results[i] = OpResult{Kind: act.Kind, Resource: act.Resource}
		op, err := describeOp(act)
		results[i].Op = op
		if err != nil {
			errs[i] = err
			continue
		}
		byKind[act.Kind] = append(byKind[act.Kind], i)
	}
	if a.readOnly {
		for i := range actions {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("%s: %w", actions[i].Resource, ErrReadOnly)
			}
		}
	} else {
		b := batch{a: a, actions: actions, errs: errs}
		steps := []func(){
			func() { b.createTopics(ctx, byKind[CreateTopic]) },
			func() { b.createPartitions(ctx, byKind[AddPartitions]) },
			func() { b.alterConfigs(ctx, byKind[AlterTopicConfigs]) },
			func() { b.createACLs(ctx, byKind[CreateACL]) },
			func() { b.alterQuotas(ctx, append(slices.Clone(byKind[SetQuota]), byKind[DeleteQuota]...)) },
			func() { b.deleteACLs(ctx, byKind[DeleteACL]) },
			func() { b.deleteTopics(ctx, byKind[DeleteTopic]) },
		}
		for _, step := range steps {
			step()
			// A cluster that cannot be reached fails every later request
			// too, each after its own retry budget: stop here and say so.
			if down := firstUnreachable(errs); down != nil {
				for i := range errs {
					if errs[i] == nil {
						errs[i] = fmt.Errorf("%s: not attempted: %w", actions[i].Resource, down)
					}
				}
				break
			}
		}
	}

	return results, failures(results, errs)
}

// describeOp renders the exact admin operation of an action, and checks the
// action carries the payload its kind needs.
func describeOp(act Action) (string, error) {
	malformed := func(what string) (string, error) {
		return string(act.Kind), fmt.Errorf("%s: malformed %s action: %s", act.Resource, act.Kind, what)
	}
	switch act.Kind {
	case CreateTopic:
		if act.Topic == nil {
			return malformed("no topic")
		}
		t := act.Topic
		return fmt.Sprintf("CreateTopics name=%s partitions=%d replicationFactor=%d configs=%s",
			t.Name, t.Partitions, t.ReplicationFactor, joinConfigs(t.Configs, slices.Sorted(maps.Keys(t.Configs)))), nil
	case AddPartitions:
		if act.Topic == nil {
			return malformed("no topic")
		}
		return fmt.Sprintf("CreatePartitions name=%s count=%d", act.Topic.Name, act.Topic.Partitions), nil
	case AlterTopicConfigs:
		if act.Topic == nil || len(act.ConfigKeys) == 0 {
			return malformed("no topic or no config keys")
		}
		for _, k := range act.ConfigKeys {
			if _, ok := act.Topic.Configs[k]; !ok {
				return malformed("config key " + k + " has no value")
			}
		}
		return fmt.Sprintf("IncrementalAlterConfigs topic=%s set=%s", act.Topic.Name, joinConfigs(act.Topic.Configs, act.ConfigKeys)), nil
	case DeleteTopic:
		if act.Topic == nil {
			return malformed("no topic")
		}
		return "DeleteTopics name=" + act.Topic.Name, nil
	case CreateACL, DeleteACL:
		if act.ACL == nil {
			return malformed("no ACL")
		}
		if _, err := aclCreation(*act.ACL); err != nil {
			return malformed(err.Error())
		}
		api := "CreateACLs"
		if act.Kind == DeleteACL {
			api = "DeleteACLs"
		}
		x := act.ACL
		return fmt.Sprintf("%s principal=%s host=%s resource=%s:%s pattern=%s operation=%s permission=%s",
			api, x.Principal, x.Host, x.ResourceType, x.ResourceName, x.PatternType, x.Operation, x.Permission), nil
	case SetQuota, DeleteQuota:
		if act.Quota == nil {
			return malformed("no quota")
		}
		user, ok := strings.CutPrefix(act.Quota.Principal, "User:")
		if !ok || user == "" {
			return malformed(fmt.Sprintf("quota principal %q is not User:<name>", act.Quota.Principal))
		}
		var set, remove []string
		for _, kv := range quotaOps(*act.Quota, act.Kind == DeleteQuota) {
			if kv.Remove {
				remove = append(remove, kv.Key)
			} else {
				set = append(set, fmt.Sprintf("%s=%d", kv.Key, int64(kv.Value)))
			}
		}
		op := "AlterClientQuotas user=" + user
		if len(set) > 0 {
			op += " set=" + strings.Join(set, ",")
		}
		if len(remove) > 0 {
			op += " remove=" + strings.Join(remove, ",")
		}
		return op, nil
	}
	return string(act.Kind), fmt.Errorf("%s: unknown action kind %q", act.Resource, act.Kind)
}

func joinConfigs(cfg map[string]string, keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + cfg[k]
	}
	return strings.Join(parts, ",")
}

// batch runs the admin requests of one Execute and records per-action
// errors in errs (indexed like actions).
type batch struct {
	a       *KafkaAdmin
	actions []Action
	errs    []error
}

// fail sets err on every action of idx (a whole request failed).
func (b *batch) fail(idx []int, api string, err error) {
	for _, i := range idx {
		b.errs[i] = fmt.Errorf("%s: %s: %w", b.actions[i].Resource, api, err)
	}
}

func (b *batch) itemErr(i int, code int16, msg *string) {
	if err := kafkaErr(code, msg); err != nil {
		b.errs[i] = fmt.Errorf("%s: %w", b.actions[i].Resource, err)
	}
}

func (b *batch) createTopics(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewCreateTopicsRequest()
	req.TimeoutMillis = brokerTimeoutMillis
	byName := map[string]int{}
	for _, i := range idx {
		t := b.actions[i].Topic
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = t.Name
		rt.NumPartitions = t.Partitions
		rt.ReplicationFactor = t.ReplicationFactor
		for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name = k
			c.Value = kmsg.StringPtr(t.Configs[k])
			rt.Configs = append(rt.Configs, c)
		}
		req.Topics = append(req.Topics, rt)
		byName[t.Name] = i
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "CreateTopics", err)
		return
	}
	var exists []int
	for _, t := range resp.Topics {
		i, ok := byName[t.Topic]
		if !ok {
			continue
		}
		delete(byName, t.Topic)
		if t.ErrorCode == kerr.TopicAlreadyExists.Code {
			exists = append(exists, i)
			continue
		}
		b.itemErr(i, t.ErrorCode, t.ErrorMessage)
	}
	for _, i := range byName {
		b.errs[i] = fmt.Errorf("%s: CreateTopics: the broker did not answer for this topic", b.actions[i].Resource)
	}
	if len(exists) > 0 {
		b.checkExisting(ctx, exists)
	}
}

// checkExisting decides about topics whose create said TopicAlreadyExists:
// success when the topic has the desired shape, ErrTopicExists otherwise.
func (b *batch) checkExisting(ctx context.Context, idx []int) {
	managed := map[string][]string{}
	for _, i := range idx {
		t := b.actions[i].Topic
		managed[t.Name] = slices.Collect(maps.Keys(t.Configs))
		if len(managed[t.Name]) == 0 {
			managed[t.Name] = DefaultManagedConfigs
		}
	}
	observed, err := b.a.observeTopics(ctx, managed)
	if err != nil {
		b.fail(idx, "CreateTopics", fmt.Errorf("%w (and describing the existing topic failed: %w)", kerr.TopicAlreadyExists, err))
		return
	}
	for _, i := range idx {
		want := b.actions[i].Topic
		var got *Topic
		for j := range observed {
			if observed[j].Name == want.Name {
				got = &observed[j]
			}
		}
		switch {
		case got == nil:
			b.errs[i] = fmt.Errorf("%s: CreateTopics: %w, yet it cannot be described; retry later", b.actions[i].Resource, kerr.TopicAlreadyExists)
		case sameShape(*want, *got):
			// Our own earlier create (a retry after a lost response).
		default:
			b.errs[i] = fmt.Errorf("%s: %w: the cluster has %s, loopgate wants %s; it was not created by this loop: "+
				"delete or rename it on the cluster, or rename the stream", b.actions[i].Resource, ErrTopicExists, got.Summary(), want.Summary())
		}
	}
}

func sameShape(want, got Topic) bool {
	if want.Partitions != got.Partitions {
		return false
	}
	if want.ReplicationFactor > 0 && want.ReplicationFactor != got.ReplicationFactor {
		return false
	}
	for k, v := range want.Configs {
		if got.Configs[k] != v {
			return false
		}
	}
	return true
}

func (b *batch) createPartitions(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewCreatePartitionsRequest()
	req.TimeoutMillis = brokerTimeoutMillis
	byName := map[string]int{}
	for _, i := range idx {
		t := b.actions[i].Topic
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic = t.Name
		rt.Count = t.Partitions
		req.Topics = append(req.Topics, rt)
		byName[t.Name] = i
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "CreatePartitions", err)
		return
	}
	var retry []int
	for _, t := range resp.Topics {
		i, ok := byName[t.Topic]
		if !ok {
			continue
		}
		if t.ErrorCode == kerr.InvalidPartitions.Code {
			retry = append(retry, i) // maybe already at the count (a retry)
		}
		b.itemErr(i, t.ErrorCode, t.ErrorMessage)
	}
	if len(retry) == 0 {
		return
	}
	managed := map[string][]string{}
	for _, i := range retry {
		managed[b.actions[i].Topic.Name] = DefaultManagedConfigs
	}
	observed, err := b.a.observeTopics(ctx, managed)
	if err != nil {
		return // keep the InvalidPartitions errors
	}
	for _, i := range retry {
		for _, o := range observed {
			if o.Name == b.actions[i].Topic.Name && o.Partitions == b.actions[i].Topic.Partitions {
				b.errs[i] = nil
			}
		}
	}
}

func (b *batch) alterConfigs(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewIncrementalAlterConfigsRequest()
	byName := map[string]int{}
	for _, i := range idx {
		act := b.actions[i]
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = act.Topic.Name
		for _, k := range act.ConfigKeys {
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name = k
			c.Op = kmsg.IncrementalAlterConfigOpSet
			c.Value = kmsg.StringPtr(act.Topic.Configs[k])
			r.Configs = append(r.Configs, c)
		}
		req.Resources = append(req.Resources, r)
		byName[act.Topic.Name] = i
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "IncrementalAlterConfigs", err)
		return
	}
	for _, r := range resp.Resources {
		if i, ok := byName[r.ResourceName]; ok {
			b.itemErr(i, r.ErrorCode, r.ErrorMessage)
		}
	}
}

func aclCreation(acl ACL) (kmsg.CreateACLsRequestCreation, error) {
	c := kmsg.NewCreateACLsRequestCreation()
	var err error
	var errs []error
	if c.ResourceType, err = kmsg.ParseACLResourceType(acl.ResourceType); err != nil {
		errs = append(errs, err)
	}
	if c.ResourcePatternType, err = kmsg.ParseACLResourcePatternType(acl.PatternType); err != nil {
		errs = append(errs, err)
	}
	if c.Operation, err = kmsg.ParseACLOperation(acl.Operation); err != nil {
		errs = append(errs, err)
	}
	if c.PermissionType, err = kmsg.ParseACLPermissionType(acl.Permission); err != nil {
		errs = append(errs, err)
	}
	if err := validatePrincipal(acl.Principal); err != nil {
		errs = append(errs, err)
	}
	if acl.ResourceName == "" || acl.Host == "" {
		errs = append(errs, errors.New("ACL resource name and host must be set"))
	}
	c.ResourceName = acl.ResourceName
	c.Principal = acl.Principal
	c.Host = acl.Host
	return c, errors.Join(errs...)
}

func (b *batch) createACLs(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewCreateACLsRequest()
	for _, i := range idx {
		c, _ := aclCreation(*b.actions[i].ACL) // checked by describeOp
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "CreateACLs", err)
		return
	}
	if len(resp.Results) != len(idx) {
		b.fail(idx, "CreateACLs", fmt.Errorf("the broker answered %d results for %d creations", len(resp.Results), len(idx)))
		return
	}
	for j, r := range resp.Results {
		b.itemErr(idx[j], r.ErrorCode, r.ErrorMessage)
	}
}

func (b *batch) deleteACLs(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewDeleteACLsRequest()
	for _, i := range idx {
		c, _ := aclCreation(*b.actions[i].ACL) // checked by describeOp
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType = c.ResourceType
		f.ResourceName = kmsg.StringPtr(c.ResourceName)
		f.ResourcePatternType = c.ResourcePatternType
		f.Principal = kmsg.StringPtr(c.Principal)
		f.Host = kmsg.StringPtr(c.Host)
		f.Operation = c.Operation
		f.PermissionType = c.PermissionType
		req.Filters = append(req.Filters, f)
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "DeleteACLs", err)
		return
	}
	if len(resp.Results) != len(idx) {
		b.fail(idx, "DeleteACLs", fmt.Errorf("the broker answered %d results for %d filters", len(resp.Results), len(idx)))
		return
	}
	for j, r := range resp.Results {
		b.itemErr(idx[j], r.ErrorCode, r.ErrorMessage) // no match = already gone = success
	}
}

// quotaOps are the AlterClientQuotas operations of a SetQuota (set the
// non-zero rates, remove the zero ones) or a DeleteQuota (remove both).
func quotaOps(q Quota, remove bool) []kmsg.AlterClientQuotasRequestEntryOp {
	var ops []kmsg.AlterClientQuotasRequestEntryOp
	for _, kv := range []struct {
		key  string
		rate int64
	}{{QuotaProducerByteRate, q.ProducerByteRate}, {QuotaConsumerByteRate, q.ConsumerByteRate}} {
		op := kmsg.NewAlterClientQuotasRequestEntryOp()
		op.Key = kv.key
		if remove || kv.rate <= 0 {
			op.Remove = true
		} else {
			op.Value = float64(kv.rate)
		}
		ops = append(ops, op)
	}
	return ops
}

func (b *batch) alterQuotas(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewAlterClientQuotasRequest()
	byUser := map[string]int{}
	for _, i := range idx {
		act := b.actions[i]
		user := strings.TrimPrefix(act.Quota.Principal, "User:")
		e := kmsg.NewAlterClientQuotasRequestEntry()
		ent := kmsg.NewAlterClientQuotasRequestEntryEntity()
		ent.Type = "user"
		ent.Name = kmsg.StringPtr(user)
		e.Entity = append(e.Entity, ent)
		e.Ops = quotaOps(*act.Quota, act.Kind == DeleteQuota)
		req.Entries = append(req.Entries, e)
		byUser[user] = i
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "AlterClientQuotas", err)
		return
	}
	for _, e := range resp.Entries {
		if len(e.Entity) != 1 || e.Entity[0].Name == nil {
			continue
		}
		if i, ok := byUser[*e.Entity[0].Name]; ok {
			b.itemErr(i, e.ErrorCode, e.ErrorMessage)
		}
	}
}

func (b *batch) deleteTopics(ctx context.Context, idx []int) {
	if len(idx) == 0 {
		return
	}
	req := kmsg.NewDeleteTopicsRequest()
	req.TimeoutMillis = brokerTimeoutMillis
	byName := map[string]int{}
	for _, i := range idx {
		name := b.actions[i].Topic.Name
		req.TopicNames = append(req.TopicNames, name)
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
		byName[name] = i
	}
	resp, err := req.RequestWith(ctx, b.a.cl)
	if err != nil {
		b.fail(idx, "DeleteTopics", err)
		return
	}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		i, ok := byName[*t.Topic]
		if !ok || t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
			continue // already gone: the delete is done
		}
		b.itemErr(i, t.ErrorCode, t.ErrorMessage)
	}
}

// FormatResults renders results as "op -> OK|error" lines, for logs and
// tests.
func FormatResults(results []OpResult) string {
	var b strings.Builder
	for _, r := range results {
		status := "OK"
		if r.Err != "" {
			status = r.Err
		}
		b.WriteString(r.Op + " -> " + status + "\n")
	}
	return b.String()
}

// firstUnreachable returns the first error of errs that says the cluster
// cannot be reached.
func firstUnreachable(errs []error) error {
	for _, err := range errs {
		if Unreachable(err) {
			return err
		}
	}
	return nil
}
