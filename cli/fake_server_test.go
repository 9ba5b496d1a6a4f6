package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// fakeServer is an in-process gRPC server with canned answers, so that
// commands can be run end to end through Run: flags, requests, stdout and
// stderr. It records every request and the bearer token it came with.
type fakeServer struct {
	loopgatev1.UnimplementedLoopServiceServer
	loopgatev1.UnimplementedPrincipalServiceServer
	loopgatev1.UnimplementedIdentityServiceServer

	addr string // where it listens, once started

	mu       sync.Mutex
	requests []any
	tokens   []string

	// Answers; a nil answer with a nil error is Unimplemented. Without
	// batchApply and batchPlan the batch RPCs are Unimplemented, as on a
	// server that predates them: loopctl then sends one RPC per loop.
	principalPages []*loopgatev1.ListPrincipalsResponse
	groupPages     []*loopgatev1.ListConsumerGroupsResponse
	conflicts      *loopgatev1.ListOwnershipConflictsResponse
	principal      *loopgatev1.Principal
	deleted        *loopgatev1.DeletePrincipalResponse
	issued         *loopgatev1.IssuePrincipalCredentialsResponse
	contract       *loopgatev1.LoopContract
	loop           *loopgatev1.Loop
	approved       *loopgatev1.Loop // ApproveLoop
	rejected       *loopgatev1.Loop // RejectLoop
	approvalPages  []*loopgatev1.ListApprovalsResponse
	caller         *loopgatev1.Caller
	err            error // returned by every RPC when set
	issueErr       error // returned by IssuePrincipalCredentials when set

	// Loop RPCs answered by a function when set (a test's fleet of loops);
	// they are called one at a time.
	hookMu     sync.Mutex
	getLoop    func(*loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error)
	createLoop func(*loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error)
	deleteLoop func(*loopgatev1.DeleteLoopRequest) (*loopgatev1.Loop, error)
	listLoops  func(*loopgatev1.ListLoopsRequest) (*loopgatev1.ListLoopsResponse, error)
	planLoop   func(*loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error)
	batchApply func(*loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error)
	batchPlan  func(*loopgatev1.BatchPlanLoopsRequest) (*loopgatev1.BatchPlanLoopsResponse, error)
}

func (f *fakeServer) record(ctx context.Context, req any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	md, _ := metadata.FromIncomingContext(ctx)
	f.tokens = append(f.tokens, append(md.Get("authorization"), "")[0])
}

// sent returns the requests of type T, in order.
func sent[T any](f *fakeServer) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []T
	for _, r := range f.requests {
		if t, ok := r.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func (f *fakeServer) ListPrincipals(ctx context.Context, req *loopgatev1.ListPrincipalsRequest) (*loopgatev1.ListPrincipalsResponse, error) {
	f.record(ctx, req)
	if f.err != nil {
		return nil, f.err
	}
	page := len(sent[*loopgatev1.ListPrincipalsRequest](f)) - 1
	return f.principalPages[page], nil
}

func (f *fakeServer) ListConsumerGroups(ctx context.Context, req *loopgatev1.ListConsumerGroupsRequest) (*loopgatev1.ListConsumerGroupsResponse, error) {
	f.record(ctx, req)
	if f.err != nil {
		return nil, f.err
	}
	page := len(sent[*loopgatev1.ListConsumerGroupsRequest](f)) - 1
	return f.groupPages[page], nil
}

func (f *fakeServer) ListOwnershipConflicts(ctx context.Context, req *loopgatev1.ListOwnershipConflictsRequest) (*loopgatev1.ListOwnershipConflictsResponse, error) {
	f.record(ctx, req)
	return f.conflicts, f.err
}

func (f *fakeServer) GetPrincipal(ctx context.Context, req *loopgatev1.GetPrincipalRequest) (*loopgatev1.Principal, error) {
	f.record(ctx, req)
	return f.principal, f.err
}

func (f *fakeServer) CreatePrincipal(ctx context.Context, req *loopgatev1.CreatePrincipalRequest) (*loopgatev1.Principal, error) {
	f.record(ctx, req)
	return f.principal, f.err
}

func (f *fakeServer) DeletePrincipal(ctx context.Context, req *loopgatev1.DeletePrincipalRequest) (*loopgatev1.DeletePrincipalResponse, error) {
	f.record(ctx, req)
	return f.deleted, f.err
}

func (f *fakeServer) IssuePrincipalCredentials(ctx context.Context, req *loopgatev1.IssuePrincipalCredentialsRequest) (*loopgatev1.IssuePrincipalCredentialsResponse, error) {
	f.record(ctx, req)
	if f.issueErr != nil {
		return nil, f.issueErr
	}
	return f.issued, f.err
}

func (f *fakeServer) GetLoopContract(ctx context.Context, req *loopgatev1.GetLoopContractRequest) (*loopgatev1.LoopContract, error) {
	f.record(ctx, req)
	return f.contract, f.err
}

func (f *fakeServer) GetLoop(ctx context.Context, req *loopgatev1.GetLoopRequest) (*loopgatev1.Loop, error) {
	f.record(ctx, req)
	if f.getLoop != nil {
		f.hookMu.Lock()
		defer f.hookMu.Unlock()
		return f.getLoop(req)
	}
	return f.loop, f.err
}

func (f *fakeServer) CreateLoop(ctx context.Context, req *loopgatev1.CreateLoopRequest) (*loopgatev1.Loop, error) {
	f.record(ctx, req)
	if f.createLoop == nil {
		return f.UnimplementedLoopServiceServer.CreateLoop(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.createLoop(req)
}

func (f *fakeServer) DeleteLoop(ctx context.Context, req *loopgatev1.DeleteLoopRequest) (*loopgatev1.Loop, error) {
	f.record(ctx, req)
	if f.deleteLoop == nil {
		return f.UnimplementedLoopServiceServer.DeleteLoop(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.deleteLoop(req)
}

func (f *fakeServer) ListLoops(ctx context.Context, req *loopgatev1.ListLoopsRequest) (*loopgatev1.ListLoopsResponse, error) {
	f.record(ctx, req)
	if f.listLoops == nil {
		return f.UnimplementedLoopServiceServer.ListLoops(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.listLoops(req)
}

func (f *fakeServer) PlanLoop(ctx context.Context, req *loopgatev1.PlanLoopRequest) (*loopgatev1.PlanLoopResponse, error) {
	f.record(ctx, req)
	if f.planLoop == nil {
		return f.UnimplementedLoopServiceServer.PlanLoop(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.planLoop(req)
}

func (f *fakeServer) BatchApplyLoops(ctx context.Context, req *loopgatev1.BatchApplyLoopsRequest) (*loopgatev1.BatchApplyLoopsResponse, error) {
	f.record(ctx, req)
	if f.batchApply == nil {
		return f.UnimplementedLoopServiceServer.BatchApplyLoops(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.batchApply(req)
}

func (f *fakeServer) BatchPlanLoops(ctx context.Context, req *loopgatev1.BatchPlanLoopsRequest) (*loopgatev1.BatchPlanLoopsResponse, error) {
	f.record(ctx, req)
	if f.batchPlan == nil {
		return f.UnimplementedLoopServiceServer.BatchPlanLoops(ctx, req)
	}
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	return f.batchPlan(req)
}

func (f *fakeServer) ApproveLoop(ctx context.Context, req *loopgatev1.ApproveLoopRequest) (*loopgatev1.Loop, error) {
	f.record(ctx, req)
	return f.approved, f.err
}

func (f *fakeServer) RejectLoop(ctx context.Context, req *loopgatev1.RejectLoopRequest) (*loopgatev1.Loop, error) {
	f.record(ctx, req)
	return f.rejected, f.err
}

func (f *fakeServer) ListApprovals(ctx context.Context, req *loopgatev1.ListApprovalsRequest) (*loopgatev1.ListApprovalsResponse, error) {
	f.record(ctx, req)
	if f.err != nil {
		return nil, f.err
	}
	page := len(sent[*loopgatev1.ListApprovalsRequest](f)) - 1
	return f.approvalPages[page], nil
}

func (f *fakeServer) GetCaller(ctx context.Context, req *loopgatev1.GetCallerRequest) (*loopgatev1.Caller, error) {
	f.record(ctx, req)
	return f.caller, f.err
}

// start serves f on a loopback port and points loopctl at it: HOME is a
// fresh directory whose dev credentials file has the server address, the
// admin token "admin-token" and the demo identity growth ("growth-token").
func (f *fakeServer) start(t *testing.T) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	loopgatev1.RegisterLoopServiceServer(s, f)
	loopgatev1.RegisterPrincipalServiceServer(s, f)
	loopgatev1.RegisterIdentityServiceServer(s, f)
	f.addr = lis.Addr().String()
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)

	home := t.TempDir()
	t.Setenv("HOME", home)
	err = devcreds.Write(filepath.Join(home, ".loopgate", "dev-credentials.json"), devcreds.Credentials{
		Server: lis.Addr().String(), Token: "admin-token", Tokens: map[string]string{"growth": "growth-token"},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// run runs loopctl with args against whatever the environment points at
// and returns the exit code, stdout and stderr.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// noServer points loopctl at a HOME without dev credentials, for commands
// that must fail before any RPC.
func noServer(t *testing.T) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
}
