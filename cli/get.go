package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// listPageSize is the page size loopctl asks for when listing everything.
const listPageSize = 500

func (a *app) newGetCmd() *cobra.Command {
	var (
		team, filter string
		allTeams     bool
	)
	cmd := &cobra.Command{
		Use:   "get [TEAM/NAME]",
		Short: "List loops, or show one loop in detail",
		Long: `Without an argument, list every loop you may see (or those of --team),
one line each. With TEAM/NAME, show that loop: its spec, state, conditions,
policy verdict, and the approvals and reviews of its current generation.

-o yaml writes the loop file form that apply reads: apiVersion, kind,
metadata (name, team, labels) and spec in human units, without status or
anything else the server sets; several loops are one multi-document file.
So "loopctl get TEAM/NAME -o yaml > f && loopctl apply -f f" reports the
loop unchanged. -o json writes the API message, with status.

  loopctl get --all-teams -o yaml > loops.yaml   export every loop you may see`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if allTeams && (team != "" || len(args) > 0) {
				return errors.New("--all-teams lists every loop you may see: give neither --team nor TEAM/NAME with it")
			}
			if err := a.connect(); err != nil {
				return err
			}
			if len(args) == 1 {
				name, err := parseLoopRef(args[0])
				if err != nil {
					return err
				}
				rctx, cancel := rpcContext(cmd.Context())
				defer cancel()
				l, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
				if err != nil {
					return err
				}
				switch a.output {
				case FormatYAML:
					return printLoopFiles(cmd.OutOrStdout(), []*loopgatev1.Loop{l})
				case FormatJSON:
					return printMessage(cmd.OutOrStdout(), a.output, l)
				}
				return printLoopDetails(cmd.OutOrStdout(), l, time.Now())
			}
			loops, err := a.listAll(cmd.Context(), team, filter)
			if err != nil {
				return err
			}
			switch a.output {
			case FormatYAML:
				if len(loops) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "no loops")
				}
				return printLoopFiles(cmd.OutOrStdout(), loops)
			case FormatJSON:
				return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListLoopsResponse{Loops: loops})
			}
			if len(loops) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no loops")
				return nil
			}
			return printLoopList(cmd.OutOrStdout(), loops, time.Now())
		},
	}
	cmd.Flags().StringVar(&team, "team", "", "only the loops of this team")
	cmd.Flags().StringVar(&filter, "filter", "", "server-side filter, e.g. state=READY")
	cmd.Flags().BoolVar(&allTeams, "all-teams", false, "every loop you may see, of every team (the default without --team; -o yaml exports them)")
	return cmd
}

// printLoopFiles writes loops as one loop file (multi-document YAML) in the
// form apply reads: loop.Format of the name, labels and spec mapped back by
// fromProto. The text is the loop authors': every scalar that must not
// reach a terminal raw is double-quoted and escaped (see jsonToYAML).
func printLoopFiles(w io.Writer, loops []*loopgatev1.Loop) error {
	for i, p := range loops {
		l, err := fromProto(p)
		if err != nil {
			return err
		}
		b, err := loop.Format(l)
		if err != nil {
			return err
		}
		if b, err = yamlTermSafe(b); err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// listAll pages through ListLoops until the last page.
func (a *app) listAll(ctx context.Context, team, filter string) ([]*loopgatev1.Loop, error) {
	parent := "teams/-"
	if team != "" {
		parent = "teams/" + team
	}
	var (
		all   []*loopgatev1.Loop
		token string
	)
	for {
		rctx, cancel := rpcContext(ctx)
		resp, err := a.loops.ListLoops(rctx, &loopgatev1.ListLoopsRequest{
			Parent: parent, PageSize: listPageSize, PageToken: token, Filter: filter,
		})
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, resp.GetLoops()...)
		token = resp.GetNextPageToken()
		if token == "" {
			return all, nil
		}
	}
}

// printLoopList writes the NAME TEAM STATE REGION CLASSIFICATION TOPICS AGE
// table.
func printLoopList(w io.Writer, loops []*loopgatev1.Loop, now time.Time) error {
	t := newTable(w, "NAME", "TEAM", "STATE", "REGION", "CLASSIFICATION", "TOPICS", "AGE")
	for _, l := range loops {
		team, id := splitName(l.GetName())
		t.row(id, team, stateString(l), l.GetSpec().GetResidency(), l.GetSpec().GetClassification(),
			strconv.Itoa(len(l.GetSpec().GetStreams())), age(l.GetCreateTime(), now))
	}
	return t.flush()
}

// stateString is the state, marked when the status lags the spec.
func stateString(l *loopgatev1.Loop) string {
	st := l.GetStatus()
	if st.GetState() == loopgatev1.Loop_STATE_UNSPECIFIED {
		return "-"
	}
	s := st.GetState().String()
	if st.GetObservedGeneration() < l.GetGeneration() && st.GetState() != loopgatev1.Loop_PENDING_APPROVAL {
		s += "*" // status describes an older generation
	}
	return s
}

// printLoopDetails writes one loop as "Key: value" lines, then where its
// streams live and what its principals may do, its policy notes, its
// approval progress and reviews, and its conditions as tables.
func printLoopDetails(w io.Writer, l *loopgatev1.Loop, now time.Time) error {
	s, st := l.GetSpec(), l.GetStatus()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// Every value is termSafe: descriptions, labels and messages are the
	// loop authors' text and must not reach the terminal raw.
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, termSafe(orDash(v))) }
	field := func(k, v string) { row(k+":", v) }
	field("Name", l.GetName())
	field("State", stateString(l))
	field("Generation", fmt.Sprintf("%d (status observed %d)", l.GetGeneration(), st.GetObservedGeneration()))
	field("Cluster", st.GetCluster())
	field("Description", s.GetDescription())
	field("Owners", strings.Join(s.GetOwners(), ", "))
	field("Classification", s.GetClassification())
	field("Residency", s.GetResidency())
	field("Retention", loop.FormatDuration(s.GetRetentionMs()))
	field("SLO", sloString(s.GetSlo()))
	field("Throughput", throughputString(s.GetThroughput()))
	if c := st.GetCost(); c != nil {
		field("Cost", costSummary(c))
	}
	for i, stream := range s.GetStreams() {
		row(labelIf(i, "Streams"), streamString(stream))
	}
	for i, p := range s.GetProducers() {
		row(labelIf(i, "Producers"), p.GetPrincipal()+" writes "+strings.Join(p.GetStreams(), ", "))
	}
	for i, c := range s.GetConsumers() {
		row(labelIf(i, "Consumers"), c.GetPrincipal()+" (group "+c.GetGroup()+") reads "+strings.Join(c.GetStreams(), ", "))
	}
	if s.GetAction() != nil {
		field("Action", s.GetAction().GetStream())
	}
	field("Labels", labelsString(l.GetLabels()))
	field("Approval", approvalString(l))
	field("Decision", st.GetDecisionId())
	field("Created", timeString(l.GetCreateTime())+" ("+age(l.GetCreateTime(), now)+" ago)")
	field("Updated", timeString(l.GetUpdateTime()))
	if l.GetDeleteTime() != nil {
		field("Deletion requested", timeString(l.GetDeleteTime()))
	}
	field("UID", l.GetUid())
	field("Etag", l.GetEtag())
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printLoopConnection(w, st); err != nil {
		return err
	}

	if v := st.GetPolicy(); v != nil {
		fmt.Fprintf(w, "\nPolicy: %s (bundle %s)\n", verdictLine(v), termSafe(orDash(v.GetBundleRevision())))
		printVerdictNotes(w, v)
	}
	if err := printApprovalProgress(w, st); err != nil {
		return err
	}
	if len(st.GetConditions()) > 0 {
		fmt.Fprintln(w, "\nConditions:")
		var buf strings.Builder
		ct := newTable(&buf, "TYPE", "STATUS", "REASON", "GENERATION", "AGE", "MESSAGE")
		for _, c := range st.GetConditions() {
			ct.row(c.GetType(), c.GetStatus(), c.GetReason(), strconv.FormatInt(c.GetObservedGeneration(), 10),
				age(c.GetLastTransitionTime(), now), c.GetMessage())
		}
		if err := ct.flush(); err != nil {
			return err
		}
		return writeIndented(w, buf.String())
	}
	return nil
}

// printLoopConnection writes the Streams table (where each stream lives;
// external ones, written outside the loop, marked) and the Principals table
// (what each principal may do) of a loop's status, indented; nothing for a
// status without them.
func printLoopConnection(w io.Writer, st *loopgatev1.LoopStatus) error {
	if len(st.GetStreams()) > 0 {
		fmt.Fprintln(w, "\nStreams:")
		var buf strings.Builder
		t := newTable(&buf, "STREAM", "TOPIC", "CLUSTER", "REGION", "BOOTSTRAP")
		for _, e := range st.GetStreams() {
			stream := e.GetStream()
			if e.GetExternal() {
				stream += " (external)"
			}
			t.row(stream, e.GetTopic(), e.GetCluster(), e.GetRegion(), strings.Join(e.GetBootstrapServers(), ","))
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := writeIndented(w, buf.String()); err != nil {
			return err
		}
	}
	if len(st.GetPrincipals()) > 0 {
		fmt.Fprintln(w, "\nPrincipals:")
		var buf strings.Builder
		t := newTable(&buf, "PRINCIPAL", "PRODUCES", "CONSUMES", "GROUPS", "QUOTA")
		for _, g := range st.GetPrincipals() {
			t.row(g.GetPrincipal(), strings.Join(g.GetProduceTopics(), ","), strings.Join(g.GetConsumeTopics(), ","),
				strings.Join(g.GetGroups(), ","), quotaString(g.GetQuota()))
		}
		if err := t.flush(); err != nil {
			return err
		}
		return writeIndented(w, buf.String())
	}
	return nil
}

func labelIf(i int, label string) string {
	if i == 0 {
		return label + ":"
	}
	return ""
}

func sloString(s *loopgatev1.Slo) string {
	out := "p99 " + loop.FormatDuration(s.GetLatencyP99Ms())
	if s.GetFreshnessMs() > 0 {
		out += ", freshness " + loop.FormatDuration(s.GetFreshnessMs())
	}
	return out
}

func throughputString(t *loopgatev1.Throughput) string {
	out := fmt.Sprintf("%s/s steady, peak ×%g", sizeString(t.GetBytesPerSecond()), t.GetPeakFactor())
	if t.GetRecordBytes() > 0 {
		out += ", records of " + sizeString(t.GetRecordBytes())
	}
	return out
}

// quotaString is a principal's client quota: "produce 6MiB/s, consume
// 6MiB/s", or "" when it has none.
func quotaString(q *loopgatev1.Quota) string {
	var parts []string
	if r := q.GetProducerByteRate(); r > 0 {
		parts = append(parts, "produce "+sizeString(r)+"/s")
	}
	if r := q.GetConsumerByteRate(); r > 0 {
		parts = append(parts, "consume "+sizeString(r)+"/s")
	}
	return strings.Join(parts, ", ")
}

// sizeString is loop.FormatSize with a "B" on bare byte counts: 600B, 2MiB.
func sizeString(b int64) string {
	s := loop.FormatSize(b)
	if strings.Trim(s, "0123456789") == "" {
		s += "B"
	}
	return s
}

func streamString(s *loopgatev1.Stream) string {
	parts := "partitions derived"
	if s.GetPartitions() > 0 {
		parts = fmt.Sprintf("%d partitions", s.GetPartitions())
	}
	schema := s.GetSchema().GetFormat()
	if c := s.GetSchema().GetCompatibility(); c != "" {
		schema += " " + c
	}
	return fmt.Sprintf("%s (%s, %s)", s.GetName(), parts, schema)
}

func labelsString(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ", ")
}

func approvalString(l *loopgatev1.Loop) string {
	st := l.GetStatus()
	switch {
	case st.GetState() == loopgatev1.Loop_REJECTED:
		return "rejected: change the spec (it is reviewed afresh) or delete the loop"
	case st.GetApprovedGeneration() > 0 && st.GetApprovedGeneration() >= l.GetGeneration():
		return fmt.Sprintf("approved by %s (generation %d)", orDash(st.GetApprovedBy()), st.GetApprovedGeneration())
	case st.GetNeedsApproval() && len(st.GetApprovals()) > 0:
		return fmt.Sprintf("needed: %d of %d reason(s) outstanding (see Approvals); a reviewer runs `loopctl approve %s`",
			len(outstanding(st.GetApprovals())), len(st.GetApprovals()), shortName(l.GetName()))
	case st.GetNeedsApproval():
		return "needed: an admin runs `loopctl approve " + shortName(l.GetName()) + "`"
	default:
		return "not needed"
	}
}
