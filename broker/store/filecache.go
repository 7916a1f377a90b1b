package store

import (
	"container/list"
	"fmt"
	"os"
	"sync"
)

// fileCache bounds the descriptors and memory maps of closed segments
// across a Store. A closed segment's file is opened on the first read that
// needs it and stays open (with its mapping) for the next reads, in LRU
// order; when more than max are open, the least recently used ones that no
// read holds (pins == 0) are closed and unmapped. A segment a Slice still
// uses is never closed, so the limit can be passed while more than max
// reads are in flight. Active segments (one per partition, held by the
// writer) are not counted.
type fileCache struct {
	fs  FS
	max int

	mu   sync.Mutex // guards lru, open, peak and every segment's file, pins, elem, gone
	lru  list.List  // of *segment with an open file, most recently used first
	open int        // len(lru)
	peak int        // highest open seen (for tests)
}

func newFileCache(fs FS, max int) *fileCache {
	return &fileCache{fs: fs, max: max}
}

// pin opens the segment's file if needed and keeps it open until unpin.
func (c *fileCache) pin(s *segment) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.file == nil {
		if s.gone {
			return nil, fmt.Errorf("%w: segment %s was removed", ErrClosed, s.path)
		}
		c.evictLocked(c.max - 1) // make room first: the limit holds at every moment
		f, err := c.fs.OpenFile(s.path, os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("store: open segment for reading: %w", err)
		}
		s.file = f
		s.elem = c.lru.PushFront(s)
		c.open++
		c.peak = max(c.peak, c.open)
	} else if s.elem != nil {
		c.lru.MoveToFront(s.elem)
	}
	s.pins++
	c.evictLocked(c.max)
	return s.file, nil
}

// unpin ends a read that pin started.
func (c *fileCache) unpin(s *segment) {
	c.mu.Lock()
	s.pins--
	c.evictLocked(c.max)
	c.mu.Unlock()
}

// retire moves the file of a segment that stopped being active (a roll)
// under the cache's management.
func (c *fileCache) retire(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.file != nil && !s.gone {
		s.elem = c.lru.PushFront(s)
		c.open++
		c.peak = max(c.peak, c.open)
		c.evictLocked(c.max)
	}
}

// drop closes the segment's file for good (its last reference is gone).
func (c *fileCache) drop(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.gone = true
	c.closeLocked(s)
}

// evictLocked closes least recently used unpinned files until at most
// limit are open (or only pinned ones are left).
func (c *fileCache) evictLocked(limit int) {
	for e := c.lru.Back(); e != nil && c.open > limit; {
		s := e.Value.(*segment)
		e = e.Prev()
		if s.pins == 0 {
			c.closeLocked(s)
		}
	}
}

func (c *fileCache) closeLocked(s *segment) {
	if s.elem != nil {
		c.lru.Remove(s.elem)
		s.elem = nil
		c.open--
	}
	if s.file != nil {
		s.mm.unmap()
		_ = s.file.Close()
		s.file = nil
	}
}

// stats returns the number of open closed-segment files and the peak.
func (c *fileCache) stats() (open, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.peak
}
