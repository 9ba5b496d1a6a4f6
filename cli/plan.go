package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newPlanCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show what applying a file would do, and the policy verdict",
		Long: `Show, for every loop of a file, what applying it would do: the policy
verdict with every violation, warning and approval reason, and every change
to topics, ACLs and quotas. Nothing is changed. Exits 1 when a loop would be
denied.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loops, err := readLoopFile(cmd.InOrStdin(), cmd.ErrOrStderr(), file)
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			var (
				plans  []*loopgatev1.PlanLoopResponse
				denied int
			)
			for _, l := range loops {
				desired := toProto(l)
				plan, err := a.planOne(cmd.Context(), desired)
				if err != nil {
					if isCode(err, codes.Unavailable) || isCode(err, codes.Unauthenticated) || cmd.Context().Err() != nil {
						return err
					}
					PrintError(cmd.ErrOrStderr(), err, a.conn)
					denied++
					continue
				}
				if !plan.GetVerdict().GetAllowed() {
					denied++
				}
				if a.output == FormatTable {
					if err := printPlan(cmd.OutOrStdout(), desired.GetName(), plan); err != nil {
						return err
					}
				}
				plans = append(plans, plan)
			}
			if a.output != FormatTable {
				for _, p := range plans {
					if err := printMessage(cmd.OutOrStdout(), a.output, p); err != nil {
						return err
					}
				}
			}
			if denied > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d loop(s) would be denied", denied, len(loops))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "loop file to plan (- for standard input)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func (a *app) planOne(ctx context.Context, desired *loopgatev1.Loop) (*loopgatev1.PlanLoopResponse, error) {
	rctx, cancel := rpcContext(ctx)
	defer cancel()
	return a.loops.PlanLoop(rctx, &loopgatev1.PlanLoopRequest{Loop: desired})
}

// verdictLine renders a verdict as ALLOWED, ALLOWED, NEEDS APPROVAL or
// DENIED.
func verdictLine(v *loopgatev1.PolicyVerdict) string {
	switch {
	case !v.GetAllowed():
		return "DENIED"
	case len(v.GetApproval()) > 0:
		return "ALLOWED, NEEDS APPROVAL"
	default:
		return "ALLOWED"
	}
}

// printPlan writes one loop's plan: operation and cluster, the verdict with
// every deny, warning and approval reason, then the resource changes as a
// KIND | RESOURCE | CURRENT | DESIRED table.
func printPlan(w io.Writer, name string, p *loopgatev1.PlanLoopResponse) error {
	// Everything but the verdict line's words is the server's text.
	fmt.Fprintf(w, "%s: %s", termSafe(name), p.GetOperation())
	if p.GetCluster() != "" {
		fmt.Fprintf(w, " on cluster %s", termSafe(p.GetCluster()))
	}
	fmt.Fprintln(w)

	v := p.GetVerdict()
	fmt.Fprintf(w, "  verdict: %s", verdictLine(v))
	if v.GetDecisionId() != "" || v.GetBundleRevision() != "" {
		fmt.Fprintf(w, " (decision %s, bundle %s)", termSafe(orDash(v.GetDecisionId())), termSafe(orDash(v.GetBundleRevision())))
	}
	fmt.Fprintln(w)
	var (
		kinds []string
		vs    []Violation
	)
	for _, group := range []struct {
		kind string
		list []*loopgatev1.Violation
	}{{"deny", v.GetDeny()}, {"warning", v.GetWarn()}, {"needs approval", v.GetApproval()}} {
		for _, x := range group.list {
			kinds = append(kinds, group.kind)
			vs = append(vs, Violation{Rule: x.GetId(), Field: x.GetField(), Message: x.GetMsg()})
		}
	}
	printKindedViolations(w, kinds, vs)

	if len(p.GetChanges()) == 0 {
		fmt.Fprintln(w, "  no resource changes: the cluster already matches")
		return nil
	}
	switch {
	case !v.GetAllowed():
		fmt.Fprintf(w, "  %d resource change(s) it would need (none will be made while it is denied):\n", len(p.GetChanges()))
	case len(v.GetApproval()) > 0:
		fmt.Fprintf(w, "  %d resource change(s), made once a reviewer approves:\n", len(p.GetChanges()))
	default:
		fmt.Fprintf(w, "  %d resource change(s):\n", len(p.GetChanges()))
	}
	var buf strings.Builder
	t := newTable(&buf, "KIND", "RESOURCE", "CURRENT", "DESIRED")
	for _, c := range p.GetChanges() {
		t.row(c.GetKind(), c.GetResource(), c.GetCurrent(), c.GetDesired())
	}
	if err := t.flush(); err != nil {
		return err
	}
	return writeIndented(w, buf.String())
}

// writeIndented writes text with every line prefixed by two spaces.
func writeIndented(w io.Writer, text string) error {
	for _, line := range strings.SplitAfter(text, "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, "  "+line); err != nil {
			return err
		}
	}
	return nil
}
