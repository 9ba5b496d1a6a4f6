package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ExitError carries the exit code of a command whose problem was already
// printed in full; Execute prints nothing more for it.
type ExitError struct {
	Code int
	Err  error // what went wrong, for callers and tests; may be nil
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Violation is one problem the server reported: a policy rule that fired or
// a field that is invalid.
type Violation struct {
	Rule    string // UPPER_SNAKE rule id; empty for plain field errors
	Field   string // field path, e.g. spec.residency; may be empty
	Message string
}

// ruleIDPrefix matches the "RULE_ID: " prefix the server puts in front of
// the description of a policy violation in BadRequest field violations.
var ruleIDPrefix = regexp.MustCompile(`^([A-Z][A-Z0-9_]*): (.*)$`)

// Violations collects every violation from the details of a gRPC status:
// google.rpc.PreconditionFailure (type = rule id, subject = field) and
// google.rpc.BadRequest field violations (reason = rule id, or a "RULE_ID: "
// prefix of the description). The server reports a policy denial in both;
// each violation is returned once, in the order first seen.
func Violations(st *status.Status) []Violation {
	var out []Violation
	seen := map[Violation]bool{}
	add := func(v Violation) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				add(Violation{Rule: v.GetType(), Field: v.GetSubject(), Message: v.GetDescription()})
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				rule, msg := v.GetReason(), v.GetDescription()
				if m := ruleIDPrefix.FindStringSubmatch(msg); m != nil && (rule == "" || rule == m[1]) {
					rule, msg = m[1], m[2]
				}
				add(Violation{Rule: rule, Field: v.GetField(), Message: msg})
			}
		}
	}
	return out
}

// errorInfo returns the google.rpc.ErrorInfo of a status, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// PrintError writes a user-facing explanation of err to w: what went wrong
// and what to do. gRPC errors are explained by code, with every violation of
// their details on a line of its own; other errors are printed as they are.
func PrintError(w io.Writer, err error, conn Conn) {
	st, ok := status.FromError(err)
	if !ok {
		// Also the server's text, e.g. a loop's name or a condition's
		// message in a wait error: termSafe, keeping the lines.
		fmt.Fprintf(w, "error: %s\n", termSafeText(err.Error()))
		return
	}
	// The message, reason and metadata are the server's text: termSafe.
	// So is what the connection came from (flags, environment, files).
	msg := termSafe(st.Message())
	conn.Server, conn.ServerSource, conn.TokenSource = termSafe(conn.Server), termSafe(conn.ServerSource), termSafe(conn.TokenSource)
	reason := ""
	if ei := errorInfo(st); ei != nil {
		reason = termSafe(ei.GetReason())
	}
	if reason == "ATOMIC_BATCH_REFUSED" {
		// The message names every failing item (loops[i] with its loop);
		// the violations carry their fields under loops[i].
		fmt.Fprintf(w, "error: %s\n", msg)
		printViolations(w, Violations(st))
		return
	}
	switch st.Code() {
	case codes.Unavailable:
		fmt.Fprintf(w, "error: cannot reach loopgate at %s: is `loopgate serve` running?\n", conn.Server)
		fmt.Fprintf(w, "  (server address from %s; change it with --server or $%s)\n", conn.ServerSource, EnvServer)
		if msg != "" {
			fmt.Fprintf(w, "  detail: %s\n", msg)
		}
		return
	case codes.Unauthenticated:
		fmt.Fprintf(w, "error: not authenticated: %s\n", msg)
		switch {
		case conn.Token == "":
			fmt.Fprintf(w, "  no token given: pass --token, set $%s or log in with `%s` (a local `loopgate serve` writes one loopctl finds by itself)\n", EnvToken, loginHint)
		case conn.StoredLogin && !conn.TokenExpiry.IsZero() && time.Now().After(conn.TokenExpiry):
			fmt.Fprintf(w, "  the token from %s expired at %s: log in to %s again with `%s`\n",
				conn.TokenSource, conn.TokenExpiry.UTC().Format(time.RFC3339), conn.Server, loginHint)
		case conn.StoredLogin:
			fmt.Fprintf(w, "  the token from %s was refused (revoked, or expired early?): log in to %s again with `%s`\n", conn.TokenSource, conn.Server, loginHint)
		default:
			fmt.Fprintf(w, "  the token from %s was refused: pass another with --token or $%s, or log in with `%s`\n", conn.TokenSource, EnvToken, loginHint)
		}
		return
	case codes.PermissionDenied:
		fmt.Fprintf(w, "error: permission denied%s: %s\n", reasonSuffix(reason), msg)
		fmt.Fprintln(w, "  your identity may not do this; ask an admin of the team, or use a token that may")
		return
	case codes.FailedPrecondition:
		if reason == "POLICY_DENIED" {
			printDenied(w, st)
			return
		}
		fmt.Fprintf(w, "error: cannot do this now%s: %s\n", reasonSuffix(reason), msg)
	case codes.InvalidArgument:
		fmt.Fprintf(w, "error: invalid request%s: %s\n", reasonSuffix(reason), msg)
	case codes.NotFound:
		fmt.Fprintf(w, "error: not found: %s\n", msg)
		return
	case codes.AlreadyExists:
		fmt.Fprintf(w, "error: already exists: %s\n", msg)
		return
	case codes.Aborted:
		fmt.Fprintf(w, "error: conflict%s: %s\n", reasonSuffix(reason), msg)
		fmt.Fprintln(w, "  the loop changed since it was read; run the command again")
		return
	case codes.DeadlineExceeded:
		fmt.Fprintf(w, "error: timed out waiting for loopgate at %s: %s\n", conn.Server, msg)
		return
	default:
		fmt.Fprintf(w, "error: %s%s: %s\n", st.Code(), reasonSuffix(reason), msg)
	}
	printViolations(w, Violations(st))
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// loginHint is how to log in, for messages.
const loginHint = "echo $TOKEN | loopctl login --with-token"

// printDenied explains a policy denial with every violation.
func printDenied(w io.Writer, st *status.Status) {
	header := st.Message()
	if ei := errorInfo(st); ei != nil {
		md := ei.GetMetadata()
		if res := md["resource"]; res != "" {
			header = fmt.Sprintf("%s is denied by policy (decision %s, bundle %s)", res, orDash(md["decision_id"]), orDash(md["bundle_revision"]))
		}
	}
	header = termSafe(header)
	vs := Violations(st)
	fmt.Fprintf(w, "error: %s: %d violation(s)\n", header, len(vs))
	printViolations(w, vs)
	fmt.Fprintln(w, "  change the spec so that no rule fires (run `loopctl plan -f FILE` to check), or ask the policy owners for an exception")
}

// printViolations writes one line per violation: rule id, field, message,
// aligned; or "field: message" when no violation names a rule (plain
// validation errors).
func printViolations(w io.Writer, vs []Violation) {
	if len(vs) == 0 {
		return
	}
	if !slices.ContainsFunc(vs, func(v Violation) bool { return v.Rule != "" }) {
		for _, v := range vs {
			if v.Field != "" {
				fmt.Fprintf(w, "  %s: %s\n", termSafe(v.Field), termSafe(v.Message))
			} else {
				fmt.Fprintf(w, "  %s\n", termSafe(v.Message))
			}
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range vs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(orDash(v.Rule)), termSafe(orDash(v.Field)), termSafe(v.Message))
	}
	tw.Flush()
}

// printKindedViolations is printViolations with a leading kind column
// (deny, warning, needs approval); kinds[i] belongs to vs[i].
func printKindedViolations(w io.Writer, kinds []string, vs []Violation) {
	if len(vs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, v := range vs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", termSafe(kinds[i]), termSafe(orDash(v.Rule)), termSafe(orDash(v.Field)), termSafe(v.Message))
	}
	tw.Flush()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// isCode reports whether err is a gRPC status error with code c.
func isCode(err error, c codes.Code) bool {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	return se.GRPCStatus().Code() == c
}
