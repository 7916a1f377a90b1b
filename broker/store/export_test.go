package store

// OpenSegmentFiles returns how many closed-segment files the store's file
// cache holds open now, and the most it held at once.
func OpenSegmentFiles(s *Store) (open, peak int) { return s.files.stats() }
