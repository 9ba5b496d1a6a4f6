package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/loopgate/loopgate/apimap"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

func (a *app) newPlanCmd() *cobra.Command {
	var files fileFlags
	cmd := &cobra.Command{
		Use:   "plan -f FILE|DIR [-f ...] [-R]",
		Short: "Show what applying files would do, and the policy verdict",
		Long: `Show, for every loop of the files, what applying them would do: the
policy verdict with every violation, warning and approval reason, and every
change to topics, ACLs and quotas. Nothing is changed. Exits 1 when a loop
would be denied.

-f may be repeated. A directory means every *.yaml and *.yml file in it
(with -R, in its subdirectories too), sorted by path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runPlan(cmd, &files, false)
		},
	}
	files.register(cmd, "plan")
	return cmd
}

func (a *app) newDiffCmd() *cobra.Command {
	var files fileFlags
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR [-f ...] [-R]",
		Short: "Show what applying files would change; exit 2 when anything would",
		Long: `Show, like plan, what applying the files would do, and say with the exit
code whether anything would change (as terraform plan -detailed-exitcode):

  0  no changes: every loop exists with exactly this spec and these labels,
     and its cluster matches
  1  error: a file has problems, a loop would be denied, or the server failed
  2  changes: a loop would be created or updated (spec or labels), or its
     cluster drifted

-f may be repeated. A directory means every *.yaml and *.yml file in it
(with -R, in its subdirectories too), sorted by path. Nothing is changed.

  loopctl get --all-teams -o yaml > loops.yaml
  loopctl diff -f loops.yaml   # 0 right after the export`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runPlan(cmd, &files, true)
		},
	}
	files.register(cmd, "compare")
	return cmd
}

// runPlan plans every loop of the files and prints the plans. With diff,
// labels are compared too (a plan covers the spec and the cluster only), and
// when nothing failed the exit code is 2 if any loop would change.
func (a *app) runPlan(cmd *cobra.Command, files *fileFlags, diff bool) error {
	loops, err := files.read(cmd.InOrStdin(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if err := a.connect(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	var (
		stdout  = cmd.OutOrStdout()
		plans   []*loopgatev1.PlanLoopResponse
		denied  int
		changed int
		desired = make([]*loopgatev1.Loop, len(loops))
	)
	for i, l := range loops {
		desired[i] = toProto(l)
	}
	outs := a.planAll(ctx, loops, desired, diff)
	for i := range loops {
		o := &outs[i]
		<-o.done
		plan, d, err := o.plan, o.diff, o.err
		if err != nil {
			if isCode(err, codes.Unavailable) || isCode(err, codes.Unauthenticated) || ctx.Err() != nil {
				return err
			}
			if !o.repeat {
				PrintError(cmd.ErrOrStderr(), err, a.conn)
				printNote(cmd.ErrOrStderr(), o.note)
			}
			denied++
			continue
		}
		if !plan.GetVerdict().GetAllowed() {
			denied++
		}
		if d != nil && d.changed() {
			changed++
		}
		if a.output == FormatTable {
			if err := printPlan(stdout, desired[i].GetName(), plan); err != nil {
				return err
			}
			if d != nil {
				d.print(stdout)
			}
		}
		plans = append(plans, plan)
	}
	if a.output != FormatTable {
		for _, p := range plans {
			if err := printMessage(stdout, a.output, p); err != nil {
				return err
			}
		}
	}
	if denied > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d loop(s) would be denied", denied, len(loops))}
	}
	if !diff {
		return nil
	}
	if a.output == FormatTable {
		if changed == 0 {
			fmt.Fprintf(stdout, "no changes: %d loop(s) match\n", len(loops))
		} else {
			fmt.Fprintf(stdout, "%d of %d loop(s) would change\n", changed, len(loops))
		}
	}
	if changed > 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("%d of %d loop(s) would change", changed, len(loops))}
	}
	return nil
}

// loopDiff is how a loop of a file differs from the loop loopgate has.
type loopDiff struct {
	create      bool // no such loop yet
	spec        bool // the spec differs
	drift       bool // same spec and labels, but the plan has resource changes
	labels      bool
	cur, wanted map[string]string // labels
}

func (d *loopDiff) changed() bool { return d.create || d.spec || d.labels }

func (d *loopDiff) print(w io.Writer) {
	if d.labels {
		fmt.Fprintf(w, "  labels: %s -> %s\n", termSafe(orDash(labelsString(d.cur))), termSafe(orDash(labelsString(d.wanted))))
	}
	if d.drift {
		fmt.Fprintln(w, "  the file matches the loop: its resource changes are loopgate's to make (approval or provisioning pending), not apply's")
	}
}

// diffOne compares a loop of a file with the loop loopgate has. The plan
// says CREATE for a new loop and NOOP for an unchanged spec, but UPDATE
// both for a changed spec and for a cluster that has not caught up yet (a
// loop awaiting approval or still provisioning); so the spec is compared
// too, in canonical form (the file's loop is defaulted as the server
// defaults it), and the labels, which a plan does not cover.
func (a *app) diffOne(ctx context.Context, l *loop.Loop, desired *loopgatev1.Loop, plan *loopgatev1.PlanLoopResponse) (*loopDiff, error) {
	if plan.GetOperation() == loopgatev1.PlanLoopResponse_CREATE {
		return &loopDiff{create: true}, nil
	}
	rctx, cancel := rpcContext(ctx)
	defer cancel()
	cur, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: desired.GetName()})
	if isCode(err, codes.NotFound) {
		return &loopDiff{create: true}, nil
	}
	if err != nil {
		return nil, err
	}
	d := &loopDiff{cur: cur.GetLabels(), wanted: desired.GetLabels()}
	d.labels = !maps.Equal(d.cur, d.wanted)
	d.spec = plan.GetOperation() != loopgatev1.PlanLoopResponse_NOOP && !reflect.DeepEqual(apimap.SpecFromProto(cur.GetSpec()), l.Spec)
	d.drift = !d.spec && len(plan.GetChanges()) > 0
	return d, nil
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
	for _, line := range planCostLines(p) {
		fmt.Fprintln(w, "  "+termSafe(line))
	}

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
