package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func (a *app) newAuditCmd() *cobra.Command {
	var (
		loopRef, actor, action string
		team, since, until     string
		limit                  int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail (and `audit verify` to check its hash chain)",
		Long: `Show the latest audit events (--limit, 100 by default; 0 for all), printed
oldest first: who did what to which loop, with the outcome and the policy
decision. Filters combine with AND. --since and --until take a time
(2026-11-30T09:00:00Z), a day (2026-11-30, UTC) or a duration back from now
(24h, 90m).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &loopgatev1.ListAuditEventsRequest{Actor: actor, Action: action}
			if loopRef != "" {
				name, err := parseLoopRef(loopRef)
				if err != nil {
					return fmt.Errorf("--loop: %w", err)
				}
				req.Resource = name
			}
			if team != "" {
				req.Parent = "teams/" + strings.TrimPrefix(team, "teams/")
			}
			now := time.Now()
			for _, f := range []struct {
				flag, value string
				dst         **timestamppb.Timestamp
			}{{"--since", since, &req.StartTime}, {"--until", until, &req.EndTime}} {
				if f.value == "" {
					continue
				}
				t, err := parseWhen(f.value, now)
				if err != nil {
					return fmt.Errorf("%s: %w", f.flag, err)
				}
				*f.dst = timestamppb.New(t)
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: must be 0 (no limit) or more", limit)
			}
			if err := a.connect(); err != nil {
				return err
			}
			if limit > 0 {
				req.OrderBy = "seq desc" // the latest events...
			}
			events, err := a.listAudit(cmd.Context(), req, limit)
			if err != nil {
				return err
			}
			slices.SortFunc(events, func(x, y *loopgatev1.AuditEvent) int { // ...shown oldest first
				return cmp.Compare(x.GetSeq(), y.GetSeq())
			})
			if a.output != FormatTable {
				return printMessage(cmd.OutOrStdout(), a.output, &loopgatev1.ListAuditEventsResponse{Events: events})
			}
			if len(events) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no audit events")
				return nil
			}
			return printAuditEvents(cmd.OutOrStdout(), events)
		},
	}
	cmd.Flags().StringVar(&loopRef, "loop", "", "only events about this loop, TEAM/NAME")
	cmd.Flags().StringVar(&actor, "actor", "", "only events by this actor")
	cmd.Flags().StringVar(&action, "action", "", "only events with this action, e.g. loop.create")
	cmd.Flags().StringVar(&team, "team", "", "only events about this team's resources (its loops, principals, groups)")
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time, day or duration ago")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time, day or duration ago")
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many events (0: all)")
	cmd.AddCommand(a.newAuditVerifyCmd())
	return cmd
}

// parseWhen reads a point in time: RFC 3339, a UTC day (YYYY-MM-DD), or a
// duration back from now ("24h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want a time (2026-11-30T09:00:00Z), a day (2026-11-30) or a duration ago (24h)", s)
}

// listAudit pages through ListAuditEvents until the last page or limit
// events (0: no limit).
func (a *app) listAudit(ctx context.Context, req *loopgatev1.ListAuditEventsRequest, limit int) ([]*loopgatev1.AuditEvent, error) {
	var all []*loopgatev1.AuditEvent
	for {
		req.PageSize = listPageSize
		if limit > 0 {
			req.PageSize = int32(min(limit-len(all), listPageSize))
		}
		rctx, cancel := rpcContext(ctx)
		resp, err := a.audit.ListAuditEvents(rctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, resp.GetEvents()...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// printAuditEvents writes the SEQ TIME ACTOR ACTION RESOURCE OUTCOME DECISION
// table.
func printAuditEvents(w io.Writer, events []*loopgatev1.AuditEvent) error {
	t := newTable(w, "SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "DECISION")
	for _, e := range events {
		t.row(strconv.FormatInt(e.GetSeq(), 10), timeString(e.GetTime()), e.GetActor(), e.GetAction(),
			e.GetResource(), e.GetOutcome(), e.GetDecisionId())
	}
	return t.flush()
}

func (a *app) newAuditVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit hash chain; exits 1 naming the first broken event",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			rctx, cancel := rpcContext(cmd.Context())
			defer cancel()
			resp, err := a.audit.VerifyAuditChain(rctx, &loopgatev1.VerifyAuditChainRequest{})
			if err != nil {
				return err
			}
			if a.output != FormatTable {
				if err := printMessage(cmd.OutOrStdout(), a.output, resp); err != nil {
					return err
				}
			} else {
				printVerify(cmd.OutOrStdout(), resp)
			}
			if !resp.GetOk() {
				return &ExitError{Code: 1, Err: fmt.Errorf("audit chain broken at event %d", resp.GetFirstBroken().GetSeq())}
			}
			return nil
		},
	}
}

// printVerify writes the outcome of a chain verification.
func printVerify(w io.Writer, r *loopgatev1.VerifyAuditChainResponse) {
	if r.GetOk() {
		fmt.Fprintf(w, "OK: audit chain intact, %d event(s) verified\n", r.GetEventsChecked())
		return
	}
	b := r.GetFirstBroken()
	fmt.Fprintf(w, "BROKEN: event %d (id %s): %s\n", b.GetSeq(), termSafe(orDash(b.GetId())), termSafe(b.GetReason()))
	fmt.Fprintf(w, "  %d event(s) checked; events from %d on cannot be trusted\n", r.GetEventsChecked(), b.GetSeq())
}
