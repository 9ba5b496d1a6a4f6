package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/policy"
)

// The policy commands that talk to a server: push, list, show, diff,
// approve, activate, rollback, history. (test and eval work locally, in
// policy.go.)
func (a *app) policyRemoteCommands() []*cobra.Command {
	return []*cobra.Command{
		a.newPolicyPushCmd(), a.newPolicyListCmd(), a.newPolicyShowCmd(), a.newPolicyDiffCmd(),
		a.newPolicyApproveCmd(), a.newPolicyActivateCmd(), a.newPolicyRollbackCmd(), a.newPolicyHistoryCmd(),
		a.newPolicyWaiveCmd(), a.newPolicyWaiversCmd(), a.newPolicyUnwaiveCmd(),
		a.newPolicyImpactCmd(), a.newPolicyDecisionsCmd(), a.newPolicyExplainCmd(),
	}
}

// bundleRef is the resource name of a revision given on the command line.
func bundleRef(rev string) (string, error) {
	rev = strings.TrimPrefix(rev, "policy/bundles/")
	if rev == "" || strings.ContainsAny(rev, "/ ") {
		return "", fmt.Errorf("%q is not a bundle revision", termSafe(rev))
	}
	return "policy/bundles/" + rev, nil
}

func (a *app) newPolicyPushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push DIR|FILE.tar.gz",
		Short: "Push a candidate policy bundle (compiled and tested by the server)",
		Long: `Push a policy bundle as a candidate: a directory in OPA's bundle layout (with a
.manifest naming its revision) or a .tar.gz built by opa build (signed with
opa build --signing-key when the server verifies signatures). The server
compiles it and runs its tests with OPA's tester; a bundle that does not
compile or whose tests fail is refused, naming the failing tests. Nothing
changes until another security reviewer approves it and it is activated.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			archive, err := policy.Pack(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			b, err := a.policies.PushPolicyBundle(rctx, &loopgatev1.PushPolicyBundleRequest{Archive: archive})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, b)
			}
			out := cmd.OutOrStdout()
			passed := 0
			for _, t := range b.GetTests() {
				if t.GetResult() == "PASS" {
					passed++
				}
			}
			fmt.Fprintf(out, "%s pushed (digest %s): %d file(s), %d of %d test(s) passed\n",
				termSafe(b.GetName()), termSafe(b.GetDigest()), len(b.GetFiles()), passed, len(b.GetTests()))
			fmt.Fprintf(out, "next: another security reviewer reviews it (`loopctl policy diff %s %s`) and runs `loopctl policy approve %s` (%d approval(s) needed), then `loopctl policy activate %s`\n",
				"builtin", termSafe(b.GetRevision()), termSafe(b.GetRevision()), b.GetRequiredApprovals(), termSafe(b.GetRevision()))
			return nil
		},
	}
}

func (a *app) newPolicyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List policy bundles: candidates, the active one, superseded ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.policies.ListPolicyBundles(rctx, &loopgatev1.ListPolicyBundlesRequest{})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			t := newTable(cmd.OutOrStdout(), "REVISION", "STATE", "APPROVALS", "TESTS", "SIGNED BY", "PUSHED BY", "AGE")
			now := time.Now()
			for _, b := range resp.GetBundles() {
				approvals := fmt.Sprintf("%d/%d", len(b.GetApprovals()), b.GetRequiredApprovals())
				if b.GetRevision() == "builtin" {
					approvals = "-"
				}
				t.row(b.GetRevision(), strings.TrimPrefix(b.GetState().String(), "STATE_"), approvals, testsSummary(b.GetTests()),
					orDash(b.GetSignedBy()), b.GetPushedBy(), age(b.GetPushTime(), now))
			}
			return t.flush()
		},
	}
}

// testsSummary is "12 passed", "11 passed, 1 failed" or "-".
func testsSummary(tests []*loopgatev1.PolicyTestResult) string {
	if len(tests) == 0 {
		return "-"
	}
	counts := map[string]int{}
	for _, t := range tests {
		counts[t.GetResult()]++
	}
	out := fmt.Sprintf("%d passed", counts["PASS"])
	for _, r := range []string{"FAIL", "ERROR", "SKIP"} {
		if counts[r] > 0 {
			out += fmt.Sprintf(", %d %s", counts[r], strings.ToLower(r))
		}
	}
	return out
}

func (a *app) newPolicyShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show REVISION",
		Short: "Show a bundle: manifest, files, who pushed it, tests, approvals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := bundleRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			b, err := a.policies.GetPolicyBundle(rctx, &loopgatev1.GetPolicyBundleRequest{Name: name})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, b)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %s\n", termSafe(b.GetName()), strings.TrimPrefix(b.GetState().String(), "STATE_"))
			if b.GetDigest() != "" {
				fmt.Fprintf(w, "  digest:    %s\n", termSafe(b.GetDigest()))
			}
			if b.GetPushTime() != nil {
				fmt.Fprintf(w, "  pushed:    by %s at %s\n", termSafe(b.GetPushedBy()), b.GetPushTime().AsTime().Local().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "  signed by: %s\n", termSafe(orDash(b.GetSignedBy())))
			if m := b.GetManifest(); m != nil {
				raw, _ := m.MarshalJSON()
				fmt.Fprintf(w, "  manifest:  %s\n", termSafe(string(raw)))
			}
			fmt.Fprintf(w, "  files (%d):\n", len(b.GetFiles()))
			for _, f := range b.GetFiles() {
				fmt.Fprintf(w, "    %s\n", termSafe(f))
			}
			if len(b.GetTests()) > 0 {
				fmt.Fprintf(w, "  tests: %s\n", testsSummary(b.GetTests()))
				for _, t := range b.GetTests() {
					if t.GetResult() != "PASS" {
						fmt.Fprintf(w, "    %s %s %s\n", t.GetResult(), termSafe(t.GetName()), termSafe(t.GetMessage()))
					}
				}
			}
			if b.GetRevision() != "builtin" {
				fmt.Fprintf(w, "  approvals: %d of %d required\n", len(b.GetApprovals()), b.GetRequiredApprovals())
				for _, ap := range b.GetApprovals() {
					fmt.Fprintf(w, "    %s at %s: %s\n", termSafe(ap.GetReviewer()), ap.GetTime().AsTime().Local().Format(time.RFC3339), termSafe(orDash(ap.GetComment())))
				}
			}
			return nil
		},
	}
}

func (a *app) newPolicyDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff REVISION_A REVISION_B",
		Short: "Show what changed between two bundles, file by file",
		Long: `Show the files added, removed and changed between two bundles (builtin is the
built-in one), with a line diff of each changed file. Exit code 0 when they
are the same, 2 when they differ, 1 on errors.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			var files [2]map[string]string
			for i, rev := range args {
				name, err := bundleRef(rev)
				if err != nil {
					return err
				}
				rctx, cancel := rpcContext(cmd.Context())
				b, err := a.policies.GetPolicyBundle(rctx, &loopgatev1.GetPolicyBundleRequest{Name: name, View: loopgatev1.GetPolicyBundleRequest_FULL})
				cancel()
				if err != nil {
					return err
				}
				if files[i], err = archiveFiles(b.GetArchive()); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			if !printBundleDiff(cmd.OutOrStdout(), args[0], args[1], files[0], files[1]) {
				fmt.Fprintln(cmd.OutOrStdout(), "no differences")
				return nil
			}
			return &ExitError{Code: 2}
		},
	}
}

// maxDiffFileBytes bounds a file read out of a bundle archive for diff.
const maxDiffFileBytes = 4 << 20

// archiveFiles reads the files of a gzipped tarball (bounded).
func archiveFiles(archive []byte) (map[string]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("reading bundle archive: %w", err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	total := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading bundle archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxDiffFileBytes+1))
		if err != nil {
			return nil, err
		}
		total += len(data)
		if len(data) > maxDiffFileBytes || total > 4*maxDiffFileBytes {
			return nil, fmt.Errorf("bundle archive file %s: too large to diff", termSafe(h.Name))
		}
		out[strings.TrimPrefix(h.Name, "/")] = string(data)
	}
}

// printBundleDiff prints the differences of two bundles' files and
// reports whether there are any.
func printBundleDiff(w io.Writer, nameA, nameB string, a, b map[string]string) bool {
	var paths []string
	for p := range a {
		paths = append(paths, p)
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	differ := false
	for _, p := range paths {
		av, inA := a[p]
		bv, inB := b[p]
		switch {
		case !inA:
			fmt.Fprintf(w, "added in %s: %s\n", termSafe(nameB), termSafe(p))
			differ = true
		case !inB:
			fmt.Fprintf(w, "removed in %s: %s\n", termSafe(nameB), termSafe(p))
			differ = true
		case av != bv:
			fmt.Fprintf(w, "changed: %s\n", termSafe(p))
			for _, line := range lineDiff(strings.Split(av, "\n"), strings.Split(bv, "\n")) {
				fmt.Fprintf(w, "  %s\n", termSafe(line))
			}
			differ = true
		}
	}
	return differ
}

// maxDiffLines bounds the lines one changed file's diff shows.
const maxDiffLines = 400

// lineDiff is a minimal line diff (longest common subsequence): "- " lines
// of a only, "+ " lines of b only, in order. Large files fall back to
// listing both sides' changed region.
func lineDiff(a, b []string) []string {
	// Trim the common head and tail: bundle changes are usually local.
	for len(a) > 0 && len(b) > 0 && a[0] == b[0] {
		a, b = a[1:], b[1:]
	}
	for len(a) > 0 && len(b) > 0 && a[len(a)-1] == b[len(b)-1] {
		a, b = a[:len(a)-1], b[:len(b)-1]
	}
	var out []string
	if len(a)*len(b) > 4_000_000 {
		for _, l := range a {
			out = append(out, "- "+l)
		}
		for _, l := range b {
			out = append(out, "+ "+l)
		}
	} else {
		lcs := make([][]int32, len(a)+1)
		for i := range lcs {
			lcs[i] = make([]int32, len(b)+1)
		}
		for i := len(a) - 1; i >= 0; i-- {
			for j := len(b) - 1; j >= 0; j-- {
				if a[i] == b[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(a) || j < len(b) {
			switch {
			case i < len(a) && j < len(b) && a[i] == b[j]:
				i, j = i+1, j+1
			case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
				out = append(out, "+ "+b[j])
				j++
			default:
				out = append(out, "- "+a[i])
				i++
			}
		}
	}
	if len(out) > maxDiffLines {
		out = append(out[:maxDiffLines], fmt.Sprintf("... %d more changed lines", len(out)-maxDiffLines))
	}
	return out
}

func (a *app) newPolicyApproveCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "approve REVISION --comment TEXT",
		Short: "Approve a candidate bundle someone else pushed",
		Long: `Approve a candidate bundle. loopctl reads the bundle first and sends its digest:
the approval is of exactly the bundle you looked at (loopctl policy show,
diff). The uploader cannot approve their own bundle.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := bundleRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			cur, err := a.policies.GetPolicyBundle(rctx, &loopgatev1.GetPolicyBundleRequest{Name: name})
			if err != nil {
				return err
			}
			b, err := a.policies.ApprovePolicyBundle(rctx, &loopgatev1.ApprovePolicyBundleRequest{Name: name, Digest: cur.GetDigest(), Comment: comment})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, b)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s approved: %d of %d approval(s)\n", termSafe(b.GetName()), len(b.GetApprovals()), b.GetRequiredApprovals())
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why the bundle is fine (kept with the approval)")
	return cmd
}

func (a *app) newPolicyActivateCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "activate REVISION",
		Short: "Activate an approved bundle: every decision is made with it from now on",
		Long: `Activate a bundle that has the approvals the active bundle requires. Every
loopgate replica judges by it within seconds; every loop is re-evaluated and
its PolicyCompliant condition says whether it still complies — loops that do
not are flagged, never changed on a cluster.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := bundleRef(args[0])
			if err != nil {
				return err
			}
			return a.printActivation(cmd, func(ctx context.Context) (*loopgatev1.PolicyActivation, error) {
				return a.policies.ActivatePolicyBundle(ctx, &loopgatev1.ActivatePolicyBundleRequest{Name: name, Comment: comment})
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why now (audited)")
	return cmd
}

func (a *app) newPolicyRollbackCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "rollback [REVISION] --comment TEXT",
		Short: "Return to the bundle active before (or to REVISION, or builtin)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bundle := ""
			if len(args) == 1 {
				var err error
				if bundle, err = bundleRef(args[0]); err != nil {
					return err
				}
			}
			return a.printActivation(cmd, func(ctx context.Context) (*loopgatev1.PolicyActivation, error) {
				return a.policies.RollbackPolicy(ctx, &loopgatev1.RollbackPolicyRequest{Bundle: bundle, Comment: comment})
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (required, audited)")
	return cmd
}

func (a *app) printActivation(cmd *cobra.Command, call func(context.Context) (*loopgatev1.PolicyActivation, error)) error {
	if err := a.connect(); err != nil {
		return err
	}
	rctx, cancel := rpcContext(cmd.Context())
	defer cancel()
	act, err := call(rctx)
	if err != nil {
		return err
	}
	if a.output != FormatTable {
		return printMessage(cmd.OutOrStdout(), a.output, act)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is active (%s #%d by %s); every loop is being re-evaluated: `loopctl get` shows each loop's PolicyCompliant condition\n",
		termSafe(act.GetBundle()), strings.ToLower(act.GetAction()), act.GetSeq(), termSafe(act.GetActor()))
	return nil
}

func (a *app) newPolicyHistoryCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List activations and rollbacks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.policies.ListPolicyActivations(rctx, &loopgatev1.ListPolicyActivationsRequest{PageSize: int32(limit)})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			t := newTable(cmd.OutOrStdout(), "SEQ", "ACTION", "BUNDLE", "BY", "WHEN", "COMMENT")
			for _, act := range resp.GetActivations() {
				t.row(strconv.FormatInt(act.GetSeq(), 10), act.GetAction(), act.GetBundle(), act.GetActor(),
					act.GetTime().AsTime().Local().Format(time.RFC3339), orDash(act.GetComment()))
			}
			return t.flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many (up to 1000)")
	return cmd
}
