package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newPrincipalsCmd() *cobra.Command {
	var conflicts bool
	cmd := &cobra.Command{
		Use:   "principals [TEAM]",
		Short: "List the Kafka principals teams own, or ownership conflicts",
		Long: `List the Kafka principals of TEAM (without TEAM: of every team you may see):
who owns each, how it came to (created explicitly, claimed by a loop, or by
a migration), which loops name it and the credential loopgate issued for it.

With --conflicts, list instead the principals and consumer groups that loops
of another team than their owner name (left by stores written before
ownership existed): those loops cannot be updated until the conflict is
resolved. With TEAM, only the conflicts TEAM is part of.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, err := optionalTeam(args)
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			if conflicts {
				return a.showConflicts(cmd, team)
			}
			principals, err := a.listPrincipals(cmd.Context(), team)
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListPrincipalsResponse{Principals: principals})
			}
			if len(principals) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no principals")
				return nil
			}
			return printPrincipals(cmd.OutOrStdout(), principals)
		},
	}
	cmd.Flags().BoolVar(&conflicts, "conflicts", false, "list the principals and groups that loops of more than one team name")
	return cmd
}

func (a *app) newGroupsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "groups [TEAM]",
		Short: "List the consumer groups teams own",
		Long: `List the consumer group ids of TEAM (without TEAM: of every team you may see),
with who owns each and how it came to.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, err := optionalTeam(args)
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			groups, err := a.listGroups(cmd.Context(), team)
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListConsumerGroupsResponse{Groups: groups})
			}
			if len(groups) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no consumer groups")
				return nil
			}
			return printGroups(cmd.OutOrStdout(), groups)
		},
	}
}

// optionalTeam reads the optional TEAM argument: "" for none.
func optionalTeam(args []string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	team := strings.TrimPrefix(args[0], "teams/")
	if team == "" || team == "-" || strings.Contains(team, "/") {
		return "", fmt.Errorf("%q is not a team: write TEAM, e.g. growth (or nothing for every team)", args[0])
	}
	return team, nil
}

// teamParent is the parent of a list: teams/TEAM, or teams/- for every team.
func teamParent(team string) string {
	if team == "" {
		return "teams/-"
	}
	return "teams/" + team
}

// pageAll calls list with each page token until the last page.
func pageAll[T any](ctx context.Context, list func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for {
		rctx, cancel := rpcContext(ctx)
		page, next, err := list(rctx, token)
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

// listPrincipals pages through ListPrincipals until the last page.
func (a *app) listPrincipals(ctx context.Context, team string) ([]*loopgatev1.Principal, error) {
	return pageAll(ctx, func(ctx context.Context, token string) ([]*loopgatev1.Principal, string, error) {
		resp, err := a.principals.ListPrincipals(ctx, &loopgatev1.ListPrincipalsRequest{Parent: teamParent(team), PageSize: listPageSize, PageToken: token})
		return resp.GetPrincipals(), resp.GetNextPageToken(), err
	})
}

// listGroups pages through ListConsumerGroups until the last page.
func (a *app) listGroups(ctx context.Context, team string) ([]*loopgatev1.ConsumerGroup, error) {
	return pageAll(ctx, func(ctx context.Context, token string) ([]*loopgatev1.ConsumerGroup, string, error) {
		resp, err := a.principals.ListConsumerGroups(ctx, &loopgatev1.ListConsumerGroupsRequest{Parent: teamParent(team), PageSize: listPageSize, PageToken: token})
		return resp.GetGroups(), resp.GetNextPageToken(), err
	})
}

// showConflicts lists the ownership conflicts (those TEAM is part of, when
// team is set).
func (a *app) showConflicts(cmd *cobra.Command, team string) error {
	rctx, cancel := rpcContext(cmd.Context())
	defer cancel()
	resp, err := a.principals.ListOwnershipConflicts(rctx, &loopgatev1.ListOwnershipConflictsRequest{})
	if err != nil {
		return err
	}
	conflicts := conflictsOf(resp.GetConflicts(), team)
	if a.output != FormatTable {
		return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListOwnershipConflictsResponse{Conflicts: conflicts})
	}
	if len(conflicts) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "no ownership conflicts")
		return nil
	}
	return printConflicts(cmd.OutOrStdout(), conflicts)
}

// conflictsOf keeps the conflicts team is part of: as the owner, or with a
// loop that names what another team owns. team "" keeps all.
func conflictsOf(all []*loopgatev1.OwnershipConflict, team string) []*loopgatev1.OwnershipConflict {
	if team == "" {
		return all
	}
	var out []*loopgatev1.OwnershipConflict
	for _, c := range all {
		if c.GetOwner() == team || slices.ContainsFunc(c.GetLoops(), func(l string) bool {
			t, _ := splitName(l)
			return t == team
		}) {
			out = append(out, c)
		}
	}
	return out
}

// printPrincipals writes the PRINCIPAL TEAM ORIGIN LOOPS CREDENTIAL table.
func printPrincipals(w io.Writer, principals []*loopgatev1.Principal) error {
	t := newTable(w, "PRINCIPAL", "TEAM", "ORIGIN", "LOOPS", "CREDENTIAL")
	for _, p := range principals {
		t.row(kafkaPrincipal(p), p.GetTeam(), originString(p.GetOrigin(), p.GetClaimedBy()),
			loopList(p.GetLoops()), credentialString(p.GetCredential()))
	}
	return t.flush()
}

// printGroups writes the GROUP TEAM ORIGIN CREATED table.
func printGroups(w io.Writer, groups []*loopgatev1.ConsumerGroup) error {
	t := newTable(w, "GROUP", "TEAM", "ORIGIN", "CREATED")
	for _, g := range groups {
		id := g.GetGroupId()
		if id == "" {
			id = lastSegment(g.GetName())
		}
		t.row(id, g.GetTeam(), originString(g.GetOrigin(), g.GetClaimedBy()), byString(g.GetCreateTime(), g.GetCreatedBy()))
	}
	return t.flush()
}

// printConflicts writes the KIND NAME OWNER LOOPS OF OTHER TEAMS table.
func printConflicts(w io.Writer, conflicts []*loopgatev1.OwnershipConflict) error {
	t := newTable(w, "KIND", "NAME", "OWNER", "LOOPS OF OTHER TEAMS")
	for _, c := range conflicts {
		t.row(c.GetKind(), c.GetId(), c.GetOwner(), loopList(c.GetLoops()))
	}
	return t.flush()
}

// kafkaPrincipal is the principal's "User:name".
func kafkaPrincipal(p *loopgatev1.Principal) string {
	if kp := p.GetKafkaPrincipal(); kp != "" {
		return kp
	}
	return "User:" + lastSegment(p.GetName())
}

// originString is how a principal or group came to its team: "explicit",
// or "loop growth/checkout-nudge" with the loop that claimed it.
func originString(origin, claimedBy string) string {
	if claimedBy == "" {
		return origin
	}
	if origin == "" {
		return "claimed by " + shortName(claimedBy)
	}
	return origin + " " + shortName(claimedBy)
}

// loopList is loops as "team/loop", comma-separated.
func loopList(loops []string) string {
	short := make([]string, len(loops))
	for i, l := range loops {
		short[i] = shortName(l)
	}
	return strings.Join(short, ",")
}

// credentialString summarises a credential in one line, e.g.
// "SCRAM-SHA-512 on eu-1, issued 2026-11-30 10:00 by ana, rotated 2×";
// "-" when loopgate issued none.
func credentialString(c *loopgatev1.CredentialInfo) string {
	if c == nil {
		return "-"
	}
	s := orDash(c.GetMechanism())
	if len(c.GetClusters()) > 0 {
		s += " on " + strings.Join(c.GetClusters(), ",")
	}
	s += ", issued " + byString(c.GetIssueTime(), c.GetIssuedBy())
	if n := c.GetRotations(); n > 0 {
		s += fmt.Sprintf(", rotated %d×", n)
	}
	return s
}

// byString is "2026-11-30 10:00 by ana", or just the time when who is
// unknown.
func byString(ts *timestamppb.Timestamp, who string) string {
	s := shortTime(ts)
	if who != "" {
		s += " by " + who
	}
	return s
}

// lastSegment is what follows the last "/" of a resource name.
func lastSegment(name string) string {
	return name[strings.LastIndex(name, "/")+1:]
}
