package provisioning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidTopicName: a topic name breaks Kafka's rules.
	ErrInvalidTopicName = errors.New("invalid topic name")
	// ErrInvalidTopicConfig: an unknown topic config key or a bad value.
	ErrInvalidTopicConfig = errors.New("invalid topic config")
	// ErrInvalidPrincipal: a principal is not of the form Type:name.
	ErrInvalidPrincipal = errors.New("invalid principal")
	// ErrReadOnly: a read-only admin (see ReadOnly) was asked to write.
	ErrReadOnly = errors.New("read-only admin client refuses writes (dry run)")
	// ErrTopicExists: a topic loopgate was about to create already exists
	// with a different shape, so it was created by someone else (or by an
	// earlier, different loop); loopgate will not adopt it silently.
	ErrTopicExists = errors.New("topic already exists with a different shape")
	// ErrInvalidConn: a ClusterConn is incomplete or inconsistent.
	ErrInvalidConn = errors.New("invalid cluster connection settings")
	// ErrInvalidCredential: a Credentials call has an empty user or
	// password, a user written as a principal ("User:x" instead of "x"),
	// or a mechanism other than SCRAM-SHA-256 or SCRAM-SHA-512.
	ErrInvalidCredential = errors.New("invalid SCRAM credential request")
)

// ExecuteError is returned by Execute when at least one action failed. It
// unwraps to every underlying error, so errors.As(err, &authErr) with a
// *kadm.AuthError, or errors.Is(err, kerr.TopicAuthorizationFailed), keeps
// working on the combined error.
type ExecuteError struct {
	Failed []OpResult // the failed operations, in execution order
	errs   []error
}

func (e *ExecuteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d admin operation(s) failed:", len(e.Failed))
	for _, f := range e.Failed {
		fmt.Fprintf(&b, "\n  %s: %s", f.Op, f.Err)
	}
	return b.String()
}

// Unwrap returns the underlying errors.
func (e *ExecuteError) Unwrap() []error { return e.errs }

// kafkaErr turns a Kafka error code into an error: nil for success,
// *kadm.AuthError for authorization failures (as kadm itself does), else
// the *kerr.Error. A message from the broker is appended when present.
func kafkaErr(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err == nil {
		return nil
	}
	switch err {
	case kerr.ClusterAuthorizationFailed, kerr.TopicAuthorizationFailed,
		kerr.GroupAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
		kerr.DelegationTokenAuthorizationFailed:
		err = &kadm.AuthError{Err: err}
	}
	if msg != nil && *msg != "" && !strings.Contains(err.Error(), *msg) {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

// Reasons of terminal errors (see TerminalReason): CamelCase words for a
// loop's status condition.
const (
	// ReasonAuthorizationFailed: the cluster's ACLs deny loopgate an
	// operation (TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED).
	ReasonAuthorizationFailed = "AuthorizationFailed"
	// ReasonAuthenticationFailed: the cluster refused loopgate's
	// credentials or SASL mechanism.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonInvalidConfig: a topic name, config, partition count,
	// replication factor or principal the broker (or loopgate's own
	// validation) refuses.
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonPolicyViolation: the cluster's create/alter policy refuses the
	// request, or topic deletion is disabled on the cluster.
	ReasonPolicyViolation = "PolicyViolation"
	// ReasonUnsupported: the cluster does not support the request (security
	// disabled, API version, malformed request).
	ReasonUnsupported = "Unsupported"
	// ReasonTopicNotOwned: a topic loopgate wants exists with another shape:
	// someone else created it (ErrTopicExists).
	ReasonTopicNotOwned = "TopicNotOwned"
	// ReasonReadOnly: a read-only admin was asked to write (ErrReadOnly).
	ReasonReadOnly = "ReadOnly"
	// ReasonInvalidConnection: the cluster connection settings are wrong.
	ReasonInvalidConnection = "InvalidConnection"
)

// terminalCodes are the Kafka errors that retrying the same request cannot
// heal, with their reason. Every other Kafka error, retriable flag or not,
// is treated as transient by TerminalReason.
var terminalCodes = map[*kerr.Error]string{
	kerr.TopicAuthorizationFailed:           ReasonAuthorizationFailed,
	kerr.GroupAuthorizationFailed:           ReasonAuthorizationFailed,
	kerr.ClusterAuthorizationFailed:         ReasonAuthorizationFailed,
	kerr.TransactionalIDAuthorizationFailed: ReasonAuthorizationFailed,
	kerr.DelegationTokenAuthorizationFailed: ReasonAuthorizationFailed,
	kerr.SaslAuthenticationFailed:           ReasonAuthenticationFailed,
	kerr.UnsupportedSaslMechanism:           ReasonAuthenticationFailed,
	kerr.IllegalSaslState:                   ReasonAuthenticationFailed,
	kerr.InvalidConfig:                      ReasonInvalidConfig,
	kerr.InvalidTopicException:              ReasonInvalidConfig,
	kerr.InvalidPartitions:                  ReasonInvalidConfig,
	kerr.InvalidReplicationFactor:           ReasonInvalidConfig,
	kerr.InvalidReplicaAssignment:           ReasonInvalidConfig,
	kerr.InvalidPrincipalType:               ReasonInvalidConfig,
	kerr.PolicyViolation:                    ReasonPolicyViolation,
	kerr.TopicDeletionDisabled:              ReasonPolicyViolation,
	kerr.SecurityDisabled:                   ReasonUnsupported,
	kerr.UnsupportedVersion:                 ReasonUnsupported,
	kerr.InvalidRequest:                     ReasonUnsupported,
}

// terminalSentinels are loopgate's own errors that need a human.
var terminalSentinels = []struct {
	err    error
	reason string
}{
	{ErrTopicExists, ReasonTopicNotOwned},
	{ErrReadOnly, ReasonReadOnly},
	{ErrInvalidTopicName, ReasonInvalidConfig},
	{ErrInvalidTopicConfig, ReasonInvalidConfig},
	{ErrInvalidPrincipal, ReasonInvalidConfig},
	{ErrInvalidConn, ReasonInvalidConnection},
}

// TerminalReason classifies an error of Observe or Execute (or anything
// wrapping one): it returns a reason (one of the Reason constants) and
// true when retrying the same request cannot succeed until a human changes
// something — the loop's spec, the cluster's ACLs or policy, loopgate's
// configuration. Everything else returns "" and false and is worth
// retrying with backoff: network errors, timeouts, a broker or controller
// that is not available, a coordinator loading, and errors nobody
// classified (an unknown error is assumed to be transient rather than
// parked forever).
//
//	terminal  ReasonAuthorizationFailed  *kadm.AuthError, TOPIC_/GROUP_/CLUSTER_/..._AUTHORIZATION_FAILED
//	terminal  ReasonAuthenticationFailed SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE
//	terminal  ReasonInvalidConfig        INVALID_CONFIG, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS,
//	                                     INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_PRINCIPAL_TYPE,
//	                                     ErrInvalidTopicName, ErrInvalidTopicConfig, ErrInvalidPrincipal
//	terminal  ReasonPolicyViolation      POLICY_VIOLATION, TOPIC_DELETION_DISABLED
//	terminal  ReasonUnsupported          SECURITY_DISABLED, UNSUPPORTED_VERSION, INVALID_REQUEST
//	terminal  ReasonTopicNotOwned        ErrTopicExists
//	terminal  ReasonReadOnly             ErrReadOnly
//	terminal  ReasonInvalidConnection    ErrInvalidConn
//	retriable —                          everything else (network, EOF, deadlines, NOT_CONTROLLER,
//	                                     BROKER_NOT_AVAILABLE, LEADER_NOT_AVAILABLE, REQUEST_TIMED_OUT,
//	                                     COORDINATOR_LOAD_IN_PROGRESS, THROTTLING_QUOTA_EXCEEDED, ...)
//
// An error joining several (an *ExecuteError, errors.Join) is terminal as
// soon as one of them is: the loop cannot converge until that one is fixed,
// so retrying the others on a timer gains nothing. The reason is the first
// terminal error's. A context cancellation is never terminal.
func TerminalReason(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if ke, ok := err.(*kerr.Error); ok {
		reason, terminal := terminalCodes[ke]
		return reason, terminal
	}
	if _, ok := err.(*kadm.AuthError); ok {
		return ReasonAuthorizationFailed, true
	}
	for _, s := range terminalSentinels {
		if err == s.err { //nolint:errorlint // walking the tree by hand
			return s.reason, true
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if reason, ok := TerminalReason(e); ok {
				return reason, true
			}
		}
	case interface{ Unwrap() error }:
		return TerminalReason(u.Unwrap())
	}
	return "", false
}

// IsRetriable reports whether err is worth retrying unchanged later: a
// retriable Kafka error (leader moves, timeouts, coordinator loading), a
// network error, or a deadline. Authorization failures, invalid requests,
// ErrReadOnly and ErrTopicExists are not retriable: they need a human.
//
// IsRetriable answers "is this known to be transient"; the reconciler asks
// the complementary question with TerminalReason ("is this known to need a
// human"), so that an error nobody classified is retried, not parked.
func IsRetriable(err error) bool {
	if err == nil {
		return false
	}
	if _, terminal := TerminalReason(err); terminal {
		return false
	}
	if ee, ok := errors.AsType[*ExecuteError](err); ok {
		// Retriable only if every failure is.
		for _, e := range ee.errs {
			if !IsRetriable(e) {
				return false
			}
		}
		return len(ee.errs) > 0
	}
	if errors.Is(err, ErrReadOnly) || errors.Is(err, ErrTopicExists) {
		return false
	}
	if _, ok := errors.AsType[*kadm.AuthError](err); ok {
		return false
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Retriable
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return false
}

// Unreachable reports whether err says the cluster could not be reached at
// all (a refused or failed connection, a connection closed before any
// answer), as opposed to a broker answering with an error. When one admin
// request finds the cluster unreachable, the next ones will too: callers
// stop there instead of spending a retry budget per request.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var firstRead *kgo.ErrFirstReadEOF
	if errors.As(err, &firstRead) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	return strings.Contains(err.Error(), "unable to dial")
}

// failures records each error of errs on the result at the same index and
// returns them as one *ExecuteError, or nil when every operation succeeded.
func failures(results []OpResult, errs []error) error {
	var ee ExecuteError
	for i, err := range errs {
		if err != nil {
			results[i].Err = err.Error()
			ee.Failed = append(ee.Failed, results[i])
			ee.errs = append(ee.errs, err)
		}
	}
	if len(ee.errs) > 0 {
		return &ee
	}
	return nil
}
