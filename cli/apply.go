package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/loopgate/loopgate/catalog"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// applyMask is what apply replaces: the whole spec (a field removed from the
// file is removed from the loop) and the labels. A re-apply of the same file
// sends the same values, which the server treats as a no-op.
var applyMask = []string{"labels", "spec"}

func (a *app) newApplyCmd() *cobra.Command {
	var (
		files   fileFlags
		wait    bool
		timeout time.Duration
		dryRun  bool
		atomic  bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...] [-R] [--atomic]",
		Short: "Create or update the loops of files",
		Long: `Create or update every loop of YAML files (several loops per file,
separated by ---). Loops that do not exist are created; existing ones are
updated to exactly what the file says. Every file is checked locally first:
any problem is reported, with its file, document and line, before anything
is sent.

-f may be repeated. A directory means every *.yaml and *.yml file in it
(with -R, in its subdirectories too), sorted by path; loops are applied in
the order of the files and of the documents within them.

The loops are sent in batch requests of up to 1000 loops (and 4 MiB) each;
every loop is admitted on its own, so one that fails (denied, invalid,
conflict) is reported and the others go on. With --atomic every loop is sent
in one request and applied all together or not at all: if any is invalid,
denied or conflicts, nothing is applied and every failing loop is named
(more loops than one request carries are refused before anything is sent).

With --wait, once every loop is sent, loopctl follows them all at once until
each is READY, FAILED, REJECTED or waits for an approval; --timeout bounds
that whole wait. Up to 10 loops are followed one by one, with every change
of state; more are summed up in a progress line (at most one a second), and
each loop that FAILED, was REJECTED or awaits an approval is named. The exit
code is 1 when any loop FAILED or was REJECTED, 2 when the wait timed out
(naming the loops still pending).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loops, err := files.read(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if atomic {
				if err := checkAtomic(loops); err != nil {
					return err
				}
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.apply(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), loops, applyOptions{wait: wait, timeout: timeout, dryRun: dryRun, atomic: atomic})
		},
	}
	files.register(cmd, "apply")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every loop is READY, FAILED, REJECTED or PENDING_APPROVAL")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits in all, for every loop of the files together")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run every server-side check (validation, policy) but change nothing")
	cmd.Flags().BoolVar(&atomic, "atomic", false, "apply every loop or none, in one request (at most 1000 loops and 4 MiB)")
	return cmd
}

// readLoopFile reads and validates every loop of a file with
// loop.LoadWithLimits, against the largest limits a server may have
// (catalog.CeilingLimits: the server checks its own). On problems it prints
// all of them as FILE:document N:line L: field: message and returns an
// ExitError, so nothing is sent. loop.LoadWithLimits reads at most
// loop.MaxFileBytes and bounds what YAML aliases may expand to.
func readLoopFile(stdin io.Reader, stderr io.Writer, path string) ([]*loop.Loop, error) {
	var (
		r    io.Reader
		name = path
	)
	if path == "-" {
		r, name = stdin, "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading loop file: %w", err)
		}
		defer f.Close()
		r = f
	}
	loops, err := loop.LoadWithLimits(r, catalog.CeilingLimits())
	if err == nil {
		if len(loops) == 0 {
			return nil, fmt.Errorf("%s has no loop documents (see examples/checkout-nudge.yaml)", termSafe(name))
		}
		return loops, nil
	}
	var fes loop.FieldErrors
	if !errors.As(err, &fes) {
		return nil, fmt.Errorf("%s: %w", termSafe(name), err)
	}
	printFieldErrors(stderr, name, fes)
	return nil, &ExitError{Code: 1, Err: err}
}

// printFieldErrors writes every local problem of a loop file, one a line.
// Fields and messages quote what the file says: termSafe.
func printFieldErrors(w io.Writer, file string, fes loop.FieldErrors) {
	file = termSafe(file)
	fmt.Fprintf(w, "error: %s has %d problem(s); nothing was sent:\n", file, len(fes))
	for _, fe := range fes {
		loc := file
		if fe.Document > 0 {
			loc += fmt.Sprintf(":document %d", fe.Document)
		}
		if fe.Line > 0 {
			loc += fmt.Sprintf(":line %d", fe.Line)
		}
		field := ""
		if fe.Field != "" {
			field = termSafe(fe.Field) + ": "
		}
		fmt.Fprintf(w, "  %s: %s%s\n", loc, field, termSafe(fe.Message))
	}
}

// applyStep is the request apply sends for one loop: exactly one of create
// and update is set.
type applyStep struct {
	create *loopgatev1.CreateLoopRequest
	update *loopgatev1.UpdateLoopRequest
}

// decideApply chooses between CreateLoop and UpdateLoop for the desired
// loop, from the outcome of GetLoop (the existing loop, or the error):
//
//   - NotFound: create it under its team with its loop id;
//   - found: update labels and spec, guarded by the etag just read, so a
//     concurrent change makes the update fail with ABORTED instead of
//     being overwritten;
//   - found but DELETING: an error, as a deleted loop cannot be revived;
//   - any other error: returned as it is.
func decideApply(desired *loopgatev1.Loop, existing *loopgatev1.Loop, getErr error, requestID string, validateOnly bool) (applyStep, error) {
	if getErr != nil {
		if !isCode(getErr, codes.NotFound) {
			return applyStep{}, getErr
		}
		team, id := splitName(desired.GetName())
		return applyStep{create: &loopgatev1.CreateLoopRequest{
			Parent:       "teams/" + team,
			LoopId:       id,
			Loop:         desired,
			ValidateOnly: validateOnly,
			RequestId:    requestID,
		}}, nil
	}
	if existing.GetStatus().GetState() == loopgatev1.Loop_DELETING {
		return applyStep{}, fmt.Errorf("%s is being deleted: wait until it is gone (loopctl get %s), then apply again",
			desired.GetName(), shortName(desired.GetName()))
	}
	upd := proto.Clone(desired).(*loopgatev1.Loop)
	upd.Etag = existing.GetEtag()
	return applyStep{update: &loopgatev1.UpdateLoopRequest{
		Loop:         upd,
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: applyMask},
		ValidateOnly: validateOnly,
		RequestId:    requestID,
	}}, nil
}

// updateOutcome says what an UpdateLoop did, comparing the loop before and
// after: the server bumps the generation on every spec change, and labels
// are compared directly.
func updateOutcome(before, after *loopgatev1.Loop) string {
	if before.GetGeneration() == after.GetGeneration() && maps.Equal(before.GetLabels(), after.GetLabels()) {
		return "unchanged"
	}
	return "updated"
}

func splitName(name string) (team, id string) {
	parts := strings.Split(name, "/")
	if len(parts) == 4 {
		return parts[1], parts[3]
	}
	return "", name
}

// newRequestID returns a random UUIDv4, so that a retried request is
// recognised by the server.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type applyOptions struct {
	wait    bool
	timeout time.Duration
	dryRun  bool
	atomic  bool
}

// applyConcurrency is how many loops apply sends at once to a server
// without batch requests. The server admits each loop in its own
// transaction; keeping several in flight hides the round trips and lets the
// server's work overlap.
const applyConcurrency = 16

// applied is the outcome of sending one loop; done is closed once it is set.
type applied struct {
	result  *loopgatev1.Loop
	outcome string
	err     error
	repeat  bool   // err was reported already, for an earlier loop of its request
	note    string // a line to print after err
	done    chan struct{}
}

// apply creates or updates every loop, in batch requests (sendBatches), and
// reports them in file order. A loop named again later in the file is sent
// only after its earlier document is done, so the later one wins as if the
// file were applied one loop at a time. A loop that fails (denied, invalid,
// conflict) is reported and the others go on; the exit code is 1 when any
// failed. With opt.atomic every loop is sent in one request, applied all or
// none. Connection and authentication errors stop at once: no further loop
// is sent. With opt.wait, once every loop is sent, waitAll follows all the
// loops sent at once, within opt.timeout in all.
func (a *app) apply(ctx context.Context, stdout, stderr io.Writer, loops []*loop.Loop, opt applyOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	desired := make([]*loopgatev1.Loop, len(loops))
	for i, l := range loops {
		desired[i] = toProto(l)
	}
	var outs []applied
	if opt.atomic {
		var err error
		if outs, err = a.applyAtomic(ctx, stderr, desired, opt.dryRun); err != nil {
			return err
		}
	} else {
		outs = a.sendBatches(ctx, desired, opt.dryRun)
	}
	var (
		results []*loopgatev1.Loop
		failed  int
		timeout bool
	)
	for i := range loops {
		<-outs[i].done
		result, outcome, err := outs[i].result, outs[i].outcome, outs[i].err
		if err != nil {
			if isCode(err, codes.Unavailable) || isCode(err, codes.Unauthenticated) || ctx.Err() != nil {
				return err
			}
			if !outs[i].repeat {
				PrintError(stderr, err, a.conn)
				printNote(stderr, outs[i].note)
			}
			failed++
			continue
		}
		results = append(results, result)
		if a.output == FormatTable {
			if opt.dryRun {
				outcome += " (dry run)"
			}
			fmt.Fprintf(stdout, "%s %s\n", termSafe(result.GetName()), outcome)
			printVerdictNotes(stdout, result.GetStatus().GetPolicy())
		}
		if a.output == FormatTable && !(opt.wait && !opt.dryRun) && result.GetStatus().GetState() == loopgatev1.Loop_PENDING_APPROVAL {
			fmt.Fprintf(stdout, "  %s\n", awaitingText(result))
		}
	}
	if opt.wait && !opt.dryRun && len(results) > 0 {
		// Every loop is sent: now wait for all of them at once.
		out, err := a.waitAll(ctx, stdout, stderr, waitReady, results, opt.timeout)
		if err != nil {
			return err
		}
		for i, r := range results {
			if final := out.final[r.GetName()]; final != nil {
				results[i] = final
			}
		}
		failed += out.failed
		timeout = out.timedOut
	}
	if a.output != FormatTable {
		if err := printLoops(stdout, a.output, results); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d loop(s) failed", failed, len(loops))}
	case timeout:
		return &ExitError{Code: 2, Err: errors.New("timed out waiting")}
	}
	return nil
}

// newApplied returns n outcomes, none done yet.
func newApplied(n int) []applied {
	outs := make([]applied, n)
	for i := range outs {
		outs[i].done = make(chan struct{})
	}
	return outs
}

// sendEach applies every loop with its own RPCs (GetLoop, then CreateLoop or
// UpdateLoop), at most applyConcurrency at a time, setting outs (one per
// loop, in order) as each is done. Once ctx ends nothing more is sent.
func (a *app) sendEach(ctx context.Context, loops []*loopgatev1.Loop, outs []applied, dryRun bool) {
	sem := make(chan struct{}, applyConcurrency)
	last := map[string]int{} // loop name -> index of its latest document so far
	for i, desired := range loops {
		before, dup := last[desired.GetName()]
		last[desired.GetName()] = i
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(loops); j++ {
				outs[j].err = ctx.Err()
				close(outs[j].done)
			}
			return
		}
		go func() {
			defer func() { <-sem; close(outs[i].done) }()
			if dup {
				<-outs[before].done // started earlier, so it finishes
			}
			if err := ctx.Err(); err != nil {
				outs[i].err = err
				return
			}
			outs[i].result, outs[i].outcome, outs[i].err = a.applyOne(ctx, desired, dryRun)
		}()
	}
}

// applyOne reads the loop, then creates or updates it.
func (a *app) applyOne(ctx context.Context, desired *loopgatev1.Loop, dryRun bool) (*loopgatev1.Loop, string, error) {
	rctx, cancel := rpcContext(ctx)
	defer cancel()
	existing, getErr := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: desired.GetName()})
	step, err := decideApply(desired, existing, getErr, newRequestID(), dryRun)
	if err != nil {
		return nil, "", err
	}
	if step.create != nil {
		created, err := a.loops.CreateLoop(rctx, step.create)
		return created, "created", err
	}
	updated, err := a.loops.UpdateLoop(rctx, step.update)
	if err != nil {
		return nil, "", err
	}
	return updated, updateOutcome(existing, updated), nil
}

// printVerdictNotes prints the warnings and approval reasons of a verdict,
// one per line with rule id, field and message.
func printVerdictNotes(w io.Writer, v *loopgatev1.PolicyVerdict) {
	var vs []Violation
	kinds := []string{}
	for _, x := range v.GetWarn() {
		vs = append(vs, Violation{Rule: x.GetId(), Field: x.GetField(), Message: x.GetMsg()})
		kinds = append(kinds, "warning")
	}
	for _, x := range v.GetApproval() {
		vs = append(vs, Violation{Rule: x.GetId(), Field: x.GetField(), Message: x.GetMsg()})
		kinds = append(kinds, "needs approval")
	}
	printKindedViolations(w, kinds, vs)
}

// printLoops prints loops as JSON or YAML: one Loop, or {"loops": [...]}
// for several.
func printLoops(w io.Writer, format string, loops []*loopgatev1.Loop) error {
	if len(loops) == 1 {
		return printMessage(w, format, loops[0])
	}
	return printMessage(w, format, &loopgatev1.ListLoopsResponse{Loops: loops})
}

// awaitingText says what a PENDING_APPROVAL loop waits for and who acts:
// each outstanding reason with the role and number of approvers it needs.
func awaitingText(l *loopgatev1.Loop) string {
	var parts []string
	for _, p := range l.GetStatus().GetApprovals() {
		if missing := int(p.GetRequired()) - len(p.GetApprovedBy()); missing > 0 {
			parts = append(parts, fmt.Sprintf("%s needs %d more %s approval(s)", p.GetId(), missing, p.GetRole()))
		}
	}
	what := "review"
	if len(parts) > 0 {
		what = strings.Join(parts, "; ")
	}
	return termSafe(fmt.Sprintf("PENDING_APPROVAL: %s; reviewers see it in `loopctl approvals` and run `loopctl approve %s`", what, shortName(l.GetName())))
}
