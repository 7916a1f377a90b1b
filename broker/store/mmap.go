package store

import (
	"sync"

	"golang.org/x/sys/unix"
)

// mapping is a segment's read-only shared memory map, created on the first
// zero-copy read and removed when the file cache closes the segment's file
// (never while a Slice holds it, so retention and eviction never unmap
// memory a reader still uses). It spans max(MaxSegmentSize, size at mapping
// time) rounded up to a page: segments roll before they would pass
// MaxSegmentSize, so the mapping covers every byte the segment will ever
// hold except an oversized first batch, which falls back to a copy. Pages
// past the end of the file are never touched: reads stay below the visible
// end, and the store truncates files only during recovery, before any
// reader, or beyond the visible end. A file shrunk by something else makes
// the touch fault (SIGBUS); Slice.ValidBytes turns that into an error.
type mapping struct {
	mu     sync.Mutex // guards data and failed
	data   []byte
	failed bool // mmap is unavailable for this file: always copy
}

// bytes returns [pos, pos+n) of the file through the mapping, or ok=false
// when the caller must copy.
func (m *mapping) bytes(f File, pos int64, n int, mapLen int64) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil && !m.failed {
		of, ok := f.(OSFile)
		if !ok {
			m.failed = true
			return nil, false
		}
		page := int64(unix.Getpagesize())
		size := (max(mapLen, pos+int64(n)) + page - 1) / page * page
		data, err := unix.Mmap(int(of.OSFile().Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			m.failed = true
			return nil, false
		}
		m.data = data
	}
	if m.data == nil || pos+int64(n) > int64(len(m.data)) {
		return nil, false
	}
	return m.data[pos : pos+int64(n) : pos+int64(n)], true
}

func (m *mapping) unmap() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data != nil {
		_ = unix.Munmap(m.data)
		m.data = nil
	}
}
