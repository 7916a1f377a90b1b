package zkrecipes

import "fmt"

// RWLock is a distributed read/write lock (Curator's
// InterProcessReadWriteLock semantics, without re-entrancy or downgrade).
//
// Readers and writers queue in one directory as protected ephemeral-sequential
// nodes dir/_c_<guid>-read-<seq> and dir/_c_<guid>-write-<seq>. A writer holds
// the lock when its node is the lowest and watches only the node just before
// it. A reader holds the lock when no writer node precedes it, and otherwise
// watches only the closest preceding writer node (when that writer goes, the
// reader re-checks: an earlier writer, if any, is then its closest one). Read
// nodes never wake other readers. Readers that queue behind one writer all
// wake when it releases, which is the point: they all acquire.
//
// The lock is fair (FIFO by sequence): a reader arriving after a waiting
// writer waits for it.
type RWLock struct {
	read, write *Mutex
}

// Node kinds of RWLock participants.
const (
	rwReadKind  = "read-"
	rwWriteKind = "write-"
)

// NewRWLock returns a read/write lock whose participants live under dir.
func NewRWLock(s *Session, dir string) (*RWLock, error) {
	kinds := []string{rwReadKind, rwWriteKind}
	r, err := newMutex(s, dir, rwReadKind, kinds, decideReader)
	if err != nil {
		return nil, fmt.Errorf("zkrecipes: rwlock: %w", err)
	}
	w, err := newMutex(s, dir, rwWriteKind, kinds, decidePredecessor)
	if err != nil {
		return nil, fmt.Errorf("zkrecipes: rwlock: %w", err)
	}
	return &RWLock{read: r, write: w}, nil
}

// decideReader: a reader holds unless a writer precedes it; it watches the closest preceding writer.
func decideReader(sorted []string, idx int) (bool, string) {
	for j := idx - 1; j >= 0; j-- {
		if nodeKind(sorted[j]) == rwWriteKind {
			return false, sorted[j]
		}
	}
	return true, ""
}

// ReadLock returns the shared (read) side: a Mutex whose Lock waits only for
// writers queued before it. It has the Mutex methods (Lock, TryLock, Unlock,
// Held, Lost, Path) and, like any Mutex, is one participant.
func (l *RWLock) ReadLock() *Mutex { return l.read }

// WriteLock returns the exclusive (write) side: a Mutex whose Lock waits for
// every reader and writer queued before it.
func (l *RWLock) WriteLock() *Mutex { return l.write }
