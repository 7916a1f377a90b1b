package store_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// TestConformance runs the same behaviour checks against the OS file system
// and the strict in-memory one (ARCHITECTURE practice 2).
func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		f    func(t *testing.T, fsys store.FS, dir string)
	}{
		{"append then read back in order", testAppendRead},
		{"segments roll and reads never cross them", testRoll},
		{"batch is contiguous and gets ids", testBatch},
		{"read errors map to wire answers", testReadErrors},
		{"read returns a whole message beyond maxSize", testWholeMessage},
		{"offset lookup never lands inside a message", testOffsetLookup},
		{"concurrent appenders share fsyncs", testConcurrentGroupCommit},
		{"threshold mode acks before visibility", testThreshold},
		{"clean restart skips the scan, dirty one truncates", testCleanVsDirty},
		{"second open of a locked directory fails", testLock},
		{"a slice outlives Close until released", testSliceOutlivesClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { forEachBackend(t, c.f) })
	}
}

func appendN(t *testing.T, p *store.Partition, from, n int) []store.AppendResult {
	t.Helper()
	var out []store.AppendResult
	for i := from; i < from+n; i++ {
		r, err := p.AppendSync(ctxT(t), payload(i), int32(i%3))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

func checkRecords(t *testing.T, got []record, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("read %d messages, want %d", len(got), n)
	}
	var prevID int64
	for k, r := range got {
		i := from + k
		if !bytes.Equal(r.Data, payload(i)) || r.Flag != int32(i%3) {
			t.Fatalf("message %d: got %q flag %d", i, r.Data, r.Flag)
		}
		if r.ID <= prevID {
			t.Fatalf("message %d: id %d not above %d", i, r.ID, prevID)
		}
		prevID = r.ID
	}
}

func testAppendRead(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys, BrokerID: 7})
	defer s.Close()
	p := mustPart(t, s, "orders", 3)
	res := appendN(t, p, 0, 100)
	var want int64
	for i, r := range res {
		if r.Offset != want {
			t.Fatalf("message %d at offset %d, want %d", i, r.Offset, want)
		}
		if r.MsgID <= 0 || (r.MsgID>>12)&1023 != 7 {
			t.Fatalf("bad id %x", r.MsgID)
		}
		want += store.HeaderSize + int64(len(payload(i)))
	}
	if p.End() != want {
		t.Fatalf("End = %d, want %d", p.End(), want)
	}
	checkRecords(t, readAll(t, p), 0, 100)
	st := p.Stats()
	if st.Messages != 100 || st.MinOffset != 0 || st.MaxOffset != want || st.Bytes != want {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, store.Options{FS: fsys, BrokerID: 7})
	defer s2.Close()
	p2, err := s2.Partition("orders", 3, false)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readAll(t, p2), 0, 100)
	if got := p2.Stats(); got != st {
		t.Fatalf("stats after reopen %+v, want %+v", got, st)
	}
	if _, err := s2.Partition("orders", 4, false); !errors.Is(err, store.ErrNoPartition) {
		t.Fatalf("missing partition: %v", err)
	}
	if _, err := s2.Partition("../x", 0, true); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("bad topic: %v", err)
	}
}

func testRoll(t *testing.T, fsys store.FS, dir string) {
	opts := store.Options{FS: fsys, MaxSegmentSize: 500}
	s := mustOpen(t, dir, opts)
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 60)
	if n := p.Stats().Segments; n < 5 {
		t.Fatalf("only %d segments", n)
	}
	// Every read stays within one segment.
	for off := p.Earliest(); off < p.End(); {
		sl, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if sl.FilePos()+int64(sl.Size) > 500+200 {
			t.Fatalf("slice at %d crosses a segment: pos %d size %d", off, sl.FilePos(), sl.Size)
		}
		off += int64(sl.Size)
		sl.Release()
	}
	ents, _ := fsys.ReadDir(filepath.Join(dir, "t-0"))
	var metas int
	for _, e := range ents {
		if filepath.Ext(e.Name) == ".meta" {
			metas++
			if len(e.Name) != 25 {
				t.Fatalf("bad segment name %q", e.Name)
			}
		}
	}
	if metas != p.Stats().Segments {
		t.Fatalf("%d segment files, %d segments", metas, p.Stats().Segments)
	}
	s.Close()
	s = mustOpen(t, dir, opts)
	defer s.Close()
	p = mustPart(t, s, "t", 0)
	appendN(t, p, 60, 10)
	checkRecords(t, readAll(t, p), 0, 70)
}

func testBatch(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 2)
	preset := s.NewMessageID()
	msgs := []store.Message{{Data: payload(2), Flag: 2}, {Data: payload(3), Flag: 0, ID: preset}, {Data: payload(4), Flag: 1}}
	r, err := p.AppendBatchSync(ctxT(t), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 3 || r.MsgID != msgs[0].ID || msgs[0].ID == 0 || msgs[2].ID == 0 || msgs[1].ID != preset {
		t.Fatalf("result %+v msgs %+v", r, msgs)
	}
	got := readAll(t, p)
	if len(got) != 5 || got[2].Offset != r.Offset || got[3].ID != preset || got[4].ID != msgs[2].ID {
		t.Fatalf("batch read back wrong: %+v", got)
	}
}

func testReadErrors(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300,
		Retention: store.RetentionPolicy{MaxBytes: 1}})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	if _, err := p.Read(0, 100); !errors.Is(err, store.ErrCaughtUp) {
		t.Fatalf("empty partition: %v", err)
	}
	appendN(t, p, 0, 30)
	end := p.End()
	if _, err := p.Read(end, 100); !errors.Is(err, store.ErrCaughtUp) {
		t.Fatalf("read at end: %v", err)
	}
	var big *store.OffsetTooLargeError
	if _, err := p.Read(end+1, 100); !errors.As(err, &big) || big.End != end || !errors.Is(err, store.ErrOffsetOutOfRange) {
		t.Fatalf("read beyond end: %v", err)
	}
	if err := s.RunRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	first := p.Earliest()
	if first == 0 || p.Stats().Segments != 1 {
		t.Fatalf("retention kept %d segments, earliest %d", p.Stats().Segments, first)
	}
	var small *store.OffsetTooSmallError
	if _, err := p.Read(0, 100); !errors.As(err, &small) || small.Earliest != first {
		t.Fatalf("read before start: %v", err)
	}
	if _, err := p.Read(first, 0); err == nil {
		t.Fatal("maxSize 0 accepted")
	}
}

func testWholeMessage(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	big := bytes.Repeat([]byte("x"), 5000)
	if _, err := p.AppendSync(ctxT(t), big, 0); err != nil {
		t.Fatal(err)
	}
	appendN(t, p, 1, 3)
	sl, err := p.Read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Release()
	if sl.Size != store.HeaderSize+5000 {
		t.Fatalf("slice size %d, want one whole message", sl.Size)
	}
	b, err := sl.ReadAll(nil)
	if err != nil || !bytes.Equal(b[store.HeaderSize:], big) {
		t.Fatalf("ReadAll: %v", err)
	}
	var buf bytes.Buffer
	if n, err := sl.WriteTo(&buf); err != nil || n != int64(sl.Size) || !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("WriteTo: %d %v", n, err)
	}
	// A partial tail is allowed: maxSize cut inside the second message.
	sl2, err := p.Read(0, store.HeaderSize+5000+5)
	if err != nil {
		t.Fatal(err)
	}
	defer sl2.Release()
	if sl2.Size != store.HeaderSize+5000+5 {
		t.Fatalf("size %d", sl2.Size)
	}
}

func testOffsetLookup(t *testing.T, fsys store.FS, dir string) {
	opts := store.Options{FS: fsys, IndexInterval: 256, MaxSegmentSize: 4000}
	s := mustOpen(t, dir, opts)
	p := mustPart(t, s, "t", 0)
	res := appendN(t, p, 0, 200)
	check := func(p *store.Partition) {
		t.Helper()
		for i, r := range res {
			size := store.HeaderSize + int64(len(payload(i)))
			for _, off := range []int64{r.Offset, r.Offset + 1, r.Offset + size/2, r.Offset + size - 1} {
				got, err := p.OffsetAtOrBefore(off)
				if err != nil || got != r.Offset {
					t.Fatalf("OffsetAtOrBefore(%d) = %d, %v; want %d", off, got, err, r.Offset)
				}
			}
		}
		if got, _ := p.OffsetAtOrBefore(p.End() + 100); got != p.End() {
			t.Fatalf("beyond end: %d", got)
		}
		if got, _ := p.OffsetAtOrBefore(-5); got != p.Earliest() {
			t.Fatalf("before start: %d", got)
		}
	}
	check(p)
	s.Close()
	s = mustOpen(t, dir, opts) // clean: indexes from sidecars
	check(mustPart(t, s, "t", 0))
	s.Close()
	for _, e := range mustReadDir(t, fsys, filepath.Join(dir, "t-0")) {
		if filepath.Ext(e.Name) == ".idx" || e.Name == "CLEAN" {
			fsys.Remove(filepath.Join(dir, "t-0", e.Name))
		}
	}
	s = mustOpen(t, dir, opts) // dirty and no sidecars: rebuilt by scanning
	defer s.Close()
	check(mustPart(t, s, "t", 0))
}

func mustReadDir(t *testing.T, fsys store.FS, dir string) []store.DirEntry {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// syncCounter counts fsyncs of segment files.
type syncCounter struct {
	store.FS
	mu    sync.Mutex
	syncs int
}

type countedFile struct {
	store.File
	c *syncCounter
}

func (c *syncCounter) OpenFile(name string, flag int, perm fsMode) (store.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countedFile{f, c}, nil
}

func (f countedFile) Sync() error {
	f.c.mu.Lock()
	f.c.syncs++
	f.c.mu.Unlock()
	return f.File.Sync()
}

func testConcurrentGroupCommit(t *testing.T, fsys store.FS, dir string) {
	cnt := &syncCounter{FS: fsys}
	s := mustOpen(t, dir, store.Options{FS: cnt})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	const writers, each = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := p.AppendSync(ctxT(t), payload(w*each+i), 0)
				if err != nil {
					errs <- err
					return
				}
				if p.End() < r.Offset {
					errs <- errors.New("acked message not visible")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAll(t, p)
	if len(got) != writers*each {
		t.Fatalf("%d messages", len(got))
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	if cnt.syncs >= writers*each {
		t.Fatalf("%d fsyncs for %d messages: no sharing", cnt.syncs, writers*each)
	}
	t.Logf("%d fsyncs for %d messages", cnt.syncs, writers*each)
}

func testThreshold(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys, Flush: store.FlushPolicy{
		Mode: store.Threshold, UnflushThreshold: 10, UnflushInterval: time.Hour}})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	// Nine messages: acked after the write, invisible until an fsync.
	appendN(t, p, 0, 9)
	if p.End() != 0 {
		t.Fatalf("visible end %d before any fsync", p.End())
	}
	// The tenth reaches the threshold: fsync before its ack.
	appendN(t, p, 9, 1)
	checkRecords(t, readAll(t, p), 0, 10)
	appendN(t, p, 10, 1)
	if err := p.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readAll(t, p), 0, 11)

	// The interval fsync makes a lone message visible without Flush.
	s2 := mustOpen(t, dir+"2", store.Options{FS: fsys, Flush: store.FlushPolicy{
		Mode: store.Threshold, UnflushThreshold: 1000, UnflushInterval: 20 * time.Millisecond}})
	defer s2.Close()
	p2 := mustPart(t, s2, "t", 0)
	appendN(t, p2, 0, 1)
	eventually(t, 5*time.Second, "interval fsync", func() bool { return p2.End() > 0 })
}

func testCleanVsDirty(t *testing.T, fsys store.FS, dir string) {
	opts := store.Options{FS: fsys}
	s := mustOpen(t, dir, opts)
	p := mustPart(t, s, "t", 0)
	res := appendN(t, p, 0, 20)
	s.Close()
	seg := filepath.Join(dir, "t-0", "00000000000000000000.meta")
	corruptByte(t, fsys, seg, res[10].Offset+store.HeaderSize)
	// Clean: the marker is trusted, no scan, so the damage is only found on read.
	s = mustOpen(t, dir, opts)
	p = mustPart(t, s, "t", 0)
	if p.Stats().Messages != 20 {
		t.Fatalf("clean open: %d messages", p.Stats().Messages)
	}
	sl, err := p.Read(res[10].Offset, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sl.ReadAll(nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("read of corrupt message: %v", err)
	}
	sl.Release()
	if _, err := p.Verify(); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Verify: %v", err)
	}
	s.Close()
	// Dirty (marker removed): the scan truncates at the corrupt message.
	if err := fsys.Remove(filepath.Join(dir, "t-0", "CLEAN")); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, opts)
	defer s.Close()
	p = mustPart(t, s, "t", 0)
	if p.End() != res[10].Offset {
		t.Fatalf("dirty open kept %d bytes, want %d", p.End(), res[10].Offset)
	}
	checkRecords(t, readAll(t, p), 0, 10)
}

func testLock(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys})
	if _, err := store.Open(dir, store.Options{FS: fsys}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s = mustOpen(t, dir, store.Options{FS: fsys})
	s.Close()
}

// corruptByte flips the low bit of the byte at off in a file.
func corruptByte(t *testing.T, fsys store.FS, name string, off int64) {
	t.Helper()
	f, err := fsys.OpenFile(name, osRDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func testSliceOutlivesClose(t *testing.T, fsys store.FS, dir string) {
	s := mustOpen(t, dir, store.Options{FS: fsys})
	p := mustPart(t, s, "t", 0)
	appendN(t, p, 0, 3)
	sl, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(0, 100); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := p.Append(payload(9), 0, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	b, err := sl.ReadAll(nil)
	if err != nil || len(b) != sl.Size {
		t.Fatalf("held slice after close: %v", err)
	}
	f := sl.File()
	sl.Release()
	sl.Release() // idempotent on the same value
	if _, err := f.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("segment file still open after the last release")
	}
}
