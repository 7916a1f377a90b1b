package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// syncBuffer is a log sink for concurrent partition openers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRetentionDeletesOldestFirst holds a reader on the oldest segment
// while retention removes several: none of the newer ones may be deleted
// before it, or a crash now would leave a hole in the log. A power loss at
// that moment must recover a log without a gap.
func TestRetentionDeletesOldestFirst(t *testing.T) {
	mem := storetest.NewMemFS()
	s := mustOpen(t, "/data", store.Options{FS: mem, MaxSegmentSize: 300,
		Retention: store.RetentionPolicy{MaxBytes: 700}})
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 60)
	pdir := "/data/t-0"
	before := segFiles(t, mem, pdir, ".meta")
	sl, err := p.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RunRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	removed := len(before) - p.Stats().Segments
	if removed < 3 {
		t.Fatalf("retention removed %d segments, the test needs several", removed)
	}
	if got := segFiles(t, mem, pdir, ".meta"); len(got) != len(before) {
		t.Fatalf("segments deleted while an older one is still held: %v, before %v", got, before)
	}
	crashed := mem.Crash(nil)
	sl.Release()
	s.Close()

	s2, err := store.Open("/data", store.Options{FS: crashed, MaxSegmentSize: 300, RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	p2 := mustPart(t, s2, "t", 0)
	if p2.Err() != nil || p2.Earliest() != 0 || len(readAll(t, p2)) != 60 {
		t.Fatalf("after the crash: err %v, earliest %d", p2.Err(), p2.Earliest())
	}
	// Once the reader is gone everything retention removed is deleted.
	sl, err = p2.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	s2.RunRetention(time.Now())
	sl.Release()
	if got := segFiles(t, crashed, pdir, ".meta"); len(got) != p2.Stats().Segments {
		t.Fatalf("after release: files %v for %d segments", got, p2.Stats().Segments)
	}
}

// TestRecoveryToleratesGap removes a segment from the middle of a log: the
// partition opens from the first segment after the hole with a warning
// naming it, and other partitions are not affected.
func TestRecoveryToleratesGap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		opts := store.Options{FS: fsys, MaxSegmentSize: 300}
		s := mustOpen(t, dir, opts)
		p := mustPart(t, s, "t", 0)
		res := appendN(t, p, 0, 40)
		appendN(t, mustPart(t, s, "u", 0), 0, 10)
		s.Close()
		pdir := filepath.Join(dir, "t-0")
		files := segFiles(t, fsys, pdir, ".meta")
		if len(files) < 4 {
			t.Fatalf("want several segments, got %v", files)
		}
		var gapFrom, gapTo int64
		fmt.Sscanf(files[1], "%d", &gapFrom)
		fmt.Sscanf(files[2], "%d", &gapTo)
		for _, name := range []string{files[1], strings.Replace(files[1], ".meta", ".idx", 1)} {
			if err := fsys.Remove(filepath.Join(pdir, name)); err != nil {
				t.Fatal(err)
			}
		}
		var logs syncBuffer
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		s = mustOpen(t, dir, opts)
		defer s.Close()
		p = mustPart(t, s, "t", 0)
		if p.Err() != nil || p.Earliest() != gapTo {
			t.Fatalf("earliest %d (err %v), want %d, the segment after the gap", p.Earliest(), p.Err(), gapTo)
		}
		recs := readAll(t, p)
		if len(recs) == 0 || recs[0].Offset != gapTo || recs[len(recs)-1].Offset != res[39].Offset {
			t.Fatalf("read %d messages from %d", len(recs), recs[0].Offset)
		}
		var small *store.OffsetTooSmallError
		if _, err := p.Read(0, 100); !errors.As(err, &small) || small.Earliest != gapTo {
			t.Fatalf("read before the gap: %v", err)
		}
		want := fmt.Sprintf("topic=t partition=0 missing_from=%d missing_to=%d", gapFrom, gapTo)
		if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, want) {
			t.Fatalf("no warning naming the gap (%q) in:\n%s", want, out)
		}
		if u := mustPart(t, s, "u", 0); u.Err() != nil || len(readAll(t, u)) != 10 {
			t.Fatalf("other partition: %v", u.Err())
		}
		if _, err := p.AppendSync(ctxT(t), []byte("after the gap"), 0); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnopenablePartitionFailsAlone: a partition whose files cannot be
// opened does not stop Store.Open; it is listed as failed, reads and
// appends get ErrFailed, the other partitions work.
func TestUnopenablePartitionFailsAlone(t *testing.T) {
	mem := storetest.NewMemFS()
	s := mustOpen(t, "/data", store.Options{FS: mem})
	appendN(t, mustPart(t, s, "bad", 0), 0, 5)
	appendN(t, mustPart(t, s, "good", 0), 0, 5)
	s.Close()
	ffs := storetest.NewFaultFS(mem)
	ffs.Inject(storetest.OpOpen, "bad-0/", syscall.EIO, -1)
	s, err := store.Open("/data", store.Options{FS: ffs, RetentionInterval: -1})
	if err != nil {
		t.Fatalf("Open with one bad partition: %v", err)
	}
	defer s.Close()
	failed := s.FailedPartitions()
	if len(failed) != 1 || failed[0].Topic != "bad" || failed[0].Partition != 0 || !failed[0].Reads ||
		!errors.Is(failed[0].Err, store.ErrFailed) || !errors.Is(failed[0].Err, syscall.EIO) || failed[0].Since.IsZero() {
		t.Fatalf("FailedPartitions = %+v", failed)
	}
	bad, err := s.Partition("bad", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Read(0, 100); !errors.Is(err, store.ErrFailed) {
		t.Fatalf("read of the failed partition: %v", err)
	}
	if _, err := bad.AppendSync(ctxT(t), []byte("x"), 0); !errors.Is(err, store.ErrFailed) {
		t.Fatalf("append to the failed partition: %v", err)
	}
	good := mustPart(t, s, "good", 0)
	if len(readAll(t, good)) != 5 {
		t.Fatal("good partition unreadable")
	}
	appendN(t, good, 5, 1)
}
