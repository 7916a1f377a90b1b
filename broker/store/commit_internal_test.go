package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeFS is a file system of fakeFiles: a write bumps a file's version; a
// Sync makes the file's current version durable, a SyncFilesystem every
// file's.
type fakeFS struct {
	mu      sync.Mutex
	files   []*fakeFile
	fsErr   error // returned by SyncFilesystem (after it synced nothing)
	fsSyncs atomic.Int64
	syncs   atomic.Int64
}

type fakeFile struct {
	File // unused methods
	fs   *fakeFS
	name string
	err  error // returned by Sync

	written atomic.Int64
	durable atomic.Int64
}

func (f *fakeFile) Sync() error {
	f.fs.syncs.Add(1)
	if f.err != nil {
		return f.err
	}
	f.durable.Store(f.written.Load())
	return nil
}

func (f *fakeFile) SyncFilesystem() error {
	f.fs.fsSyncs.Add(1)
	if f.fs.fsErr != nil {
		return f.fs.fsErr
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	for _, g := range f.fs.files {
		g.durable.Store(g.written.Load())
	}
	return nil
}

func (fs *fakeFS) file(name string) *fakeFile {
	f := &fakeFile{fs: fs, name: name}
	fs.mu.Lock()
	fs.files = append(fs.files, f)
	fs.mu.Unlock()
	return f
}

// TestCommitterNeverReportsAnUnsyncedWrite: many partitions write and commit
// concurrently; every successful commit covers the write made before it,
// whether the cycle synced files one by one or the file system at once.
func TestCommitterNeverReportsAnUnsyncedWrite(t *testing.T) {
	for _, fsMin := range []int{2, 1 << 30} {
		t.Run(fmt.Sprintf("fsMin=%d", fsMin), func(t *testing.T) {
			fs := &fakeFS{}
			c := newCommitter(3, fsMin)
			const parts, rounds = 20, 300
			var wg sync.WaitGroup
			for i := 0; i < parts; i++ {
				f := fs.file(fmt.Sprint(i))
				r := &syncReq{file: f, root: "/data", ch: make(chan bool, 1)}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 1; k <= rounds; k++ {
						f.written.Store(int64(k))
						if err := c.sync(r); err != nil {
							t.Errorf("sync: %v", err)
							return
						}
						if d := f.durable.Load(); d < int64(k) {
							t.Errorf("file %s: commit of write %d reported, durable only %d", f.name, k, d)
							return
						}
					}
				}()
			}
			wg.Wait()
			total := fs.syncs.Load() + fs.fsSyncs.Load()
			t.Logf("%d commits took %d file syncs and %d file-system syncs", parts*rounds, fs.syncs.Load(), fs.fsSyncs.Load())
			if fsMin == 2 && fs.fsSyncs.Load() == 0 {
				t.Errorf("no cycle used a file-system sync")
			}
			if total >= parts*rounds && fsMin == 2 {
				t.Errorf("%d syncs for %d commits: cycles did not combine partitions", total, parts*rounds)
			}
		})
	}
}

// TestCommitterChargesASyncErrorOnlyToItsFile: when the file-system sync
// fails, every file of the cycle is synced on its own, and only the file
// whose sync fails gets an error.
func TestCommitterChargesASyncErrorOnlyToItsFile(t *testing.T) {
	for _, fsMin := range []int{2, 1 << 30} {
		t.Run(fmt.Sprintf("fsMin=%d", fsMin), func(t *testing.T) {
			fs := &fakeFS{fsErr: errors.New("syncfs: EIO")}
			c := newCommitter(2, fsMin)
			eio := errors.New("fdatasync: EIO")
			var batch, tail *syncReq
			for i := 0; i < 5; i++ {
				f := fs.file(fmt.Sprint(i))
				f.written.Store(1)
				if i == 3 {
					f.err = eio
				}
				r := &syncReq{file: f, root: "/data", ch: make(chan bool, 1)}
				if tail == nil {
					batch = r
				} else {
					tail.next = r
				}
				tail = r
			}
			c.syncBatch(batch)
			i := 0
			for q := batch; q != nil; q = q.next {
				f := q.file.(*fakeFile)
				switch {
				case i == 3 && !errors.Is(q.err, eio):
					t.Errorf("file 3: err %v, want its own sync error", q.err)
				case i != 3 && q.err != nil:
					t.Errorf("file %d: err %v, want nil (the failure was another file's)", i, q.err)
				case i != 3 && f.durable.Load() != 1:
					t.Errorf("file %d: reported synced but not durable", i)
				}
				i++
			}
		})
	}
}
