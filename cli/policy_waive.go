package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Waivers: loopctl policy waive, waivers, unwaive (docs/policy.md,
// "Waivers").

// parseUntil reads a waiver's --until relative to now: an RFC 3339 time, a
// date YYYY-MM-DD (midnight UTC at the start of that day), or a duration
// from now: a Go duration (72h, 90m) or a number of days (14d).
func parseUntil(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("--until is required: an RFC 3339 time, a date YYYY-MM-DD, or a duration like 72h or 14d")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3660 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("--until %q: want an RFC 3339 time (2026-12-01T00:00:00Z), a date (2026-12-01, midnight UTC), or a positive duration (72h, 14d)", termSafe(s))
}

// waiverRef is the resource name of a waiver given as TEAM/NAME and an id
// (or a full waiver name as the id).
func waiverRef(loopName, id string) (string, error) {
	if strings.HasPrefix(id, "teams/") {
		if !strings.HasPrefix(id, loopName+"/waivers/") {
			return "", fmt.Errorf("%q is not a waiver of %s", termSafe(id), termSafe(loopName))
		}
		return id, nil
	}
	if id == "" || strings.ContainsAny(id, "/ ") {
		return "", fmt.Errorf("%q is not a waiver id (as `loopctl policy waivers` lists it, e.g. wv-0123456789abcdef)", termSafe(id))
	}
	return loopName + "/waivers/" + id, nil
}

func (a *app) newPolicyWaiveCmd() *cobra.Command {
	var until, reason string
	cmd := &cobra.Command{
		Use:   "waive TEAM/NAME RULE_ID --until DATE|DURATION --reason TEXT",
		Short: "Grant a time-limited waiver of one policy rule for a loop (security reviewers)",
		Long: `Grant a waiver: an exception to one policy rule (its id, e.g. RETENTION_TOO_LONG)
for one loop, until a time at most 180 days ahead, with a reason. The loop's
active waivers are part of the policy input: the default bundle shows a
waived denial or approval as a warning naming the waiver, except for the
rules it never waives (e.g. PII_RESIDENCY), for which a waiver is refused.
The loop is re-evaluated at once; when the waiver expires it is re-evaluated
again, within a minute, without anyone acting.

--until takes an RFC 3339 time, a date YYYY-MM-DD (midnight UTC at its
start), or a duration from now such as 72h or 14d.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent, err := parseLoopRef(args[0])
			if err != nil {
				return err
			}
			t, err := parseUntil(until, time.Now())
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: why the exception is granted (audited, shown in the loop's warnings)")
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			w, err := a.waivers.CreateWaiver(rctx, &loopgatev1.CreateWaiverRequest{Parent: parent,
				Waiver: &loopgatev1.Waiver{Rule: args[1], Until: timestamppb.New(t), Reason: reason}})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s granted: %s is waived for %s until %s; the loop is re-evaluated now (`loopctl get %s` shows its PolicyCompliant condition)\n",
				termSafe(w.GetName()), termSafe(w.GetRule()), termSafe(shortName(parent)), timeString(w.GetUntil()), termSafe(shortName(parent)))
			return nil
		},
	}
	cmd.Flags().StringVar(&until, "until", "", "when the waiver ends: RFC 3339, YYYY-MM-DD (midnight UTC), or a duration like 72h or 14d (at most 180 days)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the exception is granted (required, audited)")
	return cmd
}

func (a *app) newPolicyWaiversCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "waivers [TEAM/NAME] [--all]",
		Short: "List the active waivers of a loop, or of every loop you may see",
		Long: `List waivers: of one loop, or of every loop you may see (team members see
their teams' loops). Only active waivers unless --all, which adds the expired
and revoked ones.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent := "teams/-/loops/-"
			if len(args) == 1 {
				var err error
				if parent, err = parseLoopRef(args[0]); err != nil {
					return err
				}
			}
			if err := a.connect(); err != nil {
				return err
			}
			resp := &loopgatev1.ListWaiversResponse{}
			token := ""
			for {
				rctx, cancel := rpcContext(cmd.Context())
				page, err := a.waivers.ListWaivers(rctx, &loopgatev1.ListWaiversRequest{Parent: parent, IncludeExpired: all, PageSize: 1000, PageToken: token})
				cancel()
				if err != nil {
					return err
				}
				resp.Waivers = append(resp.Waivers, page.GetWaivers()...)
				if token = page.GetNextPageToken(); token == "" {
					break
				}
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, resp)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "LOOP", "RULE", "UNTIL", "STATE", "GRANTED-BY", "REASON")
			for _, w := range resp.GetWaivers() {
				loopName, id, _ := strings.Cut(w.GetName(), "/waivers/")
				t.row(id, shortName(loopName), w.GetRule(), timeString(w.GetUntil()), w.GetState().String(), w.GetGrantedBy(), clipReason(w.GetReason()))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also list expired and revoked waivers")
	return cmd
}

// clipReason keeps a table row on one line.
func clipReason(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}

func (a *app) newPolicyUnwaiveCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "unwaive TEAM/NAME WAIVER_ID --reason TEXT",
		Short: "Revoke a waiver before it expires (security reviewers)",
		Long: `Revoke a waiver (its id as ` + "`loopctl policy waivers`" + ` lists it). The loop is
re-evaluated at once and flagged again if it does not comply without it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent, err := parseLoopRef(args[0])
			if err != nil {
				return err
			}
			name, err := waiverRef(parent, args[1])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required: why the waiver ends early (audited)")
			}
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			w, err := a.waivers.RevokeWaiver(rctx, &loopgatev1.RevokeWaiverRequest{Name: name, Reason: reason})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s revoked: %s applies to %s again; the loop is re-evaluated now\n",
				termSafe(w.GetName()), termSafe(w.GetRule()), termSafe(shortName(parent)))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the waiver ends early (required, audited)")
	return cmd
}
