package producer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
)

// Senders waiting for room all get a record as records come back, however
// the returns interleave with their waits; never more than max records
// exist or are held, and no record is held by two senders at once.
func TestSlotsWakeEveryWaiter(t *testing.T) {
	s := newSlots(3)
	abort := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const senders, rounds = 8, 300
	var held, peak atomic.Int64
	var owners sync.Map // *record → sender
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < rounds; k++ {
				r, err := s.take(ctx, abort)
				if err != nil {
					t.Error(err)
					return
				}
				if prev, dup := owners.LoadOrStore(r, i); dup {
					t.Errorf("record held by senders %v and %d", prev, i)
					return
				}
				n := held.Add(1)
				for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
				}
				held.Add(-1)
				owners.Delete(r)
				s.put(r)
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(3))
	require.LessOrEqual(t, s.made.Load(), int64(3))
	for i := 0; i < int(s.made.Load()); i++ {
		require.NotNil(t, s.pop(), "every record came back")
	}
	require.Nil(t, s.pop())
}

// A sender waiting for room gives up when its ctx ends or the producer is
// closed, without taking a record.
func TestSlotsWaitEnds(t *testing.T) {
	s := newSlots(1)
	abort := make(chan struct{})
	r, err := s.take(context.Background(), abort)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.take(ctx, abort)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(abort)
	_, err = s.take(context.Background(), abort)
	require.ErrorIs(t, err, ErrClosed)
	s.put(r)
	r2, err := s.take(context.Background(), make(chan struct{}))
	require.NoError(t, err)
	require.Same(t, r, r2, "the record is recycled")
	require.Equal(t, int64(1), s.made.Load())
}

// With more records in flight than the ring holds, the extra ones are
// dropped when they come back and made again when needed; a huge bound
// allocates no huge ring.
func TestSlotsRingSmallerThanBound(t *testing.T) {
	s := newSlotsRing(8, 2)
	abort := make(chan struct{})
	for round := 0; round < 3; round++ {
		var rs []*record
		for i := 0; i < 8; i++ {
			r, err := s.take(context.Background(), abort)
			require.NoError(t, err)
			rs = append(rs, r)
		}
		require.Nil(t, s.tryTake(), "the bound holds")
		for _, r := range rs {
			s.put(r)
		}
		require.Equal(t, int64(2), s.made.Load(), "the ring keeps two, the rest are dropped")
	}
	require.Len(t, newSlots(1<<30).cells, maxSlotRing)
}

// release leaves no reference to the caller's memory (payload, key, topic,
// context, callback) in a record waiting for reuse.
func TestReleaseClearsReferences(t *testing.T) {
	p := &Producer{slots: newSlots(1)}
	r := p.slots.tryTake()
	payload := []byte("payload")
	*r = record{p: p, ctx: context.Background(), msg: Message{Topic: "t", Payload: payload, Key: payload, Attribute: "a"},
		data: payload, cb: func(Result, error) {}, w: &waiter{}, lastErr: context.Canceled, c: &conn.Conn{}}
	r.release(p)
	got := p.slots.tryTake()
	if got != r {
		t.Fatal("the released record did not come back")
	}
	if got.msg.Payload != nil || got.msg.Key != nil || got.msg.Topic != "" || got.msg.Attribute != "" || got.data != nil ||
		got.ctx != nil || got.cb != nil {
		t.Fatalf("references left: %+v", got)
	}
}

// The fields release clears lie in a record's first two cache lines, the
// rest of what an acknowledgement reads in the third, and records are
// 64-byte aligned (their size class is a multiple of 64), so an
// acknowledgement touches three lines.
func TestRecordLayout(t *testing.T) {
	var r record
	if end := unsafe.Offsetof(r.cb) + unsafe.Sizeof(r.cb); end > 128 {
		t.Fatalf("cleared fields end at byte %d, past two cache lines", end)
	}
	for name, f := range map[string][2]uintptr{"w": {unsafe.Offsetof(r.w), unsafe.Sizeof(r.w)}, "c": {unsafe.Offsetof(r.c), unsafe.Sizeof(r.c)},
		"b": {unsafe.Offsetof(r.b), unsafe.Sizeof(r.b)}, "start": {unsafe.Offsetof(r.start), unsafe.Sizeof(r.start)},
		"part": {unsafe.Offsetof(r.part), unsafe.Sizeof(r.part)}} {
		if f[0] < 128 || f[0]+f[1] > 192 {
			t.Errorf("field %s at bytes %d..%d: an acknowledgement's fields belong in the third cache line", name, f[0], f[0]+f[1])
		}
	}
	if size := unsafe.Sizeof(r); size%64 != 0 || size > 320 {
		t.Fatalf("record is %d bytes: want a multiple of 64 (adjust recordPad)", size)
	}
	for range 100 {
		recordSink = new(record) // on the heap, as slots allocates them
		if a := uintptr(unsafe.Pointer(recordSink)); a%64 != 0 {
			t.Fatalf("record at %#x is not 64-byte aligned", a)
		}
	}
}

var recordSink *record
