// Package provisioning turns a loop into Kafka resources and makes a cluster
// match them.
//
// Start with three functions, in the order the reconciler uses them:
//
//  1. Derive computes the Resources a loop needs (topics, ACLs, quotas) from
//     its spec and the target cluster. It is pure and deterministic.
//  2. Admin.Observe reads what the cluster has for those same resources.
//  3. Plan(desired, observed) is a pure diff: the Actions that make the
//     cluster match, plus the Problems loopgate refuses to fix by itself
//     (a partition count can only grow; a replication factor is never
//     changed). Admin.Execute carries the actions out in batched admin calls
//     and returns one OpResult per action, naming the exact admin operation,
//     for the audit trail.
//
// KafkaAdmin is the only Admin implementation and the only code in loopgate
// that speaks the Kafka protocol: kmsg and kadm types never leave this
// package. A KafkaAdmin built with ReadOnly() refuses every write with
// ErrReadOnly, so a dry run ("loopctl plan") goes through exactly the same
// code as apply and cannot change the cluster.
//
// Credentials, a separate narrow interface KafkaAdmin also implements,
// manages principals rather than loops: SCRAM credentials (SetSCRAM,
// DeleteSCRAM, SCRAMMechanisms) and RemovePrincipal, which deletes every
// ACL and client quota of a principal. Passwords never appear in its errors
// or OpResults; a read-only KafkaAdmin refuses its writes with ErrReadOnly.
//
// Errors keep their identity through Observe and Execute (an *ExecuteError
// unwraps to every cause). TerminalReason classifies them for the
// reconciler: terminal errors (authorization, authentication, invalid
// configs, the cluster's policies, a foreign topic, a read-only admin) need
// a human and come with a reason for the loop's status; everything else —
// network errors, timeouts, unavailable brokers or controllers, and
// anything unclassified — is worth retrying with backoff. IsRetriable
// answers the narrower question "is this known to be transient".
//
// KafkaAdmin also implements PrincipalObserver (every ACL of a principal,
// on any resource), which the reconciler uses to find stray bindings when
// a loop is deleted.
//
// kfake (the in-process cluster of the embedded mode) accepts any topic name
// and any config; ValidateTopicName, ValidateTopicConfigs and
// Resources.Validate apply Kafka's own rules before anything is sent.
package provisioning
