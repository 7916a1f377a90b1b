// Package store is the broker's storage engine: one append-only log per
// partition, made of segment files in the MetaQ 1.4 on-disk format, with
// group commit, crash recovery and retention.
//
// # Layout
//
//	<data dir>/
//	  LOCK                           flock(LOCK_EX|LOCK_NB) while a Store has the directory open
//	  commit-00000000000000000001.log  commit log (below), numbered; none after a clean Close
//	  <topic>-<partition>/           one directory per partition; topic = text before the last '-'
//	    00000000000000000000.meta    segment: messages, named by the offset of its first byte (%020d)
//	    00000000000000000000.idx     index sidecar of a closed segment (optional, rebuilt if missing)
//	    00000000001073741824.meta    next segment: start = previous start + previous size
//	    CLEAN                        clean-shutdown marker (only while the partition is closed)
//	    BATCH                        batch guard: range of multi-message batches not yet fsynced
//	    00000000000000000000.arc     a segment archived by retention (renamed), or .zip (zipped)
//	    *.tmp                        a sidecar or marker being written; deleted on open
//
// A topic whose TopicOptions.Dir names another directory (MetaQ's per-topic
// dataPath) keeps its partition directories there instead; each such
// directory (Options.TopicDirs) has a LOCK of its own and is scanned by Open.
//
// The file-name patterns are the const block in names.go. The store creates
// files with mode 0640 and directories with mode 0750 (before the umask).
//
// # Messages
//
// A segment is a run of messages, each a 20-byte header followed by the put
// data; all integers big-endian (PROTOCOL.md §4):
//
//	offset  size  field
//	0       4     length of the put data (int32, excludes the header)
//	4       4     checksum: CRC-32 (IEEE) of the put data & 0x7FFFFFFF
//	8       8     message id (int64)
//	16      4     flag (int32)
//	20      len   put data
//
// The checksum covers the put data only, as in MetaQ: damage to the id or
// flag field of a message cannot be detected. Offsets are byte positions in
// the concatenation of the partition's segments; a message's offset is the
// position of its first header byte. Message ids are snowflakes
// (millis-1303895660503)<<22 | brokerId<<12 | seq, positive and increasing
// per broker: a wall clock that goes back is ignored and a sequence overflow
// advances to the next millisecond.
//
// # Zero-filled regions
//
// A header that is all zeros (length 0, checksum 0, id 0, flag 0) is not a
// message. Its checksum would be valid (the CRC of empty data is 0), but
// the store never writes one: message ids are positive. After a power loss
// a file system may leave zeros after the last byte it wrote (delayed
// allocation on ext4, XFS); the rule keeps them from becoming empty
// messages. Every reader applies it through one function (checkMessage in
// message.go, exported as ScanValid and ValidPrefix): recovery stops and
// truncates there, reads never serve such a record, Verify reports it
// (as corruption, except as the tail of the last segment).
//
// A segment is rolled when appending the next message (or batch) would
// take it past Options.MaxSegmentSize; a single larger message gets a
// segment of its own. A batch never spans two segments.
//
// # Index sidecar
//
// <start>.idx holds a sparse index of its segment: an entry for the first
// message at or after every Options.IndexInterval bytes, with the time of
// that message's id. It is written (temp file + rename, not fsynced) when a
// segment is closed by a roll, and for the active segment at Close. Layout,
// big-endian:
//
//	"MQIX" | version u32 = 1 | segment size i64 | message count i64 | newest message time (Unix ms) i64 |
//	n u32 | n × (relative offset i64, message time Unix ms i64) | CRC-32 IEEE of all preceding bytes u32
//
// A sidecar whose magic, version, CRC or segment size does not match is
// ignored and rebuilt by scanning the segment. The in-memory copy of the
// index serves Partition.OffsetAtOrBefore (the `offset` verb). The per-entry
// times are kept in the format (an offset-for-time lookup could use them); the
// `metaq groups reset-offsets --to-time` command searches by message id over
// the wire instead, so it also works against MetaQ brokers.
//
// # Clean marker
//
// CLEAN is one text line "metaq-clean 1 <active start> <active size> <crc32>",
// the CRC-32 IEEE (decimal) of the text before the last space. Close writes
// it after the final fsync of a partition that never failed: temp file,
// fsync, rename, directory fsync. On open, a valid marker naming the active
// segment with its current size, together with a valid sidecar, lets
// recovery skip the scan of the active segment. The partition's writer
// removes the marker and the active segment's sidecar and fsyncs the
// directory before its first change to the log (so a start that only reads
// costs no fsync per partition; after a start without a valid marker, Open
// syncs the directory itself). The marker is never written after an I/O
// error.
//
// # Batch guard
//
// A multi-message batch (AppendBatch, used for transaction commits) becomes
// visible all at once, and must also survive a crash all or nothing. Since
// recovery truncates at message granularity, the writer first records in
// BATCH, durably (pwrite at offset 0 + fsync), the range of the active
// segment that holds batches not yet fsynced, then writes them. If recovery
// finds the valid data ending strictly inside that range, it truncates back
// to the range start. Layout, 32 bytes, big-endian:
//
//	"MQBG" | segment start i64 | lo i64 | hi i64 | CRC-32 IEEE of the preceding 28 bytes u32
//
// The record goes stale (valid data reaches hi) once an fsync covers the
// range. It costs one extra small fsync per write that contains batches.
// The file is created (and its directory fsynced) by the first batch, so a
// partition that never wrote one has no BATCH file and holds no descriptor
// for it; a missing file means no record.
//
// # Durability and visibility
//
// Appends to a partition queue in memory. For group-commit topics (the
// default) one commit loop per data root (cycle.go) writes them: each cycle takes
// every partition whose queue became non-empty since the previous cycle
// began, encodes each one's appends into one buffer and writes it with one
// pwrite, then makes all of them durable together; only then do the visible
// ends move, and the callbacks run on a second goroutine while the loop
// already writes the next cycle. A cycle of CommitLogMin (2) or more
// partitions on a data root is made durable by one append and fdatasync of
// the root's commit log (below); a partition alone fdatasyncs its segment.
// With the log off (Options.NoCommitLog, or after it failed) a cycle of
// FilesystemSyncMin (4) or more partitions is one syncfs(2) per root (Linux
// ≥ 5.8, which reports write-back errors; a failed syncfs is retried file
// by file so only the failing file's partition fails), fewer are
// fdatasynced, SyncConcurrency (16) at a time. Writes
// that fsync by themselves (the first after a clean open, BATCH-guarded
// batches, a roll, a truncation) run on their own goroutine within the
// cycle. Threshold-mode topics keep one writer goroutine per partition,
// whose fsyncs share cycles through the committer (commit.go): the first
// writer to commit while no cycle runs leads one over every partition
// queued; a partition alone fdatasyncs inline. A commit covers exactly
// what was written before it started, so each partition's acknowledged
// prefix is durable. In threshold mode the callbacks run after the write and the fsync follows after
// UnflushThreshold messages or UnflushInterval; readers still see only
// fsynced data. Before a roll the old segment is fsynced; the new segment
// file is created and its directory fsynced before data goes into it. New
// partition directories and the data directory are fsynced into their
// parents.
//
// A failed write or fsync makes the partition fail: the error is sticky,
// later appends get ErrFailed, and no clean marker is written, so the next
// open scans and truncates. ENOSPC on a write is the exception: the partial
// write is truncated away, the affected appends get ErrNoSpace, and appends
// work again once space is free.
//
// # Commit log
//
// Syncing the segments of a cycle of many partitions costs a syncfs that
// writes back one partly filled page per partition and its inode, every
// cycle (at 1,000 partitions ~700 pages per cycle, ~10x the bytes of the
// messages). Instead each data root has a commit log: the cycle appends, for
// every partition it wrote inline, a record of the bytes it wrote and where,
// all with one write, and fdatasyncs the log once. The segments are written
// as before (reads, sendfile and the segment format are unchanged); their
// pages go to disk with the kernel's write-back, each once, full. Record
// layout, big-endian:
//
//	magic "MQCR" u32 | payload length n u32 | CRC-32 IEEE of the payload u32 |
//	payload: partition directory name length u16 | name | segment start i64 |
//	         position in the segment i64 | the bytes written there
//
// A checkpoint starts a new numbered file, syncs the file system once
// (syncfs: every segment write a record of an older file covers was made
// before that file was left), then removes the older files and fsyncs the
// directory. It runs in the background when the current file passes
// Options.CommitLogMaxBytes (16 MiB: small checkpoints keep the write-back
// bursts, and the commit stalls behind them, short), before every
// truncation (so no record of cut bytes can be replayed over what is
// appended there later), and at Close, which leaves no log. A segment roll fsyncs the closed
// segment as before. Writes that fsync by themselves, and cycles of fewer
// partitions, log nothing. The log needs a file system that syncs itself
// with one call reporting errors (FilesystemSyncer; Linux ≥ 5.8), else it
// stays off. A failed log write, fdatasync or checkpoint turns it off until
// the Store is reopened: cycles sync their segments again, and the files
// written so far stay until a checkpoint covers them.
//
// Open replays every log of a root, oldest first, before it opens any
// partition: each record's bytes are written back at their place (a record
// whose segment no longer exists is skipped; a torn, zero-filled or
// foreign record ends its file), the segments written are fsynced, then the
// logs are removed. The partitions' own recovery (below) then runs on
// segments that hold at least every acknowledged byte.
//
// # Recovery
//
// Recovery keeps exactly the valid prefix of the log. On open, closed
// segments with a valid sidecar are trusted (their data was fsynced before
// the roll). Closed segments without one are scanned; a checksum failure
// there is logged and left in place, and reads of it fail with ErrCorrupt
// (corruption is never skipped silently; run Verify). The active segment
// is scanned unless the clean marker vouches for it; the scan stops at the
// first incomplete message, checksum failure, negative length or all-zero
// header, and the file is truncated there and fsynced. A torn, zero-filled
// or garbage tail therefore disappears; nothing after it is invented.
//
// Segments must be contiguous (each starts where the previous one ends).
// When one is missing (a hole left by a crash), the segments before the
// hole are dropped from the log but left on disk, the partition starts at
// the first segment after it (Earliest moves there; reads before it get
// OffsetTooSmallError), and a warning names the partition and the missing
// range [missing_from, missing_to). Any other error while opening a
// partition leaves that partition failed (below); Open still succeeds and
// the other partitions serve.
//
// # Reads
//
// Read returns at most maxSize bytes, except one whole first message when
// it is larger (PROTOCOL.md: no consumer wedges on a large message); the
// store extends a slice only after confirming that the offset is a message
// start. An offset inside a message gets a *MisalignedOffsetError with the
// start of the next message (found by walking headers from the nearest
// sparse index entry, at most about IndexInterval bytes); the broker
// answers 301 with it, as MetaQ answers a wrong offset.
//
// Closed segments are opened on demand. Their descriptors and memory maps
// are kept in a Store-wide LRU of at most Options.MaxOpenSegments
// (default 1024); the least recently used one that no Slice holds is
// closed first. Active segments (one per partition) stay open.
//
// # Failed partitions
//
// A partition fails, sticky until the Store is reopened, on a write or
// fsync error (appends get ErrFailed, reads go on), on a read error or a
// memory fault of a segment file (a file truncated under its mapping would
// raise SIGBUS: Slice.ValidBytes reads under debug.SetPanicOnFault and
// turns the fault into an error), or when it cannot be opened; in the last
// two cases reads get ErrFailed too. Store.FailedPartitions lists them with
// the cause and the time; the broker reports them on its health endpoint.
// Other partitions are never affected, and a failed partition writes no
// clean marker, so the next open scans and truncates it.
//
// # Retention
//
// Retention removes whole closed segments from the start of the log, older
// than RetentionPolicy.MaxAge (by the newest message id time) or while the
// partition is larger than MaxBytes, by deleting, renaming to .arc, or
// zipping them. A segment that a Slice still references is removed from
// the log at once but deleted when the last reader releases it. Removed
// segments are deleted or archived strictly oldest first, each made
// durable (directory fsync) before the next: a newer segment waits for an
// older one still held by a reader, so a crash never leaves a hole.
package store
