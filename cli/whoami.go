package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newWhoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server thinks you are: subject, teams, roles, token expiry",
		Long: `Ask the server who the token loopctl sends belongs to: subject, teams, roles,
how it was authenticated and when the token expires; and say where loopctl
found the server address and the token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			caller, err := a.identity.GetCaller(rctx, &loopgatev1.GetCallerRequest{})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, caller)
			}
			return printCaller(cmd.OutOrStdout(), caller, a.conn, time.Now())
		},
	}
}

// printCaller writes a Caller as "Key: value" lines, then where the server
// address and the token came from.
func printCaller(w io.Writer, c *loopgatev1.Caller, conn Conn, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, termSafe(orDash(v))) }
	field("Subject", c.GetSubject())
	field("Teams", strings.Join(c.GetTeams(), ", "))
	field("Roles", strings.Join(c.GetRoles(), ", "))
	field("Method", c.GetMethod())
	field("Issuer", c.GetIssuer())
	expires := "never"
	if tsSet(c.GetExpireTime()) {
		t := c.GetExpireTime().AsTime()
		expires = t.UTC().Format(time.RFC3339) + " (" + relativeExpiry(t, now) + ")"
	}
	field("Expires", expires)
	field("Server", conn.Server+" (from "+conn.ServerSource+")")
	token := "none"
	if conn.TokenSource != "" {
		token = "from " + conn.TokenSource
	}
	field("Token", token)
	return tw.Flush()
}
