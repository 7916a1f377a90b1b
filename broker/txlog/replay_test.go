package txlog_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/metaq-go/metaq/broker/txlog"
)

// writeJournal writes recs as one journal file (magic + frames) into a new
// directory and returns the directory, the file's bytes and each record's
// offset in it.
func writeJournal(t *testing.T, recs []txlog.Record) (string, []byte, []int) {
	t.Helper()
	b := []byte("MQTXLOG1")
	var offs []int
	for i := range recs {
		offs = append(offs, len(b))
		b = txlog.AppendRecord(b, &recs[i])
	}
	offs = append(offs, len(b))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, b, offs
}

// dirFiles returns the names and contents of the files in dir.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func stateOf(recs []txlog.Record) *txlog.State {
	s := txlog.NewState(0)
	for i := range recs {
		s.Apply(&recs[i])
	}
	return s
}

// middleVictim: a journal whose second record (the victim, a PREPARE of a
// transaction nothing later mentions) sits in front of later PREPARE,
// COMMIT and DONE records.
func middleVictim() []txlog.Record {
	return []txlog.Record{
		prep("XID:1:01:01:q", 2),
		prep("XID:1:0f:01:victim", 3),
		prep("XID:1:02:01:q", 2),
		prep("XID:1:03:01:q", 1),
		{Kind: txlog.KindCommit, Key: "XID:1:02:01:q", Parts: []txlog.PartStart{{Topic: "t", Offset: 5}}},
		{Kind: txlog.KindDone, Key: "XID:1:02:01:q"},
		{Kind: txlog.KindCommit, Key: "XID:1:03:01:q", Parts: []txlog.PartStart{{Topic: "t", Offset: 9}}},
		{Kind: txlog.KindRollback, Key: "XID:1:01:01:q"},
		prep("XID:1:04:01:q", 1),
	}
}

// TestReplaySkipsADamagedMiddleRecord flips one bit in a record in the
// middle of a journal: the transactions recorded after it (a prepared one,
// a committed one, one whose commit is in progress) survive reopening, the
// damaged record alone is lost, and the damaged file is kept.
func TestReplaySkipsADamagedMiddleRecord(t *testing.T) {
	recs := middleVictim()
	want := stateOf(slices.Delete(slices.Clone(recs), 1, 2))
	dir, b, offs := writeJournal(t, recs)
	b[offs[1]+20] ^= 0x10 // inside the victim's body: checksum mismatch
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	j, st := openJ(t, dir, txlog.Options{})
	if !sameState(st, want) {
		t.Fatalf("state after a skipped middle record:\n got %v\nwant %v", st.Live, want.Live)
	}
	if p := st.Live["XID:1:04:01:q"]; p == nil || p.State != txlog.Prepared {
		t.Fatalf("the transaction prepared after the damage is %+v", p)
	}
	if o, _ := st.Outcome("XID:1:02:01:q"); o != txlog.Committed {
		t.Fatal("the commit recorded after the damage was lost")
	}
	if j.SkippedRecords() != 1 {
		t.Fatalf("SkippedRecords = %d, want 1", j.SkippedRecords())
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	files := dirFiles(t, dir)
	if kept := files["00000000000000000001.txlog.damaged"]; !bytes.Equal(kept, b) {
		t.Fatalf("the damaged file was not kept as it was; files: %v", slices.Sorted(mapKeys(files)))
	}
	j, st = openJ(t, dir, txlog.Options{}) // the snapshot alone rebuilds the state
	defer j.Close()
	if !sameState(st, want) || j.SkippedRecords() != 0 {
		t.Fatalf("second reopen: state %v, skipped %d", st.Live, j.SkippedRecords())
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestReplayNeverLosesLaterRecordsSilently flips every bit of a middle
// record (header, checksum and body) in turn: replay either skips exactly
// that record, or refuses with ErrUnreplayable and changes nothing on disk.
// A flip in the body or checksum must always be skipped.
func TestReplayNeverLosesLaterRecordsSilently(t *testing.T) {
	recs := middleVictim()
	want := stateOf(slices.Delete(slices.Clone(recs), 1, 2))
	_, orig, offs := writeJournal(t, recs)
	refused := 0
	for bit := offs[1] * 8; bit < offs[2]*8; bit++ {
		b := bytes.Clone(orig)
		b[bit/8] ^= 1 << (bit % 8)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		j, st, err := txlog.Open(dir, txlog.Options{})
		if err != nil {
			if !errors.Is(err, txlog.ErrUnreplayable) {
				t.Fatalf("bit %d: %v", bit, err)
			}
			if bit >= (offs[1]+4)*8 {
				t.Fatalf("bit %d (checksum or body) refused: %v", bit, err)
			}
			if files := dirFiles(t, dir); len(files) != 1 || !bytes.Equal(files["00000000000000000001.txlog"], b) {
				t.Fatalf("bit %d: a refused open changed the directory: %v", bit, slices.Sorted(mapKeys(files)))
			}
			refused++
			continue
		}
		if !sameState(st, want) {
			t.Fatalf("bit %d: state %v, want %v", bit, st.Live, want.Live)
		}
		j.Close()
	}
	t.Logf("%d of 32 length-field flips refused, the rest skipped", refused)
}

// TestReplayRefusesAnInconsistentSkip: the damaged record is the PREPARE
// of a transaction whose COMMIT follows. Skipping it would lose a decided
// commit, so Open fails with ErrUnreplayable and leaves the journal alone.
func TestReplayRefusesAnInconsistentSkip(t *testing.T) {
	recs := middleVictim()
	recs = append(recs, txlog.Record{Kind: txlog.KindCommit, Key: "XID:1:0f:01:victim", Parts: []txlog.PartStart{{Topic: "t"}}})
	dir, b, offs := writeJournal(t, recs)
	b[offs[1]+20] ^= 0x10
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := txlog.Open(dir, txlog.Options{})
	if !errors.Is(err, txlog.ErrUnreplayable) {
		t.Fatalf("Open: %v, want ErrUnreplayable", err)
	}
	for _, s := range []string{"00000000000000000001.txlog", "offset", "PREPARE is missing", "move this file"} {
		if !bytes.Contains([]byte(err.Error()), []byte(s)) {
			t.Fatalf("the error does not say %q: %v", s, err)
		}
	}
	if files := dirFiles(t, dir); len(files) != 1 || !bytes.Equal(files["00000000000000000001.txlog"], b) {
		t.Fatalf("a refused open changed the directory: %v", slices.Sorted(mapKeys(files)))
	}
	if _, err := txlog.Replay(dir, 0); !errors.Is(err, txlog.ErrUnreplayable) {
		t.Fatalf("Replay: %v, want ErrUnreplayable", err)
	}
}

// TestReplayTreatsGarbageAfterTheLastRecordAsATail: a torn last record, a
// zero-filled tail and a random-garbage tail (what a crash can leave) end
// replay without error, and Open starts a fresh file without them.
func TestReplayTreatsGarbageAfterTheLastRecordAsATail(t *testing.T) {
	recs := middleVictim()
	rng := rand.New(rand.NewPCG(3, 4))
	garbage := make([]byte, 5000)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	_, orig, offs := writeJournal(t, recs)
	last := offs[len(offs)-2]
	for name, b := range map[string][]byte{
		"torn last record":         orig[:last+(len(orig)-last)/2],
		"zeros":                    append(bytes.Clone(orig), make([]byte, 4096)...),
		"garbage":                  append(bytes.Clone(orig), garbage...),
		"damaged complete last":    flipAt(orig, last+12),
		"torn last, then zeros":    append(bytes.Clone(orig[:last+10]), make([]byte, 100)...),
		"header torn at creation":  []byte("MQTX"),
		"header zeroed, no frames": make([]byte, 64),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			n := len(recs)
			if name != "zeros" && name != "garbage" {
				n--
			}
			if len(b) < 100 {
				n = 0
			}
			j, st := openJ(t, dir, txlog.Options{})
			if !sameState(st, stateOf(recs[:n])) {
				t.Fatalf("state %v", st.Live)
			}
			if j.SkippedRecords() != 0 {
				t.Fatal("a tail counted as a skipped record")
			}
			j.Close()
			if files := dirFiles(t, dir); len(files) != 1 || files["00000000000000000001.txlog"] != nil {
				t.Fatalf("the file with the tail was not replaced: %v", slices.Sorted(mapKeys(files)))
			}
		})
	}
}

func flipAt(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x01
	return b
}

// TestReplaySkipsADamagedHeader: a flipped bit in the file magic does not
// throw away the intact records behind it.
func TestReplaySkipsADamagedHeader(t *testing.T) {
	recs := middleVictim()
	dir, b, _ := writeJournal(t, recs)
	b[3] ^= 0x40
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.txlog"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	j, st := openJ(t, dir, txlog.Options{})
	defer j.Close()
	if !sameState(st, stateOf(recs)) || j.SkippedRecords() != 1 {
		t.Fatalf("state %v, skipped %d", st.Live, j.SkippedRecords())
	}
}
