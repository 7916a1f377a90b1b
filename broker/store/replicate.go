package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// ErrWrongOffset is matched (errors.Is) by *WrongOffsetError: a raw append
// (replication) did not start at the partition's end.
var ErrWrongOffset = errors.New("store: raw append is not at the end of the partition")

// WrongOffsetError is returned (through done) by AppendRaw when the offset
// it was given is not the partition's end at the time of the write.
type WrongOffsetError struct {
	Offset int64 // the offset the caller asked for
	End    int64 // the partition's end
}

func (e *WrongOffsetError) Error() string {
	return fmt.Sprintf("store: raw append at offset %d but the partition ends at %d; fetch again from %d", e.Offset, e.End, e.End)
}

// Is makes errors.Is(err, ErrWrongOffset) true.
func (e *WrongOffsetError) Is(target error) bool { return target == ErrWrongOffset }

// AppendRaw queues data, a whole message set read from another replica's
// log (PROTOCOL.md §4 layout), to be written byte for byte at offset, which
// must be the partition's end when the writer gets to it (else done gets a
// *WrongOffsetError and nothing is written). Every message must pass the
// store's checksum rule (ValidPrefix must keep all of data) and carry a
// positive id; the ids are kept, so the messages have the same offsets and
// ids as on the replica they came from. The id generator is moved past the
// appended ids' time, so ids this store issues later (after a promotion)
// sort after them. Like AppendMessages, a crash may keep a prefix of data
// (only what done acknowledged is durable). done runs on the writer
// goroutine after the fsync (group commit) or the write (threshold mode),
// with the offset of the first message.
func (p *Partition) AppendRaw(offset int64, data []byte, done func(AppendResult, error)) error {
	msgs, err := splitRaw(data)
	if err != nil {
		return err
	}
	return p.enqueue(request{batch: msgs, raw: true, rawOffset: offset, done: done, size: int64(len(data))})
}

// AppendRawSync is AppendRaw waiting for the result.
func (p *Partition) AppendRawSync(ctx context.Context, offset int64, data []byte) (AppendResult, error) {
	ch := make(chan appendReply, 1)
	if err := p.AppendRaw(offset, data, func(r AppendResult, err error) { ch <- appendReply{r, err} }); err != nil {
		return AppendResult{}, err
	}
	return waitReply(ctx, ch)
}

// splitRaw checks a raw message set and splits it into messages whose
// Data alias data.
func splitRaw(data []byte) ([]Message, error) {
	if len(data) == 0 {
		return nil, errors.New("store: empty raw append")
	}
	valid, count, stop := ScanValid(data)
	if stop != nil || valid != len(data) {
		if stop == nil {
			stop = ErrIncomplete
		}
		return nil, fmt.Errorf("store: raw append: message at byte %d of %d is not whole and valid: %w", valid, len(data), stop)
	}
	msgs := make([]Message, 0, count)
	for pos := 0; pos < len(data); {
		h := ParseHeader(data[pos:])
		if h.ID <= 0 {
			return nil, fmt.Errorf("store: raw append: message at byte %d has id %d; replicated messages carry their positive id", pos, h.ID)
		}
		end := pos + HeaderSize + int(h.Len)
		msgs = append(msgs, Message{Data: data[pos+HeaderSize : end], Flag: h.Flag, ID: h.ID})
		pos = end
	}
	return msgs, nil
}

// addRaw is add for a raw request: it checks the offset, then encodes the
// messages with their own ids (the encoding is the one the source wrote,
// so the bytes are identical) and moves the id generator past them.
func (p *Partition) addRaw(r *request) bool {
	w := &p.w
	if end := w.seg.base + w.pos + int64(len(w.buf)); end != r.rawOffset {
		r.err = &WrongOffsetError{Offset: r.rawOffset, End: end}
		return false
	}
	var maxID int64
	for _, m := range r.batch {
		maxID = max(maxID, m.ID)
	}
	p.ids.observe(maxID>>idTimeShift + IDEpoch)
	return true
}

// Truncate removes every message at or after offset, durably, so the
// partition ends at offset (the leader-epoch rule of replication: a
// follower drops a tail its new master does not have). offset must be a
// message boundary in [Earliest, End]. An offset beyond the end is allowed
// only while the partition holds no messages: the log then starts at offset
// (a follower whose master's retention removed the start of the log).
//
// Readers: a Slice taken before the call over data at or after offset may
// read garbage or fail (the bytes are gone); callers truncate only while the
// partition serves no reads beyond offset (a broker truncates before it
// starts following and serving). Appends queued before the call are
// written first; their acknowledgement does not survive the truncation.
func (p *Partition) Truncate(ctx context.Context, offset int64) error {
	ch := make(chan appendReply, 1)
	err := p.enqueue(request{truncate: true, rawOffset: offset, barrier: true,
		done: func(r AppendResult, err error) { ch <- appendReply{r, err} }})
	if err != nil {
		return err
	}
	_, err = waitReply(ctx, ch)
	return err
}

// truncate runs on the writer goroutine with nothing buffered or unsynced.
func (p *Partition) truncate(offset int64) error {
	w := &p.w
	if w.err != nil {
		return w.err
	}
	if w.pos != w.synced {
		return fmt.Errorf("%w: cannot truncate %s: unsynced data could not be written", ErrNoSpace, p.dir)
	}
	// No commit log record of the bytes cut may outlive the cut: a replay
	// would write them back over what is appended there afterwards.
	if p.clog != nil {
		if err := p.clog.checkpoint(); err != nil {
			return fmt.Errorf("%w: cannot truncate %s: %w", ErrFailed, p.dir, err)
		}
		w.logged = false
	}
	end := w.seg.base + w.pos
	p.mu.RLock()
	first := p.segs[0].base
	p.mu.RUnlock()
	switch {
	case offset == end:
		return nil
	case offset > end && p.count.Load() == 0:
		return p.rebase(offset)
	case offset > end:
		return &OffsetTooLargeError{Offset: offset, End: end}
	case offset < first:
		return &OffsetTooSmallError{Offset: offset, Earliest: first}
	}
	return p.cut(offset)
}

// cut truncates a non-empty range [offset, end). Crash order: the later
// segment files go first (directory fsynced), then the segment holding
// offset is truncated and fsynced; a crash in between leaves a prefix of
// the old log, which a new Truncate cuts again.
func (p *Partition) cut(offset int64) error {
	p.mu.Lock()
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > offset }) - 1
	keep := p.segs[i]
	rel := offset - keep.base
	f, err := p.fs.OpenFile(keep.path, os.O_RDWR, filePerm)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("store: open %s to truncate: %w", keep.path, err)
	}
	res, err := scanSegment(f, rel, int64(p.opts.IndexInterval))
	if err == nil && (res.valid != rel || res.stop != nil) {
		err = &MisalignedOffsetError{Offset: offset, Next: keep.base + res.valid}
	}
	if err != nil {
		p.mu.Unlock()
		f.Close()
		return fmt.Errorf("store: truncate to %d: %w", offset, err)
	}
	dropped := append([]*segment(nil), p.segs[i:]...)
	seg := &segment{base: keep.base, path: keep.path, file: f, size: rel,
		count: res.count, maxTS: res.maxTS, index: res.index}
	seg.refs.Store(1)
	p.segs = append(p.segs[:i], seg)
	var n int64
	for _, s := range p.segs {
		_, c, _ := s.stats()
		n += c
	}
	p.count.Store(n)
	p.visibleEnd.Store(offset)
	p.mu.Unlock()
	err = p.dropFiles(dropped[1:], keep.base)
	if err == nil {
		err = f.Truncate(rel)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = p.writeGuard(batchGuard{})
	}
	p.finishSwap(dropped, seg)
	if err != nil {
		p.fail(fmt.Errorf("%w: truncate %s to %d: %w", ErrFailed, p.dir, offset, err))
		return p.w.err
	}
	p.log.Warn("store: partition truncated (replication)", "offset", offset, "segments_removed", len(dropped)-1)
	return nil
}

// rebase starts an empty partition at offset: a new empty segment there
// replaces the empty ones.
func (p *Partition) rebase(offset int64) error {
	name := filepath.Join(p.dir, segmentName(offset))
	f, err := p.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", name, err)
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		f.Close()
		return fmt.Errorf("store: sync %s: %w", p.dir, err)
	}
	seg := &segment{base: offset, path: name, file: f}
	seg.refs.Store(1)
	p.mu.Lock()
	dropped := p.segs
	p.segs = []*segment{seg}
	p.visibleEnd.Store(offset)
	p.mu.Unlock()
	err = p.dropFiles(dropped, -1)
	p.finishSwap(dropped, seg)
	if err != nil {
		p.fail(fmt.Errorf("%w: rebase %s at %d: %w", ErrFailed, p.dir, offset, err))
		return p.w.err
	}
	return nil
}

// dropFiles removes the files (segment and sidecar) of segs, newest first,
// except the segment file starting at keepBase, and fsyncs the directory.
func (p *Partition) dropFiles(segs []*segment, keepBase int64) error {
	for j := len(segs) - 1; j >= 0; j-- {
		names := []string{indexName(segs[j].base)}
		if segs[j].base != keepBase {
			names = append(names, segmentName(segs[j].base))
		}
		for _, name := range names {
			if err := p.fs.Remove(filepath.Join(p.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("store: remove %s: %w", name, err)
			}
		}
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return fmt.Errorf("store: sync %s: %w", p.dir, err)
	}
	return nil
}

// finishSwap makes seg the writer's active segment and lets the dropped
// segment objects go (their files close when the last Slice releases them).
func (p *Partition) finishSwap(dropped []*segment, seg *segment) {
	for _, s := range dropped {
		s.release = p.closeSegmentFile
		s.unref()
	}
	p.w.init(seg, int64(p.opts.IndexInterval))
}
