package store

import (
	"container/list"
	"encoding/binary"
	"io"
	"sort"
	"sync"
	"sync/atomic"
)

// indexEntry is one entry of a segment's sparse index: a message start
// (relative to the segment start) and the time of its id in Unix millis.
type indexEntry struct {
	rel int64
	ts  int64
}

// segment is one segment file. It is reference counted: the partition's
// segment list holds one reference, every open Slice holds one. When the
// count drops to zero after the segment left the list, release runs
// (closing the file and deleting or archiving it).
type segment struct {
	base int64
	path string
	refs atomic.Int32

	// file is the open segment file. The active segment's is always open
	// (the writer uses it without locking); a closed segment's is opened
	// on demand by the Store's fileCache and may be closed when no read
	// pins it. file, pins, elem and gone are guarded by fileCache.mu;
	// read file through fileCache.pin, except on the writer goroutine and
	// during recovery.
	file File
	pins int           // reads in flight on file
	elem *list.Element // in the fileCache LRU (closed segments with an open file)
	gone bool          // the last reference was dropped; never reopen

	// release runs when refs drops to zero; set before the list drops its
	// reference, read after.
	release func(*segment)

	mm mapping // read-only memory map for zero-copy reads (see mmap.go)

	mu    sync.Mutex   // guards the fields below (written by the partition writer and recovery)
	size  int64        // bytes durable and visible in this segment
	count int64        // messages in [0, size)
	maxTS int64        // newest message time (Unix ms) in [0, size)
	index []indexEntry // sparse index over [0, size)
}

func (s *segment) ref() { s.refs.Add(1) }

func (s *segment) unref() {
	if s.refs.Add(-1) == 0 && s.release != nil {
		s.release(s)
	}
}

// publish adds durable data [s.size, size) with its index entries.
func (s *segment) publish(size, count, maxTS int64, idx []indexEntry) {
	s.mu.Lock()
	s.size = size
	s.count += count
	if maxTS > s.maxTS {
		s.maxTS = maxTS
	}
	s.index = append(s.index, idx...)
	s.mu.Unlock()
}

func (s *segment) stats() (size, count, maxTS int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, s.count, s.maxTS
}

// floorEntry returns the last index entry at or before rel (or the segment
// start).
func (s *segment) floorEntry(rel int64) indexEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].rel > rel })
	if i == 0 {
		return indexEntry{}
	}
	return s.index[i-1]
}

// scanResult is the outcome of scanning a segment file.
type scanResult struct {
	valid int64 // length of the valid prefix
	count int64
	maxTS int64
	stop  error // nil, ErrIncomplete or an ErrCorrupt error
	index []indexEntry
}

const scanChunk = 4 << 20

var scanBufPool = sync.Pool{New: func() any { b := make([]byte, scanChunk); return &b }}

// scanSegment reads [0, size) of f in large chunks, checks every message
// and builds the sparse index (one entry per interval bytes).
func scanSegment(f File, size int64, interval int64) (scanResult, error) {
	var res scanResult
	bp := scanBufPool.Get().(*[]byte)
	buf := *bp
	defer func() { *bp = buf[:cap(buf)]; scanBufPool.Put(bp) }()
	var pos int64        // file position of buf[0]
	have := 0            // bytes of buf filled
	lastIdx := -interval // rel of the last index entry
	for {
		if want := min(int64(len(buf)), size-pos); int64(have) < want {
			n, err := f.ReadAt(buf[have:want], pos+int64(have))
			have += n
			if err == io.EOF || (err == nil && n == 0) {
				size = pos + int64(have) // file shorter than believed
			} else if err != nil {
				return res, err
			}
		}
		off := 0
		for {
			rest := buf[off:have]
			total, stop := checkMessage(rest)
			if stop == ErrIncomplete {
				if len(rest) >= HeaderSize && pos+int64(off)+total > size {
					res.stop = ErrIncomplete // the file ends inside this message
				}
				break // else read more
			}
			if stop != nil {
				res.stop = stop
				break
			}
			rel := pos + int64(off)
			ts := int64(binary.BigEndian.Uint64(rest[8:16]))>>idTimeShift + IDEpoch
			if rel-lastIdx >= interval {
				res.index = append(res.index, indexEntry{rel: rel, ts: ts})
				lastIdx = rel
			}
			res.maxTS = max(res.maxTS, ts)
			res.count++
			off += int(total)
		}
		res.valid = pos + int64(off)
		if res.stop != nil {
			return res, nil
		}
		if res.valid == size {
			return res, nil
		}
		if pos+int64(have) == size && int64(have-off) < HeaderSize {
			res.stop = ErrIncomplete
			return res, nil
		}
		// Move the partial message to the front; grow for a big message.
		copy(buf, buf[off:have])
		pos += int64(off)
		have -= off
		if have >= HeaderSize {
			need := HeaderSize + int(int32(binary.BigEndian.Uint32(buf[0:4])))
			if need > len(buf) {
				nb := make([]byte, need)
				copy(nb, buf[:have])
				buf = nb
			}
		}
	}
}
