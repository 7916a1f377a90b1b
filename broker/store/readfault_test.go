package store_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
)

// TestTruncatedSegmentFailsPartition shrinks segment files under readers:
// through the memory map (SIGBUS) and through pread. The process lives,
// that partition fails (reads and appends get ErrFailed, FailedPartitions
// lists it), the other partition keeps working, and no clean marker is
// written for it.
func TestTruncatedSegmentFailsPartition(t *testing.T) {
	for _, c := range []struct {
		name   string
		closed bool // damage a closed segment (else the active one)
	}{{"active segment", false}, {"closed segment", true}} {
		t.Run(c.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
				opts := store.Options{FS: fsys}
				if c.closed {
					opts.MaxSegmentSize = 400
				}
				s := mustOpen(t, dir, opts)
				defer s.Close()
				p := mustPart(t, s, "t", 0)
				other := mustPart(t, s, "u", 0)
				appendN(t, p, 0, 30)
				appendN(t, other, 0, 3)
				sl, err := p.Read(0, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sl.ValidBytes(); err != nil { // maps the file
					t.Fatal(err)
				}
				shrink(t, fsys, filepath.Join(dir, "t-0", "00000000000000000000.meta"))
				b, err := sl.ValidBytes()
				sl.Release()
				if !errors.Is(err, store.ErrFailed) || b != nil {
					t.Fatalf("read of a shrunk segment: %d bytes, %v", len(b), err)
				}
				if _, mapped := fsys.(store.OSFS); mapped && !strings.Contains(err.Error(), "memory fault") {
					t.Fatalf("the OS backend read through the mapping, want a memory fault: %v", err)
				}
				failed := s.FailedPartitions()
				if len(failed) != 1 || failed[0].Topic != "t" || !failed[0].Reads || !errors.Is(p.Err(), store.ErrFailed) {
					t.Fatalf("FailedPartitions = %+v, Err %v", failed, p.Err())
				}
				if _, err := p.Read(0, 100); !errors.Is(err, store.ErrFailed) {
					t.Fatalf("read after the fault: %v", err)
				}
				if _, err := p.AppendSync(ctxT(t), []byte("x"), 0); !errors.Is(err, store.ErrFailed) {
					t.Fatalf("append after the fault: %v", err)
				}
				if len(readAll(t, other)) != 3 {
					t.Fatal("the other partition was affected")
				}
				appendN(t, other, 3, 1)
				s.Close()
				if ents := mustReadDir(t, fsys, filepath.Join(dir, "t-0")); hasName(ents, "CLEAN") {
					t.Fatal("clean marker written for a failed partition")
				}
			})
		})
	}
}

func shrink(t *testing.T, fsys store.FS, name string) {
	t.Helper()
	f, err := fsys.OpenFile(name, osRDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
}

func hasName(ents []store.DirEntry, name string) bool {
	for _, e := range ents {
		if e.Name == name {
			return true
		}
	}
	return false
}
