package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// backend is one FS the conformance suite runs against.
type backend struct {
	name string
	fs   func(t *testing.T) (store.FS, string) // file system and data dir
}

var backends = []backend{
	{"os", func(t *testing.T) (store.FS, string) { return store.OSFS{}, filepath.Join(t.TempDir(), "data") }},
	{"mem", func(t *testing.T) (store.FS, string) { return storetest.NewMemFS(), "/data" }},
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, fsys store.FS, dir string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fsys, dir := b.fs(t)
			f(t, fsys, dir)
		})
	}
}

func mustOpen(t testing.TB, dir string, opts store.Options) *store.Store {
	t.Helper()
	if opts.RetentionInterval == 0 {
		opts.RetentionInterval = -1
	}
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustPart(t testing.TB, s *store.Store, topic string, part int) *store.Partition {
	t.Helper()
	p, err := s.Partition(topic, part, true)
	if err != nil {
		t.Fatalf("Partition: %v", err)
	}
	return p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf("message-%06d-%s", i, bytes.Repeat([]byte{byte('a' + i%26)}, i%50)))
}

// record is one message read back from a partition.
type record struct {
	Offset int64
	store.Header
	Data []byte
}

// readAll reads every visible message of p, verifying checksums.
func readAll(t testing.TB, p *store.Partition) []record {
	t.Helper()
	var out []record
	off := p.Earliest()
	for {
		sl, err := p.Read(off, 64<<10)
		if errors.Is(err, store.ErrCaughtUp) {
			return out
		}
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b, err := sl.ReadAll(nil)
		sl.Release()
		if err != nil {
			t.Fatalf("ReadAll(%d): %v", off, err)
		}
		n, _, _ := store.ScanValid(b)
		if n == 0 {
			t.Fatalf("Read(%d) returned no whole message (%d bytes)", off, len(b))
		}
		for pos := 0; pos < n; {
			h := store.ParseHeader(b[pos:])
			data := append([]byte(nil), b[pos+store.HeaderSize:pos+store.HeaderSize+int(h.Len)]...)
			out = append(out, record{Offset: off + int64(pos), Header: h, Data: data})
			pos += store.HeaderSize + int(h.Len)
		}
		off += int64(n)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

type fsMode = os.FileMode

const osRDWR = os.O_RDWR
