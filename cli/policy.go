package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/provisioning"
)

// maxKeyFileBytes bounds a --verification-key file (a PEM key or a secret).
const maxKeyFileBytes = 64 << 10

// maxCatalogFileBytes bounds a --catalog file.
const maxCatalogFileBytes = 4 << 20

// newPolicyCmd is `loopctl policy`: test and evaluate bundles locally (this
// file), and govern them on a server (policy_remote.go). A subcommand is one
// more command in the lists below.
func (a *app) newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, evaluate and govern policy bundles",
		Long: `Work with the OPA policy bundles that decide every loop request.

Locally, with no server:
  loopctl policy test DIR|FILE            compile a bundle and run its Rego tests
  loopctl policy eval -f loop.yaml        the verdict of a bundle on loop files

A bundle is a directory in OPA's bundle layout (.manifest with a revision,
Rego v1 files, data.json, *_test.rego) or a .tar.gz built by opa build.
docs/policy.md describes the policy's input and decision, waivers, signing
and a worked example of adding a rule.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.newPolicyTestCmd(), a.newPolicyEvalCmd())
	cmd.AddCommand(a.policyRemoteCommands()...)
	return cmd
}

func (a *app) newPolicyTestCmd() *cobra.Command {
	var keyFile, keyID, keyAlg string
	cmd := &cobra.Command{
		Use:   "test DIR|FILE.tar.gz",
		Short: "Check a policy bundle locally: compile it and run its tests",
		Long: `Check a policy bundle as loopgate checks a pushed one, without a server:
read it (a directory or a .tar.gz, at most 8 MiB packed), compile it as the
engine does, require a .manifest revision, and run its Rego tests with OPA's
tester. Every test is printed with PASS, FAIL, ERROR or SKIP and its
duration, the failing ones first. Exits 1 when the bundle would be refused:
a test fails, it does not compile (each problem with file:line), or it has no
revision or no test.

With --verification-key (a PEM public key, or the secret for HS256) the
bundle must also carry a valid OPA signature (.signatures.json) by that key:
unsigned bundles, other keys and files changed after signing are refused, as
a server configured with that key refuses them.

  loopctl policy test policy/
  loopctl policy test bundle.tar.gz --verification-key security.pub.pem --key-id security-2026`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts policy.CheckOptions
			switch {
			case keyFile != "":
				key, err := readKeyFile(keyFile)
				if err != nil {
					return err
				}
				opts.VerificationKeys = map[string]*bundle.KeyConfig{keyID: {Key: key, Algorithm: keyAlg}}
			case cmd.Flags().Changed("key-id") || cmd.Flags().Changed("key-alg"):
				return errors.New("--key-id and --key-alg need --verification-key FILE")
			}
			archive, err := policy.Pack(args[0])
			if err != nil {
				return err
			}
			checked, err := policy.Check(cmd.Context(), archive, opts)
			var refusal *policy.CheckError
			if err != nil && !errors.As(err, &refusal) {
				return err
			}
			if a.output != FormatTable {
				if perr := printValue(cmd.OutOrStdout(), a.output, testReport(args[0], checked, refusal, len(opts.VerificationKeys) > 0)); perr != nil {
					return perr
				}
			} else {
				printTestReport(cmd.OutOrStdout(), checked, len(opts.VerificationKeys) > 0)
			}
			if refusal != nil {
				printRefusal(cmd.ErrOrStderr(), refusal)
				return &ExitError{Code: 1, Err: refusal}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "verification-key", "", "PEM file of the public key (or the HS256 secret) the bundle must be signed with")
	cmd.Flags().StringVar(&keyID, "key-id", "default", "the key id the signature must name (opa build --verification-key-id; opa build's default is \"default\")")
	cmd.Flags().StringVar(&keyAlg, "key-alg", "RS256", "the key's signing algorithm: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, HS256, HS384, HS512")
	return cmd
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--verification-key: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("--verification-key: %w", err)
	}
	if len(raw) > maxKeyFileBytes || len(raw) == 0 {
		return "", fmt.Errorf("--verification-key %s: want a PEM key of at most %d bytes", termSafe(path), maxKeyFileBytes)
	}
	return string(raw), nil
}

// testOutcome is PASS, FAIL, ERROR or SKIP.
func testOutcome(r policy.TestResult) string {
	switch {
	case r.Skip:
		return "SKIP"
	case r.Error != "":
		return "ERROR"
	case !r.Pass:
		return "FAIL"
	}
	return "PASS"
}

// failingFirst orders test results: errors and failures, then the others,
// each by package and name.
func failingFirst(tests []policy.TestResult) []policy.TestResult {
	out := slices.Clone(tests)
	rank := func(r policy.TestResult) int {
		switch testOutcome(r) {
		case "ERROR", "FAIL":
			return 0
		case "PASS":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(x, y policy.TestResult) int { return rank(x) - rank(y) })
	return out
}

// printTestReport writes the bundle line and one line per test.
func printTestReport(w io.Writer, c *policy.Checked, verified bool) {
	if c == nil {
		return
	}
	signed := "not signed"
	switch {
	case c.SignedBy != "":
		signed = "signature verified: signed by " + termSafe(c.SignedBy)
	case slices.Contains(c.Files, ".signatures.json") && !verified:
		signed = "signed, signature not checked (give --verification-key to check it)"
	}
	fmt.Fprintf(w, "bundle %s: %d file(s), sha256 %s, %s\n", termSafe(c.Revision), len(c.Files), c.Digest, signed)
	if len(c.Tests) == 0 {
		return
	}
	var buf strings.Builder
	t := newTable(&buf, "RESULT", "TEST", "DURATION", "LOCATION")
	counts := map[string]int{}
	for _, r := range failingFirst(c.Tests) {
		outcome := testOutcome(r)
		counts[outcome]++
		t.row(outcome, r.Package+"."+r.Name, testDuration(r.Duration), strings.TrimPrefix(r.Location, "/"))
	}
	_ = t.flush()
	_ = writeIndented(w, buf.String())
	for _, r := range c.Tests {
		if r.Error != "" {
			fmt.Fprintf(w, "  %s.%s: %s\n", termSafe(r.Package), termSafe(r.Name), termSafeText(r.Error))
		}
	}
	fmt.Fprintf(w, "%d test(s): %d passed, %d failed, %d error(s), %d skipped\n",
		len(c.Tests), counts["PASS"], counts["FAIL"], counts["ERROR"], counts["SKIP"])
}

func testDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// printRefusal writes why a bundle would be refused, each problem on a line.
func printRefusal(w io.Writer, e *policy.CheckError) {
	fmt.Fprintf(w, "error: the bundle would be refused (%s): %s\n", termSafe(e.Reason), termSafeText(e.Msg))
	for _, p := range e.Problems {
		fmt.Fprintf(w, "  %s\n", termSafe(p))
	}
	for _, name := range e.FailedTests {
		fmt.Fprintf(w, "  failing: %s\n", termSafe(name))
	}
}

// policyTestReport is `policy test -o json|yaml`.
type policyTestReport struct {
	Bundle   string              `json:"bundle"` // the path given
	Accepted bool                `json:"accepted"`
	Checked  *policy.Checked     `json:"checked,omitempty"`
	Verified bool                `json:"signatureChecked"`
	Refusal  *policyTestRefusal  `json:"refusal,omitempty"`
	Tests    []policyTestOutcome `json:"tests"`
}

type policyTestRefusal struct {
	Reason      string   `json:"reason"`
	Message     string   `json:"message"`
	Problems    []string `json:"problems,omitempty"`
	FailedTests []string `json:"failedTests,omitempty"`
}

type policyTestOutcome struct {
	Test     string `json:"test"`
	Result   string `json:"result"`
	Duration string `json:"duration"`
	Location string `json:"location"`
	Error    string `json:"error,omitempty"`
}

func testReport(path string, c *policy.Checked, refusal *policy.CheckError, verified bool) policyTestReport {
	r := policyTestReport{Bundle: path, Accepted: refusal == nil, Checked: c, Verified: verified, Tests: []policyTestOutcome{}}
	if refusal != nil {
		r.Refusal = &policyTestRefusal{Reason: refusal.Reason, Message: refusal.Msg, Problems: refusal.Problems, FailedTests: refusal.FailedTests}
	}
	if c != nil {
		for _, t := range failingFirst(c.Tests) {
			r.Tests = append(r.Tests, policyTestOutcome{Test: t.Package + "." + t.Name, Result: testOutcome(t),
				Duration: testDuration(t.Duration), Location: strings.TrimPrefix(t.Location, "/"), Error: t.Error})
		}
	}
	return r
}

// policyEvalFlags are the flags of `policy eval` beyond -f and -R.
type policyEvalFlags struct {
	bundle, catalog, previous string
	waive                     []string
	regions                   []string
	maxPartitions             int32
	maxPartitionsPerLoop      int32
	maxBytesPerSecond         int64
	usedPartitions            int32
	costApprovalThreshold     float64
	changed                   func(flag string) bool // whether a flag was given
}

var ruleIDRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,99}$`)

func (a *app) newPolicyEvalCmd() *cobra.Command {
	var (
		files fileFlags
		f     policyEvalFlags
	)
	cmd := &cobra.Command{
		Use:   "eval -f FILE|DIR [-f ...] [-R] [--bundle DIR|FILE.tar.gz]",
		Short: "Evaluate loop files against a policy bundle locally",
		Long: `Evaluate every loop of the files against a policy bundle, without a server,
and print each verdict as loopctl plan does: every deny, warning and approval
reason with its rule id and field. Exits 1 when a loop would be denied.

The bundle is --bundle (a directory or a .tar.gz; its signature is not
checked), else the one built into loopctl. The policy input is built as the
server builds it: the loop defaulted and validated, what provisioning would
derive on the cluster serving its residency, its team's catalog entry, every
region of the catalog. The catalog is that of the embedded default of
` + "`loopgate serve`" + ` (teams growth, risk, search; regions eu and us), or
--catalog FILE: a YAML file with teams: and clusters: as in loopgate's
configuration file (a whole configuration file works). The --team-* flags
override the loop's team entry. What only the server knows is not in the
input: the partitions the team's other loops use (--team-used-partitions,
default 0), and loopgate's own ownership checks of principals and groups.

--previous FILE evaluates the loops as updates of the loops of that file with
the same team and name (e.g. the current version of a loop, exported with
loopctl get TEAM/NAME -o yaml). --waive RULE evaluates as if the loops had an
active waiver for the rule (until a day from now).

  loopctl policy eval -f examples/denied-pii-in-us.yaml
  loopctl policy eval -f loop.yaml --bundle policy/ -o json
  loopctl policy eval -f loop.yaml --previous current.yaml --waive RETENTION_REDUCED`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.changed = cmd.Flags().Changed
			return a.runPolicyEval(cmd, &files, &f)
		},
	}
	files.register(cmd, "evaluate")
	fl := cmd.Flags()
	fl.StringVar(&f.bundle, "bundle", "", "policy bundle directory or .tar.gz (default: the bundle built into loopctl)")
	fl.StringVar(&f.catalog, "catalog", "", "YAML file with the teams: and clusters: to use (default: the embedded default's)")
	fl.StringVar(&f.previous, "previous", "", "loop file with the current loops: loops of -f with the same team and name are evaluated as updates of them")
	fl.StringArrayVar(&f.waive, "waive", nil, "evaluate as if the loops had an active waiver for this rule id; may be repeated")
	fl.StringSliceVar(&f.regions, "team-regions", nil, "override the team's allowed regions (comma-separated)")
	fl.Int32Var(&f.maxPartitionsPerLoop, "team-max-partitions-per-loop", 0, "override the team's maxPartitionsPerLoop (0: not limited)")
	fl.Int32Var(&f.maxPartitions, "team-max-partitions", 0, "override the team's maxPartitions (0: not limited)")
	fl.Int64Var(&f.maxBytesPerSecond, "team-max-bytes-per-second", 0, "override the team's maxBytesPerSecond (0: not limited)")
	fl.Int32Var(&f.usedPartitions, "team-used-partitions", 0, "partitions the team's other loops use (the server counts them)")
	fl.Float64Var(&f.costApprovalThreshold, "team-cost-approval-threshold", 0, "override the team's costApprovalThreshold (monthly cost forecast; 0: none)")
	return cmd
}

// policyEvalResult is one loop's verdict (`policy eval -o json|yaml`).
type policyEvalResult struct {
	Loop      string           `json:"loop"`
	Operation string           `json:"operation"`
	Cluster   string           `json:"cluster"`
	Problems  []string         `json:"problems,omitempty"` // invalid loop: no decision
	Decision  *policy.Decision `json:"decision,omitempty"`
}

func (a *app) runPolicyEval(cmd *cobra.Command, files *fileFlags, f *policyEvalFlags) error {
	for _, r := range f.waive {
		if !ruleIDRE.MatchString(r) {
			return fmt.Errorf("--waive %q: want a rule id in UPPER_SNAKE, e.g. OWNERS_REQUIRED", termSafe(r))
		}
	}
	if f.usedPartitions < 0 || f.maxPartitions < 0 || f.maxPartitionsPerLoop < 0 || f.maxBytesPerSecond < 0 || f.costApprovalThreshold < 0 {
		return errors.New("--team-* values must not be negative")
	}
	loops, err := files.read(cmd.InOrStdin(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	previous := map[string]*loop.Loop{}
	if f.previous != "" {
		prev, err := readLoopFiles(cmd.InOrStdin(), cmd.ErrOrStderr(), []string{f.previous})
		if err != nil {
			return err
		}
		for _, l := range prev {
			loop.Default(l)
			previous[l.Metadata.Key()] = l
		}
	}
	cat, err := evalCatalog(f.catalog)
	if err != nil {
		return err
	}
	b, err := evalBundle(f.bundle)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	engine, err := policy.NewEngine(ctx, b)
	if err != nil {
		return err
	}
	var waivers []policy.Waiver
	until := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	for _, r := range f.waive {
		waivers = append(waivers, policy.Waiver{Rule: r, Until: until, Reason: "loopctl policy eval --waive"})
	}

	var (
		out     = cmd.OutOrStdout()
		results []policyEvalResult
		denied  int
	)
	for _, l := range loops {
		res := evalOne(ctx, engine, cat, f, l, previous[l.Metadata.Key()], waivers, cmd.ErrOrStderr())
		if res.Decision == nil || !res.Decision.Allowed() {
			denied++
		}
		if a.output == FormatTable {
			printEvalResult(out, res)
		}
		results = append(results, res)
	}
	if a.output != FormatTable {
		if err := printValue(out, a.output, results); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%d of %d loop(s) would be denied by bundle %s\n", denied, len(loops), termSafe(engine.Revision()))
	}
	if denied > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d loop(s) would be denied", denied, len(loops))}
	}
	return nil
}

// evalOne builds the policy input of one loop as the server's admission
// does (admission.Core.prepare) and decides it.
func evalOne(ctx context.Context, engine *policy.Engine, cat *catalog.Catalog, f *policyEvalFlags, l, prev *loop.Loop, waivers []policy.Waiver, stderr io.Writer) policyEvalResult {
	op := policy.OpCreate
	if prev != nil {
		op = policy.OpUpdate
	}
	res := policyEvalResult{Loop: l.Metadata.Key(), Operation: op}
	loop.Default(l)
	var problems []string
	for _, fe := range loop.ValidateWithLimits(l, cat.Limits) {
		problems = append(problems, fe.Field+": "+fe.Message)
	}
	team, ok := cat.Team(l.Metadata.Team)
	if !ok {
		names := make([]string, 0, len(cat.Teams))
		for n := range cat.Teams {
			names = append(names, n)
		}
		slices.Sort(names)
		problems = append(problems, fmt.Sprintf("metadata.team: unknown team %q (teams in the catalog: %s; use --catalog)", l.Metadata.Team, strings.Join(names, ", ")))
	}
	cl, err := cat.ClusterFor(l.Spec.Residency)
	if err != nil {
		// As the server does: policy names the unknown region.
		cl = catalog.Cluster{Region: l.Spec.Residency, ReplicationFactor: 1}
	}
	res.Cluster = cl.Name
	if len(problems) > 0 {
		res.Problems = problems
		return res
	}
	if f.changed("team-regions") {
		team.AllowedRegions = f.regions
	}
	if f.changed("team-max-partitions") {
		team.MaxPartitions = f.maxPartitions
	}
	if f.changed("team-max-partitions-per-loop") {
		team.MaxPartitionsPerLoop = f.maxPartitionsPerLoop
	}
	if f.changed("team-max-bytes-per-second") {
		team.MaxBytesPerSecond = f.maxBytesPerSecond
	}
	if f.changed("team-cost-approval-threshold") {
		team.CostApprovalThreshold = f.costApprovalThreshold
	}
	team.UsedPartitions = f.usedPartitions
	derived := provisioning.Derive(l, cl)
	forecast := cost.Forecast(cost.ForLoop(&l.Spec, derived.Partitions(), cl))
	in := policy.Input{
		Operation: op,
		Loop:      l,
		Previous:  prev,
		Derived:   derived,
		Cost:      &forecast,
		Team:      team,
		Cluster:   cl,
		Regions:   cat.Regions(),
		Actor:     policy.Actor{Subject: "loopctl policy eval", Teams: []string{l.Metadata.Team}, Roles: []string{"developer"}},
		Waivers:   waivers,
	}
	d, err := engine.Evaluate(ctx, in)
	if err != nil {
		fmt.Fprintf(stderr, "warning: %s: %s\n", termSafe(res.Loop), termSafeText(err.Error()))
	}
	res.Decision = &d
	return res
}

// printEvalResult writes one loop's verdict as `loopctl plan` does.
func printEvalResult(w io.Writer, r policyEvalResult) {
	fmt.Fprintf(w, "%s: %s", termSafe(r.Loop), r.Operation)
	if r.Cluster != "" {
		fmt.Fprintf(w, " on cluster %s", termSafe(r.Cluster))
	}
	fmt.Fprintln(w)
	if r.Decision == nil {
		fmt.Fprintf(w, "  invalid: %d problem(s), not evaluated:\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "    %s\n", termSafe(p))
		}
		return
	}
	d := r.Decision
	verdict := "ALLOWED"
	switch {
	case !d.Allowed():
		verdict = "DENIED"
	case d.NeedsApproval():
		verdict = "ALLOWED, NEEDS APPROVAL"
	}
	fmt.Fprintf(w, "  verdict: %s (bundle %s)\n", verdict, termSafe(d.BundleRevision))
	var (
		kinds []string
		vs    []Violation
	)
	for _, group := range []struct {
		kind string
		list []policy.Violation
	}{{"deny", d.Deny}, {"warning", d.Warn}, {"needs approval", d.Approval}} {
		for _, v := range group.list {
			msg := v.Msg
			if v.Role != "" {
				msg = fmt.Sprintf("%s (approved by %d %s)", msg, v.Approvals, v.Role)
			}
			kinds = append(kinds, group.kind)
			vs = append(vs, Violation{Rule: v.ID, Field: v.Field, Message: msg})
		}
	}
	printKindedViolations(w, kinds, vs)
}

// evalBundle reads --bundle, or the built-in bundle.
func evalBundle(path string) (*bundle.Bundle, error) {
	if path == "" {
		return policy.DefaultBundle()
	}
	archive, err := policy.Pack(path)
	if err != nil {
		return nil, err
	}
	b, err := policy.ReadArchive(archive, nil)
	if err != nil {
		return nil, fmt.Errorf("--bundle %s: %w", termSafe(path), err)
	}
	return b, nil
}

// evalCatalog reads --catalog, or returns the embedded default's catalog.
func evalCatalog(path string) (*catalog.Catalog, error) {
	if path == "" {
		return config.Embedded("").Catalog(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--catalog: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCatalogFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--catalog: %w", err)
	}
	if len(raw) > maxCatalogFileBytes {
		return nil, fmt.Errorf("--catalog %s: larger than %d bytes", termSafe(path), maxCatalogFileBytes)
	}
	var doc struct {
		Teams    []catalog.Team   `yaml:"teams"`
		Clusters []config.Cluster `yaml:"clusters"`
		Limits   catalog.Limits   `yaml:"limits"`
		// PriceLists are the clusters' price lists (cost forecast).
		PriceLists []catalog.PriceList `yaml:"priceLists"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("--catalog %s: %w", termSafe(path), err)
	}
	if len(doc.Teams) == 0 || len(doc.Clusters) == 0 {
		return nil, fmt.Errorf("--catalog %s: want teams: and clusters: (as in loopgate's configuration file)", termSafe(path))
	}
	for i, cl := range doc.Clusters {
		if cl.Region == "" {
			return nil, fmt.Errorf("--catalog %s: clusters[%d] has no region", termSafe(path), i)
		}
	}
	cfg := &config.Config{Teams: doc.Teams, Clusters: doc.Clusters, LoopLimits: doc.Limits, PriceLists: doc.PriceLists}
	cfg.SetDefaults()
	return cfg.Catalog(), nil
}
