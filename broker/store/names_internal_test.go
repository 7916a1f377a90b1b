package store

import (
	"errors"
	"testing"
)

func TestPartitionDirNames(t *testing.T) {
	cases := []struct {
		name  string
		topic string
		part  int
		ok    bool
	}{
		{"orders-0", "orders", 0, true},
		{"my-topic-12", "my-topic", 12, true},
		{"a.b_c-3", "a.b_c", 3, true},
		{"orders", "", 0, false},
		{"orders-", "", 0, false},
		{"-1", "", 0, false},
		{"orders-01", "", 0, false},
		{"orders--1", "orders-", 1, true}, // topic "orders-" is legal
		{"..-1", "", 0, false},
		{".-1", "", 0, false},
		{"..x-1", "..x", 1, true},
		{"a b-1", "", 0, false},
		{"a/b-1", "", 0, false},
	}
	for _, c := range cases {
		topic, part, ok := ParsePartitionDirName(c.name)
		if ok != c.ok || topic != c.topic || part != c.part {
			t.Errorf("%q: got %q %d %v", c.name, topic, part, ok)
		}
		if ok && PartitionDirName(topic, part) != c.name {
			t.Errorf("%q does not round-trip", c.name)
		}
	}
	for _, bad := range []string{".", "..", "", "a/b"} {
		if err := validPartition(bad, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("partition %q 0 accepted: %v", bad, err)
		}
	}
	if err := validPartition("a", -1); !errors.Is(err, ErrInvalidName) {
		t.Errorf("partition -1 accepted: %v", err)
	}
	if b, ok := parseSegmentName(segmentName(1234)); !ok || b != 1234 || segmentName(1234) != "00000000000000001234.meta" {
		t.Fatal("segment name")
	}
	for _, bad := range []string{"1234.meta", "0000000000000000123x.meta", "00000000000000001234.idx"} {
		if _, ok := parseSegmentName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSidecarAndMarkerCodecs(t *testing.T) {
	idx := []indexEntry{{0, 5}, {4096, 9}}
	b := encodeIndex(5000, 7, 9, idx)
	size, count, maxTS, got, err := decodeIndex(b)
	if err != nil || size != 5000 || count != 7 || maxTS != 9 || len(got) != 2 || got[1] != idx[1] {
		t.Fatalf("index round trip: %v", err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, _, _, _, err := decodeIndex(c); err == nil {
			t.Fatalf("damaged byte %d accepted", i)
		}
	}
	if _, _, _, _, err := decodeIndex(b[:len(b)-1]); err == nil {
		t.Fatal("short sidecar accepted")
	}
	m := encodeClean(100, 200)
	if base, size, ok := decodeClean(m); !ok || base != 100 || size != 200 {
		t.Fatal("marker round trip")
	}
	m[len(cleanMagic)+2] ^= 1
	if _, _, ok := decodeClean(m); ok {
		t.Fatal("damaged marker accepted")
	}
}
