package policy_test

import (
	"context"
	"fmt"

	"github.com/loopgate/loopgate/policy"
)

// Decide a loop creation with the default bundle: a pii loop outside the pii
// regions is refused, with the field to fix.
func Example() {
	ctx := context.Background()
	b, err := policy.DefaultBundle()
	if err != nil {
		panic(err)
	}
	engine, err := policy.NewEngine(ctx, b)
	if err != nil {
		panic(err)
	}

	in := typicalInput() // a CREATE of examples/checkout-nudge.yaml
	in.Loop.Spec.Residency = "us"
	in.Cluster.Region = "us"

	d, err := engine.Evaluate(ctx, in)
	if err != nil {
		panic(err) // the decision is already fail-closed; log err
	}
	fmt.Println("allowed:", d.Allowed())
	for _, v := range d.Deny {
		fmt.Printf("%s at %s: %s\n", v.ID, v.Field, v.Msg)
	}
	// Output:
	// allowed: false
	// PII_RESIDENCY at spec.residency: pii data may only be stored in: eu; region "us" is not one of them
}
