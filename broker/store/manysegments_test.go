package store_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
)

// TestManySegmentsBoundedOpenFiles opens a partition of 10,000 segments
// under a descriptor limit of 4,096 and reads every message with
// MaxOpenSegments 16: the store never holds more than 16 closed segments
// open (while no more than 16 reads are in flight), every read is
// correct, and slices in flight keep their segment open past the limit.
func TestManySegmentsBoundedOpenFiles(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	dir := t.TempDir()
	pdir := filepath.Join(dir, "t-0")
	if err := os.MkdirAll(pdir, 0o750); err != nil {
		t.Fatal(err)
	}
	var off int64
	for i := 0; i < n; i++ {
		seg := store.AppendMessage(nil, int64(i+1)<<22, 0, payload(i))
		if err := os.WriteFile(filepath.Join(pdir, fmt.Sprintf("%020d.meta", off)), seg, 0o640); err != nil {
			t.Fatal(err)
		}
		off += int64(len(seg))
	}
	limitFiles(t, 4096)
	const maxOpen = 16
	s := mustOpen(t, dir, store.Options{MaxOpenSegments: maxOpen, MaxSegmentSize: 64})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	base := countFDs(t)
	recs := readAll(t, p)
	if len(recs) != n {
		t.Fatalf("read %d messages, want %d", len(recs), n)
	}
	for i, r := range recs {
		if !bytes.Equal(r.Data, payload(i)) {
			t.Fatalf("message %d: %q", i, r.Data)
		}
	}
	if open, peak := store.OpenSegmentFiles(s); open > maxOpen || peak > maxOpen {
		t.Fatalf("open segment files: %d now, %d at most; limit %d", open, peak, maxOpen)
	}
	if fds := countFDs(t); fds > base+maxOpen {
		t.Fatalf("%d descriptors after reading, %d before", fds, base)
	}
	// Slices in flight are never closed under the reader.
	var held []store.Slice
	for i := 0; i < 2*maxOpen; i++ {
		sl, err := p.Read(recs[i].Offset, 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sl)
	}
	for i := range held {
		b, err := held[i].ValidBytes()
		if err != nil || !bytes.Contains(b, payload(i)) {
			t.Fatalf("held slice %d: %v", i, err)
		}
		held[i].Release()
	}
	if open, _ := store.OpenSegmentFiles(s); open > maxOpen {
		t.Fatalf("%d segment files open after the held slices were released", open)
	}
}

// limitFiles lowers the soft RLIMIT_NOFILE for the test.
func limitFiles(t *testing.T, n uint64) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if old.Cur <= n {
		return
	}
	lim := old
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}
