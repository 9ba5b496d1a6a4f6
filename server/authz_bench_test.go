package server

import (
	"testing"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// BenchmarkAuthorizeRequest is the authorization step every RPC pays:
// reading the resource from the request and asking the authorizer.
func BenchmarkAuthorizeRequest(b *testing.B) {
	a := admission.NewAuthorizer(admission.DefaultRules)
	id := admission.Identity{Subject: "growth-dev@example.com", Teams: []string{"growth"}}
	req := &lgv1.UpdateLoopRequest{Loop: &lgv1.Loop{Name: "teams/growth/loops/checkout-nudge"}}
	action := MethodActions[lgv1.LoopService_UpdateLoop_FullMethodName]
	b.ReportAllocs()
	for b.Loop() {
		res, err := resourceOf(req)
		if err != nil {
			b.Fatal(err)
		}
		if d := a.Authorize(id, action, res); d != nil {
			b.Fatal(d.Message)
		}
	}
}
