package store

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"
	"time"
)

// failure is the sticky error of a failed partition.
type failure struct {
	err   error
	since time.Time
	reads bool // reads fail too (a read fault or a partition that could not open)
}

// FailedPartition describes a partition that failed: a write or fsync
// error (appends refused, reads still served), a read fault on one of its
// segment files, or an error while opening it at Store.Open (reads and
// appends refused). The failure is sticky until the Store is reopened
// (restart the broker after fixing the cause).
type FailedPartition struct {
	Topic     string
	Partition int
	Err       error     // wraps ErrFailed
	Since     time.Time // when it failed
	Reads     bool      // reads fail too, not only appends
}

// FailedPartitions returns the failed partitions sorted by topic and
// number (empty when all are healthy). It is cheap: the broker's health
// endpoint calls it.
func (s *Store) FailedPartitions() []FailedPartition {
	var out []FailedPartition
	for _, p := range s.Partitions() {
		if f := p.failed.Load(); f != nil {
			out = append(out, FailedPartition{Topic: p.topic, Partition: p.part, Err: f.err, Since: f.since, Reads: f.reads})
		}
	}
	return out // Partitions is sorted
}

// failRead makes a read error of the partition's files sticky for reads
// and appends, and returns the error to give the reader. Running out of
// descriptors or memory is not the partition's fault: those errors are
// returned as they are.
func (p *Partition) failRead(offset int64, cause error) error {
	if errors.Is(cause, syscall.EMFILE) || errors.Is(cause, syscall.ENFILE) || errors.Is(cause, syscall.ENOMEM) {
		return fmt.Errorf("store: %s: read at offset %d: %w", p.dir, offset, cause)
	}
	if errors.Is(cause, ErrFailed) || errors.Is(cause, ErrClosed) {
		return cause
	}
	nf := &failure{err: fmt.Errorf("%w: %s: read at offset %d: %w", ErrFailed, p.dir, offset, cause),
		since: p.opts.Now(), reads: true}
	for {
		old := p.failed.Load()
		if old != nil && old.reads {
			return old.err
		}
		if p.failed.CompareAndSwap(old, nf) {
			p.log.Error("store: partition failed on a read; reads and appends refused until restart",
				"offset", offset, "err", cause)
			return nf.err
		}
	}
}

// faultError is the runtime error of a memory fault (SIGBUS, SIGSEGV on a
// mapping) that debug.SetPanicOnFault turned into a panic.
type faultError interface {
	error
	Addr() uintptr
}

// guardFault runs f, turning a memory fault inside it (a segment file
// truncated under its mapping) into an error instead of a crash of the
// process. f runs on the calling goroutine; other panics pass through.
func guardFault(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			fe, ok := r.(faultError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("memory fault at %#x reading a mapped segment (was the file truncated?): %w", fe.Addr(), fe)
		}
	}()
	return f()
}
