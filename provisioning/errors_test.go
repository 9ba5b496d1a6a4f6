package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/loopgate/loopgate/provisioning"
)

func TestTerminalReason(t *testing.T) {
	// Execute's own error type: a read-only admin fails every action with
	// ErrReadOnly, inside an *ExecuteError.
	_, readOnly := provisioning.NewKafkaAdmin(nil, provisioning.ReadOnly()).Execute(context.Background(), []provisioning.Action{{
		Kind: provisioning.DeleteTopic, Resource: "topic x", Topic: &provisioning.Topic{Name: "x"},
	}})
	if _, ok := errors.AsType[*provisioning.ExecuteError](readOnly); !ok {
		t.Fatalf("read-only Execute: %v, want an *ExecuteError", readOnly)
	}
	for _, tc := range []struct {
		name   string
		err    error
		reason string // "" = retriable
	}{
		{"nil", nil, ""},
		{"topic authorization", &kadm.AuthError{Err: kerr.TopicAuthorizationFailed}, provisioning.ReasonAuthorizationFailed},
		{"cluster authorization wrapped", fmt.Errorf("observe: client quotas: %w", &kadm.AuthError{Err: kerr.ClusterAuthorizationFailed}), provisioning.ReasonAuthorizationFailed},
		{"bare kerr authorization", fmt.Errorf("x: %w", kerr.GroupAuthorizationFailed), provisioning.ReasonAuthorizationFailed},
		{"sasl", kerr.SaslAuthenticationFailed, provisioning.ReasonAuthenticationFailed},
		{"invalid config", fmt.Errorf("topic x: %w: retention.ms", kerr.InvalidConfig), provisioning.ReasonInvalidConfig},
		{"invalid replication factor", kerr.InvalidReplicationFactor, provisioning.ReasonInvalidConfig},
		{"loopgate config check", fmt.Errorf("topics[0]: %w", provisioning.ErrInvalidTopicConfig), provisioning.ReasonInvalidConfig},
		{"policy violation", kerr.PolicyViolation, provisioning.ReasonPolicyViolation},
		{"deletion disabled", kerr.TopicDeletionDisabled, provisioning.ReasonPolicyViolation},
		{"security disabled", kerr.SecurityDisabled, provisioning.ReasonUnsupported},
		{"foreign topic", fmt.Errorf("topic x: %w: the cluster has ...", provisioning.ErrTopicExists), provisioning.ReasonTopicNotOwned},
		{"read-only", provisioning.ErrReadOnly, provisioning.ReasonReadOnly},
		{"bad connection", provisioning.ErrInvalidConn, provisioning.ReasonInvalidConnection},
		{"execute error", fmt.Errorf("batch: %w", readOnly), provisioning.ReasonReadOnly},
		{"one terminal among retriable", &multi{kerr.RequestTimedOut, &kadm.AuthError{Err: kerr.TopicAuthorizationFailed}}, provisioning.ReasonAuthorizationFailed},
		{"joined", errors.Join(io.EOF, kerr.PolicyViolation), provisioning.ReasonPolicyViolation},

		{"not controller", kerr.NotController, ""},
		{"broker not available", kerr.BrokerNotAvailable, ""},
		{"leader not available", kerr.LeaderNotAvailable, ""},
		{"request timed out", fmt.Errorf("CreateTopics: %w", kerr.RequestTimedOut), ""},
		{"coordinator loading", kerr.CoordinatorLoadInProgress, ""},
		{"throttled", kerr.ThrottlingQuotaExceeded, ""},
		{"unknown server error", kerr.UnknownServerError, ""},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ""},
		{"eof", fmt.Errorf("reading: %w", io.EOF), ""},
		{"deadline", context.DeadlineExceeded, ""},
		{"cancelled", context.Canceled, ""},
		{"all retriable", &multi{kerr.RequestTimedOut, kerr.NotController}, ""},
		{"unclassified", errors.New("something nobody knows"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, terminal := provisioning.TerminalReason(tc.err)
			if reason != tc.reason || terminal != (tc.reason != "") {
				t.Errorf("TerminalReason(%v) = %q, %v; want %q, %v", tc.err, reason, terminal, tc.reason, tc.reason != "")
			}
			if terminal && provisioning.IsRetriable(tc.err) {
				t.Errorf("IsRetriable(%v) = true for a terminal error", tc.err)
			}
		})
	}
}

// multi unwraps to several errors, as *provisioning.ExecuteError does.
type multi []error

func (m *multi) Error() string   { return fmt.Sprint([]error(*m)) }
func (m *multi) Unwrap() []error { return *m }

// ObservePrincipalACLs finds every literal binding of the principals asked
// about, on any resource, and nothing of other principals.
func TestObservePrincipalACLs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l := randomLoop(t)
	desired := provisioning.Derive(l, e.cat)
	e.converge(t, desired, desired)

	var want []provisioning.ACL
	for _, a := range desired.ACLs {
		if a.Principal == "User:nudge-engine" {
			want = append(want, a)
		}
	}
	if len(want) == 0 {
		t.Fatal("the test loop has no ACL of User:nudge-engine")
	}
	got, err := e.admin.ObservePrincipalACLs(ctx, []string{"User:nudge-engine", "User:nobody"})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests' loops (random teams) may hold bindings of the same
	// principal: keep this loop's resources.
	got = slices.DeleteFunc(got, func(a provisioning.ACL) bool {
		return !slices.ContainsFunc(desired.ACLs, func(d provisioning.ACL) bool { return d == a })
	})
	if !slices.Equal(got, want) {
		t.Errorf("ObservePrincipalACLs = %v, want %v", got, want)
	}
	if _, err := e.admin.ObservePrincipalACLs(ctx, []string{"checkout-api"}); !errors.Is(err, provisioning.ErrInvalidPrincipal) {
		t.Errorf("a principal without type: %v, want ErrInvalidPrincipal", err)
	}
}
