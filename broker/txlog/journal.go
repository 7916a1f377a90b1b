package txlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// File names (see doc.go).
const (
	fileSuffix = ".txlog"
	fileFormat = "%020d" + fileSuffix
	fileMagic  = "MQTXLOG1"
)

// Defaults.
const (
	DefaultMaxFileSize = 64 << 20
	DefaultMaxOutcomes = 10000
)

// Options tune a Journal.
type Options struct {
	// MaxFileSize: the writer rotates to a new file (starting with a
	// snapshot of the live state) once the current one is at least this
	// large and at least twice the size of its own snapshot.
	MaxFileSize int64
	// SyncInterval > 0 fsyncs written records that nobody asked to sync at
	// this period (flushTxLogAtCommit=2).
	SyncInterval time.Duration
	// MaxOutcomes bounds the outcomes of finished transactions remembered
	// (and carried through rotations) for idempotent replays.
	MaxOutcomes int
	Logger      *slog.Logger
}

// Journal is an append-only transaction journal in a directory. Appends are
// queued without blocking and written by one goroutine, which group-commits
// concurrent appends (one write, at most one fsync).
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // guards pending, closing, err
	pending []pendingAppend
	closing bool
	err     error // sticky

	wake chan struct{}
	done chan struct{}

	// Owned by the writer goroutine (and Open before it starts).
	f        *os.File
	seq      uint64
	size     int64
	snapSize int64
	dirty    bool // written but not fsynced
	state    *State
	buf      []byte

	// Set by replay: files that had a damaged record skipped (rotation
	// keeps them, renamed) and how many records were skipped.
	damaged map[uint64]bool
	skipped int
}

type pendingAppend struct {
	rec  Record
	sync bool
	done func(error)
}

// Open replays every journal file in dir (created if missing) into a State,
// then starts a new file holding a snapshot of that state and deletes the
// old files. Torn or damaged tails are ignored, a damaged record in the
// middle is skipped when the records after it are intact and consistent,
// and any other damage fails with ErrUnreplayable, changing nothing on
// disk (see doc.go). The returned
// state is the journal's recovered state; the caller must not modify it
// after the first Append.
func Open(dir string, opts Options) (*Journal, *State, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.MaxOutcomes <= 0 {
		opts.MaxOutcomes = DefaultMaxOutcomes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("txlog: create %s: %w", dir, err)
	}
	j := &Journal{dir: dir, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), done: make(chan struct{}),
		state: NewState(opts.MaxOutcomes), damaged: map[uint64]bool{}}
	seqs, err := listFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range seqs {
		if err := j.replayFile(s); err != nil {
			return nil, nil, err
		}
	}
	if len(seqs) > 0 {
		j.seq = seqs[len(seqs)-1]
	}
	if err := j.rotate(); err != nil {
		return nil, nil, err
	}
	go j.run()
	return j, j.state, nil
}

// Replay reads the journal files in dir into a State without opening the
// journal for writing (for tools and tests).
func Replay(dir string, maxOutcomes int) (*State, error) {
	j := &Journal{dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil)), state: NewState(maxOutcomes), damaged: map[uint64]bool{}}
	seqs, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range seqs {
		if err := j.replayFile(s); err != nil {
			return nil, err
		}
	}
	return j.state, nil
}

func fileName(seq uint64) string { return fmt.Sprintf(fileFormat, seq) }

func listFiles(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("txlog: list %s: %w", dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), fileSuffix)
		if !ok || e.IsDir() || len(name) != 20 {
			continue
		}
		if s, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// rotate starts file seq+1 with a snapshot of the state, fsyncs it and the
// directory, then deletes every older file.
func (j *Journal) rotate() error {
	next := j.seq + 1
	path := filepath.Join(j.dir, fileName(next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("txlog: create %s: %w", path, err)
	}
	buf := append(j.buf[:0], fileMagic...)
	recs := j.state.Snapshot()
	for i := range recs {
		buf = AppendRecord(buf, &recs[i])
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("txlog: write snapshot %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("txlog: fsync %s: %w", path, err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.f != nil {
		_ = j.f.Close()
	}
	j.f, j.seq, j.size, j.snapSize, j.dirty = f, next, int64(len(buf)), int64(len(buf)), false
	j.buf = buf[:0]
	if cap(j.buf) > 4<<20 {
		j.buf = nil
	}
	old, err := listFiles(j.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, s := range old {
		if s >= next {
			continue
		}
		removed = true
		path := filepath.Join(j.dir, fileName(s))
		if j.damaged[s] { // keep it for analysis, out of replay's way
			if err := os.Rename(path, path+damagedSuffix); err != nil {
				return fmt.Errorf("txlog: keep damaged journal file %s: %w", path, err)
			}
			j.log.Warn("txlog: kept a journal file that had a damaged record skipped; it is no longer replayed",
				"file", path+damagedSuffix)
			delete(j.damaged, s)
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("txlog: cannot delete an old journal file", "err", err)
		}
	}
	if removed {
		return syncDir(j.dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("txlog: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("txlog: fsync directory %s: %w", dir, err)
	}
	return nil
}

// Append queues a record. done (may be nil) runs on the writer goroutine
// once the record is written — and fsynced when sync is true — or failed
// (never on the caller's goroutine); it must not block. Records are written in Append order. The record's
// slices must not change until done runs (the journal keeps referring to
// the messages of live transactions).
func (j *Journal) Append(r Record, sync bool, done func(error)) {
	j.mu.Lock()
	if j.err != nil || j.closing {
		err := j.err
		if err == nil {
			err = ErrClosed
		}
		j.mu.Unlock()
		if done != nil {
			go done(err) // never on the caller's goroutine: it may hold a lock done takes
		}
		return
	}
	j.pending = append(j.pending, pendingAppend{rec: r, sync: sync, done: done})
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// AppendWait appends a record and waits until it is written (and fsynced
// when sync is true).
func (j *Journal) AppendWait(r Record, sync bool) error {
	ch := make(chan error, 1)
	j.Append(r, sync, func(err error) { ch <- err })
	return <-ch
}

// SkippedRecords is the number of damaged records that Open skipped in the
// middle of journal files (see doc.go, "Damage").
func (j *Journal) SkippedRecords() int { return j.skipped }

// Err returns the sticky error, if any.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close writes what is queued, fsyncs and closes the file. Idempotent.
func (j *Journal) Close() error {
	j.mu.Lock()
	already := j.closing
	j.closing = true
	j.mu.Unlock()
	if !already {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	<-j.done
	return j.Err()
}

func (j *Journal) run() {
	defer close(j.done)
	var tick <-chan time.Time
	if j.opts.SyncInterval > 0 {
		t := time.NewTicker(j.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	var batch []pendingAppend
	for {
		select {
		case <-j.wake:
		case <-tick:
			if j.dirty {
				j.fail(j.sync())
			}
			continue
		}
		for {
			j.mu.Lock()
			batch, j.pending = j.pending, batch[:0]
			closing := j.closing
			j.mu.Unlock()
			if len(batch) == 0 {
				if closing {
					j.finish()
					return
				}
				break
			}
			j.writeBatch(batch)
			clear(batch)
		}
	}
}

func (j *Journal) finish() {
	if j.f == nil {
		return
	}
	if j.dirty {
		j.fail(j.sync())
	}
	_ = j.f.Close()
	j.f = nil
}

// writeBatch writes, maybe fsyncs, applies and acknowledges a batch.
func (j *Journal) writeBatch(batch []pendingAppend) {
	err := j.Err()
	if err == nil {
		buf := j.buf[:0]
		wantSync := false
		for i := range batch {
			buf = AppendRecord(buf, &batch[i].rec)
			wantSync = wantSync || batch[i].sync
		}
		j.buf = buf
		if _, werr := j.f.Write(buf); werr != nil {
			err = fmt.Errorf("%w: write %s: %v", ErrFailed, j.f.Name(), werr)
		} else {
			j.size += int64(len(buf))
			j.dirty = true
			if wantSync {
				err = j.sync()
			}
		}
		if cap(j.buf) > 4<<20 {
			j.buf = nil
		}
		j.fail(err)
	}
	if err == nil {
		for i := range batch {
			j.state.Apply(&batch[i].rec)
		}
	}
	for i := range batch {
		if batch[i].done != nil {
			batch[i].done(err)
		}
	}
	if err == nil && j.size >= j.opts.MaxFileSize && j.size >= 2*j.snapSize {
		j.fail(j.rotate())
	}
}

func (j *Journal) sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %v", ErrFailed, j.f.Name(), err)
	}
	j.dirty = false
	return nil
}

// fail records a sticky error.
func (j *Journal) fail(err error) {
	if err == nil {
		return
	}
	j.mu.Lock()
	if j.err == nil {
		if !errors.Is(err, ErrFailed) {
			err = fmt.Errorf("%w: %v", ErrFailed, err)
		}
		j.err = err
		j.log.Error("txlog: journal failed; transactions are refused until restart", "err", err)
	}
	j.mu.Unlock()
}

// Stats describe the journal's files.
type Stats struct {
	Files int   // journal files in the directory
	Bytes int64 // their total size
	Seq   uint64
}

// DirStats returns the number and total size of the journal files in dir
// (safe to call while a journal writes there).
func DirStats(dir string) (Stats, error) {
	seqs, err := listFiles(dir)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Files: len(seqs)}
	for _, s := range seqs {
		fi, err := os.Stat(filepath.Join(dir, fileName(s)))
		if errors.Is(err, os.ErrNotExist) { // deleted by a rotation meanwhile
			st.Files--
			continue
		}
		if err != nil {
			return Stats{}, err
		}
		st.Bytes += fi.Size()
		st.Seq = s
	}
	return st, nil
}
