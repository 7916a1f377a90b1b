// Package compattest holds the MetaQ client-parity tests of the cluster
// model: each test speaks ZooKeeper and the wire protocol exactly as one
// MetaQ 1.4 client class does (named in the test's doc comment) — raw
// go-zookeeper calls on MetaQ's layout and raw requests built with the
// protocol package — against a real ZooKeeper and real brokers, so what a
// MetaQ Java, Python or Ruby client would see is what is checked.
//
// The package has no non-test code.
package compattest
