// Package cli implements loopctl, the command line client of loopgate: it
// applies loop files, shows plans, lists and inspects loops, lists what
// awaits the caller's review and approves or rejects loops, deletes them,
// reads the audit trail, manages the principals teams own with their
// credentials, prints loop contracts, and logs in, all over gRPC.
//
// Start with Execute (what cmd/loopctl calls) and newRootCmd, which wires one
// cobra command per file (apply.go, plan.go with diff, get.go, delete.go, approve.go,
// reject.go, approvals.go (with the approval progress shared by approve and
// get), audit.go, clusters.go, principals.go for principals and groups,
// principal.go, contract.go, login.go for login and logout, whoami.go).
// Where loopctl connects and with which token is decided by ResolveConn
// (config.go), from the flags, the environment, the tokens `loopctl login`
// keeps per server in ~/.loopgate/hosts.json (hosts.go: ReadHosts,
// WriteHosts) and the dev credentials file; how server errors are
// explained, with every policy violation, by PrintError (errors.go). Loop
// files (-f FILE|DIR, -R: files.go) are read with loop.LoadWithLimits and
// mapped to the API by toProto, and back by fromProto for get -o yaml
// (convert.go, with package apimap, the server's own mapping). apply, plan
// and diff send them in batch requests (batch.go; apply --atomic in one).
// delete -f reads only the names of the loops of files (loopnames.go).
// Text from the server reaches the terminal through termSafe (output.go).
//
// apply --wait and delete --wait follow every loop they sent at once
// (waitall.go, with the verdicts and polling of wait.go), so that they take
// about as long as the slowest loop.
//
// Exit codes: 0 success; 1 failure (invalid file, policy denial, server
// error, a loop that ended FAILED or REJECTED); 2 a --wait that timed out,
// or, for diff, a file that differs from the loops.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// rpcTimeout bounds every single RPC (waiting has its own --timeout).
const rpcTimeout = 30 * time.Second

// Execute runs loopctl with the process's arguments, environment and
// standard streams, and returns the exit code.
func Execute() int {
	return Run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
}

// Run runs loopctl with the given arguments, output streams and environment
// and returns the exit code. Errors are printed to stderr (see PrintError).
func Run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{getenv: getenv, stdin: os.Stdin, stderr: stderr}
	defer a.close()
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	PrintError(stderr, err, a.conn)
	return 1
}

// app holds what every command shares: the global flags and, once a command
// needs it, the gRPC connection.
type app struct {
	getenv   func(string) string
	stdin    io.Reader // the token of `login --with-token`
	stderr   io.Writer // warnings while connecting
	flags    ConnFlags
	output   string
	insecure bool
	caFile   string

	conn      Conn
	hosts     *Hosts // the hosts file of `loopctl login`, read by resolve
	hostsPath string

	cc         *grpc.ClientConn
	loops      loopgatev1.LoopServiceClient
	audit      loopgatev1.AuditServiceClient
	clusters   loopgatev1.ClusterServiceClient
	principals loopgatev1.PrincipalServiceClient
	identity   loopgatev1.IdentityServiceClient
	policies   loopgatev1.PolicyServiceClient
	waivers    loopgatev1.WaiverServiceClient
	teams      loopgatev1.TeamServiceClient
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "loopctl",
		Short: "loopctl manages loopgate analytics loops",
		Long: `loopctl manages loopgate analytics loops: governed, self-service Kafka loops
that a team describes in one YAML file and loopgate checks against policy and
provisions.

  loopctl plan -f loop.yaml           what would change, and the policy verdict
  loopctl apply -f loop.yaml --wait   create or update, and wait until READY
  loopctl diff -f loops/ -R           does loopgate match the files? (exit 0, or 2)
  loopctl get                         every loop you may see
  loopctl get --all-teams -o yaml     export them as loop files
  loopctl approvals                   loops awaiting your approval
  loopctl contract TEAM/LOOP          a client configuration for a loop's principal

It connects to --server ($LOOPGATE_SERVER, else the address a local
` + "`loopgate serve`" + ` wrote to ~/.loopgate/dev-credentials.json, else ` + DefaultServer + `)
with the token of --token ($LOOPGATE_TOKEN, else the token ` + "`loopctl login`" + ` stored
for that server in ~/.loopgate/hosts.json, else the dev credentials file).

  echo $TOKEN | loopctl login --with-token   verify a token and keep it for the server
  loopctl whoami                             who the server thinks you are`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return checkFormat(a.output)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.Server, "server", "", "loopgate gRPC address host:port (env "+EnvServer+")")
	pf.StringVar(&a.flags.Token, "token", "", "bearer token (env "+EnvToken+")")
	pf.StringVar(&a.flags.As, "as", "", "act as a demo identity of the dev credentials file (admin, reviewer, growth, ...)")
	pf.StringVarP(&a.output, "output", "o", FormatTable, "output format: table, json or yaml")
	pf.BoolVar(&a.insecure, "insecure", false, "use plaintext gRPC to a non-loopback server (loopback addresses use plaintext unless --ca is given)")
	pf.StringVar(&a.caFile, "ca", "", "PEM file of the CA that signed the server's certificate: use TLS and trust it (env "+EnvCA+")")

	root.AddCommand(
		a.newApplyCmd(),
		a.newPlanCmd(),
		a.newDiffCmd(),
		a.newGetCmd(),
		a.newStatusCmd(),
		a.newDeleteCmd(),
		a.newApproveCmd(),
		a.newRejectCmd(),
		a.newApprovalsCmd(),
		a.newAuditCmd(),
		a.newClustersCmd(),
		a.newTeamCmd(),
		a.newPrincipalsCmd(),
		a.newGroupsCmd(),
		a.newPrincipalCmd(),
		a.newContractCmd(),
		a.newLoginCmd(),
		a.newLogoutCmd(),
		a.newWhoamiCmd(),
		a.newPolicyCmd(),
	)
	return root
}

// connect resolves the server and token and opens the gRPC client. It does
// not dial: the first RPC does, and fails with Unavailable when nothing
// listens.
func (a *app) connect() error {
	if a.cc != nil {
		return nil
	}
	if err := a.resolve(); err != nil {
		return err
	}
	return a.dial()
}

// resolve reads the hosts file and the dev credentials file and decides,
// with ResolveConn, where and as whom to connect.
func (a *app) resolve() error {
	credsPath, err := DevCredentialsPath()
	if err != nil {
		return err
	}
	creds, err := ReadDevCredentials(credsPath)
	if err != nil {
		return err
	}
	if a.hostsPath, err = HostsPath(); err != nil {
		return err
	}
	if a.hosts, err = ReadHosts(a.hostsPath, a.stderr); err != nil {
		return err
	}
	a.conn, err = ResolveConn(a.flags, a.getenv, a.hosts, a.hostsPath, creds, credsPath)
	return err
}

// dial opens the gRPC client to a.conn.Server with a.conn.Token.
func (a *app) dial() error {
	caFile := a.caFile
	if caFile == "" {
		caFile = a.getenv(EnvCA)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
		}
	}
	transport := credentials.NewTLS(tc)
	if caFile == "" && (a.insecure || isLoopback(a.conn.Server)) {
		transport = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(a.conn.Server,
		grpc.WithTransportCredentials(transport),
		grpc.WithUnaryInterceptor(bearerToken(a.conn.Token)),
	)
	if err != nil {
		return fmt.Errorf("--server %q (from %s): %w", a.conn.Server, a.conn.ServerSource, err)
	}
	a.cc = cc
	a.loops = loopgatev1.NewLoopServiceClient(cc)
	a.audit = loopgatev1.NewAuditServiceClient(cc)
	a.clusters = loopgatev1.NewClusterServiceClient(cc)
	a.principals = loopgatev1.NewPrincipalServiceClient(cc)
	a.identity = loopgatev1.NewIdentityServiceClient(cc)
	a.policies = loopgatev1.NewPolicyServiceClient(cc)
	a.waivers = loopgatev1.NewWaiverServiceClient(cc)
	a.teams = loopgatev1.NewTeamServiceClient(cc)
	return nil
}

func (a *app) close() {
	if a.cc != nil {
		_ = a.cc.Close()
	}
}

// bearerToken sends `authorization: Bearer <token>` with every RPC.
func bearerToken(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// isLoopback reports whether addr (host:port) names this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// rpcContext bounds one RPC.
func rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, rpcTimeout)
}

// parseLoopRef turns "team/name" (or a full "teams/team/loops/name") into
// the resource name.
func parseLoopRef(ref string) (string, error) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return "teams/" + parts[0] + "/loops/" + parts[1], nil
	case len(parts) == 4 && parts[0] == "teams" && parts[2] == "loops" && parts[1] != "" && parts[3] != "":
		return ref, nil
	}
	return "", fmt.Errorf("%q is not a loop: write TEAM/NAME, e.g. growth/checkout-nudge", ref)
}

// shortName turns "teams/growth/loops/checkout-nudge" into "growth/checkout-nudge".
func shortName(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) == 4 && parts[0] == "teams" && parts[2] == "loops" {
		return parts[1] + "/" + parts[3]
	}
	return name
}
