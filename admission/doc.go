// Package admission decides and records every change a caller asks of
// loopgate, free of any wire format. Package server adapts gRPC and REST to
// it; package app wires it to a store, clusters and the reconciler.
//
// The request path, in the order a write goes through it:
//
//  1. Identify (package identity, in server's interceptor): a mapped client
//     certificate, an OIDC token or a static token becomes an Identity.
//  2. Authorize (authz.go): Core.Authorize asks the Authorizer
//     (identity, action, resource) → allow | deny(reason) before the
//     handler runs; DefaultRules is the whole rule table. A refusal is
//     audited through the refusal log (refusals.go), which collapses
//     identical refusals so a flood cannot bloat the audit trail.
//  3. Replay (core.go, replay): a request id already used by the same
//     caller for the same request returns the loop; used for anything else
//     it is refused as REQUEST_ID_REUSED.
//  4. Validate, derive, decide (Core.prepare): the spec is validated field
//     by field, its Kafka resources derived, schema evolution checked, and
//     the policy engine and the ownership check (ownership.go) decide:
//     deny, warn, or approval reasons with the role and number of approvers
//     each needs.
//  5. Persist (Core.write, groupcommit.go): the loop, the decision, the
//     names it claims, the audit event and the request id are written in
//     one transaction, shared with concurrent requests by the group commit.
//  6. Notify: the reconciler is woken with the loop's key; it provisions
//     only what was approved and persisted.
//
// Batches (batch.go) carry up to MaxBatchItems loops: AuthorizeItems
// authorizes every item as its single RPC before anything runs (one refused
// item refuses the request); BatchApply admits each item as Create or Update
// would, concurrently through the group commit, or, atomic, all in one
// transaction or none; BatchPlan plans each as Plan.
//
// Reviews (approvals.go) move a generation held for approval to
// provisioning once every reason has its approvers, or to REJECTED.
// Principals and their credentials (principals.go) and the client contract
// of a loop (connection.go) follow the same path. Domain errors
// (errors.go) say what went wrong in the domain's words; server maps each
// to one gRPC status.
package admission
