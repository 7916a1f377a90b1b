package pgxa

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Log is the coordinator log: an append-only text file, one record a line,
//
//	COMMIT <gtrid>   the decision to commit (fsynced before any branch commits)
//	DONE <gtrid>     both branches are committed: the decision may be dropped
//
// Only commit decisions are logged (presumed abort): a transaction without
// a COMMIT record is rolled back by recovery. A torn last line (a crash in
// the middle of a write) has no newline and is ignored: its record was
// never fsynced, so its decision was never acted upon.
//
// The file lives apart from the database on purpose: logging the decision
// in PostgreSQL would need its own (non-XA) transaction there, and the log
// must be readable when either resource manager is down.
type Log struct {
	mu   sync.Mutex // guards f
	f    *os.File
	path string
}

// OpenLog opens (creating) the log at path; the directory is fsynced when
// the file is new so the file itself survives a crash.
func OpenLog(path string) (*Log, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgxa: open log: %w", err)
	}
	if err := truncateTorn(f); err != nil {
		f.Close()
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &Log{f: f, path: path}, nil
}

// truncateTorn cuts a last line without newline (a write a crash tore), so
// that the next record starts on its own line.
func truncateTorn(f *os.File) error {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return fmt.Errorf("pgxa: read log: %w", err)
	}
	keep := strings.LastIndexByte(string(b), '\n') + 1
	if keep == len(b) {
		return nil
	}
	if err := f.Truncate(int64(keep)); err != nil {
		return fmt.Errorf("pgxa: truncate torn log tail: %w", err)
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pgxa: fsync %s: %w", dir, err)
	}
	return nil
}

// append writes one record and fsyncs it.
func (l *Log) append(kind, gtrid string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(kind + " " + gtrid + "\n"); err != nil {
		return fmt.Errorf("pgxa: write log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("pgxa: fsync log: %w", err)
	}
	return nil
}

// Decided returns the gtrids with a COMMIT record and no DONE record.
func (l *Log) Decided() (map[string]bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("pgxa: read log: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil { // EOF, possibly after a torn line without newline
			break
		}
		kind, gtrid, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok {
			continue
		}
		switch kind {
		case "COMMIT":
			out[gtrid] = true
		case "DONE":
			delete(out, gtrid)
		}
	}
	return out, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }
