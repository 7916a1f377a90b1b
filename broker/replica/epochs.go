package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/metaq-go/metaq/broker/store"
)

// EpochStart is one line of the epoch history: the epoch and every
// partition's log end when its master started leading (rule 3).
type EpochStart struct {
	Epoch int64
	Start map[Partition]int64
}

// FormatEpochLine is the text of an epoch history line (also the value of
// an `epoch` line of `stats replication`): "<epoch> <topic>-<n>:<offset>,...".
func FormatEpochLine(e EpochStart) string {
	parts := make([]Partition, 0, len(e.Start))
	for p := range e.Start {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b Partition) int { return strings.Compare(a.String(), b.String()) })
	var sb strings.Builder
	sb.WriteString(strconv.FormatInt(e.Epoch, 10))
	sb.WriteByte(' ')
	for i, p := range parts {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(store.PartitionDirName(p.Topic, p.Part))
		sb.WriteByte(':')
		sb.WriteString(strconv.FormatInt(e.Start[p], 10))
	}
	return strings.TrimSpace(sb.String())
}

// ParseEpochLine parses FormatEpochLine's text.
func ParseEpochLine(s string) (EpochStart, error) {
	epochText, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	e := EpochStart{Start: map[Partition]int64{}}
	var err error
	if e.Epoch, err = strconv.ParseInt(epochText, 10, 64); err != nil || e.Epoch < 0 {
		return e, fmt.Errorf("replica: bad epoch line %q", s)
	}
	for _, item := range strings.Split(rest, ",") {
		if item == "" {
			continue
		}
		name, offText, ok := strings.Cut(item, ":")
		topic, part, ok2 := store.ParsePartitionDirName(name)
		off, err := strconv.ParseInt(offText, 10, 64)
		if !ok || !ok2 || err != nil || off < 0 {
			return e, fmt.Errorf("replica: bad epoch line %q (item %q)", s, item)
		}
		e.Start[Partition{Topic: topic, Part: part}] = off
	}
	return e, nil
}

// EpochHistory is the member's epoch history file,
// <dataDir>/replication/epochs, one FormatEpochLine per line, oldest
// first. It is written whole (temp file, fsync, rename, directory fsync).
type EpochHistory struct {
	dir string

	mu      sync.Mutex // guards entries and the file
	entries []EpochStart
}

// OpenEpochHistory loads (or starts) the history in dataDir/replication.
func OpenEpochHistory(dataDir string) (*EpochHistory, error) {
	h := &EpochHistory{dir: filepath.Join(dataDir, "replication")}
	b, err := os.ReadFile(filepath.Join(h.dir, "epochs"))
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replica: read epoch history: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := ParseEpochLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w in %s (fix or remove the file and resync this member)", err, filepath.Join(h.dir, "epochs"))
		}
		h.entries = append(h.entries, e)
	}
	return h, nil
}

// Entries returns the history.
func (h *EpochHistory) Entries() []EpochStart {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.entries)
}

// Last returns the newest epoch (0 when the history is empty).
func (h *EpochHistory) Last() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == 0 {
		return 0
	}
	return h.entries[len(h.entries)-1].Epoch
}

// Append records the start of epoch e (dropping entries of epochs >= e).
func (h *EpochHistory) Append(e EpochStart) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	keep := slices.DeleteFunc(slices.Clone(h.entries), func(x EpochStart) bool { return x.Epoch >= e.Epoch })
	return h.writeLocked(append(keep, e))
}

// Replace makes the history a copy of a master's.
func (h *EpochHistory) Replace(entries []EpochStart) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeLocked(slices.Clone(entries))
}

// FirstAfter returns the first entry of entries with an epoch after epoch.
func FirstAfter(entries []EpochStart, epoch int64) (EpochStart, bool) {
	for _, e := range entries {
		if e.Epoch > epoch {
			return e, true
		}
	}
	return EpochStart{}, false
}

func (h *EpochHistory) writeLocked(entries []EpochStart) error {
	var sb strings.Builder
	for _, e := range entries {
		sb.WriteString(FormatEpochLine(e))
		sb.WriteByte('\n')
	}
	if err := os.MkdirAll(h.dir, 0o750); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	name := filepath.Join(h.dir, "epochs")
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("replica: write epoch history: %w", err)
	}
	_, err = f.WriteString(sb.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = syncDir(h.dir)
	}
	if err != nil {
		return fmt.Errorf("replica: write epoch history %s: %w", name, err)
	}
	h.entries = entries
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
