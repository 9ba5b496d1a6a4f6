package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newPrincipalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "principal",
		Short: "Create, show, delete a team's principal, or issue its credentials",
		Long: `Manage one Kafka principal a team owns, named TEAM/NAME (the Kafka principal
User:NAME of team TEAM; TEAM/User:NAME works too).

A loop that names a free principal claims it for its team; create one
explicitly to reserve it before any loop names it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		a.newPrincipalCreateCmd(),
		a.newPrincipalGetCmd(),
		a.newPrincipalDeleteCmd(),
		a.newPrincipalCredentialsCmd(),
	)
	return cmd
}

func (a *app) newPrincipalCreateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create TEAM/NAME",
		Short: "Create a principal for a team before any loop names it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, id, err := parsePrincipalRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			p, err := a.principals.CreatePrincipal(rctx, &loopgatev1.CreatePrincipalRequest{
				Parent: "teams/" + team, PrincipalId: id,
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output != FormatTable {
				return printMessage(out, a.output, p)
			}
			fmt.Fprintf(out, "%s created: %s now belongs to team %s\n", termSafe(p.GetName()), termSafe(kafkaPrincipal(p)), termSafe(p.GetTeam()))
			fmt.Fprintf(out, "  issue its password with `loopctl principal credentials %s/%s`\n", team, id)
			return nil
		},
	}
}

func (a *app) newPrincipalGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get TEAM/NAME",
		Short: "Show a principal: owner, origin, loops and credential",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, id, err := parsePrincipalRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			p, err := a.principals.GetPrincipal(rctx, &loopgatev1.GetPrincipalRequest{Name: principalResource(team, id)})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, p)
			}
			return printPrincipalDetails(cmd.OutOrStdout(), p)
		},
	}
}

func (a *app) newPrincipalDeleteCmd() *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "delete TEAM/NAME",
		Short: "Delete a principal no loop uses, with its credential, ACLs and quotas",
		Long: `Delete a principal that no loop names any more. loopgate removes its
credential, ACLs and quotas from every cluster and prints where from. With
--etag, the principal is deleted only if it has not changed since it had
that etag.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, id, err := parsePrincipalRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.principals.DeletePrincipal(rctx, &loopgatev1.DeletePrincipalRequest{
				Name: principalResource(team, id), Etag: etag,
			})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			printPrincipalDeleted(cmd.OutOrStdout(), principalResource(team, id), resp)
			return nil
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", "delete only if the principal still has this etag (see `loopctl principal get`)")
	return cmd
}

func (a *app) newPrincipalCredentialsCmd() *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "credentials TEAM/NAME",
		Short: "Issue (or --rotate) a principal's SCRAM credential; the password is shown once",
		Long: `Issue the principal's SCRAM credential on every cluster where loopgate manages
credentials and the principal has grants, and print the user name, the
password and, per cluster, how to connect.

The password is shown only this once: loopgate does not keep it. A principal
that already has a credential is refused; --rotate replaces it, and the old
password stops working.

With -o json or -o yaml, standard output is one object and nothing else:
{username, password, endpoints: [{cluster, region, mechanism,
securityProtocol, bootstrapServers}], skipped}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			team, id, err := parsePrincipalRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.principals.IssuePrincipalCredentials(rctx, &loopgatev1.IssuePrincipalCredentialsRequest{
				Name: principalResource(team, id), Rotate: rotate,
			})
			if err != nil {
				return err // CREDENTIALS_ALREADY_ISSUED says to add --rotate
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if a.output != FormatTable {
				if err := printValue(out, a.output, credentialsOf(resp)); err != nil {
					return err
				}
			} else {
				if err := printCredentials(out, resp); err != nil {
					return err
				}
				printSkipped(errOut, resp.GetSkipped())
			}
			printPasswordWarning(errOut, resp.GetUsername(), team+"/"+id, rotate)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace an issued credential: the old password stops working")
	return cmd
}

// credentialsOutput is `principal credentials -o json|yaml`: stable
// lower-camel keys, lists never null.
type credentialsOutput struct {
	Username  string                `json:"username"`
	Password  string                `json:"password"`
	Endpoints []credentialsEndpoint `json:"endpoints"`
	Skipped   []string              `json:"skipped"`
}

type credentialsEndpoint struct {
	Cluster          string   `json:"cluster"`
	Region           string   `json:"region"`
	Mechanism        string   `json:"mechanism"`
	SecurityProtocol string   `json:"securityProtocol"`
	BootstrapServers []string `json:"bootstrapServers"`
}

func credentialsOf(r *loopgatev1.IssuePrincipalCredentialsResponse) credentialsOutput {
	out := credentialsOutput{
		Username:  r.GetUsername(),
		Password:  r.GetPassword(),
		Endpoints: []credentialsEndpoint{},
		Skipped:   append([]string{}, r.GetSkipped()...),
	}
	for _, e := range r.GetEndpoints() {
		out.Endpoints = append(out.Endpoints, credentialsEndpoint{
			Cluster: e.GetCluster(), Region: e.GetRegion(), Mechanism: e.GetMechanism(),
			SecurityProtocol: e.GetSecurityProtocol(), BootstrapServers: append([]string{}, e.GetBootstrapServers()...),
		})
	}
	return out
}

// printCredentials writes the issued credential once: principal, user name
// and password, then one line per cluster where it works.
func printCredentials(w io.Writer, r *loopgatev1.IssuePrincipalCredentialsResponse) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if p := r.GetPrincipal(); p != nil {
		fmt.Fprintf(tw, "Principal:\t%s (%s)\n", termSafe(kafkaPrincipal(p)), termSafe(p.GetName()))
	}
	fmt.Fprintf(tw, "Username:\t%s\n", termSafe(r.GetUsername()))
	// The password is loopgate's, random and printable; it is printed
	// exactly, since a changed character would make it useless. Should it
	// hold anything a terminal would interpret, it is printed Go-quoted
	// (the escapes say exactly which characters) instead of raw.
	if pw := r.GetPassword(); termSafe(pw) == pw && !strings.Contains(pw, " ") {
		fmt.Fprintf(tw, "Password:\t%s\n", pw)
	} else {
		fmt.Fprintf(tw, "Password:\t%s (Go-quoted: it holds spaces or control characters)\n", strconv.Quote(pw))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.GetEndpoints()) == 0 {
		fmt.Fprintln(w, "\nEndpoints: none (no cluster where loopgate manages credentials grants it anything)")
		return nil
	}
	fmt.Fprintln(w, "\nEndpoints:")
	var buf strings.Builder
	t := newTable(&buf, "CLUSTER", "REGION", "MECHANISM", "SECURITY PROTOCOL", "BOOTSTRAP")
	for _, e := range r.GetEndpoints() {
		t.row(e.GetCluster(), e.GetRegion(), e.GetMechanism(), e.GetSecurityProtocol(), strings.Join(e.GetBootstrapServers(), ","))
	}
	if err := t.flush(); err != nil {
		return err
	}
	return writeIndented(w, buf.String())
}

// printSkipped lists, on stderr, the clusters where the credential was not
// set because their identities are managed outside loopgate.
func printSkipped(w io.Writer, skipped []string) {
	if len(skipped) == 0 {
		return
	}
	fmt.Fprintln(w, "note: no credential was set on these clusters, whose identities loopgate does not manage:")
	for _, s := range skipped {
		fmt.Fprintf(w, "  %s\n", termSafe(s))
	}
}

// printPasswordWarning says, on stderr, that the password just printed
// cannot be shown again (and, after a rotation, that the old one is gone).
func printPasswordWarning(w io.Writer, username, ref string, rotated bool) {
	fmt.Fprintf(w, "warning: the password of %s is shown only now: loopgate does not keep it. Store it in a secret manager;\n", termSafe(orDash(username)))
	fmt.Fprintf(w, "  if it is lost, replace it with `loopctl principal credentials %s --rotate`\n", termSafe(ref))
	if rotated {
		fmt.Fprintln(w, "  the previous password no longer works")
	}
}

// printPrincipalDetails writes one principal as "Key: value" lines.
func printPrincipalDetails(w io.Writer, p *loopgatev1.Principal) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, termSafe(orDash(v))) }
	field("Name", p.GetName())
	field("Principal", kafkaPrincipal(p))
	field("Team", p.GetTeam())
	field("Origin", originString(p.GetOrigin(), p.GetClaimedBy()))
	field("Created", byString(p.GetCreateTime(), p.GetCreatedBy()))
	field("Loops", strings.ReplaceAll(loopList(p.GetLoops()), ",", ", "))
	field("Credential", credentialString(p.GetCredential()))
	if c := p.GetCredential(); c.GetRotations() > 0 || c.GetRotateTime() != nil {
		field("Last rotated", byString(c.GetRotateTime(), c.GetRotatedBy()))
	}
	field("Etag", p.GetEtag())
	return tw.Flush()
}

// printPrincipalDeleted says that a principal was deleted and which
// clusters its credential, ACLs and quotas were removed from.
func printPrincipalDeleted(w io.Writer, name string, r *loopgatev1.DeletePrincipalResponse) {
	if n := r.GetPrincipal().GetName(); n != "" {
		name = n
	}
	fmt.Fprintf(w, "%s deleted\n", termSafe(name))
	if len(r.GetClusters()) == 0 {
		fmt.Fprintln(w, "  it had no credential, ACLs or quotas on any cluster")
		return
	}
	fmt.Fprintf(w, "  credential, ACLs and quotas removed from: %s\n", termSafe(strings.Join(r.GetClusters(), ", ")))
}

// parsePrincipalRef reads TEAM/NAME, TEAM/User:NAME or
// teams/TEAM/principals/NAME into the team and the principal name (without
// "User:").
func parsePrincipalRef(ref string) (team, id string, err error) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2:
		team, id = parts[0], parts[1]
	case len(parts) == 4 && parts[0] == "teams" && parts[2] == "principals":
		team, id = parts[1], parts[3]
	default:
		return "", "", principalRefError(ref)
	}
	id = strings.TrimPrefix(id, "User:")
	if team == "" || id == "" {
		return "", "", principalRefError(ref)
	}
	return team, id, nil
}

func principalRefError(ref string) error {
	return fmt.Errorf("%q is not a principal: write TEAM/NAME, e.g. growth/checkout-api (or TEAM/User:NAME)", ref)
}

// principalResource is the resource name teams/TEAM/principals/NAME.
func principalResource(team, id string) string {
	return "teams/" + team + "/principals/" + id
}
