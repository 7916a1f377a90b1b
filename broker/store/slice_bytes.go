package store

// Bytes returns the slice's bytes for a vectored network write without
// copying them: a window of the segment's read-only memory map (the kernel
// copies straight from the page cache into the socket). It falls back to a
// copy when the file system is not the OS one or the segment cannot be
// mapped. The result is valid until Release. Checksums are not verified
// and touching the bytes can fault if the file is truncated under the
// mapping: serve ValidBytes instead, which checks and guards.
func (s *Slice) Bytes() ([]byte, error) {
	if b, ok := s.seg.mm.bytes(s.file, s.pos, s.Size, s.p.opts.MaxSegmentSize); ok {
		return b, nil
	}
	v := s.verify
	s.verify = false
	b, err := s.ReadAll(make([]byte, 0, s.Size))
	s.verify = v
	return b, err
}
