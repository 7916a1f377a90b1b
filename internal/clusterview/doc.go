// Package clusterview reads the state of a metaq cluster from ZooKeeper and
// its brokers: registered brokers and their stats, topics and partition
// offsets, consumer groups with lag, replica sets, in-doubt XA transactions,
// health; and the few operator changes built on them (offset resets, planned
// switchover). It is the data behind the read-only `metaq` commands and the
// dashboard, so both show the same numbers.
//
// Every function takes an open ZooKeeper session and bounds its broker
// requests by ctx (or an explicit timeout per request); brokers are asked
// concurrently and a broker that does not answer becomes an error in its
// row, never a failure of the whole read.
package clusterview
