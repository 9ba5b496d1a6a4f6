package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Methods callable without a token: the gRPC health service (load
// balancers probe it) and server reflection (registered only when enabled).
// Nothing else is.
var unauthenticatedPrefixes = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// Unauthenticated reports whether fullMethod is served without
// authentication (health and reflection only).
func Unauthenticated(fullMethod string) bool {
	for _, p := range unauthenticatedPrefixes {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

// StreamInterceptor admits the streaming methods of health (Watch) and
// reflection, and refuses every other stream: the API's authentication
// (Interceptor) covers unary calls, so an unexpected streaming method is
// refused rather than served unauthenticated.
func StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if Unauthenticated(info.FullMethod) {
			return handler(srv, ss)
		}
		return status.Errorf(codes.PermissionDenied, "streaming method %s is not served: only unary API calls are authenticated", info.FullMethod)
	}
}

// ObservedCall is one finished API call, as ObserveInterceptor reports it.
// It carries no request body and no credentials.
type ObservedCall struct {
	Method    string // gRPC full method
	Transport string // "grpc" or "rest" (through the REST gateway)
	Code      codes.Code
	Actor     string // authenticated subject; "" if the call was refused before
	RequestID string // the request's request_id field (AIP-155), else its x-request-id header
	CallID    string // generated per call; returned as header x-loopgate-call-id
	Duration  time.Duration
}

// Transports of ObservedCall.
const (
	TransportGRPC = "grpc"
	TransportREST = "rest"
)

// GatewayHeader is the metadata key by which the in-process REST gateway
// marks its calls (with a per-process secret, so a client cannot pass for
// it; the marker only decides the transport label).
const GatewayHeader = "x-loopgate-gateway"

// CallIDHeader is the response header carrying the call id.
const CallIDHeader = "x-loopgate-call-id"

// GatewayMarker returns a new per-process marker and the dial option that
// makes the REST gateway send it with every call.
func GatewayMarker() (marker string, dial grpc.DialOption) {
	marker = randomHex(16)
	dial = grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, GatewayHeader, marker), method, req, reply, cc, opts...)
	})
	return marker, dial
}

type callRecord struct{ actor string }

type callRecordKey struct{}

// noteActor tells ObserveInterceptor who the caller is (Interceptor calls
// it once authenticated).
func noteActor(ctx context.Context, subject string) {
	if rec, ok := ctx.Value(callRecordKey{}).(*callRecord); ok {
		rec.actor = subject
	}
}

// ObserveInterceptor goes outside Interceptor: it times every unary call —
// refused ones included — and reports it to each observer (metrics, the
// request log) once it finished. gatewayMarker is GatewayMarker's marker
// ("" = every call counts as native gRPC).
func ObserveInterceptor(gatewayMarker string, observers ...func(context.Context, ObservedCall)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		rec := &callRecord{}
		ctx = context.WithValue(ctx, callRecordKey{}, rec)
		oc := ObservedCall{Method: info.FullMethod, Transport: TransportGRPC, CallID: NewCallID()}
		_ = grpc.SetHeader(ctx, metadata.Pairs(CallIDHeader, oc.CallID))
		md, _ := metadata.FromIncomingContext(ctx)
		if gatewayMarker != "" {
			for _, v := range md.Get(GatewayHeader) {
				if subtle.ConstantTimeCompare([]byte(v), []byte(gatewayMarker)) == 1 {
					oc.Transport = TransportREST
					break
				}
			}
		}
		if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
			oc.RequestID = clipTo(r.GetRequestId(), maxRequestIDHeader)
		} else if v := md.Get("x-request-id"); len(v) > 0 {
			oc.RequestID = clipTo(v[0], maxRequestIDHeader)
		}
		resp, err := handler(ctx, req)
		oc.Duration = time.Since(start)
		oc.Code = status.Code(err)
		oc.Actor = rec.actor
		for _, o := range observers {
			o(ctx, oc)
		}
		return resp, err
	}
}

// NewCallID returns a new random call id (16 hex digits).
func NewCallID() string { return randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
