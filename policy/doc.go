// Package policy decides whether a loop request complies with the
// organisation's OPA policy (documented in bundles/default/loop/loop.rego).
//
// Start with Engine: NewEngine prepares a bundle once, Evaluate turns an
// Input (the loop, what provisioning would create, the team and cluster from
// the catalog, the caller) into a Decision with three lists of Violations:
// Deny (refused), Warn (accepted, shown) and Approval (accepted, held as
// PENDING_APPROVAL; each approval reason names the Role that approves it and
// how many distinct Approvals it needs). Evaluation fails closed: when the policy cannot decide,
// the Decision denies with POLICY_EVALUATION_FAILED and Evaluate also returns
// an error wrapping ErrEvaluationFailed.
//
// Bundles are standard OPA bundles (a directory or .tar.gz with .manifest,
// Rego v1 files, data.json and *_test.rego). DefaultBundle is the one shipped
// in the binary (bundles/default; its loop.rego documents the input and the
// configuration); LoadBundle reads another one, RunTests runs a bundle's Rego
// tests, and Engine.Swap activates a new bundle atomically while requests are
// being decided.
//
// Governance (governance.go, explain.go, impact.go; docs/policy.md): Pack
// turns a bundle directory or tarball into a normalised, bounded archive;
// Check decides whether an archive may be activated (signature verified
// with OPA's bundle verification when keys are configured, compiled as
// NewEngine compiles it, a .manifest revision, its own tests passing) and
// says why not with a *CheckError. Input.Waivers carries the loop's active
// waivers to the bundle. InputJSON and Engine.EvaluateJSON store and
// re-evaluate a decision's input; Explain names the Rego rule (file:row)
// behind each element of a decision; Compare and Delta.Flips measure what a
// new bundle or waiver changes.
package policy
