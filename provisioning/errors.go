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

// IsRetriable reports whether err is worth retrying unchanged later: a
// retriable Kafka error (leader moves, timeouts, coordinator loading), a
// network error, or a deadline. Authorization failures, invalid requests,
// ErrReadOnly and ErrTopicExists are not retriable: they need a human.
func IsRetriable(err error) bool {
	if err == nil {
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
