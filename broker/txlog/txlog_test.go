package txlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/txlog"
)

func sampleRecords() []txlog.Record {
	msgs := []txlog.Message{
		{Topic: "orders", Partition: 0, ID: 101, Flag: 0, Data: []byte("hello")},
		{Topic: "orders", Partition: 3, ID: 102, Flag: 1, Data: []byte{0, 0, 0, 1, 'a', 'x'}},
		{Topic: "t", Partition: 1, ID: -5, Flag: -1, Data: []byte{}},
	}
	return []txlog.Record{
		{Kind: txlog.KindPrepare, Key: "XID:1:0a:0b:q", Msgs: msgs},
		{Kind: txlog.KindCommit, Key: "XID:1:0a:0b:q", Parts: []txlog.PartStart{{Topic: "orders", Partition: 0, Offset: 42}, {Topic: "t", Partition: 1, Offset: 0}}},
		{Kind: txlog.KindCommit, Key: "TX:s:1", Inline: true, Heuristic: true, Msgs: msgs[:1], Parts: []txlog.PartStart{{Topic: "orders", Partition: 0, Offset: 7}}},
		{Kind: txlog.KindDone, Key: "XID:1:0a:0b:q"},
		{Kind: txlog.KindDone, Key: "TX:s:1", Heuristic: true},
		{Kind: txlog.KindRollback, Key: "XID:2:0c:0d:", Heuristic: true},
		{Kind: txlog.KindRollback, Key: "TX:s:2"},
		{Kind: txlog.KindForget, Key: "XID:2:0c:0d:"},
		{Kind: txlog.KindPrepare, Key: "XID:3:0a:0b:q", Msgs: msgs[1:], Owner: "alice"},
		{Kind: txlog.KindCommit, Key: "XID:3:0a:0b:q", Parts: []txlog.PartStart{{Topic: "orders", Partition: 3, Offset: 9}}, Owner: "alice"},
		{Kind: txlog.KindCommit, Key: "XID:4:0a:0b:q", Inline: true, Msgs: msgs[:2], Parts: []txlog.PartStart{{Topic: "orders", Partition: 0, Offset: 1}}, Owner: "CN=bob"},
		{Kind: txlog.KindDone, Key: "XID:4:0a:0b:q", Heuristic: true, Owner: "CN=bob"},
		{Kind: txlog.KindRollback, Key: "XID:5:0c:0d:", Heuristic: true, Owner: "carol"},
	}
}

// norm makes nil and empty slices compare equal.
func norm(r txlog.Record) txlog.Record {
	if len(r.Msgs) == 0 {
		r.Msgs = nil
	}
	for i := range r.Msgs {
		if len(r.Msgs[i].Data) == 0 {
			r.Msgs[i].Data = nil
		}
	}
	if len(r.Parts) == 0 {
		r.Parts = nil
	}
	return r
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b := txlog.AppendRecord(nil, &r)
		got, n, err := txlog.DecodeRecord(b)
		if err != nil || n != len(b) {
			t.Fatalf("%s: decode: n=%d/%d err=%v", r.Kind, n, len(b), err)
		}
		if !reflect.DeepEqual(norm(got), norm(r)) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", r.Kind, got, r)
		}
	}
}

func encodeAll(recs []txlog.Record) ([]byte, []int) {
	var b []byte
	var ends []int
	for i := range recs {
		b = txlog.AppendRecord(b, &recs[i])
		ends = append(ends, len(b))
	}
	return b, ends
}

// TestDecodeTornAtEveryByte truncates a run of records at every byte: the
// decoder yields exactly the whole records before the cut and then ErrTorn.
func TestDecodeTornAtEveryByte(t *testing.T) {
	recs := sampleRecords()
	b, ends := encodeAll(recs)
	for cut := 0; cut <= len(b); cut++ {
		pos, got := 0, 0
		var err error
		for pos < cut {
			var n int
			_, n, err = txlog.DecodeRecord(b[pos:cut])
			if err != nil {
				break
			}
			pos += n
			got++
		}
		want := 0
		for _, e := range ends {
			if e <= cut {
				want++
			}
		}
		if got != want {
			t.Fatalf("cut %d: decoded %d records, want %d", cut, got, want)
		}
		if pos < cut && !errors.Is(err, txlog.ErrTorn) {
			t.Fatalf("cut %d: err %v, want ErrTorn", cut, err)
		}
	}
}

// TestDecodeBitFlipsNeverYieldAWrongRecord flips random bits of a record:
// the decoder reports torn or corrupt, never a different record.
func TestDecodeBitFlipsNeverYieldAWrongRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, r := range sampleRecords() {
		orig := txlog.AppendRecord(nil, &r)
		for i := 0; i < 200; i++ {
			b := bytes.Clone(orig)
			bit := rng.IntN(len(b) * 8)
			b[bit/8] ^= 1 << (bit % 8)
			got, _, err := txlog.DecodeRecord(b)
			if err == nil {
				t.Fatalf("%s: bit %d flipped, decoded %+v without error", r.Kind, bit, got)
			}
			if !errors.Is(err, txlog.ErrTorn) && !errors.Is(err, txlog.ErrCorrupt) {
				t.Fatalf("unexpected error %v", err)
			}
		}
	}
}

func openJ(t *testing.T, dir string, o txlog.Options) (*txlog.Journal, *txlog.State) {
	t.Helper()
	j, st, err := txlog.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return j, st
}

func appendAll(t *testing.T, j *txlog.Journal, recs []txlog.Record) {
	t.Helper()
	for _, r := range recs {
		if err := j.AppendWait(r, true); err != nil {
			t.Fatal(err)
		}
	}
}

func prep(key string, n int) txlog.Record {
	var msgs []txlog.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, txlog.Message{Topic: "t", Partition: int32(i % 3), ID: int64(i + 1), Data: []byte(fmt.Sprintf("%s-%d", key, i))})
	}
	return txlog.Record{Kind: txlog.KindPrepare, Key: key, Msgs: msgs}
}

func TestJournalRecoversStateAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	j, st := openJ(t, dir, txlog.Options{})
	if len(st.Live) != 0 {
		t.Fatal("new journal has live transactions")
	}
	appendAll(t, j, []txlog.Record{
		prep("a", 3), prep("b", 2), prep("c", 1), prep("d", 1),
		{Kind: txlog.KindCommit, Key: "a", Parts: []txlog.PartStart{{Topic: "t", Partition: 0, Offset: 9}}},
		{Kind: txlog.KindDone, Key: "a"},
		{Kind: txlog.KindCommit, Key: "b", Parts: []txlog.PartStart{{Topic: "t", Partition: 1}}},
		{Kind: txlog.KindRollback, Key: "c"},
		{Kind: txlog.KindRollback, Key: "d", Heuristic: true},
	})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ { // reopening twice: the snapshot alone rebuilds the state
		j, st = openJ(t, dir, txlog.Options{})
		if o, _ := st.Outcome("a"); o != txlog.Committed {
			t.Fatalf("round %d: a outcome %v", round, o)
		}
		if o, _ := st.Outcome("c"); o != txlog.RolledBack {
			t.Fatalf("round %d: c outcome %v", round, o)
		}
		b := st.Live["b"]
		if b == nil || b.State != txlog.Committing || len(b.Msgs) != 2 || len(b.Parts) != 1 {
			t.Fatalf("round %d: b = %+v", round, b)
		}
		if d := st.Live["d"]; d == nil || d.State != txlog.HeuristicRolledBack {
			t.Fatalf("round %d: d = %+v", round, d)
		}
		if len(st.Live) != 2 {
			t.Fatalf("round %d: live %v", round, st.Live)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if s, _ := txlog.DirStats(dir); s.Files != 1 {
			t.Fatalf("round %d: %d files after reopen, want 1", round, s.Files)
		}
	}
}

// TestJournalTornTailAtEveryByte writes records, cuts the journal file at
// every byte of its last records, and checks that reopening recovers the
// state of exactly the whole records before the cut.
func TestJournalTornTailAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJ(t, dir, txlog.Options{})
	recs := []txlog.Record{prep("a", 2), prep("b", 1), {Kind: txlog.KindCommit, Key: "a", Parts: []txlog.PartStart{{Topic: "t"}}},
		{Kind: txlog.KindDone, Key: "a"}, {Kind: txlog.KindRollback, Key: "b"}}
	appendAll(t, j, recs)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files", len(ents))
	}
	full, err := os.ReadFile(filepath.Join(dir, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	_, ends := encodeAll(recs)
	base := len(full) - ends[len(ends)-1]
	// Expected state after the first n records.
	expect := func(n int) *txlog.State {
		s := txlog.NewState(0)
		for i := 0; i < n; i++ {
			s.Apply(&recs[i])
		}
		return s
	}
	for cut := base + ends[1]; cut <= len(full); cut++ {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, ents[0].Name()), full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ends {
			if base+e <= cut {
				n++
			}
		}
		st, err := txlog.Replay(d, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := expect(n)
		if !sameState(st, want) {
			t.Fatalf("cut %d (%d whole records): state %+v, want %+v", cut, n, st.Live, want.Live)
		}
		// Open repairs by starting a new file and deleting the torn one.
		j, st2 := openJ(t, d, txlog.Options{})
		if !sameState(st2, want) {
			t.Fatalf("cut %d: Open state differs from Replay", cut)
		}
		if err := j.AppendWait(txlog.Record{Kind: txlog.KindForget, Key: "zz"}, true); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if st3, _ := txlog.Replay(d, 0); !sameState(st3, want) {
			t.Fatalf("cut %d: state after reopen and append differs", cut)
		}
	}
}

func sameState(a, b *txlog.State) bool {
	if len(a.Live) != len(b.Live) {
		return false
	}
	for k, t := range a.Live {
		u := b.Live[k]
		if u == nil || t.State != u.State || len(t.Msgs) != len(u.Msgs) || len(t.Parts) != len(u.Parts) {
			return false
		}
	}
	return reflect.DeepEqual(a.Outcomes(), b.Outcomes())
}

// TestJournalRotationBoundsSizeAndKeepsLiveState appends far more than the
// rotation size and checks the directory stays small and the live
// prepared transactions and recent outcomes survive.
func TestJournalRotationBoundsSizeAndKeepsLiveState(t *testing.T) {
	dir := t.TempDir()
	const maxFile = 16 << 10
	j, _ := openJ(t, dir, txlog.Options{MaxFileSize: maxFile, MaxOutcomes: 50})
	appendAll(t, j, []txlog.Record{prep("keep1", 4), prep("keep2", 1)})
	var peak int64
	for i := 0; i < 2000; i++ {
		k := fmt.Sprintf("TX:s:%d", i)
		r := prep(k, 2)
		c := txlog.Record{Kind: txlog.KindCommit, Key: k, Inline: true, Msgs: r.Msgs, Parts: []txlog.PartStart{{Topic: "t"}}}
		if err := j.AppendWait(c, i%10 == 0); err != nil {
			t.Fatal(err)
		}
		j.Append(txlog.Record{Kind: txlog.KindDone, Key: k}, false, nil)
		if i%50 == 0 {
			s, err := txlog.DirStats(dir)
			if err != nil {
				t.Fatal(err)
			}
			peak = max(peak, s.Bytes)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ := txlog.DirStats(dir)
	t.Logf("after 2000 commits: %d files, %d bytes, peak %d, seq %d", s.Files, s.Bytes, peak, s.Seq)
	if s.Seq < 10 || s.Files > 1 || peak > 3*maxFile {
		t.Fatalf("journal not bounded: %+v peak %d", s, peak)
	}
	st, err := txlog.Replay(dir, 50)
	if err != nil {
		t.Fatal(err)
	}
	if st.Live["keep1"] == nil || len(st.Live["keep1"].Msgs) != 4 || st.Live["keep2"] == nil || len(st.Live) != 2 {
		t.Fatalf("live after rotations: %v", st.Live)
	}
	if o, ok := st.Outcome("TX:s:1999"); !ok || o != txlog.Committed {
		t.Fatal("the newest outcome was lost")
	}
	if _, ok := st.Outcome("TX:s:0"); ok {
		t.Fatal("outcomes are not bounded")
	}
	if n := len(st.Outcomes()); n != 50 {
		t.Fatalf("%d outcomes remembered, want 50", n)
	}
}

// TestSnapshotReplayIsIdempotent: replaying a snapshot on top of the state
// it summarises (what a crash during rotation leaves) changes nothing.
func TestSnapshotReplayIsIdempotent(t *testing.T) {
	s := txlog.NewState(0)
	for _, r := range sampleRecords() {
		s.Apply(&r)
	}
	s.Apply(&txlog.Record{Kind: txlog.KindPrepare, Key: "p", Msgs: prep("p", 2).Msgs})
	snap := s.Snapshot()
	again := txlog.NewState(0)
	for i := range snap {
		again.Apply(&snap[i])
	}
	if !sameState(s, again) {
		t.Fatal("snapshot does not rebuild the state")
	}
	for i := range snap {
		s.Apply(&snap[i])
	}
	if !sameState(s, again) {
		t.Fatal("a snapshot applied over its own state changes it")
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	j, _ := openJ(t, t.TempDir(), txlog.Options{SyncInterval: 5 * time.Millisecond})
	j.Append(txlog.Record{Kind: txlog.KindForget, Key: "x"}, false, nil)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal("Close is not idempotent:", err)
	}
	if err := j.AppendWait(txlog.Record{Kind: txlog.KindForget, Key: "x"}, true); !errors.Is(err, txlog.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestIgnoresForeignAndHeaderlessFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), []byte("MQTX"), 0o644) // torn at creation
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	j, st := openJ(t, dir, txlog.Options{})
	defer j.Close()
	if len(st.Live) != 0 {
		t.Fatal("state from a headerless file")
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatal("a foreign file was deleted")
	}
}
