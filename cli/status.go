package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status TEAM/NAME",
		Short: "Show whether a loop meets its SLO: latency, error budget, consumer lag and cost",
		Long: `Show how a running loop is doing, as loopgate measures it (docs/slo.md):

  - SLO: MET, BREACHED or UNKNOWN (with the reason: NoTraffic, NoHeader,
    NotSampled), producer-to-action latency p50/p90/p99 over 1 minute,
    1 hour and 28 days against the p99 target, the error budget left and
    the sampled action records without the loopgate-origin-ts header;
  - lag of each consumer group in records and seconds, against the
    freshness target;
  - the cost forecast per month and its split.

-o json or -o yaml writes the loop's status as the API returns it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseLoopRef(args[0])
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			l, err := a.loops.GetLoop(rctx, &loopgatev1.GetLoopRequest{Name: name})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, l.GetStatus())
			}
			return printStatus(cmd.OutOrStdout(), l, time.Now())
		},
	}
}

// ms renders milliseconds compactly: 850ms, 1.52s, 2m3s.
func ms(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

func percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

func printStatus(w io.Writer, l *loopgatev1.Loop, now time.Time) error {
	st := l.GetStatus()
	fmt.Fprintf(w, "Loop:     %s (%s, cluster %s)\n", termSafe(shortName(l.GetName())), strings.TrimPrefix(st.GetState().String(), "STATE_"), termSafe(orDash(st.GetCluster())))

	s := st.GetSlo()
	if s == nil {
		fmt.Fprintln(w, "SLO:      not observed yet (loopgate samples the action topic once the loop is provisioned)")
	} else {
		fmt.Fprintf(w, "SLO:      %s (%s): %s\n", strings.TrimPrefix(s.GetState().String(), "STATE_"), termSafe(s.GetReason()), termSafe(s.GetMessage()))
		fmt.Fprintf(w, "          target p99 %s, observed %s ago\n", ms(float64(s.GetTargetP99Ms())), age(s.GetObserveTime(), now))
		var buf strings.Builder
		t := newTable(&buf, "WINDOW", "P50", "P90", "P99", "TARGET", "RECORDS", "OVER TARGET", "WITHOUT HEADER", "BUDGET LEFT")
		for _, win := range s.GetWindows() {
			p50, p90, p99 := "-", "-", "-"
			if win.GetRecords() > 0 {
				p50, p90, p99 = ms(win.GetP50Ms()), ms(win.GetP90Ms()), ms(win.GetP99Ms())
			}
			t.row(win.GetWindow(), p50, p90, p99, ms(float64(s.GetTargetP99Ms())), strconv.FormatInt(win.GetRecords(), 10),
				strconv.FormatInt(win.GetRecordsOverTarget(), 10), strconv.FormatInt(win.GetRecordsWithoutHeader(), 10), percent(win.GetErrorBudgetRemaining()))
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := writeIndented(w, buf.String()); err != nil {
			return err
		}
	}

	if len(st.GetLag()) == 0 {
		fmt.Fprintln(w, "Lag:      not observed yet")
	} else {
		fmt.Fprintln(w, "Lag:")
		var buf strings.Builder
		t := newTable(&buf, "GROUP", "RECORDS", "TIME LAG", "FRESHNESS", "PARTITIONS", "OBSERVED")
		for _, g := range st.GetLag() {
			fresh := "-"
			if g.GetFreshnessMs() > 0 {
				fresh = ms(float64(g.GetFreshnessMs()))
				if g.GetTimeLagMs() > g.GetFreshnessMs() {
					fresh += " (exceeded)"
				}
			}
			t.row(g.GetGroup(), strconv.FormatInt(g.GetOffsetLag(), 10), ms(float64(g.GetTimeLagMs())), fresh,
				strconv.Itoa(len(g.GetPartitions())), age(g.GetObserveTime(), now)+" ago")
		}
		if err := t.flush(); err != nil {
			return err
		}
		if err := writeIndented(w, buf.String()); err != nil {
			return err
		}
	}

	if c := st.GetCost(); c != nil {
		fmt.Fprintf(w, "Cost:     %s\n", termSafe(costSummary(c)))
	}

	var conds []string
	for _, c := range st.GetConditions() {
		if c.GetType() == "SLOMet" || c.GetType() == "Fresh" {
			conds = append(conds, fmt.Sprintf("%s=%s (%s, for %s)", c.GetType(), c.GetStatus(), c.GetReason(), age(c.GetLastTransitionTime(), now)))
		}
	}
	if len(conds) > 0 {
		fmt.Fprintf(w, "Conditions: %s\n", termSafe(strings.Join(conds, ", ")))
		for _, c := range st.GetConditions() {
			if c.GetType() == "Fresh" && c.GetMessage() != "" {
				fmt.Fprintf(w, "  Fresh: %s\n", termSafe(c.GetMessage()))
			}
		}
	}
	return nil
}
