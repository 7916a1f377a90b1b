package store_test

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// TestPowerLoss cuts the power of the strict in-memory FS at 1,000 random
// points while concurrent appenders run in group-commit mode. After
// recovery every acknowledged message is present at its acknowledged
// offset, everything present was really appended, and the log ends exactly
// at the last valid message of what survived. A quarter of the runs lose
// all unsynced bytes; the others keep a random torn prefix of them, alone,
// followed by zeros (delayed allocation), or followed by garbage: nothing
// of that may come back as a message.
func TestPowerLoss(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	for i := 0; i < runs; i++ {
		if !powerLossRun(t, uint64(i)) {
			return
		}
	}
}

type ack struct {
	data   string
	offset int64
	id     int64
}

func powerLossRun(t *testing.T, seed uint64) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, MaxSegmentSize: int64(300 + rng.IntN(2000)), IndexInterval: 64, RetentionInterval: -1}
	s, err := store.Open("/data", opts)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPart(t, s, "t", 0)
	if seed%8 == 0 {
		// Start from a cleanly closed log: its marker must not survive the
		// reopen, or the crash below would skip the scan.
		for i := 0; i < 20; i++ {
			if _, err := p.AppendSync(ctxT(t), []byte(fmt.Sprintf("w9-%d", i)), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = store.Open("/data", opts); err != nil {
			t.Fatal(err)
		}
		p = mustPart(t, s, "t", 0)
	}
	var torn *rand.Rand
	tail := storetest.TailTorn
	switch seed % 4 {
	case 1:
		torn = rand.New(rand.NewPCG(seed, 7))
	case 2:
		torn, tail = rand.New(rand.NewPCG(seed, 7)), storetest.TailZeros
	case 3:
		torn, tail = rand.New(rand.NewPCG(seed, 7)), storetest.TailGarbage
	}
	mem.CrashAfterTail(int64(rng.IntN(200)), torn, tail)

	const writers = 3
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a transactional writer: batches of 3, all or nothing
		defer wg.Done()
		for i := 0; i < 5000; i += 3 {
			batch := []store.Message{{Data: []byte(fmt.Sprintf("w8-%d", i))},
				{Data: []byte(fmt.Sprintf("w8-%d", i+1))}, {Data: []byte(fmt.Sprintf("w8-%d", i+2))}}
			r, err := p.AppendBatchSync(ctxT(t), batch)
			if err != nil {
				return
			}
			mu.Lock()
			off := r.Offset
			for _, m := range batch {
				acks = append(acks, ack{string(m.Data), off, m.ID})
				off += store.HeaderSize + int64(len(m.Data))
			}
			mu.Unlock()
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				data := fmt.Sprintf("w%d-%d", w, i)
				r, err := p.AppendSync(ctxT(t), []byte(data), 0)
				if err != nil {
					return
				}
				mu.Lock()
				acks = append(acks, ack{data, r.Offset, r.MsgID})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.Close()
	crashed := mem.Crashed()
	if crashed == nil {
		t.Fatalf("seed %d: no power loss happened", seed)
	}
	// What should survive: the longest valid prefix of the durable bytes.
	wantEnd := durableValidEnd(t, crashed, "/data/t-0")

	s2, err := store.Open("/data", store.Options{FS: crashed, MaxSegmentSize: opts.MaxSegmentSize, RetentionInterval: -1})
	if err != nil {
		t.Fatalf("seed %d: reopen after power loss: %v", seed, err)
	}
	defer s2.Close()
	p2 := mustPart(t, s2, "t", 0)
	if wantEnd < 0 {
		t.Fatalf("seed %d: partition directory lost although it was synced", seed)
	}
	if p2.End() != wantEnd {
		t.Errorf("seed %d: recovered end %d, want %d (last valid message)", seed, p2.End(), wantEnd)
	}
	recs := readAll(t, p2)
	byOffset := map[int64]record{}
	last := map[string]int{}
	for _, r := range recs {
		byOffset[r.Offset] = r
		var w, i int
		if _, err := fmt.Sscanf(string(r.Data), "w%d-%d", &w, &i); err != nil {
			t.Fatalf("seed %d: foreign message %q", seed, r.Data)
		}
		k := fmt.Sprint(w)
		if prev, ok := last[k]; ok && i <= prev {
			t.Fatalf("seed %d: writer %d out of order", seed, w)
		}
		last[k] = i
	}
	for _, a := range acks {
		r, ok := byOffset[a.offset]
		if !ok || string(r.Data) != a.data || r.ID != a.id {
			t.Errorf("seed %d: acknowledged message %q at %d lost (found %q)", seed, a.data, a.offset, r.Data)
			return false
		}
	}
	if n := last["8"]; n%3 != 2 && len(last) > 0 {
		if _, ok := last["8"]; ok {
			t.Errorf("seed %d: transactional batch partially recovered (last message w8-%d)", seed, n)
		}
	}
	assertNoTrailingBytes(t, crashed, "/data/t-0", p2.End())
	return !t.Failed()
}

// durableValidEnd returns the offset after the last valid message of the
// partition as it exists in fsys before recovery (-1 if the directory is
// gone).
func durableValidEnd(t *testing.T, fsys *storetest.MemFS, dir string) int64 {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return -1
	}
	var last string
	for _, e := range ents {
		if strings.HasSuffix(e.Name, ".meta") {
			last = e.Name
		}
	}
	if last == "" {
		return 0
	}
	b, err := fsys.ReadFile(filepath.Join(dir, last))
	if err != nil {
		t.Fatal(err)
	}
	var base int64
	fmt.Sscanf(last, "%d", &base)
	n, _, _ := store.ScanValid(b)
	valid := int64(n)
	// A batch guard (doc.go, BATCH file) cuts a partly written batch.
	if g, err := fsys.ReadFile(filepath.Join(dir, "BATCH")); err == nil && len(g) >= 32 &&
		string(g[:4]) == "MQBG" && crc32.ChecksumIEEE(g[:28]) == binary.BigEndian.Uint32(g[28:32]) {
		gb, lo, hi := int64(binary.BigEndian.Uint64(g[4:])), int64(binary.BigEndian.Uint64(g[12:])), int64(binary.BigEndian.Uint64(g[20:]))
		if gb == base && lo < valid && valid < hi {
			valid = lo
		}
	}
	return base + valid
}

func assertNoTrailingBytes(t *testing.T, fsys *storetest.MemFS, dir string, end int64) {
	t.Helper()
	ents, _ := fsys.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name, ".meta") {
			continue
		}
		var base int64
		fmt.Sscanf(e.Name, "%d", &base)
		b, _ := fsys.ReadFile(filepath.Join(dir, e.Name))
		n, _, stop := store.ScanValid(b)
		if n != len(b) || stop != nil {
			t.Errorf("segment %s: %d of %d bytes valid (%v)", e.Name, n, len(b), stop)
		}
		if base+int64(len(b)) > end {
			t.Errorf("segment %s extends past the end %d", e.Name, end)
		}
	}
}
