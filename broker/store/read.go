package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
)

// Slice is a readable region of one segment file, returned by Read. It
// holds a reference on the segment (retention cannot delete the file, the
// file cache cannot close it) until Release. Serve it with ValidBytes, or
// ReadAll into a pooled buffer, or with File, FilePos and Size directly
// (pread/sendfile); the region never crosses a segment boundary. A Slice
// must not be copied after use starts and must be released exactly once
// (Release is idempotent on the same value).
type Slice struct {
	Offset int64 // partition offset of the first byte
	Size   int   // bytes in the slice

	seg    *segment
	file   File  // seg's file, pinned open until Release
	pos    int64 // file position of the first byte
	p      *Partition
	verify bool
}

// File returns the segment file holding the slice.
func (s *Slice) File() File { return s.file }

// FilePos returns the file position of the slice's first byte.
func (s *Slice) FilePos() int64 { return s.pos }

// OSFile returns the *os.File of the segment, or nil when the store does not
// run on OSFS.
func (s *Slice) OSFile() *os.File {
	if f, ok := s.file.(OSFile); ok {
		return f.OSFile()
	}
	return nil
}

// Release drops the slice's reference on its segment.
func (s *Slice) Release() {
	if s.seg != nil {
		s.p.files.unpin(s.seg)
		s.seg.unref()
		s.seg, s.file = nil, nil
	}
}

// ReadAll appends the slice's bytes to dst. Unless Options.NoVerifyReads,
// the checksum of every complete message is verified and a mismatch returns
// an error wrapping ErrCorrupt (or a *MisalignedOffsetError when Offset was
// not a message start); corrupt data is never returned. A read error (the
// file shrank, EIO) fails the partition: the error wraps ErrFailed.
func (s *Slice) ReadAll(dst []byte) ([]byte, error) {
	n := len(dst)
	dst = slices.Grow(dst, s.Size)[:n+s.Size]
	m, err := s.file.ReadAt(dst[n:], s.pos)
	if m < s.Size {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst[:n], s.p.failRead(s.Offset, fmt.Errorf("read %s: %w", s.seg.path, err))
	}
	if !s.verify {
		return dst, nil
	}
	valid, _, stop := ScanValid(dst[n:])
	if stop == nil {
		return dst, nil
	}
	if errors.Is(stop, ErrIncomplete) {
		if valid == 0 {
			if err := s.partialFirst(); err != nil {
				return dst[:n], err
			}
		}
		return dst, nil
	}
	return dst[:n], s.corruptError(valid, stop)
}

// ValidBytes returns the slice's data for serving, cut by ValidPrefix: the
// zero-copy window of Bytes, checked message by message (which also faults
// the pages in, off the network event loop). A memory fault while touching
// the mapping (the file was truncated under it: SIGBUS) or a read error
// fails the partition and returns an error wrapping ErrFailed instead of
// crashing the process. Data that does not start with a message is a
// *MisalignedOffsetError (wrong offset) or an ErrCorrupt error.
func (s *Slice) ValidBytes() ([]byte, error) {
	var data []byte
	var stop error
	err := guardFault(func() error {
		b, err := s.Bytes()
		if err != nil {
			return err
		}
		data, stop = ValidPrefix(b)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrFailed) {
			return nil, err
		}
		return nil, s.p.failRead(s.Offset, fmt.Errorf("read %s: %w", s.seg.path, err))
	}
	if stop != nil {
		return nil, s.corruptError(0, stop)
	}
	if _, st := checkMessage(data); len(data) > 0 && st == ErrIncomplete {
		if err := s.partialFirst(); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// partialFirst checks a slice that ends inside its first message. That is
// legitimate only for a message larger than Read would extend a slice to;
// from a wrong offset, a garbage length would make the client grow its
// maxSize forever, so it gets a *MisalignedOffsetError instead.
func (s *Slice) partialFirst() error {
	start, next, err := s.p.boundary(s.seg, s.file, s.Offset)
	if err != nil {
		return err
	}
	if start != s.Offset {
		return &MisalignedOffsetError{Offset: s.Offset, Next: next}
	}
	return nil
}

// corruptError explains a checksum failure valid bytes into the slice:
// when it is the first message and Offset is not a message start, the
// client sent a wrong offset (*MisalignedOffsetError).
func (s *Slice) corruptError(valid int, stop error) error {
	if valid == 0 {
		if start, next, err := s.p.boundary(s.seg, s.file, s.Offset); err == nil && start != s.Offset {
			return &MisalignedOffsetError{Offset: s.Offset, Next: next}
		}
	}
	return fmt.Errorf("%w: %s offset %d (%s)", stop, s.seg.path, s.Offset+int64(valid), s.p.dir)
}

// WriteTo writes the slice's bytes to w without verification.
func (s *Slice) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, io.NewSectionReader(s.file, s.pos, int64(s.Size)))
}

// locate finds the segment holding offset, references it and pins its
// file open. It returns the segment, its file and the end of its readable
// data (the next segment's start or the visible end). The caller releases
// with p.files.unpin(seg) and seg.unref().
func (p *Partition) locate(offset int64) (*segment, File, int64, error) {
	if f := p.failed.Load(); f != nil && f.reads {
		return nil, nil, 0, f.err
	}
	end := p.visibleEnd.Load()
	p.mu.RLock()
	if len(p.segs) == 0 {
		p.mu.RUnlock()
		return nil, nil, 0, ErrClosed
	}
	if first := p.segs[0].base; offset < first {
		p.mu.RUnlock()
		return nil, nil, 0, &OffsetTooSmallError{Offset: offset, Earliest: first}
	}
	if offset == end {
		p.mu.RUnlock()
		return nil, nil, 0, ErrCaughtUp
	}
	if offset > end {
		p.mu.RUnlock()
		return nil, nil, 0, &OffsetTooLargeError{Offset: offset, End: end}
	}
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > offset }) - 1
	limit := end
	if i+1 < len(p.segs) {
		limit = min(limit, p.segs[i+1].base)
	}
	seg := p.segs[i]
	seg.ref()
	p.mu.RUnlock()
	f, err := p.files.pin(seg)
	if err != nil {
		seg.unref()
		return nil, nil, 0, p.failRead(offset, err)
	}
	return seg, f, limit, nil
}

// Read returns up to maxSize visible bytes starting at offset, within one
// segment. When the message at offset is larger than maxSize, the slice
// holds that one whole message (PROTOCOL.md: no consumer wedges on a large
// message) once offset is confirmed to be a message start; otherwise it
// never holds more than maxSize bytes. The caller must Release the slice.
// Errors: *OffsetTooSmallError (offset before the first segment),
// ErrCaughtUp (offset == visible end), *OffsetTooLargeError (beyond the
// end), *MisalignedOffsetError (offset inside a message), ErrFailed (the
// partition failed), ErrClosed.
func (p *Partition) Read(offset int64, maxSize int) (Slice, error) {
	if maxSize <= 0 {
		return Slice{}, fmt.Errorf("store: maxSize %d must be positive", maxSize)
	}
	seg, f, limit, err := p.locate(offset)
	if err != nil {
		return Slice{}, err
	}
	s := Slice{Offset: offset, seg: seg, file: f, pos: offset - seg.base, p: p, verify: p.verify}
	avail := limit - offset
	n := min(int64(maxSize), avail)
	if n < avail && n < HeaderSize+int64(p.opts.MaxMessageSize) {
		whole, err := p.wholeMessage(&s, avail)
		if err != nil {
			s.Release()
			return Slice{}, err
		}
		n = max(n, whole)
	}
	s.Size = int(n)
	return s, nil
}

// wholeMessage returns the size of the message at the slice's start when
// it is larger than what the slice would hold, after checking that the
// start is a message boundary (so a wrong offset never makes the store
// read a garbage length's worth of data); 0 when no extension is needed.
func (p *Partition) wholeMessage(s *Slice, avail int64) (int64, error) {
	var hdr [HeaderSize]byte
	if avail < HeaderSize {
		return 0, p.alignError(s, errCorruptLen)
	}
	if _, err := s.file.ReadAt(hdr[:], s.pos); err != nil {
		return 0, p.failRead(s.Offset, fmt.Errorf("read %s: %w", s.seg.path, err))
	}
	l := int64(int32(binary.BigEndian.Uint32(hdr[:4])))
	switch {
	case l < 0:
		return 0, p.alignError(s, errCorruptLen)
	case HeaderSize+l > avail:
		return 0, p.alignError(s, wrapCorrupt("message runs past the end of the segment"))
	case l == 0 && isZeroHeader(hdr[:]):
		return 0, p.alignError(s, errZeroHeader)
	}
	if start, next, err := p.boundary(s.seg, s.file, s.Offset); err != nil {
		return 0, err
	} else if start != s.Offset {
		return 0, &MisalignedOffsetError{Offset: s.Offset, Next: next}
	}
	return HeaderSize + l, nil
}

// alignError reports a header at the slice's start that cannot be a
// message: a *MisalignedOffsetError when the offset is not a message start,
// else the corruption.
func (p *Partition) alignError(s *Slice, stop error) error {
	start, next, err := p.boundary(s.seg, s.file, s.Offset)
	if err != nil {
		return err
	}
	if start != s.Offset {
		return &MisalignedOffsetError{Offset: s.Offset, Next: next}
	}
	return fmt.Errorf("%w: %s offset %d (%s)", stop, s.seg.path, s.Offset, p.dir)
}

// boundary returns the start of the message containing offset and the
// start of the message after it, walking headers from the nearest index
// entry (at most about IndexInterval bytes).
func (p *Partition) boundary(seg *segment, f File, offset int64) (start, next int64, err error) {
	end := p.visibleEnd.Load()
	lim := end - seg.base
	p.mu.RLock()
	if i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > seg.base }); i < len(p.segs) {
		lim = min(lim, p.segs[i].base-seg.base)
	}
	p.mu.RUnlock()
	rel := offset - seg.base
	pos, l, err := walkHeaders(seg, f, seg.floorEntry(rel).rel, rel, lim)
	if err != nil {
		return 0, 0, p.failRead(offset, err)
	}
	return seg.base + pos, seg.base + min(pos+HeaderSize+max(l, 0), lim), nil
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
	seg, f, _, err := p.locate(offset)
	var small *OffsetTooSmallError
	switch {
	case errors.As(err, &small):
		return small.Earliest, nil
	case errors.Is(err, ErrCaughtUp), errors.Is(err, ErrOffsetOutOfRange):
		return p.End(), nil
	case err != nil:
		return 0, err
	}
	defer func() { p.files.unpin(seg); seg.unref() }()
	start, _, err := p.boundary(seg, f, offset)
	return start, err
}

// walkHeaders hops from message start pos over headers until the next
// message would start after target (or at/after lim), returning the last
// start and the data length in its header. It reads in 64 KiB chunks.
func walkHeaders(seg *segment, f File, pos, target, lim int64) (int64, int64, error) {
	buf := make([]byte, 64<<10)
	bufPos, bufLen := int64(0), 0
	for {
		if pos < bufPos || pos+HeaderSize > bufPos+int64(bufLen) {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), lim-pos)], pos)
			if n < HeaderSize {
				if err == nil || err == io.EOF {
					return pos, 0, nil
				}
				return pos, 0, fmt.Errorf("read %s: %w", seg.path, err)
			}
			bufPos, bufLen = pos, n
		}
		l := int64(int32(binary.BigEndian.Uint32(buf[pos-bufPos:])))
		next := pos + HeaderSize + l
		if l < 0 || next > target || next >= lim {
			return pos, l, nil
		}
		pos = next
	}
}
