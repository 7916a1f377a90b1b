package store

import "testing"

func TestIDGen(t *testing.T) {
	now := int64(IDEpoch + 1000)
	g := newIDGen(5, func() int64 { return now })
	first := g.reserve(1)
	if first != 1000<<22|5<<12 {
		t.Fatalf("first id %x", first)
	}
	prev := first
	next := func(n int) int64 {
		id := g.reserve(n)
		if id <= prev {
			t.Fatalf("id %x not above %x", id, prev)
		}
		for i := 1; i < n; i++ {
			id = g.succ(id)
		}
		prev = id
		return id
	}
	// Sequence overflow within one millisecond moves to the next one.
	for i := 0; i < 5000; i++ {
		next(1)
	}
	if ms := prev >> 22; ms != 1001 || (prev>>12)&1023 != 5 {
		t.Fatalf("after 5000 ids in one ms: ms %d broker %d", ms, (prev>>12)&1023)
	}
	// The clock going back does not make ids go back.
	now -= 10_000
	next(3)
	now += 20_000
	if id := next(1); id>>22 != 11000 || id&0xFFF != 0 {
		t.Fatalf("after clock jump: %x", id)
	}
	if IDTime(prev).UnixMilli() != IDEpoch+11000 {
		t.Fatal("IDTime")
	}
	// A restart in the same millisecond continues after the stored ids.
	g2 := newIDGen(5, func() int64 { return now })
	g2.observe(IDTime(prev).UnixMilli())
	if id := g2.reserve(1); id <= prev {
		t.Fatalf("after restart: %x not above %x", id, prev)
	}
}
