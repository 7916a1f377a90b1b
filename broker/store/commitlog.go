package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The commit log (see doc.go, "Commit log"): one per data root. A commit
// cycle of many partitions appends one record per partition — the bytes it
// wrote to the partition's active segment, and where — with one write, and
// makes the cycle durable with one fdatasync of the log instead of a syncfs
// of the whole file system. The segments are still written every cycle (so
// reads, sendfile and the on-disk format do not change); their pages reach
// the disk by the kernel's write-back, and a checkpoint (one syncfs) makes
// them durable before the log files that cover them are removed. Recovery
// replays the logs into the segments before the partitions are opened.
const (
	commitLogPrefix     = "commit-"
	commitLogSuffix     = ".log"
	commitLogNameFormat = "commit-%020d.log"
	commitRecordMagic   = 0x4d514352 // "MQCR"
	commitRecordHeader  = 12         // magic, payload length, CRC
	defaultCommitLogMax = 16 << 20
	defaultCommitLogMin = 2
)

func commitLogName(seq uint64) string { return fmt.Sprintf(commitLogNameFormat, seq) }

// parseCommitLogName returns the sequence number of a commit log file name.
func parseCommitLogName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, commitLogPrefix) || !strings.HasSuffix(name, commitLogSuffix) {
		return 0, false
	}
	v, err := strconv.ParseUint(name[len(commitLogPrefix):len(name)-len(commitLogSuffix)], 10, 64)
	return v, err == nil
}

// appendCommitRecord appends the record of data written at pos of the
// segment starting at base in partition directory dir:
//
//	magic "MQCR" u32 | payload length n u32 | CRC-32 IEEE of the payload u32 |
//	payload: dir name length u16 | dir name | segment start i64 | position i64 | data
func appendCommitRecord(b []byte, dir string, base, pos int64, data []byte) []byte {
	n := 2 + len(dir) + 16 + len(data)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, commitRecordMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, 0) // CRC, below
	b = binary.BigEndian.AppendUint16(b, uint16(len(dir)))
	b = append(b, dir...)
	b = binary.BigEndian.AppendUint64(b, uint64(base))
	b = binary.BigEndian.AppendUint64(b, uint64(pos))
	b = append(b, data...)
	binary.BigEndian.PutUint32(b[start+8:], crc32.ChecksumIEEE(b[start+commitRecordHeader:]))
	return b
}

// commitRecord is a decoded record.
type commitRecord struct {
	dir       string
	base, pos int64
	data      []byte
}

// parseCommitRecord decodes the record at the start of b; ok is false at a
// torn, zero-filled or foreign tail (replay stops there).
func parseCommitRecord(b []byte) (r commitRecord, size int, ok bool) {
	if len(b) < commitRecordHeader || binary.BigEndian.Uint32(b) != commitRecordMagic {
		return r, 0, false
	}
	n := int(binary.BigEndian.Uint32(b[4:]))
	if n < 2+16 || n > len(b)-commitRecordHeader {
		return r, 0, false
	}
	p := b[commitRecordHeader : commitRecordHeader+n]
	if crc32.ChecksumIEEE(p) != binary.BigEndian.Uint32(b[8:]) {
		return r, 0, false
	}
	d := int(binary.BigEndian.Uint16(p))
	if 2+d+16 > n {
		return r, 0, false
	}
	r.dir = string(p[2 : 2+d])
	r.base = int64(binary.BigEndian.Uint64(p[2+d:]))
	r.pos = int64(binary.BigEndian.Uint64(p[2+d+8:]))
	r.data = p[2+d+16:]
	if _, _, valid := ParsePartitionDirName(r.dir); !valid || r.base < 0 || r.pos < 0 {
		return r, 0, false
	}
	return r, commitRecordHeader + n, true
}

// commitLog is a data root's commit log. The commit loop appends each
// cycle's records with commit; a checkpoint (when the current file passes
// maxBytes, before a truncation, at Close) starts a new file, syncs the
// file system and removes the files before it.
type commitLog struct {
	fs       FS
	root     string
	log      *slog.Logger
	maxBytes int64

	mu     sync.Mutex // guards the fields below; held across a commit's write and fdatasync
	file   File       // nil once broken
	seq    uint64     // of file
	size   int64      // bytes in file
	old    []File     // rotated out, removed by the next successful checkpoint
	broken error      // a write, sync or checkpoint failed: cycles sync the segments again

	// Counters for CommitLogStats.
	bytes, commits, checkpoints atomic.Int64

	cmu  sync.Mutex    // serialises checkpoints
	wake chan struct{} // cap 1: the file passed maxBytes
	stop chan struct{}
	done chan struct{}
}

// openCommitLog replays the commit logs found in root into its segments
// and removes them. Unless disabled it returns the root's log, whose first
// file is created by the first cycle that commits through it; a nil log
// means cycles sync the segments themselves.
func openCommitLog(fsys FS, root string, lg *slog.Logger, maxBytes int64, disabled bool) (*commitLog, error) {
	last, err := replayCommitLogs(fsys, root, lg)
	if err != nil {
		return nil, err
	}
	if disabled {
		return nil, nil
	}
	l := &commitLog{fs: fsys, root: root, log: lg, maxBytes: maxBytes, seq: last,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// start creates the log's first file. Without a file-system sync that
// reports errors no checkpoint could be trusted: the log then stays off
// and the cycles sync the segments as before.
func (l *commitLog) start() error {
	f, err := l.create(l.seq + 1)
	if err != nil {
		return l.breakLocked(err)
	}
	if !canSyncFilesystem(f) {
		f.Close()
		_ = l.fs.Remove(f.Name())
		l.broken = errors.New("store: commit log off: the file system cannot be synced with one call (syncfs on Linux >= 5.8)")
		l.log.Info("store: commit log off; commit cycles fsync the segments", "dir", l.root, "why", l.broken)
		return l.broken
	}
	l.file, l.seq, l.size = f, l.seq+1, 0
	return nil
}

// create makes a new empty log file, durable in root.
func (l *commitLog) create(seq uint64) (File, error) {
	name := filepath.Join(l.root, commitLogName(seq))
	f, err := l.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("store: create commit log: %w", err)
	}
	if err := l.fs.SyncDir(l.root); err != nil {
		f.Close()
		_ = l.fs.Remove(name)
		return nil, fmt.Errorf("store: sync %s: %w", l.root, err)
	}
	return f, nil
}

// usable reports whether cycles may commit through the log (a racy hint:
// commit decides).
func (l *commitLog) usable() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken == nil
}

// commit appends a cycle's records and makes them durable. On error the
// log is broken for good (until the Store is reopened) and the caller
// syncs the segments instead; the records written so far stay for replay
// until a checkpoint covers them.
func (l *commitLog) commit(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	if l.file == nil {
		if err := l.start(); err != nil {
			return err
		}
	}
	if _, err := l.file.WriteAt(b, l.size); err != nil {
		return l.breakLocked(fmt.Errorf("write %s: %w", l.file.Name(), err))
	}
	if err := l.file.Sync(); err != nil {
		return l.breakLocked(fmt.Errorf("fdatasync %s: %w", l.file.Name(), err))
	}
	l.size += int64(len(b))
	l.bytes.Add(int64(len(b)))
	l.commits.Add(1)
	if l.size >= l.maxBytes {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (l *commitLog) breakLocked(err error) error {
	l.broken = fmt.Errorf("store: commit log: %w", err)
	l.log.Error("store: commit log failed; commit cycles fsync the segments instead until restart", "err", err)
	if l.file != nil {
		l.old = append(l.old, l.file)
		l.file, l.size = nil, 0
	}
	select { // a checkpoint removes what the broken log holds once it is covered
	case l.wake <- struct{}{}:
	default:
	}
	return l.broken
}

// checkpoint makes every segment write that a log record covers durable
// (one syncfs) and removes those log files; appends go on meanwhile into a
// new file. A truncation calls it first, so that no record of the bytes it
// cuts can be replayed over what is written there later.
func (l *commitLog) checkpoint() error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	l.mu.Lock()
	if l.size > 0 {
		next, err := l.create(l.seq + 1)
		if err != nil {
			l.breakLocked(err)
		} else {
			l.old = append(l.old, l.file)
			l.file, l.seq, l.size = next, l.seq+1, 0
		}
	}
	old := slices.Clone(l.old)
	l.mu.Unlock()
	if len(old) == 0 {
		return nil
	}
	start := time.Now()
	if err := old[0].(FilesystemSyncer).SyncFilesystem(); err != nil {
		l.mu.Lock()
		if l.broken == nil {
			l.breakLocked(fmt.Errorf("checkpoint: syncfs: %w", err))
		}
		l.mu.Unlock()
		return fmt.Errorf("store: commit log checkpoint in %s: syncfs: %w", l.root, err)
	}
	if err := l.removeFiles(old); err != nil {
		return err
	}
	l.mu.Lock()
	l.old = slices.Delete(l.old, 0, len(old))
	l.mu.Unlock()
	l.checkpoints.Add(1)
	l.log.Debug("store: commit log checkpoint", "dir", l.root, "files", len(old), "took", time.Since(start))
	return nil
}

// removeFiles closes and removes log files whose records are durable in
// the segments, durably.
func (l *commitLog) removeFiles(files []File) error {
	for _, f := range files {
		f.Close()
		if err := l.fs.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: remove commit log: %w", err)
		}
	}
	if err := l.fs.SyncDir(l.root); err != nil {
		return fmt.Errorf("store: sync %s: %w", l.root, err)
	}
	return nil
}

func (l *commitLog) run() {
	defer close(l.done)
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			return
		}
		if err := l.checkpoint(); err != nil {
			l.log.Error("store: commit log checkpoint failed; its files stay until one succeeds", "err", err)
		}
	}
}

// close stops the checkpoints and, once the partitions are closed (their
// segments fsynced), removes the log: after a checkpoint when it holds
// records, or as it is when it is empty. On error the files stay and the
// next Open replays them.
func (l *commitLog) close() error {
	close(l.stop)
	<-l.done
	if err := l.checkpoint(); err != nil {
		return err
	}
	l.mu.Lock()
	f := l.file
	l.file = nil
	l.mu.Unlock()
	if f == nil {
		return nil
	}
	return l.removeFiles([]File{f})
}

// CommitLogStat describes one data directory's commit log.
type CommitLogStat struct {
	Dir         string
	On          bool   // cycles of several partitions commit through it
	Err         string // why it turned itself off ("" when on, or off by Options.NoCommitLog)
	Bytes       int64  // bytes of records appended since Open
	Commits     int64  // commit cycles made durable through it
	Checkpoints int64  // checkpoints that removed log files
}

// CommitLogStats returns the commit log of each data directory, in the
// order of Options.TopicDirs after the store's own directory.
func (s *Store) CommitLogStats() []CommitLogStat {
	out := make([]CommitLogStat, 0, len(s.roots))
	for _, root := range s.roots {
		st := CommitLogStat{Dir: root}
		if l := s.logs[root]; l != nil {
			l.mu.Lock()
			st.On = l.broken == nil
			if l.broken != nil {
				st.Err = l.broken.Error()
			}
			l.mu.Unlock()
			st.Bytes, st.Commits, st.Checkpoints = l.bytes.Load(), l.commits.Load(), l.checkpoints.Load()
		}
		out = append(out, st)
	}
	return out
}

// replayCommitLogs writes the records of root's commit logs, oldest first,
// into the segments they name, fsyncs those, removes the logs, and returns
// the highest log sequence number found (0: none). A record whose segment
// no longer exists (retention removed it, or its partition directory was
// deleted) is skipped; a torn or zero-filled tail ends a file's replay.
func replayCommitLogs(fsys FS, root string, lg *slog.Logger) (uint64, error) {
	ents, err := fsys.ReadDir(root)
	if err != nil {
		return 0, fmt.Errorf("store: list %s: %w", root, err)
	}
	var seqs []uint64
	for _, e := range ents {
		if seq, ok := parseCommitLogName(e.Name); ok && !e.IsDir {
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	slices.Sort(seqs)
	start := time.Now()
	segs := map[string]File{} // nil: the segment does not exist
	defer func() {
		for _, f := range segs {
			if f != nil {
				f.Close()
			}
		}
	}()
	var records, bytes int64
	for _, seq := range seqs {
		name := filepath.Join(root, commitLogName(seq))
		b, err := readWhole(fsys, name)
		if err != nil {
			return 0, fmt.Errorf("store: read commit log %s: %w (it holds acknowledged messages: fix the cause and start again)", name, err)
		}
		for off := 0; off < len(b); {
			r, n, ok := parseCommitRecord(b[off:])
			if !ok {
				break
			}
			off += n
			path := filepath.Join(root, r.dir, segmentName(r.base))
			f, seen := segs[path]
			if !seen {
				f, err = fsys.OpenFile(path, os.O_RDWR, filePerm)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return 0, fmt.Errorf("store: replay commit log %s into %s: %w", name, path, err)
				}
				segs[path] = f
			}
			if f == nil {
				continue
			}
			if _, err := f.WriteAt(r.data, r.pos); err != nil {
				return 0, fmt.Errorf("store: replay commit log %s into %s: %w (fix the cause and start again)", name, path, err)
			}
			records++
			bytes += int64(len(r.data))
		}
	}
	if err := syncReplayed(segs); err != nil {
		return 0, err
	}
	for _, seq := range seqs {
		if err := fsys.Remove(filepath.Join(root, commitLogName(seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("store: remove replayed commit log: %w", err)
		}
	}
	if err := fsys.SyncDir(root); err != nil {
		return 0, fmt.Errorf("store: sync %s: %w", root, err)
	}
	lg.Info("store: commit log replayed", "dir", root, "files", len(seqs), "records", records, "bytes", bytes,
		"segments", len(segs), "took", time.Since(start))
	return seqs[len(seqs)-1], nil
}

// canSyncFilesystem reports whether checkpoints can sync f's file system
// with one call that reports write-back errors.
func canSyncFilesystem(f File) bool {
	if _, ok := f.(FilesystemSyncer); !ok {
		return false
	}
	if u, ok := f.(interface{ syncfsUsable() bool }); ok {
		return u.syncfsUsable()
	}
	return true
}

// syncReplayed makes the segments a replay wrote durable: one file-system
// sync when it can (after a kill -9 of a broker with thousands of busy
// partitions, one fdatasync each would take seconds), else each file.
func syncReplayed(segs map[string]File) error {
	var files []File
	for _, f := range segs {
		if f != nil {
			files = append(files, f)
		}
	}
	if len(files) >= defaultFilesystemSyncMin && canSyncFilesystem(files[0]) {
		if err := files[0].(FilesystemSyncer).SyncFilesystem(); err == nil {
			return nil
		}
	}
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("store: replay commit log into %s: fsync: %w", f.Name(), err)
		}
	}
	return nil
}

// readWhole reads a file of the FS.
func readWhole(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}
