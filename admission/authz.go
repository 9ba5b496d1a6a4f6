package admission

import (
	"fmt"
	"slices"
	"strings"
)

// Roles an identity may hold. A caller with none of them is a team member:
// it acts for the teams of its identity and nothing else.
const (
	// RoleAdmin is the platform admin: everything, on every team.
	RoleAdmin = "admin"
	// RoleTeamAdmin is a team member who also approves the approval
	// reasons policy routes to the team (see policy.RoleTeamAdmin).
	RoleTeamAdmin = "team-admin"
	// RoleSecurityReviewer reads every team's loops and approves what
	// policy routes to security.
	RoleSecurityReviewer = "security-reviewer"
	// RoleAuditor reads everything and changes nothing.
	RoleAuditor = "auditor"
)

// Roles lists every role loopgate knows, for configuration checks.
func Roles() []string {
	return []string{RoleAdmin, RoleTeamAdmin, RoleSecurityReviewer, RoleAuditor}
}

// HasRole reports whether id holds role.
func HasRole(id Identity, role string) bool { return slices.Contains(id.Roles, role) }

// Resource is what an action is about, as far as authorization cares: the
// team that owns it and its resource name (for messages and audit).
type Resource struct {
	// Team owns the resource; "" for resources of no team (the cluster
	// catalog, the whole audit trail) and AnyTeam for a listing across
	// every team the caller may see.
	Team string
	// Name is the resource name, e.g. teams/growth/loops/clickstream.
	Name string
}

// AnyTeam is Resource.Team of a listing across teams (`teams/-`): allowed to
// anyone who may read some team; the listing itself is then scoped with
// Authorizer.Visible.
const AnyTeam = "-"

// Grant is one way to hold a permission.
type Grant string

// The grants a Rule can list.
const (
	// GrantAuthenticated is any authenticated caller.
	GrantAuthenticated Grant = "authenticated"
	// GrantMember is a member of the resource's team (any role).
	GrantMember Grant = "team member"
	// GrantTeamAdmin is a member of the resource's team with RoleTeamAdmin.
	GrantTeamAdmin Grant = "team admin"
	// GrantSecurityReviewer, GrantAuditor and GrantAdmin hold on every team.
	GrantSecurityReviewer Grant = "security reviewer"
	GrantAuditor          Grant = "auditor"
	GrantAdmin            Grant = "platform admin"
)

// Rule says who may perform one action.
type Rule struct {
	Action string  // e.g. loop.create
	Allow  []Grant // any one of them is enough
	Doc    string  // what the action does, for docs/authorization.md
}

// Readers may read every team's resources.
var readers = []Grant{GrantMember, GrantSecurityReviewer, GrantAuditor, GrantAdmin}

// writers change a team's resources.
var writers = []Grant{GrantMember, GrantAdmin}

// approvers may approve or reject; which reasons each may approve is decided
// per reason by Core.Approve (the role policy routes the reason to).
var approvers = []Grant{GrantTeamAdmin, GrantSecurityReviewer, GrantAdmin}

// DefaultRules are loopgate's authorization rules: one per action, every RPC
// maps to exactly one action (see server.methodActions). An action without
// a rule is denied.
var DefaultRules = []Rule{
	{"loop.get", readers, "read a loop"},
	{"loop.list", readers, "list loops"},
	{"loop.create", writers, "create a loop"},
	{"loop.update", writers, "change a loop's spec or labels"},
	{"loop.delete", writers, "delete a loop and, through the reconciler, its topics"},
	{"loop.plan", writers, "plan a loop change"},
	{"loop.approve", approvers, "approve a loop held for approval"},
	{"loop.reject", approvers, "reject a loop held for approval"},
	{"loop.listApprovals", approvers, "list loops awaiting the caller's approval"},
	{"loop.contract", readers, "read a loop's client contract (never a password)"},
	{"principal.get", readers, "read a principal"},
	{"principal.list", readers, "list principals"},
	{"principal.create", writers, "claim a principal for a team"},
	{"principal.delete", writers, "delete a principal with its credential, ACLs and quotas"},
	{"principal.credentials", writers, "issue or rotate a principal's password"},
	{"group.list", readers, "list consumer groups"},
	{"principal.listConflicts", []Grant{GrantAuditor, GrantAdmin}, "list ownership conflicts across teams"},
	{"audit.list", readers, "read the audit trail (team members: their teams' resources only)"},
	{"audit.verify", []Grant{GrantSecurityReviewer, GrantAuditor, GrantAdmin}, "verify the audit hash chain"},
	{"cluster.list", []Grant{GrantAuthenticated}, "list the cluster catalog"},
	{"team.get", readers, "read a team's limits and usage (team members: their own teams)"},
	{"identity.get", []Grant{GrantAuthenticated}, "show the caller's identity"},
	{"policy.list", []Grant{GrantAuthenticated}, "list policy bundles and activations (what loops are judged by is no secret)"},
	{"policy.get", []Grant{GrantAuthenticated}, "read a policy bundle, its tests and approvals"},
	{"policy.push", []Grant{GrantSecurityReviewer, GrantAdmin}, "push a candidate policy bundle (compiled and tested first)"},
	{"policy.approve", []Grant{GrantSecurityReviewer, GrantAdmin}, "approve a candidate policy bundle someone else pushed"},
	{"policy.activate", []Grant{GrantSecurityReviewer, GrantAdmin}, "activate an approved policy bundle"},
	{"policy.rollback", []Grant{GrantSecurityReviewer, GrantAdmin}, "return to a policy bundle that was active before"},
	{"waiver.create", []Grant{GrantSecurityReviewer, GrantAdmin}, "grant a time-limited waiver of one policy rule for a loop"},
	{"waiver.list", readers, "list waivers (team members: their teams' loops only)"},
	{"waiver.revoke", []Grant{GrantSecurityReviewer, GrantAdmin}, "revoke a waiver before it expires"},
	{"policy.impact", []Grant{GrantSecurityReviewer, GrantAuditor, GrantAdmin}, "see which loops and recent decisions a candidate bundle would judge otherwise (every team's)"},
	{"metrics.read", []Grant{GrantAuditor, GrantAdmin}, "read /metrics and /readyz's failure reasons (they name every team's loops; Prometheus may use metrics.tokenFile instead)"},
	{"policy.decisions", readers, "list and explain recorded policy decisions (team members: their teams' loops only)"},
}

// Denial is a refused authorization.
type Denial struct {
	Reason  string // UPPER_SNAKE: TEAM_SCOPE, ROLE_REQUIRED, NO_RULE
	Message string
}

// Authorizer decides every request: (identity, action, resource) → allow or
// deny with a reason. It is the one authorization point; the API adapters
// ask it before doing anything else (server's authorization interceptor).
type Authorizer struct {
	rules map[string]Rule
}

// NewAuthorizer indexes rules; a duplicate action is a programming error.
func NewAuthorizer(rules []Rule) *Authorizer {
	a := &Authorizer{rules: make(map[string]Rule, len(rules))}
	for _, r := range rules {
		if _, dup := a.rules[r.Action]; dup {
			panic("admission: duplicate authorization rule for " + r.Action)
		}
		a.rules[r.Action] = r
	}
	return a
}

// Rule returns the rule of action.
func (a *Authorizer) Rule(action string) (Rule, bool) {
	r, ok := a.rules[action]
	return r, ok
}

// holds reports whether id holds grant g on a resource of team.
func holds(id Identity, g Grant, team string) bool {
	member := func() bool {
		if team == AnyTeam {
			return len(id.Teams) > 0
		}
		return team != "" && slices.Contains(id.Teams, team)
	}
	switch g {
	case GrantAuthenticated:
		return id.Subject != ""
	case GrantMember:
		return member()
	case GrantTeamAdmin:
		return HasRole(id, RoleTeamAdmin) && member()
	case GrantSecurityReviewer:
		return HasRole(id, RoleSecurityReviewer)
	case GrantAuditor:
		return HasRole(id, RoleAuditor)
	case GrantAdmin:
		return HasRole(id, RoleAdmin)
	}
	return false
}

// Authorize decides whether id may perform action on res. A nil Denial
// allows.
func (a *Authorizer) Authorize(id Identity, action string, res Resource) *Denial {
	rule, ok := a.rules[action]
	if !ok {
		return &Denial{Reason: "NO_RULE", Message: fmt.Sprintf("%s may not %s: no authorization rule allows it", id.Subject, action)}
	}
	for _, g := range rule.Allow {
		if holds(id, g, res.Team) {
			return nil
		}
	}
	teamScoped := slices.ContainsFunc(rule.Allow, func(g Grant) bool { return g == GrantMember || g == GrantTeamAdmin })
	global := make([]string, 0, len(rule.Allow))
	for _, g := range rule.Allow {
		if g != GrantMember && g != GrantTeamAdmin {
			global = append(global, string(g))
		}
	}
	what := res.Name
	if what == "" {
		what = action
	}
	switch {
	case teamScoped && res.Team != "" && res.Team != AnyTeam && !slices.Contains(id.Teams, res.Team):
		return &Denial{Reason: "TEAM_SCOPE", Message: fmt.Sprintf(
			"%s may not %s %s: it belongs to team %q and the caller acts for %s; use an identity of that team or one with a role of: %s",
			id.Subject, rule.Doc, what, res.Team, teamsText(id.Teams), strings.Join(global, ", "))}
	default:
		allowed := make([]string, len(rule.Allow))
		for i, g := range rule.Allow {
			allowed[i] = string(g)
		}
		return &Denial{Reason: "ROLE_REQUIRED", Message: fmt.Sprintf(
			"%s may not %s (%s): it needs one of: %s; the caller's roles: %s",
			id.Subject, rule.Doc, what, strings.Join(allowed, ", "), rolesText(id.Roles))}
	}
}

// Visible says which teams' resources id sees in a listing under action:
// every team (all) or the given teams.
func (a *Authorizer) Visible(id Identity, action string) (all bool, teams []string) {
	rule, ok := a.rules[action]
	if !ok {
		return false, nil
	}
	for _, g := range rule.Allow {
		if g != GrantMember && g != GrantTeamAdmin && holds(id, g, "") {
			return true, nil
		}
	}
	for _, g := range rule.Allow {
		if g == GrantMember || g == GrantTeamAdmin {
			for _, t := range id.Teams {
				if holds(id, g, t) && !slices.Contains(teams, t) {
					teams = append(teams, t)
				}
			}
		}
	}
	return false, teams
}

func teamsText(teams []string) string {
	if len(teams) == 0 {
		return "no team"
	}
	return "team(s) " + strings.Join(teams, ", ")
}

func rolesText(roles []string) string {
	if len(roles) == 0 {
		return "none (a team member)"
	}
	return strings.Join(roles, ", ")
}
