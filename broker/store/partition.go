package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Partition is one partition log: a directory of segments with a single
// writer that batches appends (its data root's commit loop, cycle.go, or in
// threshold mode a goroutine of its own, group_commit.go). All methods are
// safe for concurrent use.
type Partition struct {
	topic  string
	part   int
	dir    string
	fs     FS
	log    *slog.Logger
	opts   *Options // store options, read-only
	files  *fileCache
	topt   TopicOptions
	ids    *idGen
	verify bool

	mu   sync.RWMutex // guards segs (appended by the writer, trimmed by retention)
	segs []*segment   // in offset order; the last one is active

	rmu     sync.Mutex   // guards retired; held while a retired segment is disposed of
	retired []retiredSeg // segments retention removed from the log, disposed of oldest first

	visibleEnd atomic.Int64 // durable high-water mark (offset)
	count      atomic.Int64 // messages in [earliest, visibleEnd)
	failed     atomic.Pointer[failure]

	qmu    sync.Mutex // guards queue, qbytes, closed
	queue  []*reqChunk
	qbytes int64
	closed bool

	commit *committer
	clog   *commitLog // the data root's commit log (nil: none); a truncation checkpoints it first
	name   string     // the directory name, <topic>-<part> (commit log records)
	sreq   syncReq    // the writer's request to commit (one in flight at most)
	loop   *cycler    // the store's commit loop writes this partition; nil: its own goroutine (run) does

	// takes counts the writer's takes of the queue (QueueGen): ExtendQueued's
	// check without the lock. Written under qmu.
	takes atomic.Uint64
	wake  chan struct{} // capacity 1: queue became non-empty or closing
	done  chan struct{} // closed when the writer is done with the partition (closed, drained, answered)
	w     writer        // owned by the writer
}

// openPartition opens and recovers a partition, creating its directory
// unless existing (Open found it, so it is already durable in its parent).
func openPartition(s *Store, topic string, part int, existing bool) (*Partition, error) {
	p := &Partition{
		topic: topic, part: part,
		dir:    s.partitionDir(topic, part),
		fs:     s.opts.FS,
		opts:   &s.opts,
		files:  s.files,
		topt:   s.opts.topic(topic),
		ids:    s.ids,
		verify: !s.opts.NoVerifyReads,
		commit: s.sync,
		clog:   s.logs[s.rootOf(topic)],
		name:   PartitionDirName(topic, part),
		sreq:   syncReq{root: s.rootOf(topic), ch: make(chan bool, 1)},
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	p.log = s.opts.Logger.With("topic", topic, "partition", part)
	if !existing {
		if err := p.fs.MkdirAll(p.dir, dirPerm); err != nil {
			return nil, fmt.Errorf("store: create partition directory: %w", err)
		}
		if err := p.fs.SyncDir(filepath.Dir(p.dir)); err != nil {
			return nil, fmt.Errorf("store: sync data directory: %w", err)
		}
	}
	if err := p.recover(); err != nil {
		p.closeFiles()
		return nil, err
	}
	if p.topt.Flush.Mode == GroupCommit {
		p.loop = s.loops[p.sreq.root]
		if p.loop == nil { // cannot happen: a topic's root is one of s.roots (Partition checks it)
			p.loop = s.loops[s.roots[0]]
		}
	} else {
		go p.run()
	}
	return p, nil
}

// Topic returns the partition's topic.
func (p *Partition) Topic() string { return p.topic }

// ID returns the partition number.
func (p *Partition) ID() int { return p.part }

// dirListing is what recovery finds in a partition directory.
type dirListing struct {
	bases    []int64
	sidecars map[int64]bool
	clean    bool
	created  bool // no segment was found: the first one is created
}

func (p *Partition) list() (dirListing, error) {
	l := dirListing{sidecars: map[int64]bool{}}
	ents, err := p.fs.ReadDir(p.dir)
	if err != nil {
		return l, fmt.Errorf("store: list %s: %w", p.dir, err)
	}
	for _, e := range ents {
		switch {
		case e.IsDir:
		case strings.HasSuffix(e.Name, tempSuffix):
			_ = p.fs.Remove(filepath.Join(p.dir, e.Name)) // unfinished sidecar or marker
		case e.Name == cleanMarkerName:
			l.clean = true
		case strings.HasSuffix(e.Name, indexSuffix):
			if b, ok := parseSegmentName(strings.TrimSuffix(e.Name, indexSuffix) + segmentSuffix); ok {
				l.sidecars[b] = true
			}
		default:
			if b, ok := parseSegmentName(e.Name); ok {
				l.bases = append(l.bases, b)
			}
		}
	}
	return l, nil
}

// recover opens the segments, trusts closed segments with a valid sidecar,
// scans the rest, truncates a torn or corrupt tail of the active segment,
// and removes the clean marker (durably) before any write can happen.
func (p *Partition) recover() error {
	l, err := p.list()
	if err != nil {
		return err
	}
	if len(l.bases) == 0 {
		l.bases, l.created = []int64{0}, true
	}
	guard, guardOK, err := p.readGuard()
	if err != nil {
		return err
	}
	cleanBase, cleanSize := int64(-1), int64(-1)
	if l.clean {
		if b, err := readWholeFile(p.fs, filepath.Join(p.dir, cleanMarkerName)); err == nil {
			if cb, cs, ok := decodeClean(b); ok {
				cleanBase, cleanSize = cb, cs
			}
		}
	}
	for i, base := range l.bases {
		active := i == len(l.bases)-1
		seg, err := p.openSegment(base, active)
		if err != nil {
			return err
		}
		if n := len(p.segs); n > 0 {
			p.skipGap(p.segs[n-1], seg)
		}
		p.segs = append(p.segs, seg)
		trusted := !active || (base == cleanBase && seg.size == cleanSize)
		err = p.loadSegment(seg, active, trusted && l.sidecars[base], guard, guardOK)
		if !active {
			// Closed segments are reopened on demand through the file
			// cache, so a log of many segments holds few descriptors.
			_ = seg.file.Close()
			seg.file = nil
		}
		if err != nil {
			return err
		}
	}
	return p.finishRecovery(l)
}

// skipGap checks that seg starts where prev ends. If not (segments were
// lost, e.g. a crash during out-of-order retention), the log cannot be
// read across the hole: the segments before it are dropped from the log
// (left on disk for the operator) and the partition starts at seg.
func (p *Partition) skipGap(prev, seg *segment) {
	if end := prev.base + prev.size; end != seg.base {
		p.log.Warn("store: segments missing; the partition now starts after the gap (the older segments stay on disk, unused)",
			"missing_from", end, "missing_to", seg.base, "earliest", seg.base,
			"dropped_segments", len(p.segs))
		for _, s := range p.segs {
			s.release = p.closeSegmentFile
			s.unref()
		}
		p.segs = p.segs[:0]
	}
}

func (p *Partition) openSegment(base int64, active bool) (*segment, error) {
	name := filepath.Join(p.dir, segmentName(base))
	flag := os.O_RDONLY
	if active {
		flag = os.O_RDWR | os.O_CREATE
	}
	f, err := p.fs.OpenFile(name, flag, filePerm)
	if err != nil {
		return nil, fmt.Errorf("store: open segment: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: size of %s: %w", name, err)
	}
	seg := &segment{base: base, path: name, file: f, size: size}
	seg.refs.Store(1)
	return seg, nil
}

// loadSegment fills in the segment's index and counts, from its sidecar when
// useSidecar, else by scanning. The active segment's invalid tail is
// truncated; a closed segment is never modified.
func (p *Partition) loadSegment(seg *segment, active, useSidecar bool, g batchGuard, guardOK bool) error {
	if useSidecar {
		b, err := readWholeFile(p.fs, filepath.Join(p.dir, indexName(seg.base)))
		if err == nil {
			if size, count, maxTS, idx, err := decodeIndex(b); err == nil && size == seg.size {
				seg.count, seg.maxTS, seg.index = count, maxTS, idx
				return nil
			}
		}
		p.log.Warn("store: index sidecar missing or damaged, rebuilding", "segment", seg.path)
	}
	res, err := scanSegment(seg.file, seg.size, int64(p.opts.IndexInterval))
	if err != nil {
		return fmt.Errorf("store: scan %s: %w", seg.path, err)
	}
	if cut := applyGuard(g, guardOK && active, seg.base, res.valid); cut != res.valid {
		p.log.Warn("store: dropping a partly written batch", "segment", seg.path, "from", cut, "to", res.valid)
		if res, err = scanSegment(seg.file, cut, int64(p.opts.IndexInterval)); err != nil {
			return fmt.Errorf("store: scan %s: %w", seg.path, err)
		}
	}
	seg.count, seg.maxTS, seg.index = res.count, res.maxTS, res.index
	if res.valid == seg.size {
		if !active {
			p.writeSidecar(seg)
		}
		return nil
	}
	if !active {
		p.log.Error("store: corrupt data in a closed segment; reads at that offset fail, run segments verify",
			"segment", seg.path, "offset", seg.base+res.valid, "reason", res.stop)
		return nil
	}
	p.log.Warn("store: truncating the tail of the active segment", "segment", seg.path,
		"valid", res.valid, "dropped", seg.size-res.valid, "reason", res.stop)
	if err := seg.file.Truncate(res.valid); err != nil {
		return fmt.Errorf("store: truncate %s: %w", seg.path, err)
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", seg.path, err)
	}
	seg.size = res.valid
	return nil
}

// finishRecovery sets up the writer. The clean marker and the active
// sidecar go stale with the first write: after a clean shutdown the writer
// removes them, durably, before it writes anything (unmark), so a start
// that only reads costs no fsync per partition (the marker's own write
// synced the directory at shutdown). Otherwise a stale active sidecar is
// removed and the directory synced now: a segment file created just before
// a crash may not be durable yet.
func (p *Partition) finishRecovery(l dirListing) error {
	active := p.segs[len(p.segs)-1]
	if l.clean && !l.created {
		p.w.unmark = true
	} else {
		if err := p.removeStale(indexName(active.base)); err != nil {
			return err
		}
		if err := p.fs.SyncDir(p.dir); err != nil {
			return fmt.Errorf("store: sync %s: %w", p.dir, err)
		}
	}
	var n int64
	for _, s := range p.segs {
		n += s.count
		p.ids.observe(s.maxTS)
	}
	p.count.Store(n)
	p.visibleEnd.Store(active.base + active.size)
	p.w.init(active, int64(p.opts.IndexInterval))
	return nil
}

// removeStale removes a file of the partition directory that is no longer
// true (a missing one is fine).
func (p *Partition) removeStale(name string) error {
	if err := p.fs.Remove(filepath.Join(p.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove %s: %w", name, err)
	}
	return nil
}

// unmark removes the clean marker and the active segment's sidecar, durably,
// before the writer's first change to the log after a clean start: a crash
// after that change must not find them and trust the active segment.
func (p *Partition) unmark() error {
	for _, name := range []string{cleanMarkerName, indexName(p.w.seg.base)} {
		if err := p.removeStale(name); err != nil {
			return err
		}
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return fmt.Errorf("store: sync %s: %w", p.dir, err)
	}
	p.w.unmark = false
	return nil
}

// writeSidecar writes the index sidecar of a segment whose data is durable.
// It is an optimisation only (rebuilt when missing), so it is not fsynced.
func (p *Partition) writeSidecar(seg *segment) {
	seg.mu.Lock()
	b := encodeIndex(seg.size, seg.count, seg.maxTS, seg.index)
	seg.mu.Unlock()
	if err := writeFileAtomic(p.fs, filepath.Join(p.dir, indexName(seg.base)), b, false); err != nil {
		p.log.Warn("store: cannot write index sidecar", "segment", seg.path, "err", err)
	}
}

// close stops the writer after it drained the queue and, if the partition
// never failed, writes the active sidecar and the clean marker.
func (p *Partition) close() error {
	p.qmu.Lock()
	already := p.closed
	p.closed = true
	p.qmu.Unlock()
	if already {
		<-p.done
		return nil
	}
	p.kick()
	<-p.done
	var err error
	if f := p.failed.Load(); f == nil {
		// Data durable only through the commit log needs no fsync here:
		// the log is removed only after Store.Close's checkpoint, and until
		// then a crash replays it before the marker is read.
		err = p.writeCleanMarker()
	}
	p.closeFiles()
	return err
}

func (p *Partition) writeCleanMarker() error {
	p.mu.RLock()
	active := p.segs[len(p.segs)-1]
	p.mu.RUnlock()
	p.writeSidecar(active)
	size, _, _ := active.stats()
	name := filepath.Join(p.dir, cleanMarkerName)
	if err := writeFileAtomic(p.fs, name, encodeClean(active.base, size), true); err != nil {
		return fmt.Errorf("store: write clean marker %s: %w", name, err)
	}
	return nil
}

// closeFiles drops the list's reference on every segment; files close when
// the last reader releases them.
func (p *Partition) closeFiles() {
	p.mu.Lock()
	segs := p.segs
	p.segs = nil
	p.mu.Unlock()
	for _, s := range segs {
		s.release = p.closeSegmentFile
		s.unref()
	}
	if p.w.guard != nil {
		_ = p.w.guard.Close()
	}
}

func (p *Partition) closeSegmentFile(s *segment) { p.files.drop(s) }

// Stats is a snapshot of a partition's counters.
type Stats struct {
	Topic     string
	Partition int
	MinOffset int64 // earliest readable offset
	MaxOffset int64 // visible end offset
	Messages  int64 // messages in [MinOffset, MaxOffset)
	Bytes     int64 // MaxOffset - MinOffset
	Segments  int
}

// Stats returns the partition's offsets and totals.
func (p *Partition) Stats() Stats {
	p.mu.RLock()
	min, n := int64(0), len(p.segs)
	if n > 0 {
		min = p.segs[0].base
	}
	p.mu.RUnlock()
	end := p.visibleEnd.Load()
	return Stats{Topic: p.topic, Partition: p.part, MinOffset: min, MaxOffset: end,
		Messages: p.count.Load(), Bytes: end - min, Segments: n}
}

// Err returns the sticky error of a failed partition, or nil.
func (p *Partition) Err() error {
	if f := p.failed.Load(); f != nil {
		return f.err
	}
	return nil
}
