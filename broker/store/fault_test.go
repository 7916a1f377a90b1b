package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// TestIOErrorIsSticky injects a failed fsync and a failed write: the
// partition acknowledges nothing after the failure, writes no clean marker,
// and recovers cleanly on reopen.
func TestIOErrorIsSticky(t *testing.T) {
	for _, op := range []struct {
		name string
		op   storetest.Op
	}{{"fsync", storetest.OpSync}, {"write", storetest.OpWrite}} {
		t.Run(op.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
				ffs := storetest.NewFaultFS(fsys)
				s := mustOpen(t, dir, store.Options{FS: ffs})
				p := mustPart(t, s, "t", 0)
				appendN(t, p, 0, 10)
				goodEnd := p.End()
				ffs.Inject(op.op, ".meta", syscall.EIO, 1)
				if _, err := p.AppendSync(ctxT(t), payload(10), 0); !errors.Is(err, store.ErrFailed) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("append during the fault: %v", err)
				}
				// The fault is gone, but the partition stays failed.
				if err := p.Append(payload(11), 0, func(store.AppendResult, error) { t.Error("acked after failure") }); !errors.Is(err, store.ErrFailed) {
					t.Fatalf("append after the fault: %v", err)
				}
				if !errors.Is(p.Err(), store.ErrFailed) || p.End() != goodEnd {
					t.Fatalf("Err %v End %d", p.Err(), p.End())
				}
				// Reads keep working.
				checkRecords(t, readAll(t, p), 0, 10)
				s.Close()
				if _, err := fsys.OpenFile(filepath.Join(dir, "t-0", "CLEAN"), os.O_RDONLY, 0); err == nil {
					t.Fatal("clean marker written after an I/O error")
				}
				s = mustOpen(t, dir, store.Options{FS: fsys})
				defer s.Close()
				p = mustPart(t, s, "t", 0)
				recs := readAll(t, p)
				if len(recs) == 11 { // written, fsync failed: may survive in the page cache, never acked
					recs = recs[:10]
				}
				checkRecords(t, recs, 0, 10)
				appendN(t, p, 100, 1)
			})
		})
	}
}

// TestNoSpaceInjected makes a write fail with ENOSPC after a partial write:
// a clear error, nothing sticky, no garbage left, appends resume.
func TestNoSpaceInjected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		ffs := storetest.NewFaultFS(fsys)
		s := mustOpen(t, dir, store.Options{FS: ffs})
		p := mustPart(t, s, "t", 0)
		appendN(t, p, 0, 5)
		ffs.Inject(storetest.OpWrite, ".meta", syscall.ENOSPC, 1)
		_, err := p.AppendSync(ctxT(t), payload(5), 0)
		if !errors.Is(err, store.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append on a full disk: %v", err)
		}
		t.Logf("error seen by the producer: %v", err)
		checkRecords(t, readAll(t, p), 0, 5)
		appendN(t, p, 5, 5)
		checkRecords(t, readAll(t, p), 0, 10)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Verify(fsys, filepath.Join(dir, "t-0")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatchGuardAfterNoSpace: a batch that hit ENOSPC must not leave a
// guard that later cuts acknowledged single messages after a power loss.
func TestBatchGuardAfterNoSpace(t *testing.T) {
	mem := storetest.NewMemFS()
	ffs := storetest.NewFaultFS(mem)
	s := mustOpen(t, "/data", store.Options{FS: ffs})
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 3)
	ffs.Inject(storetest.OpWrite, ".meta", syscall.ENOSPC, 1)
	big := make([]byte, 1000)
	if _, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: big}, {Data: big}}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("batch on a full disk: %v", err)
	}
	appendN(t, p, 3, 3)
	crashed := mem.Crash(nil)
	s.Close()
	s2 := mustOpen(t, "/data", store.Options{FS: crashed})
	defer s2.Close()
	checkRecords(t, readAll(t, mustPart(t, s2, "t", 0)), 0, 6)
}

// TestBatchAtomicAfterTornWrite: a batch written but not fsynced, of which
// the power loss kept only a part, disappears entirely on recovery.
func TestBatchAtomicAfterTornWrite(t *testing.T) {
	for keep := 1; keep < 3; keep++ {
		mem := storetest.NewMemFS()
		ffs := storetest.NewFaultFS(mem)
		s := mustOpen(t, "/data", store.Options{FS: ffs})
		p := mustPart(t, s, "t", 0)
		appendN(t, p, 0, 2)
		end := p.End()
		ffs.Inject(storetest.OpSync, ".meta", syscall.EIO, 1) // the batch is written, never synced
		batch := []store.Message{{Data: payload(2)}, {Data: payload(3)}, {Data: payload(4)}}
		if _, err := p.AppendBatchSync(ctxT(t), batch); err == nil {
			t.Fatal("batch acked despite the failed fsync")
		}
		// Power loss that keeps the first `keep` messages of the batch.
		cut := end
		for _, m := range batch[:keep] {
			cut += store.HeaderSize + int64(len(m.Data))
		}
		crashed := mem.Crash(nil)
		s.Close()
		seg, _ := mem.ReadFile("/data/t-0/00000000000000000000.meta")
		if err := crashed.WriteFile("/data/t-0/00000000000000000000.meta", seg[:cut]); err != nil {
			t.Fatal(err)
		}
		s2 := mustOpen(t, "/data", store.Options{FS: crashed})
		p2 := mustPart(t, s2, "t", 0)
		if p2.End() != end {
			t.Fatalf("keep %d: recovered end %d, want %d (batch dropped whole)", keep, p2.End(), end)
		}
		s2.Close()
	}
}

// TestNoSpaceOnBatchGuard: ENOSPC while recording the batch guard fails the
// batch without failing the partition.
func TestNoSpaceOnBatchGuard(t *testing.T) {
	mem := storetest.NewMemFS()
	ffs := storetest.NewFaultFS(mem)
	s := mustOpen(t, "/data", store.Options{FS: ffs})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 2)
	ffs.Inject(storetest.OpWrite, "BATCH", syscall.ENOSPC, 1)
	if _, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: payload(2), Flag: 2}, {Data: payload(3)}}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("batch: %v", err)
	}
	if _, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: payload(2), Flag: 2}, {Data: payload(3)}}); err != nil {
		t.Fatalf("batch after space came back: %v", err)
	}
	checkRecords(t, readAll(t, p), 0, 4)
}
