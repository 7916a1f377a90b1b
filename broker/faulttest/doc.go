// Package faulttest is the broker's fault-injection suite against the real
// `metaq` binary (the hardening rows of docs RELIABILITY.md). TestMain builds
// tools/metaq once per run, with the faultinject build tag (its injection
// points, broker/faultinject_on.go, act only when a test sets their
// environment variable); every test writes a server.ini, runs `metaq broker
// -c <ini> --listen 127.0.0.1:0 --admin 127.0.0.1:0` as a child process (ZooKeeper
// disabled: none of these faults concern it), drives it over the wire with the
// protocol encoders and internal/conn, and injects one fault: kill -9,
// SIGSTOP/SIGCONT, damaged segment and journal files (zero and garbage tails,
// truncation under a reader, bit flips, a deleted middle segment), a low file
// descriptor limit, a client that pipelines gets without reading, a slow-loris
// client, a handler that panics (METAQ_FAULTINJECT_PANIC_TOPIC), threshold-mode
// puts that are acknowledged before their fsync.
//
// Producers record every sent and every acknowledged (topic, partition,
// offset, payload); after the fault a reader fetches every partition from
// offset 0 and the audit reports, by name, what was lost (acknowledged but not
// read back at its offset), invented (read but never sent), duplicated or
// reordered, and whether the broker process is still alive (and with which
// signal it died when not).
//
// The package has no non-test code and must not be imported.
package faulttest
