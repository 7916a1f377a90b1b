package txlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/metaq-go/metaq/broker/txlog"
)

// FuzzDecodeRecord: the decoder never panics, reports only ErrTorn or
// ErrCorrupt, never reads past the frame, and whatever it accepts
// re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b := txlog.AppendRecord(nil, &r)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 9})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := txlog.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, txlog.ErrTorn) && !errors.Is(err, txlog.ErrCorrupt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("frame size %d of %d bytes", n, len(b))
		}
		if again := txlog.AppendRecord(nil, &r); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:n])
		}
	})
}

// FuzzDecodeRecordBody frames arbitrary bytes with a correct length and
// CRC so that the fuzzer reaches the record parser behind the checksum.
func FuzzDecodeRecordBody(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(txlog.AppendRecord(nil, &r)[8:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 {
			return
		}
		b := frame(body)
		r, n, err := txlog.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, txlog.ErrCorrupt) {
				t.Fatalf("a whole frame reported %v", err)
			}
			return
		}
		if n != len(b) {
			t.Fatalf("frame size %d of %d", n, len(b))
		}
		if again := txlog.AppendRecord(nil, &r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

func frame(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, body...)
}

// FuzzReplay replays arbitrary journal files: replay never panics and
// either succeeds or reports ErrUnreplayable. (Replay, not Open: the
// fsyncs of Open's rotation would slow the fuzzer to a crawl; Open runs
// the same replay code.)
func FuzzReplay(f *testing.F) {
	recs := middleVictim()
	b := []byte("MQTXLOG1")
	for i := range recs {
		b = txlog.AppendRecord(b, &recs[i])
	}
	f.Add(b)
	f.Add(b[:len(b)-7])
	f.Add(flipAt(b, 60))
	f.Add(append(bytes.Clone(b), make([]byte, 64)...))
	dir := f.TempDir()
	path := filepath.Join(dir, "00000000000000000001.txlog")
	f.Fuzz(func(t *testing.T, file []byte) {
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := txlog.Replay(dir, 0); err != nil && !errors.Is(err, txlog.ErrUnreplayable) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
