package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
)

// TestMisalignedOffset reads at offsets inside messages, including inside
// payloads that look like headers (a zero run, a plausible length of 4 KiB)
// and with a maxSize below and above the message size. The store never
// reads more than maxSize for such an offset and answers with a
// *MisalignedOffsetError carrying the next message's start; it never
// reports corruption for a wrong offset.
func TestMisalignedOffset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys, IndexInterval: 256})
		defer s.Close()
		p := mustPart(t, s, "t", 0)
		fake := make([]byte, 60)
		binary.BigEndian.PutUint32(fake[30:], 4096) // a "header" announcing 4 KiB
		payloads := [][]byte{
			bytes.Repeat([]byte("x"), 100),
			make([]byte, 80), // zeros: would decode as empty messages
			fake,
		}
		for i := 0; i < 200; i++ {
			payloads = append(payloads, payload(i))
		}
		var starts []int64
		for _, d := range payloads {
			r, err := p.AppendSync(ctxT(t), d, 0)
			if err != nil {
				t.Fatal(err)
			}
			starts = append(starts, r.Offset)
		}
		starts = append(starts, p.End())
		for k := 0; k < 6; k++ {
			for _, in := range []int64{1, 3, 4, 19, 20, 21, 30, starts[k+1] - starts[k] - 1} {
				off := starts[k] + in
				if off >= starts[k+1] {
					continue
				}
				for _, maxSize := range []int{32, 64, 1 << 20} {
					checkMisaligned(t, p, off, maxSize, starts[k+1])
				}
			}
		}
		// Boundaries still read normally, also with a small maxSize.
		sl, err := p.Read(starts[2], 8)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sl.ValidBytes()
		if err != nil || int64(len(b)) != starts[3]-starts[2] {
			t.Fatalf("read at a boundary: %d bytes, %v", len(b), err)
		}
		sl.Release()
	})
}

func checkMisaligned(t *testing.T, p *store.Partition, off int64, maxSize int, next int64) {
	t.Helper()
	var mis *store.MisalignedOffsetError
	sl, err := p.Read(off, maxSize)
	if err == nil {
		if sl.Size > maxSize {
			t.Fatalf("Read(%d, %d) holds %d bytes, more than maxSize", off, maxSize, sl.Size)
		}
		_, err = sl.ValidBytes()
		if _, err2 := sl.ReadAll(nil); !errors.As(err2, &mis) || mis.Next != next {
			t.Fatalf("ReadAll at %d (maxSize %d): %v, want the next boundary %d", off, maxSize, err2, next)
		}
		sl.Release()
	}
	if !errors.As(err, &mis) || mis.Next != next || mis.Offset != off || !errors.Is(err, store.ErrInvalidOffset) {
		t.Fatalf("read at %d (maxSize %d): %v, want a misaligned offset with next boundary %d", off, maxSize, err, next)
	}
	if errors.Is(err, store.ErrCorrupt) || p.Err() != nil {
		t.Fatalf("a wrong offset was taken for corruption: %v / %v", err, p.Err())
	}
}
