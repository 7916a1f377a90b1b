package store

// Bytes returns the slice's bytes for a vectored network write. The result
// is valid until Release. Checksums are not verified here: the caller checks
// the complete messages it sends (ScanValid).
func (s *Slice) Bytes() ([]byte, error) {
	v := s.verify
	s.verify = false
	b, err := s.ReadAll(make([]byte, 0, s.Size))
	s.verify = v
	return b, err
}
