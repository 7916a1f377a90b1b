package store_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// TestFilePermissions: the store creates files 0640 and directories 0750
// (checked with a umask of 0, so nothing is masked off).
func TestFilePermissions(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data", "nested")
	s := mustOpen(t, dir, store.Options{MaxSegmentSize: 300,
		Retention: store.RetentionPolicy{MaxBytes: 1, Action: store.ArchiveZip}})
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 20)
	// A multi-message batch: the BATCH file is created on first use.
	if _, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: []byte("a")}, {Data: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RunRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pdir := filepath.Join(dir, "t-0")
	want := map[string]os.FileMode{
		filepath.Dir(dir):            0o750 | os.ModeDir,
		dir:                          0o750 | os.ModeDir,
		pdir:                         0o750 | os.ModeDir,
		filepath.Join(dir, "LOCK"):   0o640,
		filepath.Join(pdir, "CLEAN"): 0o640,
		filepath.Join(pdir, "BATCH"): 0o640,
		filepath.Join(pdir, "00000000000000000000.zip"): 0o640,
	}
	ents, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if ext := filepath.Ext(e.Name()); ext == ".meta" || ext == ".idx" {
			want[filepath.Join(pdir, e.Name())] = 0o640
		}
	}
	for name, mode := range want {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), mode)
		}
	}
}
