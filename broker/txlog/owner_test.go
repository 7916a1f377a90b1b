package txlog_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/metaq-go/metaq/broker/txlog"
)

// oldPrepareFrame is a PREPARE record as versions without transaction
// owners wrote it: kind, key, no messages, nothing after them.
func oldPrepareFrame(key string, trailer ...byte) []byte {
	body := []byte{byte(txlog.KindPrepare)}
	body = binary.BigEndian.AppendUint16(body, uint16(len(key)))
	body = append(body, key...)
	body = binary.BigEndian.AppendUint32(body, 0)
	body = append(body, trailer...)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = binary.BigEndian.AppendUint32(frame, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return append(frame, body...)
}

func TestRecordsWithoutOwnerStillDecode(t *testing.T) {
	old := oldPrepareFrame("XID:1:0a:0b:q")
	rec, n, err := txlog.DecodeRecord(old)
	if err != nil || n != len(old) || rec.Owner != "" || rec.Kind != txlog.KindPrepare {
		t.Fatalf("old PREPARE: %+v n=%d err=%v", rec, n, err)
	}
	again := txlog.AppendRecord(nil, &rec)
	if string(again) != string(old) {
		t.Fatal("a record without an owner is not written in the old format")
	}
	// An empty owner is never written as a trailer, so one is corrupt;
	// so is a trailer cut short.
	for _, trailer := range [][]byte{{0, 0}, {0, 5, 'a'}, {0}} {
		if _, _, err := txlog.DecodeRecord(oldPrepareFrame("k", trailer...)); !errors.Is(err, txlog.ErrCorrupt) {
			t.Fatalf("trailer %v: err %v, want ErrCorrupt", trailer, err)
		}
	}
}

func TestStateKeepsTheOwnerThroughEveryState(t *testing.T) {
	key := "XID:1:0a:0b:q"
	msgs := []txlog.Message{{Topic: "t", ID: 1, Data: []byte("x")}}
	for name, recs := range map[string][]txlog.Record{
		"prepared":            {{Kind: txlog.KindPrepare, Key: key, Msgs: msgs, Owner: "alice"}},
		"committing":          {{Kind: txlog.KindPrepare, Key: key, Msgs: msgs, Owner: "alice"}, {Kind: txlog.KindCommit, Key: key}},
		"heuristic committed": {{Kind: txlog.KindPrepare, Key: key, Msgs: msgs, Owner: "alice"}, {Kind: txlog.KindCommit, Key: key, Heuristic: true}, {Kind: txlog.KindDone, Key: key, Heuristic: true}},
		"heuristic rollback":  {{Kind: txlog.KindPrepare, Key: key, Msgs: msgs, Owner: "alice"}, {Kind: txlog.KindRollback, Key: key, Heuristic: true}},
	} {
		st := txlog.NewState(10)
		for i := range recs {
			st.Apply(&recs[i])
		}
		if got := st.Live[key].Owner; got != "alice" {
			t.Fatalf("%s: owner %q", name, got)
		}
		// A snapshot (rotation) and the stream encoding keep it.
		re := txlog.NewState(10)
		for _, r := range st.Snapshot() {
			b := txlog.AppendRecord(nil, &r)
			d, _, err := txlog.DecodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			re.Apply(&d)
		}
		if got := re.Live[key].Owner; got != "alice" {
			t.Fatalf("%s after a snapshot: owner %q", name, got)
		}
	}
}
