package store_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
)

// buildLog encodes messages for payloads 0..n-1 and returns the bytes and
// the message start offsets (plus the end).
func buildLog(n int) ([]byte, []int64) {
	var b []byte
	var starts []int64
	for i := 0; i < n; i++ {
		starts = append(starts, int64(len(b)))
		b = store.AppendMessage(b, int64(i+1)<<22, int32(i%3), payload(i))
	}
	return b, append(starts, int64(len(b)))
}

// recoverBytes plants seg as the only (active) segment of a partition in a
// fresh temp directory, opens the store and returns the visible end, the
// messages read back, and the segment file size after recovery.
func recoverBytes(t *testing.T, seg []byte) (int64, []record, int64) {
	t.Helper()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "t-0")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(pdir, "00000000000000000000.meta")
	if err := os.WriteFile(name, seg, 0o644); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, store.Options{})
	defer s.Close()
	p, err := s.Partition("t", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return p.End(), readAll(t, p), fi.Size()
}

// TestTornTail truncates the active segment at every byte of its last three
// messages and flips bits in every byte of the last message: recovery keeps exactly
// the valid prefix.
func TestTornTail(t *testing.T) {
	log, starts := buildLog(12)
	n := len(starts) - 1
	cases := 0
	check := func(t *testing.T, seg []byte, wantMsgs int) {
		t.Helper()
		end, recs, size := recoverBytes(t, seg)
		if want := starts[wantMsgs]; end != want || size != want {
			t.Fatalf("end %d, file size %d; want %d", end, size, want)
		}
		checkRecordsN(t, recs, wantMsgs)
		cases++
	}
	t.Run("truncated at every byte of the last 3 messages", func(t *testing.T) {
		for cut := starts[n-3]; cut <= starts[n]; cut++ {
			keep := 0
			for keep < n && starts[keep+1] <= cut {
				keep++
			}
			check(t, log[:cut], keep)
		}
	})
	t.Run("single-bit flips in every byte of the last message", func(t *testing.T) {
		last := starts[n-1]
		for bit := last * 8; bit < starts[n]*8; bit++ {
			if b := bit % 8; b != 0 && b != 5 { // two bits per byte keep the run short
				continue
			}
			seg := bytes.Clone(log)
			seg[bit/8] ^= 1 << (bit % 8)
			want := n - 1
			if rel := bit/8 - last; rel >= 8 && rel < store.HeaderSize {
				// The id and flag fields are outside the checksum (MetaQ
				// format): the message stays, with the damaged field.
				want = n
			}
			check(t, seg, want)
		}
	})
	t.Logf("%d recovery cases", cases)
	if cases < 200 {
		t.Fatalf("only %d cases", cases)
	}
}

func checkRecordsN(t *testing.T, recs []record, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("read %d messages, want %d", len(recs), n)
	}
	for i, r := range recs {
		if !bytes.Equal(r.Data, payload(i)) {
			t.Fatalf("message %d: %q", i, r.Data)
		}
	}
}

// TestRecoveryLargeMessagesAcrossChunks recovers a segment whose messages
// straddle the scanner's 4 MiB read chunks, including one bigger than a
// chunk, with a torn tail.
func TestRecoveryLargeMessagesAcrossChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var seg []byte
	var sizes []int
	for _, n := range []int{3 << 20, 1<<20 + 7, 5 << 20, 100, 2<<20 + 3} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		seg = store.AppendMessage(seg, 1<<22, 0, data)
		sizes = append(sizes, store.HeaderSize+n)
	}
	full := len(seg)
	seg = append(seg, store.AppendMessage(nil, 1<<22, 0, make([]byte, 1000))[:500]...)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "t-0"), 0o755)
	os.WriteFile(filepath.Join(dir, "t-0", "00000000000000000000.meta"), seg, 0o644)
	s := mustOpen(t, dir, store.Options{MaxMessageSize: 8 << 20})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	if p.End() != int64(full) || p.Stats().Messages != 5 {
		t.Fatalf("end %d messages %d, want %d, 5", p.End(), p.Stats().Messages, full)
	}
	if _, err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	// Every message boundary survived recovery: each is a valid read offset.
	off := int64(0)
	for i, n := range sizes {
		got, err := p.OffsetAtOrBefore(off)
		if err != nil || got != off {
			t.Fatalf("message %d: offset %d is not a boundary after recovery (got %d, %v)", i, off, got, err)
		}
		off += int64(n)
	}
}

// TestClosedSegmentCorruption damages a message inside a closed segment:
// Verify (offline and online) and reads detect it; it is never skipped.
func TestClosedSegmentCorruption(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		opts := store.Options{FS: fsys, MaxSegmentSize: 400}
		s := mustOpen(t, dir, opts)
		p := mustPart(t, s, "t", 0)
		res := appendN(t, p, 0, 40)
		s.Close()
		pdir := filepath.Join(dir, "t-0")
		if _, err := store.Verify(fsys, pdir); err != nil {
			t.Fatalf("verify of a good partition: %v", err)
		}
		victim := res[2] // in the first, closed segment
		corruptByte(t, fsys, filepath.Join(pdir, "00000000000000000000.meta"), victim.Offset+store.HeaderSize+3)
		rep, err := store.Verify(fsys, pdir)
		if !errors.Is(err, store.ErrCorrupt) || rep.Segments[0].Valid != victim.Offset {
			t.Fatalf("offline verify: %v, report %+v", err, rep.Segments[0])
		}
		// Also when the sidecar is gone and the segment is rescanned on open.
		fsys.Remove(filepath.Join(pdir, "00000000000000000000.idx"))
		s = mustOpen(t, dir, opts)
		defer s.Close()
		p = mustPart(t, s, "t", 0)
		if _, err := p.Verify(); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("online verify: %v", err)
		}
		sl, err := p.Read(0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sl.ReadAll(nil)
		sl.Release()
		if !errors.Is(err, store.ErrCorrupt) || len(b) != 0 {
			t.Fatalf("read across the damage: %v (%d bytes)", err, len(b))
		}
		// Messages before it are still served when asked for alone.
		sl, _ = p.Read(0, int(victim.Offset))
		if b, err := sl.ReadAll(nil); err != nil || int64(len(b)) != victim.Offset {
			t.Fatalf("read before the damage: %v", err)
		}
		sl.Release()
		// A read at a non-boundary offset is reported as such.
		for _, maxSize := range []int{10, 1000} {
			sl, err = p.Read(res[5].Offset+1, maxSize)
			if err == nil {
				_, err = sl.ReadAll(nil)
				sl.Release()
			}
			if !errors.Is(err, store.ErrInvalidOffset) {
				t.Fatalf("non-boundary read (maxSize %d): %v", maxSize, err)
			}
		}
	})
}
