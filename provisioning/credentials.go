package provisioning

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Credentials manages SCRAM credentials of principals on one cluster.
// KafkaAdmin implements it. It is separate from Admin so that code that
// only reconciles loops does not need to implement it.
//
// Passwords never appear in errors or OpResults.
type Credentials interface {
	// SetSCRAM creates or replaces user's SCRAM credential for mechanism
	// (MechanismScramSHA256 or MechanismScramSHA512) with a fresh random
	// salt and SCRAMIterations iterations.
	SetSCRAM(ctx context.Context, user, mechanism, password string) error
	// DeleteSCRAM removes user's credentials for every SCRAM mechanism; a
	// credential that does not exist is not an error.
	DeleteSCRAM(ctx context.Context, user string) error
	// SCRAMMechanisms returns the mechanisms user has a credential for
	// (empty if none).
	SCRAMMechanisms(ctx context.Context, user string) ([]string, error)
	// RemovePrincipal deletes every ACL whose principal is principal (e.g.
	// "User:x", any resource, any pattern type, any host) and the
	// principal's client quotas (user entity), returning one OpResult per
	// admin operation for the audit trail.
	RemovePrincipal(ctx context.Context, principal string) ([]OpResult, error)
}

var _ Credentials = (*KafkaAdmin)(nil)

// SCRAMIterations is the iteration count SetSCRAM uses: Kafka's minimum,
// and the only count kfake accepts for logging in.
const SCRAMIterations = 4096

// SCRAMMechanismNames are the SCRAM mechanisms Credentials manages, in
// the order SCRAMMechanisms reports them.
var SCRAMMechanismNames = []string{MechanismScramSHA256, MechanismScramSHA512}

// userQuotaKeys are the client quota keys Kafka accepts for a user entity.
// RemovePrincipal removes all of them, also when DescribeClientQuotas does
// not show them yet (Apache Kafka's brokers learn of a quota a moment after
// the controller).
var userQuotaKeys = []string{
	QuotaConsumerByteRate, "controller_mutation_rate", QuotaProducerByteRate, "request_percentage",
}

func scramMechanism(name string) (kadm.ScramMechanism, error) {
	switch name {
	case MechanismScramSHA256:
		return kadm.ScramSha256, nil
	case MechanismScramSHA512:
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("%w: mechanism %q is not a SCRAM mechanism; use %s or %s",
		ErrInvalidCredential, name, MechanismScramSHA256, MechanismScramSHA512)
}

func validateSCRAMUser(user string) error {
	if user == "" {
		return fmt.Errorf("%w: the user name is empty", ErrInvalidCredential)
	}
	if strings.HasPrefix(user, "User:") {
		return fmt.Errorf("%w: %q is a principal; pass the bare user name (%s, not User:%s)",
			ErrInvalidCredential, user, strings.TrimPrefix(user, "User:"), strings.TrimPrefix(user, "User:"))
	}
	return nil
}

// scramErr turns a per-user kadm result into an error like kafkaErr does
// for raw responses (authorization failures become *kadm.AuthError).
func scramErr(err error, msg string) error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return kafkaErr(ke.Code, &msg)
	}
	if err != nil && msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// alterSCRAM sends one AlterUserSCRAMCredentials request for user (Apache
// Kafka refuses a user that appears twice in one request, so callers send
// one mechanism at a time). op describes the request for errors.
func (a *KafkaAdmin) alterSCRAM(ctx context.Context, op, user string, del []kadm.DeleteSCRAM, upsert []kadm.UpsertSCRAM) error {
	res, err := kadm.NewClient(a.cl).AlterUserSCRAMs(ctx, del, upsert)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r, ok := res[user]
	if !ok {
		return fmt.Errorf("%s: the broker did not answer for this user", op)
	}
	if err := scramErr(r.Err, r.ErrMessage); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// SetSCRAM implements Credentials. kadm salts the password (24 random
// bytes) and derives the salted password locally; only the salt and the
// salted password are sent. Apache Kafka accepts the new credential for
// logging in a moment after SetSCRAM returns.
func (a *KafkaAdmin) SetSCRAM(ctx context.Context, user, mechanism, password string) error {
	op := fmt.Sprintf("AlterUserSCRAMCredentials upsert user=%s mechanism=%s iterations=%d", user, mechanism, SCRAMIterations)
	mech, err := scramMechanism(mechanism)
	if err == nil {
		err = validateSCRAMUser(user)
	}
	if err == nil && password == "" {
		err = fmt.Errorf("%w: the password is empty", ErrInvalidCredential)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if a.readOnly {
		return fmt.Errorf("%s: %w", op, ErrReadOnly)
	}
	return a.alterSCRAM(ctx, op, user, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: mech, Iterations: SCRAMIterations, Password: password,
	}})
}

// DeleteSCRAM implements Credentials. It sends one deletion per mechanism
// (Apache Kafka refuses a user twice in one request) and tries every
// mechanism even when one fails; RESOURCE_NOT_FOUND (no such credential)
// counts as success.
func (a *KafkaAdmin) DeleteSCRAM(ctx context.Context, user string) error {
	if err := validateSCRAMUser(user); err != nil {
		return fmt.Errorf("AlterUserSCRAMCredentials delete user=%s: %w", user, err)
	}
	if a.readOnly {
		return fmt.Errorf("AlterUserSCRAMCredentials delete user=%s: %w", user, ErrReadOnly)
	}
	var errs []error
	for _, name := range SCRAMMechanismNames {
		op := fmt.Sprintf("AlterUserSCRAMCredentials delete user=%s mechanism=%s", user, name)
		mech, _ := scramMechanism(name)
		err := a.alterSCRAM(ctx, op, user, []kadm.DeleteSCRAM{{User: user, Mechanism: mech}}, nil)
		if err != nil && !errors.Is(err, kerr.ResourceNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SCRAMMechanisms implements Credentials. It reads what the broker it asks
// knows: on Apache Kafka a credential set a moment ago may not show yet.
// It works on a read-only admin.
func (a *KafkaAdmin) SCRAMMechanisms(ctx context.Context, user string) ([]string, error) {
	op := "DescribeUserSCRAMCredentials user=" + user
	if err := validateSCRAMUser(user); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res, err := kadm.NewClient(a.cl).DescribeUserSCRAMs(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := []string{}
	r, ok := res[user]
	if !ok {
		return out, nil
	}
	if err := scramErr(r.Err, r.ErrMessage); err != nil {
		if errors.Is(err, kerr.ResourceNotFound) {
			return out, nil // no credential at all
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for _, ci := range r.CredInfos {
		if ci.Mechanism == kadm.ScramSha256 || ci.Mechanism == kadm.ScramSha512 {
			out = append(out, ci.Mechanism.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// RemovePrincipal implements Credentials. It runs two admin operations,
// each reported by one OpResult (in this order) even when the other fails:
//
//   - DeleteACLs with one filter: principal, any resource type and name,
//     any pattern type, host, operation and permission. The Op lists the
//     bindings the broker deleted.
//   - For a User: principal only, AlterClientQuotas removing every user
//     quota key from the user entity, and every key the broker shows for
//     the user combined with a client id.
//
// It does not touch SCRAM credentials (see DeleteSCRAM). A read-only
// admin returns the operations it would run, each failed with
// ErrReadOnly. The error is an *ExecuteError when an operation failed.
func (a *KafkaAdmin) RemovePrincipal(ctx context.Context, principal string) ([]OpResult, error) {
	if err := validatePrincipal(principal); err != nil {
		return nil, fmt.Errorf("remove principal: %w", err)
	}
	aclOp := "DeleteACLs principal=" + principal + " resource=ANY pattern=ANY host=ANY operation=ANY permission=ANY"
	results := []OpResult{{Kind: DeleteACL, Resource: "acls of " + principal, Op: aclOp}}
	errs := make([]error, 1, 2)
	user, isUser := strings.CutPrefix(principal, "User:")
	if isUser {
		results = append(results, OpResult{
			Kind: DeleteQuota, Resource: Quota{Principal: principal}.Label(),
			Op: "AlterClientQuotas user=" + user + " remove=" + strings.Join(userQuotaKeys, ","),
		})
		errs = append(errs, nil)
	}

	if a.readOnly {
		for i := range results {
			errs[i] = fmt.Errorf("%s: %w", results[i].Resource, ErrReadOnly)
		}
	} else {
		var deleted []ACL
		deleted, errs[0] = a.deletePrincipalACLs(ctx, principal)
		if len(deleted) > 0 {
			labels := make([]string, len(deleted))
			for i, acl := range deleted {
				labels[i] = acl.Label()
			}
			results[0].Op += " deleted=[" + strings.Join(labels, "; ") + "]"
		} else if errs[0] == nil {
			results[0].Op += " deleted=[]"
		}
		if isUser {
			results[1].Op, errs[1] = a.removeUserQuotas(ctx, user)
		}
		for i := range errs {
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", results[i].Resource, errs[i])
			}
		}
	}

	return results, failures(results, errs)
}

// deletePrincipalACLs deletes every binding of principal and returns the
// deleted ones, sorted. Bindings the broker matched but failed to delete
// are reported in the error, one per binding.
func (a *KafkaAdmin) deletePrincipalACLs(ctx context.Context, principal string) ([]ACL, error) {
	req := kmsg.NewDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType = kmsg.ACLResourceTypeAny
	f.ResourceName = nil // any
	f.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	f.Principal = kmsg.StringPtr(principal)
	f.Host = nil // any
	f.Operation = kmsg.ACLOperationAny
	f.PermissionType = kmsg.ACLPermissionTypeAny
	req.Filters = append(req.Filters, f)
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("DeleteACLs: %w", err)
	}
	if len(resp.Results) != 1 {
		return nil, fmt.Errorf("DeleteACLs: the broker answered %d results for 1 filter", len(resp.Results))
	}
	r := resp.Results[0]
	if err := kafkaErr(r.ErrorCode, r.ErrorMessage); err != nil {
		return nil, fmt.Errorf("DeleteACLs: %w", err)
	}
	var (
		deleted []ACL
		errs    []error
	)
	for _, m := range r.MatchingACLs {
		acl := ACL{
			Principal:    m.Principal,
			Host:         m.Host,
			ResourceType: m.ResourceType.String(),
			ResourceName: m.ResourceName,
			PatternType:  m.ResourcePatternType.String(),
			Operation:    m.Operation.String(),
			Permission:   m.PermissionType.String(),
		}
		if err := kafkaErr(m.ErrorCode, m.ErrorMessage); err != nil {
			errs = append(errs, fmt.Errorf("DeleteACLs: %s: %w", acl.Label(), err))
			continue
		}
		deleted = append(deleted, acl)
	}
	slices.SortFunc(deleted, compareACL)
	return deleted, joinInline(errs)
}

// removeUserQuotas removes every quota of user: all user quota keys from
// the user entity, and the keys the broker shows on entities that combine
// the user with a client id. It returns the operation it ran and its
// error. A failed describe does not stop the removal from the user entity,
// but is reported, since combined entities may then have been missed.
func (a *KafkaAdmin) removeUserQuotas(ctx context.Context, user string) (string, error) {
	// entity is the user alone (key "") or combined with a client id
	// (key "client-id=<name>" or "client-id=<default>").
	type entity struct {
		hasClientID bool
		clientID    *string
	}
	entities := map[string]entity{"": {}}
	remove := map[string]map[string]bool{"": {}} // entity key -> quota keys
	for _, k := range userQuotaKeys {
		remove[""][k] = true
	}

	var errs []error
	dreq := kmsg.NewDescribeClientQuotasRequest()
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType = "user"
	c.MatchType = kmsg.QuotasMatchTypeExact
	c.Match = kmsg.StringPtr(user)
	dreq.Components = append(dreq.Components, c)
	dreq.Strict = false // also the user combined with client ids
	dresp, err := dreq.RequestWith(ctx, a.cl)
	if err == nil {
		err = kafkaErr(dresp.ErrorCode, dresp.ErrorMessage)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("DescribeClientQuotas user=%s: %w", user, err))
	} else {
		for _, e := range dresp.Entries {
			var (
				ent           entity
				isUser, other bool
			)
			for _, c := range e.Entity {
				switch {
				case c.Type == "user" && c.Name != nil && *c.Name == user:
					isUser = true
				case c.Type == "client-id" && !ent.hasClientID:
					ent = entity{hasClientID: true, clientID: c.Name}
				default:
					other = true
				}
			}
			if !isUser || other {
				continue
			}
			key := ""
			if ent.hasClientID {
				key = "client-id=<default>"
				if ent.clientID != nil {
					key = "client-id=" + *ent.clientID
				}
			}
			entities[key] = ent
			if remove[key] == nil {
				remove[key] = map[string]bool{}
			}
			for _, v := range e.Values {
				remove[key][v.Key] = true
			}
		}
	}

	req := kmsg.NewAlterClientQuotasRequest()
	var ops []string
	for _, key := range slices.Sorted(maps.Keys(remove)) {
		ent := entities[key]
		e := kmsg.NewAlterClientQuotasRequestEntry()
		u := kmsg.NewAlterClientQuotasRequestEntryEntity()
		u.Type = "user"
		u.Name = kmsg.StringPtr(user)
		e.Entity = append(e.Entity, u)
		label := "user=" + user
		if ent.hasClientID {
			cid := kmsg.NewAlterClientQuotasRequestEntryEntity()
			cid.Type = "client-id"
			cid.Name = ent.clientID
			e.Entity = append(e.Entity, cid)
			label += "," + key
		}
		keys := slices.Sorted(maps.Keys(remove[key]))
		for _, k := range keys {
			op := kmsg.NewAlterClientQuotasRequestEntryOp()
			op.Key = k
			op.Remove = true
			e.Ops = append(e.Ops, op)
		}
		req.Entries = append(req.Entries, e)
		ops = append(ops, label+" remove="+strings.Join(keys, ","))
	}
	op := "AlterClientQuotas " + strings.Join(ops, "; ")

	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return op, joinInline(append(errs, fmt.Errorf("AlterClientQuotas: %w", err)))
	}
	for _, e := range resp.Entries {
		if err := kafkaErr(e.ErrorCode, e.ErrorMessage); err != nil {
			var parts []string
			for _, c := range e.Entity {
				name := "<default>"
				if c.Name != nil {
					name = *c.Name
				}
				parts = append(parts, c.Type+"="+name)
			}
			errs = append(errs, fmt.Errorf("AlterClientQuotas %s: %w", strings.Join(parts, ","), err))
		}
	}
	return op, joinInline(errs)
}

// inlineErrors is errors.Join on one line ("; "-separated), so that an
// OpResult's Err stays one line like Execute's.
type inlineErrors []error

func (e inlineErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e inlineErrors) Unwrap() []error { return e }

// joinInline returns nil, the only error, or an inlineErrors of errs.
func joinInline(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return inlineErrors(slices.Clone(errs))
}
