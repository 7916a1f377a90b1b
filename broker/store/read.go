package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"time"
)

// Slice is a readable region of one segment file, returned by Read. It
// holds a reference on the segment (retention cannot delete the file) until
// Release. Serve it with ReadAll into a pooled buffer, or with File,
// FilePos and Size directly (pread/sendfile); the region never crosses a
// segment boundary. A Slice must not be copied after use starts and must be
// released exactly once (Release is idempotent on the same value).
type Slice struct {
	Offset int64 // partition offset of the first byte
	Size   int   // bytes in the slice

	seg    *segment
	pos    int64 // file position of the first byte
	p      *Partition
	verify bool
}

// File returns the segment file holding the slice.
func (s *Slice) File() File { return s.seg.file }

// FilePos returns the file position of the slice's first byte.
func (s *Slice) FilePos() int64 { return s.pos }

// OSFile returns the *os.File of the segment, or nil when the store does not
// run on OSFS.
func (s *Slice) OSFile() *os.File {
	if f, ok := s.seg.file.(OSFile); ok {
		return f.OSFile()
	}
	return nil
}

// Release drops the slice's reference on its segment.
func (s *Slice) Release() {
	if s.seg != nil {
		s.seg.unref()
		s.seg = nil
	}
}

// ReadAll appends the slice's bytes to dst. Unless Options.NoVerifyReads,
// the checksum of every complete message is verified and a mismatch returns
// an error wrapping ErrCorrupt (or ErrInvalidOffset when Offset was not a
// message start); corrupt data is never returned.
func (s *Slice) ReadAll(dst []byte) ([]byte, error) {
	n := len(dst)
	dst = slices.Grow(dst, s.Size)[:n+s.Size]
	m, err := s.seg.file.ReadAt(dst[n:], s.pos)
	if m < s.Size {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst[:n], fmt.Errorf("store: read %s: %w", s.seg.path, err)
	}
	if !s.verify {
		return dst, nil
	}
	valid, _, stop := ScanValid(dst[n:])
	if stop == nil || stop == ErrIncomplete {
		return dst, nil
	}
	if valid == 0 {
		if off, err := s.p.OffsetAtOrBefore(s.Offset); err == nil && off != s.Offset {
			return dst[:n], fmt.Errorf("%w: %d", ErrInvalidOffset, s.Offset)
		}
	}
	return dst[:n], fmt.Errorf("%w: %s offset %d (%s)", stop, s.seg.path, s.Offset+int64(valid), s.p.dir)
}

// WriteTo writes the slice's bytes to w without verification.
func (s *Slice) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, io.NewSectionReader(s.seg.file, s.pos, int64(s.Size)))
}

// locate finds the segment holding offset and references it. It returns
// the segment and the end of its readable data (the next segment's start or
// the visible end).
func (p *Partition) locate(offset int64) (*segment, int64, error) {
	end := p.visibleEnd.Load()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.segs) == 0 {
		return nil, 0, ErrClosed
	}
	if first := p.segs[0].base; offset < first {
		return nil, 0, &OffsetTooSmallError{Offset: offset, Earliest: first}
	}
	if offset == end {
		return nil, 0, ErrCaughtUp
	}
	if offset > end {
		return nil, 0, &OffsetTooLargeError{Offset: offset, End: end}
	}
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > offset }) - 1
	limit := end
	if i+1 < len(p.segs) {
		limit = min(limit, p.segs[i+1].base)
	}
	seg := p.segs[i]
	seg.ref()
	return seg, limit, nil
}

// Read returns up to maxSize visible bytes starting at offset, within one
// segment, and at least one whole message when one starts at offset. The
// caller must Release the slice. Errors: *OffsetTooSmallError (offset before
// the first segment), ErrCaughtUp (offset == visible end),
// *OffsetTooLargeError (beyond the end), ErrClosed.
func (p *Partition) Read(offset int64, maxSize int) (Slice, error) {
	if maxSize <= 0 {
		return Slice{}, fmt.Errorf("store: maxSize %d must be positive", maxSize)
	}
	seg, limit, err := p.locate(offset)
	if err != nil {
		return Slice{}, err
	}
	s := Slice{Offset: offset, seg: seg, pos: offset - seg.base, p: p, verify: p.verify}
	avail := limit - offset
	n := min(int64(maxSize), avail)
	if n < avail && n < HeaderSize+int64(p.opts.MaxMessageSize) {
		var hdr [4]byte
		if _, err := seg.file.ReadAt(hdr[:], s.pos); err != nil {
			s.Release()
			return Slice{}, fmt.Errorf("store: read %s: %w", seg.path, err)
		}
		if whole := HeaderSize + int64(int32(binary.BigEndian.Uint32(hdr[:]))); whole > n && whole <= avail {
			n = whole
		}
	}
	s.Size = int(n)
	return s, nil
}

// Earliest returns the first offset of the partition.
func (p *Partition) Earliest() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.segs) == 0 {
		return 0
	}
	return p.segs[0].base
}

// End returns the visible end: the offset after the last durable message.
func (p *Partition) End() int64 { return p.visibleEnd.Load() }

// OffsetAtOrBefore returns the start of the message containing offset (the
// nearest message start at or before it); Earliest for an offset before the
// log, End for an offset at or beyond the end. It never returns an offset
// inside a message. Cost: one index search and a read of at most about
// IndexInterval bytes.
func (p *Partition) OffsetAtOrBefore(offset int64) (int64, error) {
	seg, limit, err := p.locate(offset)
	var small *OffsetTooSmallError
	switch {
	case errors.As(err, &small):
		return small.Earliest, nil
	case errors.Is(err, ErrCaughtUp), errors.Is(err, ErrOffsetOutOfRange):
		return p.End(), nil
	case err != nil:
		return 0, err
	}
	defer seg.unref()
	rel, lim := offset-seg.base, limit-seg.base
	start, err := walkHeaders(seg, seg.floorEntry(rel).rel, rel, lim)
	return seg.base + start, err
}

// walkHeaders hops from message start pos over headers until the next
// message would start after target (or at/after lim), returning the last
// start. It reads in 64 KiB chunks.
func walkHeaders(seg *segment, pos, target, lim int64) (int64, error) {
	buf := make([]byte, 64<<10)
	bufPos, bufLen := int64(0), 0
	for {
		if pos < bufPos || pos+HeaderSize > bufPos+int64(bufLen) {
			n, err := seg.file.ReadAt(buf[:min(int64(len(buf)), lim-pos)], pos)
			if n < HeaderSize {
				if err == nil || err == io.EOF {
					return pos, nil
				}
				return pos, fmt.Errorf("store: read %s: %w", seg.path, err)
			}
			bufPos, bufLen = pos, n
		}
		l := int64(int32(binary.BigEndian.Uint32(buf[pos-bufPos:])))
		next := pos + HeaderSize + l
		if l < 0 || next > target || next >= lim {
			return pos, nil
		}
		pos = next
	}
}

// OffsetForTime returns a message start at or shortly before (at most about
// IndexInterval bytes) the first message whose id time is at or after t, or
// End if there is none. Times come from the message ids.
func (p *Partition) OffsetForTime(t time.Time) int64 {
	ts := t.UnixMilli()
	p.mu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.mu.RUnlock()
	for _, seg := range segs {
		if _, _, maxTS := seg.stats(); maxTS < ts {
			continue
		}
		e, ok := seg.firstAtOrAfter(ts)
		if !ok { // a message after the last index entry qualifies
			return seg.base + seg.floorEntry(math.MaxInt64).rel
		}
		prev := seg.floorEntry(e.rel - 1)
		if e.rel == 0 {
			return seg.base
		}
		return seg.base + prev.rel
	}
	return p.End()
}
