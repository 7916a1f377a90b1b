package store

import "log/slog"

// OpenSegmentFiles returns how many closed-segment files the store's file
// cache holds open now, and the most it held at once.
func OpenSegmentFiles(s *Store) (open, peak int) { return s.files.stats() }

// ReplayCommitLogs replays and removes the commit logs of a data root, as
// Open does first.
func ReplayCommitLogs(fsys FS, root string) error {
	_, err := replayCommitLogs(fsys, root, slog.New(slog.DiscardHandler))
	return err
}
