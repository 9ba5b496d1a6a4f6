package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// errorDomain is the ErrorInfo domain of every loopgate error.
const errorDomain = "loopgate.dev"

// InvalidError is bad input: every problem found, each with its field path.
type InvalidError struct {
	Resource string
	Problems loop.FieldErrors
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s: invalid request: %v", e.Resource, e.Problems)
}

// DeniedError is a policy denial carrying every violation.
type DeniedError struct {
	Resource string
	Decision policy.Decision
}

func (e *DeniedError) Error() string {
	ids := make([]string, len(e.Decision.Deny))
	for i, v := range e.Decision.Deny {
		ids[i] = v.ID
	}
	return fmt.Sprintf("%s: denied by policy (decision %s, bundle %s): %s",
		e.Resource, e.Decision.ID, e.Decision.BundleRevision, strings.Join(ids, ", "))
}

// ForbiddenError means the identity may not do this.
type ForbiddenError struct {
	Reason  string // UPPER_SNAKE, e.g. TEAM_SCOPE
	Message string
}

func (e *ForbiddenError) Error() string { return e.Message }

// UnauthenticatedError means no or unknown credentials.
type UnauthenticatedError struct{ Message string }

func (e *UnauthenticatedError) Error() string { return e.Message }

// PreconditionError is a request that is valid but cannot be done in the
// loop's current state (e.g. approving a loop that needs no approval).
type PreconditionError struct {
	Reason  string
	Message string
}

func (e *PreconditionError) Error() string { return e.Message }

// toStatus is the one place that maps domain, store and Kafka errors to gRPC
// status codes with google.rpc.ErrorInfo (and BadRequest / PreconditionFailure
// details where there are fields to name). REST clients get the same details
// through grpc-gateway.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		invalid   *InvalidError
		denied    *DeniedError
		forbidden *ForbiddenError
		unauth    *UnauthenticatedError
		precond   *PreconditionError
		authErr   *kadm.AuthError
		clusterEr *ClusterError
	)
	switch {
	case errors.As(err, &invalid):
		br := &errdetails.BadRequest{}
		for _, p := range invalid.Problems {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: p.Field, Description: p.Message,
			})
		}
		return withDetails(codes.InvalidArgument, err.Error(), "INVALID_ARGUMENT",
			map[string]string{"resource": invalid.Resource, "problems": fmt.Sprint(len(invalid.Problems))}, br)
	case errors.As(err, &denied):
		br := &errdetails.BadRequest{}
		pf := &errdetails.PreconditionFailure{}
		for _, v := range denied.Decision.Deny {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.ID + ": " + v.Msg, Reason: v.ID,
			})
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
				Type: v.ID, Subject: v.Field, Description: v.Msg,
			})
		}
		return withDetails(codes.FailedPrecondition, err.Error(), "POLICY_DENIED", map[string]string{
			"resource":        denied.Resource,
			"decision_id":     denied.Decision.ID,
			"bundle_revision": denied.Decision.BundleRevision,
		}, pf, br)
	case errors.As(err, &forbidden):
		return withDetails(codes.PermissionDenied, forbidden.Message, forbidden.Reason, nil)
	case errors.As(err, &unauth):
		return withDetails(codes.Unauthenticated, unauth.Message, "UNAUTHENTICATED", nil)
	case errors.As(err, &precond):
		return withDetails(codes.FailedPrecondition, precond.Message, precond.Reason, nil)
	case errors.Is(err, store.ErrInvalidPageToken):
		return withDetails(codes.InvalidArgument, err.Error(), "INVALID_PAGE_TOKEN", nil,
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "page_token", Description: "not a token this server returned for this request"}}})
	case errors.Is(err, store.ErrNotFound):
		return withDetails(codes.NotFound, err.Error(), resourceKind(err)+"_NOT_FOUND", nil)
	case errors.Is(err, store.ErrAlreadyExists):
		return withDetails(codes.AlreadyExists, err.Error(), resourceKind(err)+"_ALREADY_EXISTS", nil)
	case errors.As(err, &clusterEr):
		return withDetails(codes.Unavailable, err.Error(), "CLUSTER_REFUSED", map[string]string{"cluster": clusterEr.Cluster})
	case errors.Is(err, store.ErrEtagMismatch):
		return withDetails(codes.Aborted, err.Error()+": read the loop again and retry with its current etag", "ETAG_MISMATCH", nil)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.As(err, &authErr):
		return withDetails(codes.FailedPrecondition, "the Kafka cluster refused loopgate's own principal: "+err.Error(), "CLUSTER_AUTHORIZATION_FAILED", nil)
	}
	var kafkaErr *kerr.Error
	if errors.As(err, &kafkaErr) {
		code := codes.Internal
		if kafkaErr.Retriable {
			code = codes.Unavailable
		}
		return withDetails(code, "Kafka: "+err.Error(), "KAFKA_"+strings.ToUpper(strings.ReplaceAll(kafkaErr.Message, " ", "_")), nil)
	}
	return withDetails(codes.Internal, err.Error(), "INTERNAL", nil)
}

// kindError says which kind of resource a store error (not found, already
// exists) is about, when it is not a loop.
type kindError struct {
	kind string // store.KindPrincipal, store.KindGroup
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// resourceKind is the UPPER_SNAKE kind of the resource err is about.
func resourceKind(err error) string {
	var k *kindError
	if errors.As(err, &k) {
		return strings.ToUpper(k.kind)
	}
	return "LOOP"
}

func withDetails(code codes.Code, msg, reason string, meta map[string]string, extra ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: meta}}, extra...)
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

// gatewayErrorHandler makes errors that grpc-gateway raises itself (a body
// that is not valid JSON, an unknown field, a bad query parameter) carry an
// ErrorInfo like every other loopgate error, and a field violation where
// the field is known; errors from the gRPC services pass through unchanged.
func gatewayErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if ok && len(st.Details()) == 0 && st.Code() != codes.OK {
		reason := "INVALID_REQUEST"
		if st.Code() != codes.InvalidArgument {
			reason = upperSnake(st.Code().String()) // NotFound -> NOT_FOUND
		}
		var extra []protoadapt.MessageV1
		if m := unknownFieldRE.FindStringSubmatch(st.Message()); m != nil {
			extra = append(extra, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
				Field: m[1], Description: "unknown field: check its spelling against the API reference (/openapi.json)",
			}}})
		}
		err = withDetails(st.Code(), st.Message(), reason, nil, extra...)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// upperSnake turns CamelCase into UPPER_SNAKE.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
