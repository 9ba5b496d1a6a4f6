package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Exactly health and reflection are served without a token.
func TestUnauthenticatedMethods(t *testing.T) {
	for m, want := range map[string]bool{
		"/grpc.health.v1.Health/Check":                                   true,
		"/grpc.health.v1.Health/Watch":                                   true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
		"/grpc.health.v1.HealthX/Check":                                  false,
		"/loopgate.v1.LoopService/GetLoop":                               false,
		"/grpc.health.v1.Health":                                         false,
		"":                                                               false,
	} {
		if got := Unauthenticated(m); got != want {
			t.Errorf("Unauthenticated(%q) = %v, want %v", m, got, want)
		}
	}
	// The auth interceptor lets health through without a token and
	// nothing else.
	icpt := Interceptor(&Authenticator{}, nil, nil)
	ok := func(context.Context, any) (any, error) { return "served", nil }
	if resp, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}, ok); err != nil || resp != "served" {
		t.Errorf("health without a token: %v %v", resp, err)
	}
	stream := StreamInterceptor()
	served := false
	h := func(any, grpc.ServerStream) error { served = true; return nil }
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch"}, h); err != nil || !served {
		t.Errorf("health Watch: %v served=%v", err, served)
	}
	served = false
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/loopgate.v1.LoopService/Anything"}, h); status.Code(err) != codes.PermissionDenied || served {
		t.Errorf("another stream: %v served=%v", err, served)
	}
}

// The observer sees the method, code, transport (rest only with the
// gateway's marker), the request id of the body and the actor noted by the
// auth interceptor.
func TestObserveInterceptor(t *testing.T) {
	marker, _ := GatewayMarker()
	var got []ObservedCall
	icpt := ObserveInterceptor(marker, func(_ context.Context, c ObservedCall) { got = append(got, c) })
	info := &grpc.UnaryServerInfo{FullMethod: lgv1.LoopService_CreateLoop_FullMethodName}
	handler := func(ctx context.Context, _ any) (any, error) {
		noteActor(ctx, "ana@example.com")
		return nil, status.Error(codes.AlreadyExists, "exists")
	}
	req := &lgv1.CreateLoopRequest{RequestId: "rid-7"}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(GatewayHeader, "forged"))
	_, _ = icpt(ctx, req, info, handler)
	ctx = metadata.NewIncomingContext(context.Background(), metadata.Pairs(GatewayHeader, marker, "x-request-id", "hdr-1"))
	_, _ = icpt(ctx, &lgv1.GetLoopRequest{}, info, handler)
	if len(got) != 2 {
		t.Fatalf("%d observations, want 2", len(got))
	}
	if c := got[0]; c.Transport != TransportGRPC || c.Code != codes.AlreadyExists || c.Actor != "ana@example.com" || c.RequestID != "rid-7" || c.CallID == "" || c.Method != info.FullMethod {
		t.Errorf("native call observed as %+v", c)
	}
	if c := got[1]; c.Transport != TransportREST || c.RequestID != "hdr-1" || c.CallID == got[0].CallID {
		t.Errorf("gateway call observed as %+v", c)
	}
}
