package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/contract"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// defaultContractClient is the client `loopctl contract` renders for
// without --client.
const defaultContractClient = "franz-go"

func (a *app) newContractCmd() *cobra.Command {
	var (
		principal string
		client    string
		withCreds bool
		rotate    bool
	)
	cmd := &cobra.Command{
		Use:   "contract TEAM/LOOP",
		Short: "Print a ready-to-use Kafka client configuration for a principal of a loop",
		Long: `Print the loop contract of one principal of a loop: a ready-to-use client
configuration (bootstrap servers, security protocol, SASL mechanism, user
name, topics, consumer group) with producer and consumer settings chosen
from the loop's SLO and throughput, each with its reason.

--client chooses the rendering: franz-go (a Go function building a
kgo.Client), java (client.properties) or librdkafka (a properties file, as
kcat -F reads it). With -o json or -o yaml the contract is printed as data
instead: {loop, principal, username, cluster, region, bootstrap,
securityProtocol, mechanism, credentialsManaged, produce, consume, group,
basis, producer: [{key, value, reason}], consumer: [...]}.

--principal is needed when the loop has more than one principal (User:NAME
or NAME). The contract holds no password: the renderings hold a
placeholder, franz-go reads $` + contract.PasswordEnv + `. With
--with-credentials loopctl first issues the principal's credential (as
` + "`loopctl principal credentials`" + ` does; --rotate replaces an issued one) and puts
its password in the contract, which is then shown only this once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseLoopRef(args[0])
			if err != nil {
				return err
			}
			if !slices.Contains(contract.Clients, client) {
				return fmt.Errorf("--client %q: unknown client (use %s)", client, strings.Join(contract.Clients, ", "))
			}
			if rotate && !withCreds {
				return fmt.Errorf("--rotate replaces the principal's credential to put its new password in the contract: it needs --with-credentials")
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			lc, err := a.loops.GetLoopContract(rctx, &loopgatev1.GetLoopContractRequest{Name: name, Principal: principal})
			if err != nil {
				return err
			}
			c := contractFromProto(lc)

			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			team, _ := splitName(name)
			ref := team + "/" + c.Username
			if withCreds {
				if err := checkCredentialsManaged(lc); err != nil {
					return err
				}
				issued, err := a.principals.IssuePrincipalCredentials(rctx, &loopgatev1.IssuePrincipalCredentialsRequest{
					Name: principalResource(team, c.Username), Rotate: rotate,
				})
				if err != nil {
					return a.contractCredentialsError(errOut, err, args[0], c.Principal)
				}
				c.Password = issued.GetPassword()
				defer func() {
					printSkipped(errOut, issued.GetSkipped())
					printPasswordWarning(errOut, c.Username, ref, rotate)
				}()
			}
			if a.output != FormatTable {
				return printValue(out, a.output, contractOutputOf(lc, c))
			}
			// The rendering is the server's text in comments and strings:
			// every field termSafe, and the whole rendering once more.
			return contract.Render(termSafeWriter{out}, termSafeContract(c), client)
		},
	}
	f := cmd.Flags()
	f.StringVar(&principal, "principal", "", "the principal, User:NAME or NAME (needed when the loop has several)")
	f.StringVar(&client, "client", defaultContractClient, "render for this client: "+strings.Join(contract.Clients, ", "))
	f.BoolVar(&withCreds, "with-credentials", false, "issue the principal's credential and put its password in the contract (shown once)")
	f.BoolVar(&rotate, "rotate", false, "with --with-credentials: replace an issued credential (the old password stops working)")
	return cmd
}

// contractFromProto maps the API's loop contract to contract.Contract, the
// form contract.Render writes. The password is left to the caller.
func contractFromProto(lc *loopgatev1.LoopContract) contract.Contract {
	username := lc.GetUsername()
	if username == "" {
		username = loop.PrincipalName(lc.GetPrincipal())
	}
	var origin *contract.OriginHeader
	if h := lc.GetOriginHeader(); h != nil {
		origin = &contract.OriginHeader{Key: h.GetKey(), Value: h.GetValue(), Topic: h.GetTopic()}
	}
	return contract.Contract{
		OriginHeader:     origin,
		Loop:             shortName(lc.GetLoop()),
		Principal:        lc.GetPrincipal(),
		Username:         username,
		Bootstrap:        slices.Clone(lc.GetBootstrapServers()),
		SecurityProtocol: lc.GetSecurityProtocol(),
		Mechanism:        lc.GetSaslMechanism(),
		Produce:          slices.Clone(lc.GetProduceTopics()),
		Consume:          slices.Clone(lc.GetConsumeTopics()),
		Group:            lc.GetGroup(),
		Basis:            lc.GetBasis(),
		Producer:         settingsFromProto(lc.GetProducerSettings()),
		Consumer:         settingsFromProto(lc.GetConsumerSettings()),
	}
}

// termSafeContract returns c with every text field termSafe, except the
// password (loopgate's, printed exactly; renderings quote it).
func termSafeContract(c contract.Contract) contract.Contract {
	list := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = termSafe(s)
		}
		return out
	}
	settings := func(in []contract.Setting) []contract.Setting {
		if in == nil {
			return nil
		}
		out := make([]contract.Setting, len(in))
		for i, s := range in {
			out[i] = contract.Setting{Key: termSafe(s.Key), Value: termSafe(s.Value), Reason: termSafe(s.Reason)}
		}
		return out
	}
	c.Loop, c.Principal, c.Username = termSafe(c.Loop), termSafe(c.Principal), termSafe(c.Username)
	c.SecurityProtocol, c.Mechanism = termSafe(c.SecurityProtocol), termSafe(c.Mechanism)
	c.Group, c.Basis = termSafe(c.Group), termSafe(c.Basis)
	c.Bootstrap, c.Produce, c.Consume = list(c.Bootstrap), list(c.Produce), list(c.Consume)
	c.Producer, c.Consumer = settings(c.Producer), settings(c.Consumer)
	if h := c.OriginHeader; h != nil {
		c.OriginHeader = &contract.OriginHeader{Key: termSafe(h.Key), Value: termSafe(h.Value), Topic: termSafe(h.Topic)}
	}
	return c
}

func settingsFromProto(in []*loopgatev1.ClientSetting) []contract.Setting {
	if len(in) == 0 {
		return nil
	}
	out := make([]contract.Setting, len(in))
	for i, s := range in {
		out[i] = contract.Setting{Key: s.GetKey(), Value: s.GetValue(), Reason: s.GetReason()}
	}
	return out
}

// checkCredentialsManaged refuses --with-credentials for a principal whose
// cluster loopgate issues no credentials on.
func checkCredentialsManaged(lc *loopgatev1.LoopContract) error {
	if lc.GetCredentialsManaged() {
		return nil
	}
	where := "cluster " + orDash(lc.GetCluster())
	if lc.GetRegion() != "" {
		where += " (region " + lc.GetRegion() + ")"
	}
	return fmt.Errorf("--with-credentials: the identities of %s are managed outside loopgate, so loopgate cannot issue a password for %s there: "+
		"get its credentials from the cluster's identity provider, and run without --with-credentials for the rest of the contract",
		termSafe(where), termSafe(lc.GetPrincipal()))
}

// contractCredentialsError explains a failed IssuePrincipalCredentials of
// `contract --with-credentials`; when the principal already has a
// credential it also says how to get a contract with a new password.
func (a *app) contractCredentialsError(w io.Writer, err error, loopRef, principal string) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if ei := errorInfo(st); ei == nil || ei.GetReason() != "CREDENTIALS_ALREADY_ISSUED" {
		return err
	}
	PrintError(w, err, a.conn)
	fmt.Fprintf(w, "  for a contract with a new password: loopctl contract %s --principal %s --with-credentials --rotate\n", loopRef, termSafe(principal))
	fmt.Fprintln(w, "  or, to keep the password you have: loopctl contract "+loopRef+" --principal "+termSafe(principal))
	return &ExitError{Code: 1, Err: err}
}

// contractOutput is `contract -o json|yaml`: the contract with its cluster,
// with stable lower-camel keys and lists never null. Password is there only
// with --with-credentials.
type contractOutput struct {
	Loop               string             `json:"loop"`
	Principal          string             `json:"principal"`
	Username           string             `json:"username"`
	Cluster            string             `json:"cluster"`
	Region             string             `json:"region"`
	Bootstrap          []string           `json:"bootstrap"`
	SecurityProtocol   string             `json:"securityProtocol"`
	Mechanism          string             `json:"mechanism"`
	CredentialsManaged bool               `json:"credentialsManaged"`
	Produce            []string           `json:"produce"`
	Consume            []string           `json:"consume"`
	Group              string             `json:"group"`
	Basis              string             `json:"basis"`
	Producer           []contract.Setting `json:"producer"`
	Consumer           []contract.Setting `json:"consumer"`
	Password           string             `json:"password,omitempty"`
}

func contractOutputOf(lc *loopgatev1.LoopContract, c contract.Contract) contractOutput {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	settings := func(s []contract.Setting) []contract.Setting {
		if s == nil {
			return []contract.Setting{}
		}
		return s
	}
	return contractOutput{
		Loop:               c.Loop,
		Principal:          c.Principal,
		Username:           c.Username,
		Cluster:            lc.GetCluster(),
		Region:             lc.GetRegion(),
		Bootstrap:          orEmpty(c.Bootstrap),
		SecurityProtocol:   c.SecurityProtocol,
		Mechanism:          c.Mechanism,
		CredentialsManaged: lc.GetCredentialsManaged(),
		Produce:            orEmpty(c.Produce),
		Consume:            orEmpty(c.Consume),
		Group:              c.Group,
		Basis:              c.Basis,
		Producer:           settings(c.Producer),
		Consumer:           settings(c.Consumer),
		Password:           c.Password,
	}
}
