// Package storetest has test doubles for package store's file-system seam:
// a strict in-memory FS that can simulate a power loss, and a
// fault-injecting wrapper.
package storetest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"sync"
	"syscall"

	"github.com/metaq-go/metaq/broker/store"
)

// ErrPoweredOff is returned by every operation of a MemFS after Crash (or
// after its CrashAfter budget ran out).
var ErrPoweredOff = fmt.Errorf("storetest: file system powered off: %w", syscall.EIO)

type inode struct {
	dir     bool
	data    []byte            // file: current contents
	synced  []byte            // file: contents at the last Sync
	entries map[string]*inode // dir: current entries
	durable map[string]*inode // dir: entries at the last SyncDir
	dirty   int64             // file: lowest offset changed since the last Sync
}

func newDir() *inode {
	return &inode{dir: true, entries: map[string]*inode{}, durable: map[string]*inode{}}
}

// MemFS is a strict in-memory store.FS. It keeps, for every file, the data
// as of its last Sync and, for every directory, the entries as of its last
// SyncDir. Crash keeps only that durable state: unsynced writes, and file
// creations, renames and removals in directories that were not synced, are
// lost. Safe for concurrent use.
type MemFS struct {
	mu      sync.Mutex
	root    *inode
	dead    bool
	locks   map[string]bool
	budget  int64 // mutating operations left before an automatic crash; <0 = unlimited
	crashed *MemFS
	torn    *rand.Rand
	tail    Tail
}

// Tail says what a power loss leaves after the durable data of a file
// that had unsynced appended bytes (with a random source set).
type Tail int

const (
	// TailTorn keeps a random prefix of the unsynced appended bytes (a
	// partially written page cache).
	TailTorn Tail = iota
	// TailZeros keeps a random prefix of them followed by a random run of
	// zero bytes (up to 8 KiB): the file size was updated but the data
	// blocks never written (ext4 delayed allocation, XFS).
	TailZeros
	// TailGarbage keeps a random prefix of them followed by a random run
	// of random bytes (up to 8 KiB): stale blocks exposed by the crash.
	TailGarbage
)

var (
	_ store.FS               = (*MemFS)(nil)
	_ store.FilesystemSyncer = (*memFile)(nil)
)

// NewMemFS returns an empty MemFS whose root directory is durable.
func NewMemFS() *MemFS {
	return &MemFS{root: newDir(), locks: map[string]bool{}, budget: -1}
}

// CrashAfter arms an automatic power loss: after n more mutating
// operations (write, sync, truncate, create, rename, remove, dir sync) the
// next one finds the power off. The durable state at that moment is
// available from Crashed. With torn non-nil, each file also keeps a random
// prefix of its unsynced appended bytes, like a partially written page cache.
func (m *MemFS) CrashAfter(n int64, torn *rand.Rand) {
	m.CrashAfterTail(n, torn, TailTorn)
}

// CrashAfterTail is CrashAfter with a choice of what the unsynced tail of
// each file becomes (see Tail); rng drives the random lengths and bytes.
func (m *MemFS) CrashAfterTail(n int64, rng *rand.Rand, tail Tail) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.budget, m.torn, m.tail = n, rng, tail
}

// Crashed returns the file system as it came back after the power loss, or
// nil if there was none yet.
func (m *MemFS) Crashed() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashed
}

// Crash simulates a power loss now: m stops working and the returned MemFS
// holds only what was durable.
func (m *MemFS) Crash(torn *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.torn = torn
	m.crashLocked()
	return m.crashed
}

// Clone returns a copy of what is durable in m now (as Crash would, without
// a torn tail); m goes on working.
func (m *MemFS) Clone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	torn := m.torn
	m.torn = nil
	n := NewMemFS()
	n.root = m.cloneDurable(m.root)
	m.torn = torn
	return n
}

func (m *MemFS) crashLocked() {
	if m.dead {
		return
	}
	m.dead = true
	n := NewMemFS()
	n.root = m.cloneDurable(m.root)
	m.crashed = n
}

func (m *MemFS) cloneDurable(d *inode) *inode {
	out := newDir()
	for name, ino := range d.durable {
		var c *inode
		if ino.dir {
			c = m.cloneDurable(ino)
		} else {
			keep := len(ino.synced)
			if m.torn != nil && len(ino.data) > keep && string(ino.data[:keep]) == string(ino.synced) {
				keep += m.torn.IntN(len(ino.data) - keep + 1)
				c = &inode{data: append(append([]byte(nil), ino.data[:keep]...), m.junk()...)}
			} else {
				c = &inode{data: append([]byte(nil), ino.synced...)}
			}
			c.synced = append([]byte(nil), c.data...)
			c.dirty = int64(len(c.data))
		}
		out.entries[name], out.durable[name] = c, c
	}
	return out
}

// junk returns what TailZeros or TailGarbage appends after the kept bytes.
func (m *MemFS) junk() []byte {
	if m.tail == TailTorn {
		return nil
	}
	b := make([]byte, m.torn.IntN(8<<10+1))
	if m.tail == TailGarbage {
		for i := range b {
			b[i] = byte(m.torn.Uint32())
		}
	}
	return b
}

// mutate is called under m.mu by every mutating operation.
func (m *MemFS) mutate() error {
	if m.dead {
		return ErrPoweredOff
	}
	if m.budget == 0 {
		m.crashLocked()
		return ErrPoweredOff
	}
	if m.budget > 0 {
		m.budget--
	}
	return nil
}

func clean(name string) string { return path.Clean("/" + name) }

func (m *MemFS) lookup(name string) (*inode, error) {
	p := clean(name)
	cur := m.root
	if p == "/" {
		return cur, nil
	}
	for _, part := range splitPath(p) {
		if !cur.dir {
			return nil, &fs.PathError{Op: "lookup", Path: name, Err: syscall.ENOTDIR}
		}
		next, ok := cur.entries[part]
		if !ok {
			return nil, &fs.PathError{Op: "lookup", Path: name, Err: fs.ErrNotExist}
		}
		cur = next
	}
	return cur, nil
}

func splitPath(p string) []string {
	var parts []string
	for p != "/" {
		parts = append(parts, path.Base(p))
		p = path.Dir(p)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return parts
}

func (m *MemFS) parent(name string) (*inode, string, error) {
	p := clean(name)
	d, err := m.lookup(path.Dir(p))
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
	}
	return d, path.Base(p), nil
}

// OpenFile implements store.FS.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, ErrPoweredOff
	}
	d, base, err := m.parent(name)
	if err != nil {
		return nil, err
	}
	ino, ok := d.entries[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case ok && ino.dir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		if err := m.mutate(); err != nil {
			return nil, err
		}
		ino = &inode{}
		d.entries[base] = ino
	}
	if flag&os.O_TRUNC != 0 && len(ino.data) > 0 {
		if err := m.mutate(); err != nil {
			return nil, err
		}
		ino.data = ino.data[:0]
		ino.dirty = 0
	}
	return &memFile{fs: m, ino: ino, name: name, write: flag&(os.O_RDWR|os.O_WRONLY) != 0}, nil
}

// Rename implements store.FS.
func (m *MemFS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return err
	}
	od, ob, err := m.parent(oldName)
	if err != nil {
		return err
	}
	ino, ok := od.entries[ob]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldName, Err: fs.ErrNotExist}
	}
	nd, nb, err := m.parent(newName)
	if err != nil {
		return err
	}
	delete(od.entries, ob)
	nd.entries[nb] = ino
	return nil
}

// Remove implements store.FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return ErrPoweredOff
	}
	d, base, err := m.parent(name)
	if err != nil {
		return err
	}
	ino, ok := d.entries[base]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if ino.dir && len(ino.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	if err := m.mutate(); err != nil {
		return err
	}
	delete(d.entries, base)
	return nil
}

// ReadDir implements store.FS.
func (m *MemFS) ReadDir(name string) ([]store.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, ErrPoweredOff
	}
	d, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	if !d.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]store.DirEntry, 0, len(d.entries))
	for n, ino := range d.entries {
		out = append(out, store.DirEntry{Name: n, IsDir: ino.dir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MkdirAll implements store.FS. New directories are durable only after
// their parent is synced.
func (m *MemFS) MkdirAll(name string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return ErrPoweredOff
	}
	cur := m.root
	for _, part := range splitPath(clean(name)) {
		next, ok := cur.entries[part]
		if !ok {
			if err := m.mutate(); err != nil {
				return err
			}
			next = newDir()
			cur.entries[part] = next
		} else if !next.dir {
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		cur = next
	}
	return nil
}

// SyncDir implements store.FS: the directory's current entries become
// durable.
func (m *MemFS) SyncDir(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return err
	}
	d, err := m.lookup(name)
	if err != nil {
		return err
	}
	if !d.dir {
		return &fs.PathError{Op: "syncdir", Path: name, Err: syscall.ENOTDIR}
	}
	d.durable = make(map[string]*inode, len(d.entries))
	for n, ino := range d.entries {
		d.durable[n] = ino
	}
	return nil
}

// Lock implements store.FS with an in-process lock table.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return nil, ErrPoweredOff
	}
	p := clean(name)
	if m.locks[p] {
		return nil, fmt.Errorf("%w: %s", store.ErrLocked, name)
	}
	m.locks[p] = true
	return unlocker(func() {
		m.mu.Lock()
		delete(m.locks, p)
		m.mu.Unlock()
	}), nil
}

type unlocker func()

func (u unlocker) Close() error { u(); return nil }

// ReadFile returns the current contents of a file (for tests).
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), ino.data...), nil
}

// WriteFile replaces a file's contents and makes it durable, creating it and
// its directory entry durably (for tests that plant data).
func (m *MemFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parent(name)
	if err != nil {
		return err
	}
	ino := &inode{data: append([]byte(nil), data...), dirty: int64(len(data))}
	ino.synced = append([]byte(nil), data...)
	d.entries[base], d.durable[base] = ino, ino
	return nil
}

type memFile struct {
	fs     *MemFS
	ino    *inode
	name   string
	write  bool
	closed bool
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead {
		return 0, ErrPoweredOff
	}
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off < 0 {
		return 0, errors.New("storetest: negative offset")
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.ino.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return 0, err
	}
	if err := f.fs.mutate(); err != nil {
		return 0, err
	}
	if end := off + int64(len(b)); end > int64(len(f.ino.data)) {
		if end > int64(cap(f.ino.data)) {
			nd := make([]byte, end, max(end, 2*int64(cap(f.ino.data))))
			copy(nd, f.ino.data)
			f.ino.data = nd
		} else {
			f.ino.data = f.ino.data[:end]
		}
	}
	copy(f.ino.data[off:], b)
	f.ino.dirty = min(f.ino.dirty, off)
	return len(b), nil
}

func (f *memFile) check() error {
	switch {
	case f.fs.dead:
		return ErrPoweredOff
	case f.closed:
		return fs.ErrClosed
	case !f.write:
		return &fs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	if err := f.fs.mutate(); err != nil {
		return err
	}
	if size <= int64(len(f.ino.data)) {
		f.ino.data = f.ino.data[:size]
	} else {
		f.ino.data = append(f.ino.data, make([]byte, size-int64(len(f.ino.data)))...)
	}
	f.ino.dirty = min(f.ino.dirty, size)
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead {
		return ErrPoweredOff
	}
	if f.closed {
		return fs.ErrClosed
	}
	if err := f.fs.mutate(); err != nil {
		return err
	}
	f.ino.sync()
	return nil
}

// sync makes the file's current data durable.
func (ino *inode) sync() {
	keep := min(ino.dirty, int64(len(ino.synced)), int64(len(ino.data)))
	ino.synced = append(ino.synced[:keep], ino.data[keep:]...)
	ino.dirty = int64(len(ino.data))
}

// SyncFilesystem implements store.FilesystemSyncer like syncfs(2): every
// file's data and every directory's entries of the MemFS become durable.
func (f *memFile) SyncFilesystem() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead {
		return ErrPoweredOff
	}
	if f.closed {
		return fs.ErrClosed
	}
	if err := f.fs.mutate(); err != nil {
		return err
	}
	syncTree(f.fs.root)
	return nil
}

// syncTree makes the directory d and everything under it durable.
func syncTree(d *inode) {
	d.durable = make(map[string]*inode, len(d.entries))
	for n, ino := range d.entries {
		d.durable[n] = ino
		if ino.dir {
			syncTree(ino)
		} else {
			ino.sync()
		}
	}
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead {
		return 0, ErrPoweredOff
	}
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	return nil
}
