package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// policy impact, decisions and explain: what a candidate would change, and
// why decisions were made.

func (a *app) newPolicyImpactCmd() *cobra.Command {
	var (
		recent int
		since  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "impact REVISION",
		Short: "Which loops and recent decisions a bundle would judge otherwise",
		Long: `Evaluate every current loop with the bundle and with the active one (from the
same input) and list the loops whose verdict, violations, warnings or
approval reasons would change; then replay the recorded inputs of recent
decisions (--recent, --since) and list those whose verdict would flip.
Nothing is changed. Exit code 0 when nothing would change, 2 when something
would.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := bundleRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			req := &loopgatev1.GetPolicyImpactRequest{Name: name, RecentDecisions: int32(recent)}
			if since > 0 {
				req.Since = timestamppb.New(time.Now().Add(-since))
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			im, err := a.policies.GetPolicyImpact(rctx, req)
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				if err := printMessage(cmd.OutOrStdout(), a.output, im); err != nil {
					return err
				}
			} else {
				printImpact(cmd.OutOrStdout(), im)
			}
			if len(im.GetLoops()) > 0 || len(im.GetFlips()) > 0 {
				return &ExitError{Code: 2}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&recent, "recent", 100, "replay the inputs of this many recent decisions (up to 1000)")
	cmd.Flags().DurationVar(&since, "since", 0, "replay only decisions of this last while (e.g. 24h)")
	return cmd
}

func printImpact(w io.Writer, im *loopgatev1.PolicyImpact) {
	fmt.Fprintf(w, "%s compared with the active %s (%s):\n", termSafe(im.GetBundle()), termSafe(im.GetActive()),
		im.GetDuration().AsDuration().Round(time.Millisecond))
	fmt.Fprintf(w, "  %d of %d loop(s) would be judged otherwise\n", len(im.GetLoops()), im.GetLoopsEvaluated())
	for _, l := range im.GetLoops() {
		fmt.Fprintf(w, "  %s: %s -> %s%s\n", termSafe(l.GetLoop()), l.GetVerdictBefore(), l.GetVerdictAfter(), explainHint(l.GetCandidateDecision()))
		printChanges(w, l.GetChanges())
	}
	fmt.Fprintf(w, "  %d of %d recent decision(s) would flip\n", len(im.GetFlips()), im.GetDecisionsReplayed())
	for _, f := range im.GetFlips() {
		fmt.Fprintf(w, "  %s (%s %s at %s): %s -> %s\n", termSafe(f.GetDecision()), termSafe(f.GetOperation()), termSafe(f.GetResource()),
			f.GetTime().AsTime().Local().Format(time.RFC3339), f.GetVerdictBefore(), f.GetVerdictAfter())
		printChanges(w, f.GetChanges())
		if h := explainHint(f.GetCandidateDecision()); h != "" {
			fmt.Fprintf(w, "   %s\n", h)
		}
	}
}

// explainHint names the candidate's decision so that a reviewer can ask
// why (`loopctl policy explain ID`).
func explainHint(name string) string {
	id, ok := strings.CutPrefix(name, "policy/decisions/")
	if !ok || id == "" {
		return ""
	}
	return " (explain: " + termSafe(id) + ")"
}

func printChanges(w io.Writer, changes []*loopgatev1.FindingChange) {
	for _, c := range changes {
		v := c.GetViolation()
		fmt.Fprintf(w, "    %-8s %-8s %s %s: %s\n", strings.ToLower(c.GetChange()), c.GetKind(), termSafe(v.GetId()), termSafe(orDash(v.GetField())), termSafe(v.GetMsg()))
	}
}

func (a *app) newPolicyDecisionsCmd() *cobra.Command {
	var (
		loopRef, rule string
		limit         int
	)
	cmd := &cobra.Command{
		Use:   "decisions [--loop TEAM/NAME] [--rule ID]",
		Short: "List recorded policy decisions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &loopgatev1.ListPolicyDecisionsRequest{Rule: rule, PageSize: int32(limit)}
			if loopRef != "" {
				name, err := parseLoopRef(loopRef)
				if err != nil {
					return err
				}
				req.Resource = name
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.policies.ListPolicyDecisions(rctx, req)
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			t := newTable(cmd.OutOrStdout(), "DECISION", "WHEN", "KIND", "OPERATION", "RESOURCE", "BUNDLE", "VERDICT", "RULES")
			for _, d := range resp.GetDecisions() {
				var rules []string
				for _, v := range append(append(append([]*loopgatev1.Violation{}, d.GetDeny()...), d.GetApproval()...), d.GetWarn()...) {
					rules = append(rules, v.GetId())
				}
				t.row(strings.TrimPrefix(d.GetName(), "policy/decisions/"), d.GetTime().AsTime().Local().Format(time.RFC3339), orDash(d.GetKind()),
					d.GetOperation(), d.GetResource(), d.GetBundleRevision(), d.GetVerdict(), orDash(strings.Join(rules, ",")))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&loopRef, "loop", "", "only the decisions about this loop (TEAM/NAME)")
	cmd.Flags().StringVar(&rule, "rule", "", "only the decisions with a finding of this rule id")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many (up to 1000)")
	return cmd
}

func (a *app) newPolicyExplainCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "explain DECISION_ID",
		Short: "Evaluate a recorded decision again and show which rules fired and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.TrimPrefix(args[0], "policy/decisions/")
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			ex, err := a.policies.ExplainPolicyDecision(rctx, &loopgatev1.ExplainPolicyDecisionRequest{Name: "policy/decisions/" + id})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, ex)
			}
			w := cmd.OutOrStdout()
			d := ex.GetDecision()
			fmt.Fprintf(w, "%s: %s %s by bundle %s at %s: %s\n", termSafe(d.GetName()), termSafe(d.GetOperation()), termSafe(d.GetResource()),
				termSafe(d.GetBundleRevision()), d.GetTime().AsTime().Local().Format(time.RFC3339), d.GetVerdict())
			if ex.GetReproduced() {
				fmt.Fprintln(w, "  evaluated again from its recorded input: same verdict and findings")
			} else {
				fmt.Fprintln(w, "  evaluated again from its recorded input: the result DIFFERS from the recorded one")
			}
			for _, r := range ex.GetRules() {
				v := r.GetViolation()
				fmt.Fprintf(w, "  %-8s %s %s: %s\n           from %s at %s\n", r.GetKind(), termSafe(v.GetId()), termSafe(orDash(v.GetField())),
					termSafe(v.GetMsg()), termSafe(r.GetRule()), termSafe(orDash(r.GetLocation())))
			}
			if len(ex.GetTrace()) > 0 {
				fmt.Fprintln(w, "  trace:")
				for _, line := range ex.GetTrace() {
					fmt.Fprintf(w, "    %s\n", termSafe(line))
				}
			}
			return nil
		},
	}
}
