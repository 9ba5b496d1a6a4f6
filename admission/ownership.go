package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// Ownership (docs/loop-spec.md): every Kafka principal and consumer group a loop
// names belongs to exactly one team. Admission checks the names before it
// persists anything:
//
//   - a reserved principal (loopgate's admin principal, a configured super
//     user, a wildcard) is denied with PRINCIPAL_RESERVED;
//   - a name owned by another team is denied with PRINCIPAL_NOT_OWNED or
//     GROUP_NOT_OWNED, naming the owner;
//   - a free name is claimed for the loop's team in the same transaction
//     that persists the loop, with an audit event per claim.
//
// These denials are added to the policy decision (policy.Decision.AddDeny),
// so they show in `:plan`, are audited like any denial and cannot be turned
// off by a policy bundle.

// Rule ids of the ownership checks.
const (
	RulePrincipalNotOwned = "PRINCIPAL_NOT_OWNED"
	RulePrincipalReserved = "PRINCIPAL_RESERVED"
	RuleGroupNotOwned     = "GROUP_NOT_OWNED"
)

// claim is a free name that admitting a loop claims for its team.
type claim struct {
	kind, name string
}

// nameRef is one place a loop names a principal or group.
type nameRef struct {
	kind, name, field string
}

// namesOf lists every principal and group l names, with its field path.
func namesOf(l *loop.Loop) []nameRef {
	var out []nameRef
	for i, p := range l.Spec.Producers {
		out = append(out, nameRef{store.KindPrincipal, loop.PrincipalName(p.Principal), fmt.Sprintf("spec.producers[%d].principal", i)})
	}
	for i, c := range l.Spec.Consumers {
		out = append(out, nameRef{store.KindPrincipal, loop.PrincipalName(c.Principal), fmt.Sprintf("spec.consumers[%d].principal", i)})
		if c.Group != "" {
			out = append(out, nameRef{store.KindGroup, c.Group, fmt.Sprintf("spec.consumers[%d].group", i)})
		}
	}
	return out
}

// ownership checks the names l uses: it returns the denials (reserved or
// another team's) and the free names admitting l would claim.
func (c *Core) ownership(ctx context.Context, r store.OwnedReader, l *loop.Loop) ([]policy.Violation, []claim, error) {
	team := l.Metadata.Team
	var deny []policy.Violation
	var claims []claim
	owners := map[claim]*store.Owned{}
	seen := map[claim]bool{}
	for _, ref := range namesOf(l) {
		key := claim{ref.kind, ref.name}
		if ref.kind == store.KindPrincipal {
			if why, reserved := c.Catalog.ReservedPrincipal(ref.name); reserved {
				deny = append(deny, policy.Violation{ID: RulePrincipalReserved, Field: ref.field,
					Msg: fmt.Sprintf("User:%s is reserved (%s) and can never be named by a loop: use a principal of team %s", ref.name, why, team)})
				continue
			}
		}
		o, cached := owners[key]
		if !cached {
			got, err := r.GetOwned(ctx, ref.kind, ref.name)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, nil, err
			default:
				o = got
			}
			owners[key] = o
		}
		switch {
		case o == nil:
			if !seen[key] {
				seen[key] = true
				claims = append(claims, key)
			}
		case o.Team != team:
			deny = append(deny, notOwned(ref, o.Team, team))
		}
	}
	return deny, claims, nil
}

func notOwned(ref nameRef, owner, team string) policy.Violation {
	if ref.kind == store.KindGroup {
		return policy.Violation{ID: RuleGroupNotOwned, Field: ref.field, Msg: fmt.Sprintf(
			"consumer group %q belongs to team %s; a loop of team %s may not name it: use a group of team %s (omit group for the default %s.<loop>.<principal>)",
			ref.name, owner, team, team, team)}
	}
	return policy.Violation{ID: RulePrincipalNotOwned, Field: ref.field, Msg: fmt.Sprintf(
		"User:%s belongs to team %s; a loop of team %s may not name it: use a principal of team %s (loopctl principals %s)",
		ref.name, owner, team, team, team)}
}

// OwnedResource is the API resource name of an owned principal or group.
func OwnedResource(kind, team, name string) string {
	if kind == store.KindGroup {
		return fmt.Sprintf("teams/%s/groups/%s", team, name)
	}
	return fmt.Sprintf("teams/%s/principals/%s", team, name)
}

// claimNames claims, inside the admission's transaction, the free names of
// a loop for its team, appending one audit event per claim. A name another
// team claimed since the check is refused (the whole admission fails).
func (c *Core) claimNames(ctx context.Context, tx store.Tx, id Identity, l *loop.Loop, claims []claim, requestID string) error {
	team := l.Metadata.Team
	for _, cl := range claims {
		o, err := tx.GetOwned(ctx, cl.kind, cl.name)
		switch {
		case err == nil && o.Team == team:
			continue
		case err == nil:
			v := notOwned(nameRef{kind: cl.kind, name: cl.name}, o.Team, team)
			return &PreconditionError{Reason: v.ID, Message: v.Msg}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		rec := &store.Owned{Kind: cl.kind, Name: cl.name, Team: team, CreatedBy: id.Subject,
			Origin: store.OriginLoop, ClaimedBy: l.Metadata.ResourceName()}
		if err := tx.CreateOwned(ctx, rec); err != nil {
			return err
		}
		ev := eventFor(id, cl.kind+".claim", OwnedResource(cl.kind, team, cl.name), requestID, audit.OutcomeOK,
			map[string]any{"loop": l.Metadata.ResourceName(), "team": team})
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// loopsNaming returns the loops (of team, or of every team when team is
// "") that name kind/name, read through r.
func loopsNaming(ctx context.Context, r store.Reader, team, kind, name string) ([]*loop.Loop, error) {
	var out []*loop.Loop
	err := eachLoop(ctx, r, team, func(l *loop.Loop) {
		for _, ref := range namesOf(l) {
			if ref.kind == kind && ref.name == name {
				out = append(out, l)
				return
			}
		}
	})
	return out, err
}

// eachLoop calls fn with every loop of team ("" = all teams).
func eachLoop(ctx context.Context, r store.Reader, team string, fn func(*loop.Loop)) error {
	token := ""
	for {
		page, next, err := r.ListLoops(ctx, store.ListOptions{Team: team, PageSize: store.MaxPageSize, PageToken: token})
		if err != nil {
			return err
		}
		for _, l := range page {
			fn(l)
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// OwnershipConflict is a principal or group that loops of a team other
// than its owner name (possible only in stores written before ownership).
type OwnershipConflict struct {
	Kind, Name, Owner string
	Loops             []string
}

// ownerIndex reads the owning team of every principal and group, page by
// page: one pass instead of a lookup per name.
func ownerIndex(ctx context.Context, r store.OwnedReader) (map[claim]string, error) {
	owners := map[claim]string{}
	for _, kind := range []string{store.KindPrincipal, store.KindGroup} {
		token := ""
		for {
			page, next, err := r.ListOwned(ctx, store.OwnedFilter{Kind: kind, PageSize: store.MaxPageSize, PageToken: token})
			if err != nil {
				return nil, err
			}
			for _, o := range page {
				owners[claim{o.Kind, o.Name}] = o.Team
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	return owners, nil
}

// allLoops reads every loop of the store.
func allLoops(ctx context.Context, r store.Reader) ([]*loop.Loop, error) {
	var loops []*loop.Loop
	err := eachLoop(ctx, r, "", func(l *loop.Loop) { loops = append(loops, l) })
	return loops, err
}

// conflictsIn lists, sorted, the names loops use that another team owns.
func conflictsIn(loops []*loop.Loop, owners map[claim]string) []OwnershipConflict {
	byKey := map[claim]*OwnershipConflict{}
	for _, l := range loops {
		for _, ref := range namesOf(l) {
			key := claim{ref.kind, ref.name}
			team := owners[key]
			if team == "" || team == l.Metadata.Team {
				continue
			}
			cf := byKey[key]
			if cf == nil {
				cf = &OwnershipConflict{Kind: ref.kind, Name: ref.name, Owner: team}
				byKey[key] = cf
			}
			if r := l.Metadata.ResourceName(); !slices.Contains(cf.Loops, r) {
				cf.Loops = append(cf.Loops, r)
			}
		}
	}
	out := make([]OwnershipConflict, 0, len(byKey))
	for _, cf := range byKey {
		sort.Strings(cf.Loops)
		out = append(out, *cf)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind > out[j].Kind // principals first
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// conflicts lists the ownership conflicts of the store, sorted.
func (c *Core) conflicts(ctx context.Context) ([]OwnershipConflict, error) {
	loops, err := allLoops(ctx, c.Store)
	if err != nil {
		return nil, err
	}
	owners, err := ownerIndex(ctx, c.Store)
	if err != nil {
		return nil, err
	}
	return conflictsIn(loops, owners), nil
}

// ClaimExisting upgrades a store written before principals and groups were
// owned: every name that existing loops use and nobody owns is claimed by
// the team of the earliest-created loop naming it (origin "migration",
// audited). Names that loops of several teams use stay with that first
// team and are returned as conflicts; nothing on any cluster changes. It
// runs at every start: one listing of the loops and one of the owned
// names, and no write once every name is owned.
func (c *Core) ClaimExisting(ctx context.Context) ([]OwnershipConflict, error) {
	loops, err := allLoops(ctx, c.Store)
	if err != nil {
		return nil, fmt.Errorf("ownership migration: listing loops: %w", err)
	}
	owners, err := ownerIndex(ctx, c.Store)
	if err != nil {
		return nil, fmt.Errorf("ownership migration: listing owned names: %w", err)
	}
	sort.SliceStable(loops, func(i, j int) bool { return loops[i].Metadata.CreateTime.Before(loops[j].Metadata.CreateTime) })
	type pending struct {
		claim
		team, loop string
	}
	var todo []pending
	for _, l := range loops {
		for _, ref := range namesOf(l) {
			key := claim{ref.kind, ref.name}
			if owners[key] != "" {
				continue
			}
			if ref.kind == store.KindPrincipal {
				if _, reserved := c.Catalog.ReservedPrincipal(ref.name); reserved {
					continue // never owned by anyone; the loop's next update is refused
				}
			}
			owners[key] = l.Metadata.Team
			todo = append(todo, pending{key, l.Metadata.Team, l.Metadata.ResourceName()})
		}
	}
	migration := Identity{Subject: migrationActor}
	const batch = 500
	for start := 0; start < len(todo); start += batch {
		part := todo[start:min(start+batch, len(todo))]
		err := c.Store.Update(ctx, func(tx store.Tx) error {
			for _, p := range part {
				rec := &store.Owned{Kind: p.kind, Name: p.name, Team: p.team, CreatedBy: migrationActor,
					Origin: store.OriginMigration, ClaimedBy: p.loop}
				if err := tx.CreateOwned(ctx, rec); err != nil {
					if errors.Is(err, store.ErrAlreadyExists) {
						continue // claimed meanwhile by an admission
					}
					return err
				}
				ev := eventFor(migration, p.kind+".claim", OwnedResource(p.kind, p.team, p.name), "", audit.OutcomeOK,
					map[string]any{"loop": p.loop, "team": p.team, "origin": store.OriginMigration})
				if _, err := tx.AppendAudit(ctx, ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ownership migration: %w", err)
		}
	}
	if len(todo) > 0 {
		// A concurrent admission may have won a name; read the owners again.
		if owners, err = ownerIndex(ctx, c.Store); err != nil {
			return nil, err
		}
	}
	return conflictsIn(loops, owners), nil
}

// migrationActor is the audit actor of claims made by the upgrade.
const migrationActor = "loopgate/migration"

// OwnedName splits "teams/{team}/{collection}/{name}" (loops, principals).
func OwnedName(resource, collection string) (team, name string, ok bool) {
	parts := strings.Split(resource, "/")
	if len(parts) != 4 || parts[0] != "teams" || parts[2] != collection || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}
