// Package txlog is the broker's transaction journal: an append-only redo
// log of the decisions about transactions (PROTOCOL.md §7, §8), with group
// commit, torn-tail tolerant replay, and rotation by snapshot. Standard
// library only; the broker (broker/tx.go) owns the transactions and uses
// this package to make their decisions durable.
//
// # What is journaled
//
// Messages put in a transaction are held by the broker in memory until a
// PREPARE or a COMMIT; an unprepared transaction is rolled back by a
// restart anyway, so nothing about it is journaled before that. Records:
//
//	PREPARE  key, messages            XA transaction prepared (with its messages and their pre-assigned ids)
//	COMMIT   key, flags, parts[, msgs] commit decided; parts = (topic, partition, start offset) per partition;
//	                                  messages inline for a one-phase commit of an unprepared transaction,
//	                                  else they are those of the key's PREPARE
//	DONE     key, flags               every partition append of the commit is durable
//	ROLLBACK key, flags               a prepared transaction is rolled back
//	FORGET   key                      a heuristically completed transaction is forgotten
//
// flags bit 0 = heuristic (decided by an operator: DONE/ROLLBACK leave the
// transaction listed by RECOVER until FORGET), bit 1 = COMMIT carries its
// messages. Other bits must be 0.
//
// # Files
//
//	<dataLogPath>/transactions/
//	  00000000000000000007.txlog   journal file, named by a sequence number (%020d); the highest is current
//
// A file is the 8-byte magic "MQTXLOG1" followed by frames. A frame, all
// integers big-endian:
//
//	u32 length of body | u32 CRC-32C (Castagnoli) of body | body
//	body = u8 kind | u16 key length | key | kind-specific payload
//	PREPARE  u32 n | n × message
//	COMMIT   u8 flags | u32 n | n × (u16 len topic | i32 partition | i64 start offset) | [u32 m | m × message]
//	DONE     u8 flags
//	ROLLBACK u8 flags
//	FORGET   (nothing)
//	message = u16 len topic | i32 partition | i64 message id | i32 flag | u32 len data | data
//
// A length of 0 or above MaxRecordSize, a CRC mismatch, an unknown kind or
// flag, or a body that does not parse exactly is corrupt.
//
// # Replay and torn tails
//
// Open reads every file in sequence order and folds its records into a
// State (the live transactions and a bounded list of recent outcomes). A
// file is read up to its first incomplete or corrupt frame; the rest of
// that file is ignored and logged. Open then writes a new file holding a
// snapshot of the state, fsyncs it and the directory, and deletes the older
// files — so a torn tail is never appended to; it disappears with its file.
// A file without a valid magic (torn at creation) is ignored.
//
// Every record is a "set" operation on the state (PREPARE sets prepared,
// COMMIT sets committing, DONE/ROLLBACK set the outcome, FORGET deletes),
// so applying a snapshot after the records it summarises changes nothing.
// That is what makes rotation crash-safe: the new file is complete and
// fsynced before any old file is deleted, and a crash in between leaves old
// files plus a (possibly torn) snapshot whose replay is harmless.
//
// # Rotation (checkpoints)
//
// When the current file reaches Options.MaxFileSize and is at least twice
// the size of the snapshot it started with, the writer starts the next
// file with a snapshot (outcomes, then PREPARE / inline COMMIT / heuristic
// DONE or ROLLBACK for each live transaction), fsyncs it and the
// directory, and deletes every older file. The journal therefore holds
// about MaxFileSize plus twice the live state at most.
//
// # Durability
//
// One writer goroutine takes every queued append, writes them with one
// write(2) and, if any asked for it, fsyncs once (group commit). The
// broker asks for an fsync for COMMIT always, and for PREPARE, ROLLBACK and
// FORGET when flushTxLogAtCommit=1; with 2 a ticker fsyncs once a second;
// with 0 the OS writes back. A failed write or fsync is sticky: every later
// append fails with ErrFailed until the broker restarts.
//
// # Commit idempotency (the recovery argument)
//
// A commit is carried out as:
//
//  1. for each partition P of the transaction, s(P) = P's visible end;
//  2. COMMIT record with the s(P) (and the messages when not prepared),
//     fsynced — from here on the commit is decided;
//  3. one store.AppendBatch per partition with the message ids assigned
//     when the messages were put, waiting until each is durable;
//  4. DONE record (not fsynced); only now is the commit acknowledged.
//
// On restart, for a transaction with COMMIT but no DONE, the broker (before
// it serves anything) scans each partition P from s(P) for the first
// message id of P's batch, counts how many of the batch's ids follow
// consecutively, and appends the rest with the same ids, then writes DONE.
// This appends exactly the missing messages because:
//
//   - the batch was enqueued after s(P) was read, and visible ends only
//     grow, so the batch starts at or after s(P);
//   - message ids are unique per broker (snowflakes), and the pre-assigned
//     ids were handed out before the crash, so an id of the batch found in
//     P is that message of the batch, never another;
//   - a batch is written contiguously into one segment, and store recovery
//     truncates a partition at its first incomplete message, so after a
//     crash P holds either none of the batch, all of it, or a prefix of it
//     at its very end (nothing can follow a torn batch);
//   - recovery runs before the broker accepts connections, so nothing is
//     appended between the prefix and the rest;
//   - the scan and append are themselves idempotent: a crash during
//     recovery leaves COMMIT without DONE again, and the next recovery
//     finds more of the batch and appends less.
//
// So after recovery every partition holds its whole batch exactly once,
// in put order, and consumers (who only ever see durable data) never
// observe a torn transaction in a partition. A commit acknowledged to a
// client had its appends durable, so it is never lost; one interrupted
// before the COMMIT record was durable leaves nothing in any partition.
//
// Outcomes (committed / rolled back) of recent transactions are kept in
// the state and carried through rotations, so that a transaction manager
// replaying COMMIT or ROLLBACK after a crash gets 200 rather than an error.
package txlog
