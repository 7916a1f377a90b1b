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
// flags bit 0 = heuristic (decided by an operator, or by the broker's
// xaHeuristicTimeoutSeconds expiry: DONE/ROLLBACK leave the transaction
// listed by RECOVER until FORGET), bit 1 = COMMIT carries its
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
// PREPARE, COMMIT, DONE and ROLLBACK may end with an owner trailer,
// u16 len owner | owner (non-empty): the principal that began the
// transaction (docs/SECURITY.md). It is written only when there is an
// owner, so a journal of a broker without security, and every record
// written before owners existed, decode with owner "" (only an admin
// principal may see or finish such a transaction once security is on). A
// record without a trailer that continues a live transaction (a COMMIT
// after its PREPARE, a heuristic DONE or ROLLBACK) keeps that
// transaction's owner. Brokers older than the trailer refuse records
// that carry one as corrupt: downgrade only with no transaction in doubt.
//
// A length of 0 or above MaxRecordSize, a CRC mismatch, an unknown kind or
// flag, or a body that does not parse exactly is corrupt.
//
// # Replay, torn tails and damage
//
// Open reads every file in sequence order and folds its records into a
// State (the live transactions and a bounded list of recent outcomes).
// When a frame does not decode (torn, bad length, checksum mismatch,
// unknown kind or flag, body that does not parse), replay decides between
// three cases, in this order:
//
//  1. Skipped record. The frame's length field delimits it within the
//     file, no intact frame starts inside it, and the frames after it are
//     intact up to the end of the file (the last one may be torn), with at
//     least one intact. The record is skipped and logged (Warn: file,
//     offset, size, and the kind and key it seems to have — unverified);
//     Journal.SkippedRecords counts it. The records after it are applied,
//     but each must be consistent with the state without the skipped
//     record: a COMMIT without inline messages needs its transaction
//     prepared (the skipped record may have been that PREPARE). If one is
//     not, the file is unreplayable (case 3). A file that had a record
//     skipped is not deleted by rotation but renamed to "<name>.damaged"
//     (no longer replayed; kept for analysis). A damaged file header is
//     handled like a damaged record at offset 0 (8 bytes).
//     Limit: a skipped record that nothing later refers to cannot be
//     checked. If it was the COMMIT of a transaction whose DONE never
//     followed (a crash between them), that transaction comes back as
//     prepared, and committing it again may append a prefix of its batch
//     twice; the Warn names the key the damaged record seems to hold.
//  2. Tail. No intact frame starts anywhere after the damage: a torn last
//     record, or the zeros or garbage a crash can leave after it. The rest
//     of the file is ignored and logged, as it always was; the file counts
//     as fully replayed, and Open's rotation replaces it, so a torn tail
//     is never appended to. A file shorter than the header, or without an
//     intact frame at all, is a file torn at creation and is ignored.
//  3. Unreplayable. An intact frame follows the damage but cannot be
//     reached safely (the length field is damaged, more than one record is
//     damaged, or case 1's consistency check failed). Open fails with
//     ErrUnreplayable, naming the file, the offsets and what the operator
//     can do, and changes nothing on disk: no file is written, renamed or
//     deleted. A journal file that was not fully replayed is never rotated
//     away.
//
// Finding "an intact frame after the damage" scans byte by byte for a
// frame whose length, kind, key length and checksum are valid. Message
// data inside a damaged or torn record could contain such a frame by
// design; the scan only ever leads to refusing (case 3), never to
// applying a record found that way, so the worst a crafted payload can do
// after a crash is make Open refuse with a clear error.
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
// directory, and deletes every older file (one that had a record skipped
// is renamed to "<name>.damaged" instead). The journal therefore holds
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
