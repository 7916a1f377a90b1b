package store_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// TestDiskFullTmpfs runs the store on a 4 MiB tmpfs: appends fail with a
// clear ENOSPC error, reads keep working, and appends resume without a
// restart once space is freed. Needs root (mount); skipped otherwise.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a size-limited tmpfs; skipping the real disk-full test")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs (%v: %s); skipping the real disk-full test", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "data")
	s := mustOpen(t, dir, store.Options{})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 10)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 64<<10)
	var err error
	var took time.Duration
	for i := 0; i < 100; i++ {
		start := time.Now()
		_, err = p.AppendSync(ctxT(t), msg, 0)
		took = time.Since(start)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, store.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	t.Logf("producer saw after %v: %v", took, err)
	end := p.End()
	if recs := readAll(t, p); len(recs) < 10 || p.End() != end {
		t.Fatalf("reads on a full disk: %d messages", len(recs))
	}
	if err := p.Err(); err != nil {
		t.Fatalf("ENOSPC made the partition fail: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendSync(ctxT(t), msg, 0); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	s.Close()
	if _, err := store.Verify(nil, filepath.Join(dir, "t-0")); err != nil {
		t.Fatalf("partial message left behind: %v", err)
	}
}
