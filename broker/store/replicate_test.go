package store_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// copyLog replicates src into dst the way a follower does: raw reads of
// src appended at dst's end.
func copyLog(t *testing.T, src, dst *store.Partition) {
	t.Helper()
	for off := dst.End(); off < src.End(); {
		sl, err := src.Read(off, 700)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b, err := sl.ValidBytes()
		if err == nil {
			b = append([]byte(nil), b...)
		}
		sl.Release()
		if err != nil {
			t.Fatalf("ValidBytes(%d): %v", off, err)
		}
		r, err := dst.AppendRawSync(ctxT(t), off, b)
		if err != nil {
			t.Fatalf("AppendRaw(%d): %v", off, err)
		}
		if r.Offset != off {
			t.Fatalf("AppendRaw(%d) wrote at %d", off, r.Offset)
		}
		off += int64(len(b))
	}
}

func sameRecords(t *testing.T, got, want []record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Offset != want[i].Offset || got[i].Header != want[i].Header || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A raw append reproduces the source log byte for byte (offsets, ids,
// flags), across segment rolls and a reopen, and refuses a wrong offset or
// damaged data without writing anything.
func TestAppendRaw(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		opts := store.Options{FS: fsys, MaxSegmentSize: 1000, IndexInterval: 64, BrokerID: 7}
		src := mustOpen(t, dir+"/src", opts)
		defer src.Close()
		sp := mustPart(t, src, "t", 0)
		appendN(t, sp, 0, 120)
		dst := mustOpen(t, dir+"/dst", opts)
		dp := mustPart(t, dst, "t", 0)
		copyLog(t, sp, dp)
		sameRecords(t, readAll(t, dp), readAll(t, sp))

		end := dp.End()
		msg := store.AppendMessage(nil, 12345, 0, []byte("x"))
		if _, err := dp.AppendRawSync(ctxT(t), end+1, msg); !errors.Is(err, store.ErrWrongOffset) {
			t.Fatalf("wrong offset: %v, want ErrWrongOffset", err)
		}
		bad := append([]byte(nil), msg...)
		bad[len(bad)-1] ^= 1
		if _, err := dp.AppendRawSync(ctxT(t), end, bad); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("bad checksum: %v, want ErrCorrupt", err)
		}
		if _, err := dp.AppendRawSync(ctxT(t), end, msg[:len(msg)-1]); !errors.Is(err, store.ErrIncomplete) {
			t.Fatalf("torn message: %v, want ErrIncomplete", err)
		}
		if _, err := dp.AppendRawSync(ctxT(t), end, store.AppendMessage(nil, 0, 0, []byte("x"))); err == nil {
			t.Fatal("id 0 accepted")
		}
		if dp.End() != end {
			t.Fatalf("refused appends moved the end %d -> %d", end, dp.End())
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		dst = mustOpen(t, dir+"/dst", opts)
		defer dst.Close()
		sameRecords(t, readAll(t, mustPart(t, dst, "t", 0)), readAll(t, sp))
	})
}

// After replicated messages, the store issues ids greater than every
// replicated id even when its clock is behind the source's (a promoted
// slave must never reuse its old master's ids), also after a restart.
func TestAppendRawIDsAfterPromotion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		future := func() time.Time { return time.Now().Add(time.Hour) }
		src := mustOpen(t, dir+"/src", store.Options{FS: fsys, BrokerID: 3, Now: future})
		defer src.Close()
		sp := mustPart(t, src, "t", 0)
		appendN(t, sp, 0, 50)
		recs := readAll(t, sp)
		maxID := recs[len(recs)-1].ID
		opts := store.Options{FS: fsys, BrokerID: 3}
		dst := mustOpen(t, dir+"/dst", opts)
		dp := mustPart(t, dst, "t", 0)
		copyLog(t, sp, dp)
		if r, err := dp.AppendSync(ctxT(t), []byte("after"), 0); err != nil || r.MsgID <= maxID {
			t.Fatalf("local id %d after replicated %d (err %v)", r.MsgID, maxID, err)
		}
		if id := dst.NewMessageID(); id <= maxID {
			t.Fatalf("NewMessageID %d <= replicated %d", id, maxID)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		dst = mustOpen(t, dir+"/dst", opts)
		defer dst.Close()
		if id := dst.NewMessageID(); id <= maxID {
			t.Fatalf("after restart NewMessageID %d <= replicated %d", id, maxID)
		}
	})
}

// Truncate cuts the log at a message boundary across segments, appends
// continue at the cut, the cut survives a reopen; misaligned, too small and
// too large offsets are refused; an empty partition can start anywhere.
func TestTruncate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		opts := store.Options{FS: fsys, MaxSegmentSize: 1000, IndexInterval: 64}
		s := mustOpen(t, dir, opts)
		p := mustPart(t, s, "t", 0)
		res := appendN(t, p, 0, 100)
		cut := res[37].Offset
		end := p.End()
		if err := p.Truncate(ctxT(t), cut+1); !errors.Is(err, store.ErrInvalidOffset) {
			t.Fatalf("misaligned: %v", err)
		}
		if err := p.Truncate(ctxT(t), end+5); !errors.Is(err, store.ErrOffsetOutOfRange) {
			t.Fatalf("beyond end: %v", err)
		}
		if p.End() != end {
			t.Fatalf("refused truncates moved the end")
		}
		if err := p.Truncate(ctxT(t), cut); err != nil {
			t.Fatal(err)
		}
		if p.End() != cut || p.Stats().Messages != 37 {
			t.Fatalf("after truncate: end %d messages %d, want %d 37", p.End(), p.Stats().Messages, cut)
		}
		checkRecords(t, readAll(t, p), 0, 37)
		again := appendN(t, p, 37, 30)
		if again[0].Offset != cut {
			t.Fatalf("append after truncate at %d, want %d", again[0].Offset, cut)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, dir, opts)
		defer s.Close()
		p = mustPart(t, s, "t", 0)
		checkRecords(t, readAll(t, p), 0, 67)
		if err := p.Truncate(ctxT(t), 0); err != nil || p.End() != 0 {
			t.Fatalf("truncate to 0: %v, end %d", err, p.End())
		}
		if err := p.Truncate(ctxT(t), 5000); err != nil || p.End() != 5000 || p.Earliest() != 5000 {
			t.Fatalf("rebase empty: %v, earliest %d end %d", err, p.Earliest(), p.End())
		}
		r, err := p.AppendRawSync(ctxT(t), 5000, store.AppendMessage(nil, 99, 0, []byte("x")))
		if err != nil || r.Offset != 5000 {
			t.Fatalf("raw append after rebase: %+v %v", r, err)
		}
	})
}

// A power loss right after Truncate returned never brings the cut tail
// back; a power loss at any earlier step leaves a prefix of the old log.
func TestTruncatePowerLoss(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		mem := storetest.NewMemFS()
		opts := store.Options{FS: mem, MaxSegmentSize: 800, IndexInterval: 64, RetentionInterval: -1}
		s, err := store.Open("/data", opts)
		if err != nil {
			t.Fatal(err)
		}
		p := mustPart(t, s, "t", 0)
		res := appendN(t, p, 0, 60)
		before := readAll(t, p)
		rng := rand.New(rand.NewPCG(seed, 1))
		keep := rng.IntN(60)
		cut := res[keep].Offset
		budget := int64(rng.IntN(12))
		if seed%4 == 0 {
			budget = -1 // no crash during the truncate: crash right after
		} else {
			mem.CrashAfter(budget, nil)
		}
		terr := p.Truncate(ctxT(t), cut)
		var back *storetest.MemFS
		if terr == nil {
			back = mem.Crash(nil)
		} else if back = mem.Crashed(); back == nil {
			t.Fatalf("seed %d: truncate failed without a crash: %v", seed, terr)
		}
		s.Close()
		s2, err := store.Open("/data", store.Options{FS: back, MaxSegmentSize: 800, IndexInterval: 64, RetentionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, mustPart(t, s2, "t", 0))
		if terr == nil && len(got) != keep {
			t.Fatalf("seed %d: %d messages after a durable truncate to %d", seed, len(got), keep)
		}
		if len(got) < keep {
			t.Fatalf("seed %d: truncate lost messages before the cut: %d < %d", seed, len(got), keep)
		}
		sameRecords(t, got, before[:len(got)])
		s2.Close()
	}
}

// A power loss while a follower appends raw data keeps a prefix of the
// source log, byte for byte, holding at least every acknowledged append.
func TestAppendRawPowerLoss(t *testing.T) {
	srcFS := storetest.NewMemFS()
	src, err := store.Open("/src", store.Options{FS: srcFS, MaxSegmentSize: 900, IndexInterval: 64, RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sp := mustPart(t, src, "t", 0)
	appendN(t, sp, 0, 150)
	want := readAll(t, sp)
	for seed := uint64(0); seed < 30; seed++ {
		mem := storetest.NewMemFS()
		opts := store.Options{FS: mem, MaxSegmentSize: 700, IndexInterval: 64, RetentionInterval: -1}
		dst, err := store.Open("/dst", opts)
		if err != nil {
			t.Fatal(err)
		}
		dp := mustPart(t, dst, "t", 0)
		rng := rand.New(rand.NewPCG(seed, 3))
		mem.CrashAfterTail(int64(rng.IntN(150)), rand.New(rand.NewPCG(seed, 4)), storetest.TailTorn)
		acked := int64(0)
		for off := int64(0); off < sp.End(); {
			sl, err := sp.Read(off, 300)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := sl.ReadAll(nil)
			sl.Release()
			n, _, _ := store.ScanValid(b)
			if _, err := dp.AppendRawSync(ctxT(t), off, b[:n]); err != nil {
				break
			}
			off += int64(n)
			acked = off
		}
		back := mem.Crashed()
		if back == nil {
			back = mem.Crash(nil)
		}
		dst.Close()
		s2, err := store.Open("/dst", store.Options{FS: back, MaxSegmentSize: 700, IndexInterval: 64, RetentionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		p2 := mustPart(t, s2, "t", 0)
		got := readAll(t, p2)
		if p2.End() < acked {
			t.Fatalf("seed %d: end %d after a crash, below the acknowledged %d", seed, p2.End(), acked)
		}
		sameRecords(t, got, want[:len(got)])
		s2.Close()
	}
}
