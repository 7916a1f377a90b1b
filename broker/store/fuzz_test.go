package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

func fuzzSeeds(f *testing.F) {
	log, starts := buildLog(4)
	f.Add([]byte{})
	f.Add(log)
	f.Add(log[:starts[2]+7])
	f.Add(log[:len(log)-1])
	bad := bytes.Clone(log)
	bad[starts[1]+store.HeaderSize] ^= 0x40
	f.Add(bad)
	neg := bytes.Clone(log)
	neg[starts[3]] = 0x80
	f.Add(neg)
	f.Add(bytes.Repeat([]byte{0}, 45))
}

// FuzzScanValid: the message-set scanner never panics, reports a prefix of
// whole valid messages, and is stable on that prefix.
func FuzzScanValid(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, count, stop := store.ScanValid(b)
		if n < 0 || n > len(b) || (stop == nil) != (n == len(b)) {
			t.Fatalf("n=%d len=%d stop=%v", n, len(b), stop)
		}
		if stop != nil && !errors.Is(stop, store.ErrIncomplete) && !errors.Is(stop, store.ErrCorrupt) {
			t.Fatalf("unexpected stop %v", stop)
		}
		n2, count2, stop2 := store.ScanValid(b[:n])
		if n2 != n || count2 != count || stop2 != nil {
			t.Fatalf("prefix rescans as %d/%d/%v, want %d/%d/nil", n2, count2, stop2, n, count)
		}
		// Re-encoding the decoded messages reproduces the prefix.
		var re []byte
		for pos := 0; pos < n; {
			h := store.ParseHeader(b[pos:])
			data := b[pos+store.HeaderSize : pos+store.HeaderSize+int(h.Len)]
			re = store.AppendMessage(re, h.ID, h.Flag, data)
			pos += store.HeaderSize + int(h.Len)
		}
		if !bytes.Equal(re, b[:n]) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzRecovery: arbitrary bytes as the active segment never make Open
// panic; the recovered log is exactly the valid prefix and its messages.
func FuzzRecovery(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := storetest.NewMemFS()
		if err := mem.MkdirAll("/d/t-0", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := mem.WriteFile("/d/t-0/00000000000000000000.meta", b); err != nil {
			t.Fatal(err)
		}
		s, err := store.Open("/d", store.Options{FS: mem, RetentionInterval: -1, IndexInterval: 16})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		p := mustPart(t, s, "t", 0)
		n, count, _ := store.ScanValid(b)
		if p.End() != int64(n) || p.Stats().Messages != int64(count) {
			t.Fatalf("end %d messages %d, want %d %d", p.End(), p.Stats().Messages, n, count)
		}
		var got []byte
		for _, r := range readAll(t, p) {
			got = store.AppendMessage(got, r.ID, r.Flag, r.Data)
			if o, err := p.OffsetAtOrBefore(r.Offset + 1); err != nil || o != r.Offset {
				t.Fatalf("OffsetAtOrBefore(%d) = %d %v", r.Offset+1, o, err)
			}
		}
		if !bytes.Equal(got, b[:n]) {
			t.Fatal("recovered messages differ from the valid prefix")
		}
		if cur, _ := mem.ReadFile("/d/t-0/00000000000000000000.meta"); len(cur) != n {
			t.Fatalf("file is %d bytes after recovery, want %d", len(cur), n)
		}
	})
}
