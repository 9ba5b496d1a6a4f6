package admission

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/store"
)

// Principal is a team-owned principal with what loopgate knows of its use.
type Principal struct {
	store.Owned
	// Loops are the loops of the owning team that name it.
	Loops []string
}

// ResourceName is teams/{team}/principals/{name}.
func (p *Principal) ResourceName() string {
	return OwnedResource(store.KindPrincipal, p.Team, p.Name)
}

// getOwnedOf returns kind/name if team owns it; another team's name is
// reported as not found in team (its owner is not revealed to a reader).
func (c *Core) getOwnedOf(ctx context.Context, r store.OwnedReader, kind, team, name string) (*store.Owned, error) {
	o, err := r.GetOwned(ctx, kind, name)
	if err == nil && o.Team != team {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, &KindError{Kind: kind, Err: fmt.Errorf("%s %s of team %s: %w (loopctl principals %s lists the team's)", kind, name, team, err, team)}
	}
	return o, nil
}

func (c *Core) principalOf(ctx context.Context, o *store.Owned) (*Principal, error) {
	loops, err := loopsNaming(ctx, c.Store, o.Team, store.KindPrincipal, o.Name)
	if err != nil {
		return nil, err
	}
	p := &Principal{Owned: *o}
	for _, l := range loops {
		p.Loops = append(p.Loops, l.Metadata.ResourceName())
	}
	return p, nil
}

// GetPrincipal returns a principal of team.
func (c *Core) GetPrincipal(ctx context.Context, id Identity, team, name string) (*Principal, error) {
	o, err := c.getOwnedOf(ctx, c.Store, store.KindPrincipal, team, name)
	if err != nil {
		return nil, err
	}
	return c.principalOf(ctx, o)
}

// ListOwned returns a page of the principals or groups of team ("" = every
// team the identity may see: all for an admin, else its own team).
func (c *Core) ListOwned(ctx context.Context, id Identity, f store.OwnedFilter) ([]*store.Owned, string, error) {
	all, teams := c.authz().Visible(id, f.Kind+".list")
	if f.Team == "" && !all {
		if len(teams) != 1 {
			return nil, "", &PreconditionError{Reason: "TEAM_REQUIRED", Message: fmt.Sprintf(
				"%s belongs to teams %v: name one of them instead of teams/-", id.Subject, teams)}
		}
		f.Team = teams[0]
	}
	return c.Store.ListOwned(ctx, f)
}

// ListPrincipals is ListOwned for principals, with the loops using each.
func (c *Core) ListPrincipals(ctx context.Context, id Identity, f store.OwnedFilter) ([]*Principal, string, error) {
	f.Kind = store.KindPrincipal
	page, next, err := c.ListOwned(ctx, id, f)
	if err != nil {
		return nil, "", err
	}
	// One pass over each team's loops for the whole page.
	uses := map[string]map[string][]string{} // team -> principal -> loops
	out := make([]*Principal, 0, len(page))
	for _, o := range page {
		byName, ok := uses[o.Team]
		if !ok {
			byName = map[string][]string{}
			err := eachLoop(ctx, c.Store, o.Team, func(l *loop.Loop) {
				for _, p := range l.Spec.Principals() {
					n := loop.PrincipalName(p)
					byName[n] = append(byName[n], l.Metadata.ResourceName())
				}
			})
			if err != nil {
				return nil, "", err
			}
			uses[o.Team] = byName
		}
		out = append(out, &Principal{Owned: *o, Loops: byName[o.Name]})
	}
	return out, next, nil
}

// CreatePrincipal makes name a principal of team before any loop names it.
func (c *Core) CreatePrincipal(ctx context.Context, id Identity, team, name, requestID string) (*Principal, error) {
	resource := OwnedResource(store.KindPrincipal, team, name)
	var problems loop.FieldErrors
	if _, ok := c.Catalog.Team(team); !ok {
		problems = append(problems, loop.FieldError{Field: "parent", Message: fmt.Sprintf("unknown team %q", team)})
	}
	if !loop.ValidPrincipalName(name) {
		problems = append(problems, loop.FieldError{Field: "principal_id", Message: fmt.Sprintf(
			"%q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (the name without User:)", name)})
	} else if why, reserved := c.Catalog.ReservedPrincipal(name); reserved {
		problems = append(problems, loop.FieldError{Field: "principal_id", Message: fmt.Sprintf(
			"User:%s is reserved (%s) and can never be owned by a team", name, why)})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, "principal.create", resource, WriteOptions{RequestID: requestID}, problems)
	}
	rec := &store.Owned{Kind: store.KindPrincipal, Name: name, Team: team, CreatedBy: id.Subject, Origin: store.OriginExplicit}
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		if cur, err := tx.GetOwned(ctx, store.KindPrincipal, name); err == nil {
			if cur.Team == team {
				return &KindError{Kind: store.KindPrincipal, Err: fmt.Errorf("principal %s of team %s: %w", name, team, store.ErrAlreadyExists)}
			}
			return &PreconditionError{Reason: RulePrincipalNotOwned, Message: fmt.Sprintf(
				"User:%s belongs to team %s: pick another name for team %s", name, cur.Team, team)}
		}
		if err := tx.CreateOwned(ctx, rec); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, eventFor(id, "principal.create", resource, requestID, audit.OutcomeOK, map[string]any{"team": team}))
		return err
	})
	if err != nil {
		var pre *PreconditionError
		if errors.As(err, &pre) {
			c.auditRefusal(ctx, id, "principal.create", resource, requestID, audit.OutcomeDenied, pre.Reason, pre.Message)
		}
		return nil, err
	}
	return &Principal{Owned: *rec}, nil
}

// auditRefusal records a refused request that changed nothing.
func (c *Core) auditRefusal(ctx context.Context, id Identity, action, resource, requestID, outcome, reason, msg string) {
	if requestID != "" && requestID != requestIDFrom(ctx) {
		call := CallFrom(ctx)
		call.RequestID = requestID
		ctx = WithCall(ctx, call)
	}
	c.refuse(ctx, id, action, resource, outcome, reason, msg)
}

// credentialLocks serialise credential changes of one principal in this
// process, so two concurrent rotations cannot leave clusters with
// different passwords. A fixed set of locks picked by a hash of the name:
// requests for any number of names cannot grow memory.
var credentialLocks [64]sync.Mutex

func lockCredential(name string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	mu := &credentialLocks[h.Sum32()%uint32(len(credentialLocks))]
	mu.Lock()
	return mu.Unlock
}

// DeletePrincipal deletes a principal no loop names any more, and removes
// its credential, ACLs and quotas from every cluster.
func (c *Core) DeletePrincipal(ctx context.Context, id Identity, team, name, etag, requestID string) (*Principal, []string, error) {
	resource := OwnedResource(store.KindPrincipal, team, name)
	defer lockCredential(name)()
	o, err := c.getOwnedOf(ctx, c.Store, store.KindPrincipal, team, name)
	if err != nil {
		return nil, nil, err
	}
	if etag != "" && etag != o.Etag {
		return nil, nil, fmt.Errorf("principal %s of team %s: %w: get it again (loopctl principal get %s/%s) and retry with its etag", name, team, store.ErrEtagMismatch, team, name)
	}
	if err := c.principalUnused(ctx, c.Store, name); err != nil {
		c.auditRefusal(ctx, id, "principal.delete", resource, requestID, audit.OutcomeDenied, "PRINCIPAL_IN_USE", err.Error())
		return nil, nil, err
	}
	// Remove it from every cluster first: a failure leaves the record, so
	// the delete can be retried.
	var ops []provisioning.OpResult
	var clusters []string
	for _, cl := range c.Catalog.Clusters {
		adm := c.Credentials[cl.Name]
		if adm == nil {
			continue
		}
		if cl.Credentials != "" {
			if err := adm.DeleteSCRAM(ctx, name); err != nil {
				return nil, nil, c.failCredentials(ctx, id, "principal.delete", resource, requestID, cl.Name, err)
			}
			ops = append(ops, provisioning.OpResult{Kind: "DeleteSCRAM", Resource: "user " + name, Op: "AlterUserScramCredentials delete user=" + name})
		}
		res, err := adm.RemovePrincipal(ctx, "User:"+name)
		ops = append(ops, res...)
		if err != nil {
			return nil, nil, c.failCredentials(ctx, id, "principal.delete", resource, requestID, cl.Name, err)
		}
		clusters = append(clusters, cl.Name)
	}
	err = c.Store.Update(ctx, func(tx store.Tx) error {
		if err := c.principalUnused(ctx, tx, name); err != nil {
			return err
		}
		if err := tx.DeleteOwned(ctx, store.KindPrincipal, name, o.Etag); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, eventFor(id, "principal.delete", resource, requestID, audit.OutcomeOK,
			map[string]any{"clusters": clusters, "ops": ops}))
		return err
	})
	if err != nil {
		return nil, nil, &KindError{Kind: store.KindPrincipal, Err: fmt.Errorf("principal %s of team %s: %w", name, team, err)}
	}
	return &Principal{Owned: *o}, clusters, nil
}

// principalUnused fails with PRINCIPAL_IN_USE when any loop (of any team,
// being deleted or not) names the principal.
func (c *Core) principalUnused(ctx context.Context, r store.Reader, name string) error {
	loops, err := loopsNaming(ctx, r, "", store.KindPrincipal, name)
	if err != nil {
		return err
	}
	if len(loops) == 0 {
		return nil
	}
	names := make([]string, len(loops))
	for i, l := range loops {
		names[i] = l.Metadata.Key()
	}
	return &PreconditionError{Reason: "PRINCIPAL_IN_USE", Message: fmt.Sprintf(
		"User:%s is still named by loop(s) %s: remove it from their specs (or delete them) first", name, strings.Join(names, ", "))}
}

// failCredentials audits a cluster's refusal of a credential operation and
// returns the error (never with a secret: the provisioning errors carry
// none).
func (c *Core) failCredentials(ctx context.Context, id Identity, action, resource, requestID, cluster string, err error) error {
	ev := eventFor(id, action, resource, requestID, audit.OutcomeFailed, map[string]any{"cluster": cluster, "error": err.Error()})
	if aerr := c.audit(ctx, ev); aerr != nil {
		c.logger().Error("auditing a failed credential operation failed", "err", aerr)
	}
	return &ClusterError{Cluster: cluster, Err: err}
}

// ClusterError is a cluster refusing an operation loopgate asked for.
type ClusterError struct {
	Cluster string
	Err     error
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("cluster %s refused: %v (nothing was stored; retry)", e.Cluster, e.Err)
}

func (e *ClusterError) Unwrap() error { return e.Err }

// IssuedCredentials is the one-time answer of IssueCredentials.
type IssuedCredentials struct {
	Principal *Principal
	Username  string
	Password  string
	Endpoints []CredentialEndpoint
	// Skipped are clusters where the principal has grants but whose
	// identities loopgate does not manage.
	Skipped []string
}

// CredentialEndpoint is one cluster where an issued credential works.
type CredentialEndpoint struct {
	Cluster          catalog.Cluster
	Mechanism        string
	SecurityProtocol string
}

// grantClusters returns the clusters where the principal has grants: the
// clusters of the live loops of team that name it.
func (c *Core) grantClusters(ctx context.Context, team, name string) ([]catalog.Cluster, error) {
	loops, err := loopsNaming(ctx, c.Store, team, store.KindPrincipal, name)
	if err != nil {
		return nil, err
	}
	var out []catalog.Cluster
	for _, l := range loops {
		if !l.Metadata.DeleteTime.IsZero() {
			continue
		}
		cl, ok := c.clusterOf(l)
		if ok && !slices.ContainsFunc(out, func(x catalog.Cluster) bool { return x.Name == cl.Name }) {
			out = append(out, cl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// clusterOf is the catalog entry of the cluster a loop lives on (the
// reconciler's choice: its recorded cluster, else its region's default).
func (c *Core) clusterOf(l *loop.Loop) (catalog.Cluster, bool) {
	return c.Catalog.ClusterByName(reconciler.ClusterName(c.Catalog, l))
}

// IssueCredentials creates (or with rotate, replaces) the principal's SCRAM
// credential on every cluster where it has grants and loopgate manages
// credentials. The password exists only in the returned value: it is not
// stored, logged or audited.
func (c *Core) IssueCredentials(ctx context.Context, id Identity, team, name string, rotate bool, requestID string) (*IssuedCredentials, error) {
	resource := OwnedResource(store.KindPrincipal, team, name)
	action := "principal.issueCredentials"
	if rotate {
		action = "principal.rotateCredentials"
	}
	defer lockCredential(name)()
	o, err := c.getOwnedOf(ctx, c.Store, store.KindPrincipal, team, name)
	if err != nil {
		return nil, err
	}
	refuse := func(reason, msg string) error {
		c.auditRefusal(ctx, id, action, resource, requestID, audit.OutcomeDenied, reason, msg)
		return &PreconditionError{Reason: reason, Message: msg}
	}
	if o.Credential != nil && !rotate {
		return nil, refuse("CREDENTIALS_ALREADY_ISSUED", fmt.Sprintf(
			"User:%s already has a credential (issued %s by %s) and its password cannot be shown again: rotate it (loopctl principal credentials %s/%s --rotate) to get a new one",
			name, o.Credential.IssueTime.Format("2006-01-02 15:04:05Z"), o.Credential.IssuedBy, team, name))
	}
	clusters, err := c.grantClusters(ctx, team, name)
	if err != nil {
		return nil, err
	}
	if len(clusters) == 0 {
		return nil, refuse("NO_GRANTS", fmt.Sprintf(
			"User:%s has no grants on any cluster: name it as a producer or consumer in a loop of team %s first", name, team))
	}
	out := &IssuedCredentials{Username: name}
	for _, cl := range clusters {
		if cl.Credentials == "" || c.Credentials[cl.Name] == nil {
			out.Skipped = append(out.Skipped, fmt.Sprintf("%s: identities are managed outside loopgate (credentials: external)", cl.Name))
			continue
		}
		out.Endpoints = append(out.Endpoints, CredentialEndpoint{Cluster: cl, Mechanism: cl.Credentials, SecurityProtocol: cl.SecurityProtocol})
	}
	if len(out.Endpoints) == 0 {
		return nil, refuse("CREDENTIALS_EXTERNAL", fmt.Sprintf(
			"User:%s has grants only on clusters whose identities loopgate does not manage (%s): get its credentials from your identity provider",
			name, strings.Join(out.Skipped, "; ")))
	}
	password, err := newPassword()
	if err != nil {
		return nil, err
	}
	var done []string
	for _, ep := range out.Endpoints {
		if err := c.Credentials[ep.Cluster.Name].SetSCRAM(ctx, name, ep.Mechanism, password); err != nil {
			return nil, c.failCredentials(ctx, id, action, resource, requestID, ep.Cluster.Name, fmt.Errorf("%w (already set on: %v; the old password may no longer work there: retry with --rotate)", err, done))
		}
		done = append(done, ep.Cluster.Name)
	}
	now := c.now()
	cred := &store.Credential{Mechanism: out.Endpoints[0].Mechanism, Clusters: done, IssueTime: now, IssuedBy: id.Subject}
	if o.Credential != nil {
		cred.IssueTime, cred.IssuedBy = o.Credential.IssueTime, o.Credential.IssuedBy
		cred.RotateTime, cred.RotatedBy, cred.Rotations = now, id.Subject, o.Credential.Rotations+1
	}
	next := *o
	next.Credential = cred
	err = c.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.UpdateOwned(ctx, &next, o.Etag); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, eventFor(id, action, resource, requestID, audit.OutcomeOK, map[string]any{
			"clusters": done, "mechanism": cred.Mechanism, "skipped": out.Skipped, "rotations": cred.Rotations,
		}))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording the credential of %s (it is set on %v: rotate it to be sure of its password): %w", name, done, err)
	}
	out.Principal, err = c.principalOf(ctx, &next)
	if err != nil {
		return nil, err
	}
	out.Password = password
	return out, nil
}

// newPassword returns 32 random bytes, base64url: no characters that SASL
// or JAAS quoting would mangle.
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Conflicts lists ownership conflicts; platform admins only.
func (c *Core) Conflicts(ctx context.Context, id Identity) ([]OwnershipConflict, error) {
	return c.conflicts(ctx)
}
