package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// maxTokenBytes bounds what `login --with-token` reads from standard input.
const maxTokenBytes = 16 << 10

func (a *app) newLoginCmd() *cobra.Command {
	var withToken bool
	cmd := &cobra.Command{
		Use:   "login --with-token",
		Short: "Check a token with the server and keep it for that server",
		Long: `Read a token from the first line of standard input, ask the server who it
belongs to (so that a wrong token is never kept), and store it for the server
in ~/.loopgate/hosts.json (mode 0600). Commands to that server then use it
unless --token, --as or $LOOPGATE_TOKEN say otherwise.

  echo "$TOKEN" | loopctl login --with-token
  loopctl login --server loopgate.example.com:443 --with-token < token.txt

The server is --server, else $LOOPGATE_SERVER, else the dev credentials
file's, else ` + DefaultServer + `; one token is kept per server address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !withToken {
				return fmt.Errorf("login reads the token from standard input and needs --with-token: `%s`", loginHint)
			}
			if a.flags.Token != "" || a.flags.As != "" {
				return errors.New("login reads the token from standard input: drop --token and --as")
			}
			token, err := readToken(a.stdin)
			if err != nil {
				return err
			}
			if err := a.resolve(); err != nil {
				return err
			}
			a.conn.Token, a.conn.TokenSource = token, "standard input"
			a.conn.StoredLogin, a.conn.TokenExpiry = false, time.Time{}
			if err := a.dial(); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			caller, err := a.identity.GetCaller(rctx, &loopgatev1.GetCallerRequest{})
			if err != nil {
				if st, ok := status.FromError(err); ok && st.Code() == codes.Unauthenticated {
					fmt.Fprintf(stderr, "error: %s refused the token: %s\n", a.conn.Server, termSafe(st.Message()))
				} else {
					PrintError(stderr, err, a.conn)
				}
				fmt.Fprintf(stderr, "  nothing was stored (%s is unchanged)\n", a.hostsPath)
				return &ExitError{Code: 1, Err: err}
			}

			// Read the file again: another login may have written it while
			// the server answered.
			hosts, err := ReadHosts(a.hostsPath, stderr)
			if err != nil {
				return err
			}
			if hosts == nil {
				hosts = &Hosts{}
			}
			if hosts.Servers == nil {
				hosts.Servers = map[string]HostEntry{}
			}
			entry := HostEntry{Token: token, Subject: caller.GetSubject()}
			if exp := caller.GetExpireTime(); tsSet(exp) {
				entry.Expiry = exp.AsTime().UTC().Format(time.RFC3339)
			}
			hosts.Servers[a.conn.Server] = entry
			if err := WriteHosts(a.hostsPath, hosts, stderr); err != nil {
				return err
			}

			out := cmd.OutOrStdout()
			if a.output != FormatTable {
				if err := printMessage(out, a.output, caller); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "Logged in to %s as %s (%s, %s, %s)\n", termSafe(a.conn.Server), termSafe(orDash(caller.GetSubject())),
					listOr("teams", "no teams", caller.GetTeams()), listOr("roles", "no roles", caller.GetRoles()),
					tokenExpiryPhrase(caller, time.Now()))
				fmt.Fprintf(out, "  token stored in %s\n", a.hostsPath)
			}
			if a.getenv(EnvToken) != "" {
				fmt.Fprintf(stderr, "note: $%s is set and is used before this login; unset it to use the stored token\n", EnvToken)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withToken, "with-token", false, "read the token from standard input")
	return cmd
}

func (a *app) newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the token `loopctl login` stored for the server",
		Long: `Remove the server's entry from ~/.loopgate/hosts.json. The server is chosen as
for every command (--server, $LOOPGATE_SERVER, ...). The token itself stays
valid until it expires or is revoked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.resolve(); err != nil {
				return err
			}
			server := a.conn.Server
			out := cmd.OutOrStdout()
			if _, ok := a.hosts.Entry(server); !ok {
				fmt.Fprintf(out, "not logged in to %s\n", termSafe(server))
				return nil
			}
			delete(a.hosts.Servers, server)
			if err := WriteHosts(a.hostsPath, a.hosts, cmd.ErrOrStderr()); err != nil {
				return err
			}
			fmt.Fprintf(out, "Logged out of %s: its token is removed from %s\n", termSafe(server), a.hostsPath)
			return nil
		},
	}
}

// readToken reads the token of `login --with-token`: the first line of r,
// trimmed, at most 16 KiB, refused when r is a terminal (the token would be
// echoed and end up in no pipe) or when it is empty or not one word of
// printable ASCII (what an authorization header carries).
func readToken(r io.Reader) (string, error) {
	if isTerminal(r) {
		return "", fmt.Errorf("standard input is a terminal: pipe the token: `%s`", loginHint)
	}
	line, err := bufio.NewReader(io.LimitReader(r, maxTokenBytes+1)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the token from standard input: %w", err)
	}
	if err != nil && len(line) > maxTokenBytes {
		return "", errors.New("the first line of standard input is longer than 16 KiB: that is not a token")
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return "", fmt.Errorf("no token on standard input: pipe the token: `%s`", loginHint)
	}
	for _, c := range token {
		if c <= ' ' || c >= 0x7f {
			return "", errors.New(`the token on standard input contains spaces, control or non-ASCII characters: pipe the bare token (without "Bearer ")`)
		}
	}
	return token, nil
}

// isTerminal reports whether r is a character device such as a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// listOr renders "teams a, b", or none when the list is empty; server text,
// termSafe.
func listOr(label, none string, items []string) string {
	if len(items) == 0 {
		return none
	}
	return label + " " + termSafe(strings.Join(items, ", "))
}

// tokenExpiryPhrase is "token expires in 42m (at 2026-11-30T10:42:00Z)",
// "token expired 5m ago (at ...)" or "token does not expire".
func tokenExpiryPhrase(c *loopgatev1.Caller, now time.Time) string {
	if !tsSet(c.GetExpireTime()) {
		return "token does not expire"
	}
	t := c.GetExpireTime().AsTime()
	return "token " + relativeExpiry(t, now) + " (at " + t.UTC().Format(time.RFC3339) + ")"
}

// relativeExpiry is "expires in 42m" or "expired 5m ago".
func relativeExpiry(t, now time.Time) string {
	if t.After(now) {
		return "expires in " + shortDuration(t.Sub(now))
	}
	return "expired " + shortDuration(now.Sub(t)) + " ago"
}

// tsSet reports whether a timestamp is set: present, valid, not the epoch.
func tsSet(ts *timestamppb.Timestamp) bool {
	return ts != nil && ts.IsValid() && (ts.GetSeconds() != 0 || ts.GetNanos() != 0)
}
