package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/store"
)

// UnauthenticatedError means no or invalid credentials.
type UnauthenticatedError = identity.UnauthenticatedError

// errorDomain is the ErrorInfo domain of every loopgate error.
const errorDomain = "loopgate.dev"

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
		atomic    *admission.AtomicError
		invalid   *admission.InvalidError
		denied    *admission.DeniedError
		forbidden *admission.ForbiddenError
		unauth    *UnauthenticatedError
		precond   *admission.PreconditionError
		authErr   *kadm.AuthError
		clusterEr *admission.ClusterError
		limited   *RateLimitedError
	)
	switch {
	case errors.As(err, &atomic):
		return atomicStatus(atomic)
	case errors.As(err, &limited):
		return withDetails(codes.ResourceExhausted, limited.Message, "RATE_LIMITED", nil,
			&errdetails.RetryInfo{RetryDelay: durationpb.New(limited.RetryAfter)})
	case errors.As(err, &invalid):
		br := &errdetails.BadRequest{}
		for i, p := range invalid.Problems {
			if i == maxViolations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
					Field: "", Description: fmt.Sprintf("… and %d more problems", len(invalid.Problems)-i)})
				break
			}
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: clipTo(p.Field, maxDetailText), Description: clipTo(p.Message, maxDetailText),
			})
		}
		return withDetails(codes.InvalidArgument, err.Error(), "INVALID_ARGUMENT",
			map[string]string{"resource": invalid.Resource, "problems": fmt.Sprint(len(invalid.Problems))}, br)
	case errors.As(err, &denied):
		br := &errdetails.BadRequest{}
		pf := &errdetails.PreconditionFailure{}
		for i, v := range denied.Decision.Deny {
			if i == maxViolations {
				break // the message counts them all
			}
			v.Msg = clipTo(v.Msg, maxDetailText)
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
		return withDetails(codes.PermissionDenied, forbidden.Message, forbidden.Reason, maps.Clone(forbidden.Metadata))
	case errors.As(err, &unauth):
		return withDetails(codes.Unauthenticated, unauth.Message, "UNAUTHENTICATED", nil)
	case errors.As(err, &precond):
		return withDetails(codes.FailedPrecondition, precond.Message, precond.Reason, nil)
	case errors.Is(err, store.ErrInvalidPageToken):
		return withDetails(codes.InvalidArgument, err.Error(), "INVALID_PAGE_TOKEN", nil,
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "page_token", Description: "not a token this server returned for this request"}}})
	case errors.Is(err, store.ErrNotFound):
		return withDetails(codes.NotFound, err.Error(), admission.ResourceKind(err)+"_NOT_FOUND", nil)
	case errors.Is(err, store.ErrAlreadyExists):
		return withDetails(codes.AlreadyExists, err.Error(), admission.ResourceKind(err)+"_ALREADY_EXISTS", nil)
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

// Bounds on what an error carries back: gRPC sends the message and details
// as HTTP/2 trailers, and a peer refuses trailers over its header list
// limit, which a client sees as an internal error. Every problem still
// counts in the message; the details name the first maxViolations.
const (
	maxViolations  = 20
	maxDetailText  = 200
	maxMessageText = 1024
)

func withDetails(code codes.Code, msg, reason string, meta map[string]string, extra ...protoadapt.MessageV1) error {
	if len(msg) > maxMessageText {
		msg = clipTo(msg, maxMessageText) + fmt.Sprintf("… (%d bytes; see the details)", len(msg))
	}
	for k, v := range meta {
		meta[k] = clipTo(v, maxDetailText)
	}
	st := status.New(code, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: meta}}, extra...)
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}

var unknownFieldRE = regexp.MustCompile(`unknown field "([^"]+)"`)

// GatewayErrorHandler makes errors that grpc-gateway raises itself (a body
// that is not valid JSON, an unknown field, a bad query parameter) carry an
// ErrorInfo like every other loopgate error, and a field violation where
// the field is known; errors from the gRPC services pass through unchanged.
func GatewayErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
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
	if ok {
		for _, d := range st.Details() {
			if ri, isRetry := d.(*errdetails.RetryInfo); isRetry {
				w.Header().Set("Retry-After", fmt.Sprint(int(ri.GetRetryDelay().AsDuration().Seconds())))
			}
		}
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
