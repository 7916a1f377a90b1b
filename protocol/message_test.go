package protocol

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
)

func TestChecksumMasksCRC(t *testing.T) {
	for _, d := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0xff}, 1000)} {
		if got, want := Checksum(d), int32(crc32.ChecksumIEEE(d)&0x7fffffff); got != want || got < 0 {
			t.Fatal(got, want)
		}
	}
}

func TestMessageHeaderLayout(t *testing.T) {
	m := AppendMessage(nil, 0x0102030405060708, 0x0a0b0c0d, []byte("xyz"))
	want := []byte{0, 0, 0, 3}
	sum := Checksum([]byte("xyz"))
	want = append(want, byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum))
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 'x', 'y', 'z')
	if !bytes.Equal(m, want) {
		t.Fatalf("%x\n%x", m, want)
	}
}

func buildSet(n int) ([]byte, []Message) {
	var set []byte
	var msgs []Message
	for i := range n {
		data := AppendPutData(nil, int32(i%2), "attr", bytes.Repeat([]byte{byte(i)}, i*3))
		msgs = append(msgs, Message{Offset: int64(len(set)), ID: int64(i) << 22, Flag: int32(i % 2), Checksum: Checksum(data), Data: data})
		set = AppendMessage(set, int64(i)<<22, int32(i%2), data)
	}
	return set, msgs
}

func TestMessageIteratorScenarios(t *testing.T) {
	set, msgs := buildSet(10)
	t.Run("whole set", func(t *testing.T) {
		it := NewMessageIterator(set)
		var got []Message
		for it.Next() {
			got = append(got, it.Message())
		}
		if it.Err() != nil || it.Consumed() != len(set) || it.Incomplete() || len(got) != len(msgs) {
			t.Fatal(it.Err(), it.Consumed(), len(got))
		}
		for i := range got {
			if got[i].ID != msgs[i].ID || got[i].Offset != msgs[i].Offset || !bytes.Equal(got[i].Data, msgs[i].Data) || got[i].Size() != 20+len(msgs[i].Data) {
				t.Fatalf("message %d differs", i)
			}
			attr, payload, err := got[i].Attribute()
			if err != nil || (got[i].Flag&1 == 1) != (attr != nil) || len(payload) != i*3 {
				t.Fatalf("attribute %d: %q %v", i, attr, err)
			}
		}
	})
	t.Run("every truncation stops at last complete message", func(t *testing.T) {
		for cut := 0; cut <= len(set); cut++ {
			it := NewMessageIterator(set[:cut])
			count := 0
			for it.Next() {
				count++
			}
			want := 0
			for _, m := range msgs {
				if int(m.Offset)+m.Size() <= cut {
					want = int(m.Offset) + m.Size()
				}
			}
			if it.Err() != nil || it.Consumed() != want || it.Incomplete() != (want < cut) {
				t.Fatalf("cut %d: consumed %d want %d err %v", cut, it.Consumed(), want, it.Err())
			}
		}
	})
	t.Run("crc mismatch is a distinct error", func(t *testing.T) {
		bad := bytes.Clone(set)
		third := msgs[3]
		bad[third.Offset+20] ^= 0xff
		it := NewMessageIterator(bad)
		n := 0
		for it.Next() {
			n++
		}
		var ce *ChecksumError
		if n != 3 || !errors.Is(it.Err(), ErrChecksum) || !errors.As(it.Err(), &ce) || ce.Offset != third.Offset || it.Consumed() != int(third.Offset) {
			t.Fatal(n, it.Err())
		}
		it = NewMessageIterator(bad)
		it.SkipChecksum()
		n = 0
		for it.Next() {
			n++
		}
		if n != 10 {
			t.Fatal("SkipChecksum", n)
		}
	})
	t.Run("negative length is corrupt", func(t *testing.T) {
		bad := bytes.Clone(set)
		bad[0] = 0x80
		it := NewMessageIterator(bad)
		if it.Next() || !errors.Is(it.Err(), ErrCorrupt) || it.Consumed() != 0 {
			t.Fatal(it.Err())
		}
	})
	t.Run("empty set", func(t *testing.T) {
		it := NewMessageIterator(nil)
		if it.Next() || it.Err() != nil || it.Incomplete() {
			t.Fatal()
		}
	})
}

func TestPutDataScenarios(t *testing.T) {
	tests := []struct {
		name    string
		flag    int32
		data    []byte
		attr    []byte
		payload string
		wantErr bool
	}{
		{"no attribute flag", 0, []byte("abc"), nil, "abc", false},
		{"other flag bits ignored", 6, []byte("abc"), nil, "abc", false},
		{"attribute", 1, AppendPutData(nil, 1, "tag", []byte("abc")), []byte("tag"), "abc", false},
		{"empty attribute", 1, AppendPutData(nil, 1, "", []byte("abc")), []byte{}, "abc", false},
		{"attribute only", 1, AppendPutData(nil, 1, "tag", nil), []byte("tag"), "", false},
		{"too short for length", 1, []byte{0, 0}, nil, "", true},
		{"attribute past end", 1, []byte{0, 0, 0, 9, 'a'}, nil, "", true},
		{"negative attribute length", 1, []byte{0xff, 0xff, 0xff, 0xff, 'a'}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attr, payload, err := ParsePutData(tt.flag, tt.data)
			if tt.wantErr {
				if !errors.Is(err, ErrBadPutData) {
					t.Fatal(err)
				}
				return
			}
			if err != nil || !bytes.Equal(attr, tt.attr) || (attr == nil) != (tt.attr == nil) || string(payload) != tt.payload {
				t.Fatalf("%q %q %v", attr, payload, err)
			}
		})
	}
}
