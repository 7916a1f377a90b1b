package store_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// countingFS counts directory syncs.
type countingFS struct {
	store.FS
	syncDirs atomic.Int64
}

func (f *countingFS) SyncDir(name string) error {
	f.syncDirs.Add(1)
	return f.FS.SyncDir(name)
}

// TestCleanStartSyncsNoPartitionDirectory: after a clean shutdown, opening
// many partitions costs one directory sync per data root (and its parent), not one per
// partition; the clean marker goes (durably) with the first append, so a
// power loss after that append recovers by scanning, not by trusting it.
func TestCleanStartSyncsNoPartitionDirectory(t *testing.T) {
	mem := storetest.NewMemFS()
	const parts = 50
	s := mustOpen(t, "/data", store.Options{FS: mem})
	for i := 0; i < parts; i++ {
		appendN(t, mustPart(t, s, "t", i), 0, 3)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfs := &countingFS{FS: mem}
	s = mustOpen(t, "/data", store.Options{FS: cfs})
	if n := cfs.syncDirs.Load(); n > 2 {
		t.Fatalf("clean start of %d partitions synced %d directories, want 2 (the data directory and its parent)", parts, n)
	}
	p := mustPart(t, s, "t", 7)
	if _, err := mem.ReadFile(filepath.Join("/data/t-7", "CLEAN")); err != nil {
		t.Fatalf("the clean marker went before anything was written: %v", err)
	}
	if _, err := p.AppendSync(ctxT(t), []byte("after the clean start"), 0); err != nil {
		t.Fatal(err)
	}
	crashed := mem.Crash(nil)
	if _, err := crashed.ReadFile(filepath.Join("/data/t-7", "CLEAN")); err == nil {
		t.Fatal("the clean marker survived a power loss after an append")
	}
	if _, err := crashed.ReadFile(filepath.Join("/data/t-8", "CLEAN")); err != nil {
		t.Fatalf("an untouched partition lost its clean marker: %v", err)
	}
	s2 := mustOpen(t, "/data", store.Options{FS: crashed})
	defer s2.Close()
	if got := len(readAll(t, mustPart(t, s2, "t", 7))); got != 4 {
		t.Fatalf("recovered %d messages, want 4", got)
	}
}
