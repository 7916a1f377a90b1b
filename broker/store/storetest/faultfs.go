package storetest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/metaq-go/metaq/broker/store"
)

// Op names a file-system operation that FaultFS can fail.
type Op int

// Operations FaultFS can fail.
const (
	OpWrite Op = iota
	OpSync
	OpTruncate
	OpOpen
	OpSyncDir
	OpRename
)

type fault struct {
	op    Op
	match string // substring of the file name; "" = any
	err   error
	times int // remaining failures; < 0 = forever
}

// FaultFS wraps an FS and fails chosen operations on demand. A failing
// write first writes half of its bytes (a partial write), like a real
// device that fills up mid-write. Safe for concurrent use.
type FaultFS struct {
	store.FS
	mu     sync.Mutex
	faults []fault
	hits   map[Op]int
}

var _ store.FS = (*FaultFS)(nil)

// NewFaultFS wraps fsys.
func NewFaultFS(fsys store.FS) *FaultFS { return &FaultFS{FS: fsys, hits: map[Op]int{}} }

// Inject makes the next times operations op on files whose name contains
// match fail with err (times < 0: until Clear).
func (f *FaultFS) Inject(op Op, match string, err error, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{op: op, match: match, err: err, times: times})
}

// Clear removes all injected faults.
func (f *FaultFS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// Hits returns how many times op has failed by injection.
func (f *FaultFS) Hits(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[op]
}

func (f *FaultFS) check(op Op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.faults {
		ft := &f.faults[i]
		if ft.op != op || ft.times == 0 || !strings.Contains(name, ft.match) {
			continue
		}
		if ft.times > 0 {
			ft.times--
		}
		f.hits[op]++
		return fmt.Errorf("storetest: injected fault on %s: %w", name, ft.err)
	}
	return nil
}

// OpenFile implements store.FS.
func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := f.check(OpOpen, name); err != nil {
			return nil, err
		}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Rename implements store.FS.
func (f *FaultFS) Rename(oldName, newName string) error {
	if err := f.check(OpRename, newName); err != nil {
		return err
	}
	return f.FS.Rename(oldName, newName)
}

// SyncDir implements store.FS.
func (f *FaultFS) SyncDir(name string) error {
	if err := f.check(OpSyncDir, name); err != nil {
		return err
	}
	return f.FS.SyncDir(name)
}

// Lock implements store.FS.
func (f *FaultFS) Lock(name string) (io.Closer, error) { return f.FS.Lock(name) }

type faultFile struct {
	store.File
	fs *FaultFS
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.check(OpWrite, f.Name()); err != nil {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// OSFile exposes the wrapped *os.File, if any.
func (f *faultFile) OSFile() *os.File {
	if o, ok := f.File.(store.OSFile); ok {
		return o.OSFile()
	}
	return nil
}
