// Package compattest holds the MetaQ client parity tests: each test speaks
// MetaQ 1.4's wire protocol and reads its ZooKeeper layout exactly as one of
// MetaQ's own clients does (raw requests built with the protocol package's
// encoders, raw ZooKeeper reads and watches with go-zookeeper, never through
// our Go producer or consumer), against a real broker on 127.0.0.1 and a real
// ZooKeeper. Each test names in its doc comment the MetaQ class (or the
// Python/Ruby client) whose behaviour it mirrors, so a failure says which
// existing client would break.
//
// The package has no non-test code; docs/PROTOCOL.md records the behaviours
// and the remaining differences from MetaQ 1.4.
package compattest
