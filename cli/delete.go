package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newDeleteCmd() *cobra.Command {
	var (
		files          fileFlags
		wait           bool
		timeout        time.Duration
		ignoreNotFound bool
	)
	cmd := &cobra.Command{
		Use:   "delete [TEAM/NAME...] [-f FILE|DIR [-f ...] [-R]]",
		Short: "Delete loops and, with them, their topics, ACLs and quotas",
		Long: `Request the deletion of loops: those named as TEAM/NAME, and those of the
files given with -f. A deleted loop turns DELETING; loopgate then removes
its topics (and their data), ACLs and quotas from the cluster, and the loop
disappears.

-f reads files as apply does: -f may be repeated, a directory means every
*.yaml and *.yml file in it (with -R, in its subdirectories too), - is
standard input. But only the apiVersion, kind and metadata (team and name)
of each document matter: a loop whose spec no longer validates, or that
apply would refuse, can still be deleted from its file. A document that is
not a loopgate.dev/v1 Loop with a valid metadata.team and metadata.name is
reported with its file, document and line, and then nothing is deleted.
Names and -f may be given together: the loops of both are deleted. A loop
named more than once is deleted once.

Each loop is read (its etag guards against deleting a loop that someone
changed in between), then deleted; up to 16 loops at a time, reported in
the order given. A loop that does not exist is reported (not found, nothing
to delete) and fails the command, as a mistyped name should; with
--ignore-not-found it does not, so that deleting the loops of files again
succeeds. A deletion that fails (refused, changed meanwhile) is reported
and the others go on.

With --wait, once every deletion is requested, loopctl follows them all at
once until each loop is gone or its deletion FAILED (loopgate keeps
retrying it; ` + "`loopctl get TEAM/NAME`" + ` shows why); --timeout bounds that whole
wait. Up to 10 loops are followed one by one, with every change of state;
more are summed up in a progress line (at most one a second), e.g.
"waiting for 1000 loops to be deleted: 988 gone, 12 DELETING (3.2s)".

With -o json or yaml, the loops whose deletion was requested are printed
as the server returned them (DELETING): one loop, or {"loops": [...]} for
several, as apply prints them.

The exit code is 1 when a loop was not found (without --ignore-not-found),
a deletion request failed or a deletion FAILED, 2
when the wait timed out (naming the loops still pending), else 0.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := deleteTargets(cmd.InOrStdin(), cmd.ErrOrStderr(), args, &files)
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			return a.deleteLoops(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), names, wait, timeout, ignoreNotFound)
		},
	}
	files.registerOptional(cmd, "delete the loops of")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every loop and its resources are gone, or its deletion FAILED")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits in all, for every loop together")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "a loop that does not exist is not a failure")
	return cmd
}

// deleteTargets is the resource names of the loops to delete: those of
// args, then those of the files of -f, each once, in that order.
func deleteTargets(stdin io.Reader, stderr io.Writer, args []string, files *fileFlags) ([]string, error) {
	switch {
	case files.recursive && len(files.files) == 0:
		return nil, errors.New("-R reads the directories given with -f: name them with -f DIR")
	case len(args) == 0 && len(files.files) == 0:
		return nil, errors.New("name the loops to delete: loopctl delete TEAM/NAME [TEAM/NAME...], or -f FILE|DIR for the loops of files")
	}
	var names []string
	for _, arg := range args {
		if isLoopFile(arg) {
			return nil, fmt.Errorf("%s is a file name, not a loop: delete the loops of a file with -f %s", termSafe(arg), termSafe(arg))
		}
		name, err := parseLoopRef(arg)
		if err != nil {
			if _, statErr := os.Stat(arg); statErr == nil {
				return nil, fmt.Errorf("%w (to delete the loops of the files of %s, use -f %s)", err, termSafe(arg), termSafe(arg))
			}
			return nil, err
		}
		names = append(names, name)
	}
	if len(files.files) > 0 {
		fromFiles, err := files.readNames(stdin, stderr)
		if err != nil {
			return nil, err
		}
		names = append(names, fromFiles...)
	}
	return distinct(names), nil
}

// distinct is names without repeats, in the order of their first
// appearance.
func distinct(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// deleteConcurrency is how many loops delete reads and deletes at once,
// as apply does without batch requests.
const deleteConcurrency = applyConcurrency

// deletion is the outcome of deleting one loop; done is closed once it is
// set. At most one of loop, notFound and err is set.
type deletion struct {
	loop     *loopgatev1.Loop // as DeleteLoop (or, already DELETING, GetLoop) returned it
	already  bool             // it was DELETING already: no request was sent
	notFound bool
	err      error
	done     chan struct{}
}

// deleteLoops deletes every loop of names (deleteEach) and reports each in
// the order of names: one line per loop in table output, the loops
// themselves with -o json or yaml. A loop that does not exist is reported,
// and is a failure unless ignoreNotFound; a deletion that fails is reported
// and the others go on (the exit code is 1). Connection and authentication errors stop at
// once: no further loop is sent. With wait, once every deletion is
// requested, waitAll follows every loop at once until it is gone, within
// timeout in all.
func (a *app) deleteLoops(ctx context.Context, stdout, stderr io.Writer, names []string, wait bool, timeout time.Duration, ignoreNotFound bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outs := a.deleteEach(ctx, names)
	var (
		deleted []*loopgatev1.Loop
		failed  int
	)
	table := a.output == FormatTable
	for i, name := range names {
		<-outs[i].done
		o := outs[i]
		switch {
		case o.err != nil:
			if isCode(o.err, codes.Unavailable) || isCode(o.err, codes.Unauthenticated) || ctx.Err() != nil {
				return o.err
			}
			PrintError(stderr, naming(o.err, name), a.conn)
			failed++
		case o.notFound && !ignoreNotFound:
			fmt.Fprintf(stderr, "error: %s not found, nothing to delete (--ignore-not-found makes this no failure)\n", termSafe(name))
			failed++
		case o.notFound:
			// The loop is not there, which is what delete is for. On
			// stderr with -o json or yaml, to keep stdout what scripts
			// parse.
			w := stdout
			if !table {
				w = stderr
			}
			fmt.Fprintf(w, "%s not found, nothing to delete\n", termSafe(name))
		default:
			deleted = append(deleted, o.loop)
			if !table {
				continue
			}
			if o.already {
				fmt.Fprintf(stdout, "%s is already being deleted\n", termSafe(name))
			} else {
				fmt.Fprintf(stdout, "%s deletion requested\n", termSafe(name))
			}
		}
	}
	if !table && len(deleted) > 0 {
		if err := printLoops(stdout, a.output, deleted); err != nil {
			return err
		}
	}
	timedOut := false
	if wait && len(deleted) > 0 {
		out, err := a.waitAll(ctx, stdout, stderr, waitDeleted, deleted, timeout)
		if err != nil {
			return err
		}
		failed += out.failed
		timedOut = out.timedOut
	}
	switch {
	case failed > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d loop(s) failed to be deleted", failed, len(names))}
	case timedOut:
		return &ExitError{Code: 2, Err: errors.New("timed out waiting")}
	}
	return nil
}

// naming prefixes an error about a loop with the loop's name, unless its
// message names it already: with several loops, each error must say which
// one it is about. A gRPC status keeps its code and details.
func naming(err error, name string) error {
	st, isStatus := status.FromError(err)
	msg := err.Error()
	if isStatus {
		msg = st.Message()
	}
	if strings.Contains(msg, name) || strings.Contains(msg, shortName(name)) {
		return err
	}
	if !isStatus {
		return fmt.Errorf("%s: %w", shortName(name), err)
	}
	p := st.Proto()
	p.Message = shortName(name) + ": " + p.GetMessage()
	return status.FromProto(p).Err()
}

// deleteEach deletes every loop of names (deleteOne), at most
// deleteConcurrency at a time, and returns their outcomes in the order of
// names, each set as it is done. Once ctx ends nothing more is sent.
func (a *app) deleteEach(ctx context.Context, names []string) []deletion {
	outs := make([]deletion, len(names))
	for i := range outs {
		outs[i].done = make(chan struct{})
	}
	go func() {
		sem := make(chan struct{}, deleteConcurrency)
		for i, name := range names {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < len(names); j++ {
					outs[j].err = ctx.Err()
					close(outs[j].done)
				}
				return
			}
			go func() {
				defer func() { <-sem; close(outs[i].done) }()
				if err := ctx.Err(); err != nil {
					outs[i].err = err
					return
				}
				o := &outs[i]
				o.loop, o.already, o.notFound, o.err = a.deleteOne(ctx, name)
			}()
		}
	}()
	return outs
}

// deleteOne reads the loop for its etag, then deletes it with a new
// request id; already says it was DELETING, and nothing was sent (a
// deletion request for it would change nothing).
func (a *app) deleteOne(ctx context.Context, name string) (deleted *loopgatev1.Loop, already, notFound bool, err error) {
	rctx, cancel := rpcContext(ctx)
	defer cancel()
	current, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
	switch {
	case isCode(err, codes.NotFound):
		return nil, false, true, nil
	case err != nil:
		return nil, false, false, err
	case current.GetDeleteTime() != nil || current.GetStatus().GetState() == loopgatev1.Loop_DELETING:
		return current, true, false, nil
	}
	deleted, err = a.loops.DeleteLoop(rctx, &loopgatev1.DeleteLoopRequest{
		Name: name, Etag: current.GetEtag(), RequestId: newRequestID(),
	})
	if isCode(err, codes.NotFound) {
		return nil, false, true, nil // its deletion ended in between
	}
	return deleted, false, false, err
}
