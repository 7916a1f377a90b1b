// Package faulttest holds process-level fault tests of the consumer (the
// consumer rows of docs RELIABILITY.md and the invariants of
// docs/REBALANCE.md): consumers run as separate processes (the test binary
// re-executed in a "consumer child" mode) that write an audit log of every
// delivery and rebalance event, while the test process owns ZooKeeper, the
// brokers and the producer and injects SIGKILL, SIGTERM, SIGSTOP/SIGCONT and
// a frozen network between one consumer and ZooKeeper.
//
// The package has no non-test code and must not be imported.
package faulttest
