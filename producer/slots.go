package producer

import (
	"context"
	"sync/atomic"
)

// slots bounds the messages in flight (WithMaxInFlight) and recycles their
// records: a message in flight holds a record, and a record not in flight
// waits in a bounded lock-free queue (Vyukov's MPMC ring). Taking a record
// and giving it back are one CAS each while there is room. This replaced a
// buffered channel as the bound (two channel operations per message, on a
// lock the sending goroutine and the connection's reader contended for) and
// a sync.Pool for the records (taken on the sender's P and returned on the
// reader's, so most Gets took the pool's slow path). Only a sender that
// finds every record in flight waits, on a channel.
type slots struct {
	max   int64
	made  atomic.Int64 // records allocated so far (≤ max)
	mask  uint64
	cells []slotCell
	_     [64]byte
	enq   atomic.Uint64
	_     [64]byte
	deq   atomic.Uint64
	_     [64]byte

	waiting atomic.Int32  // senders in take's slow path
	room    chan struct{} // cap 1: a record came back while a sender waited
	onFull  func()        // optional: called when a sender finds every record in flight, before it waits
}

type slotCell struct {
	seq atomic.Uint64
	r   *record
}

// maxSlotRing bounds the ring (16 bytes a cell), so that a huge
// WithMaxInFlight costs no memory up front. With more records in flight than
// the ring holds, a record that finds the ring full is dropped (made again
// when needed).
const maxSlotRing = 1 << 16

func newSlots(max int) *slots { return newSlotsRing(max, min(max, maxSlotRing)) }

func newSlotsRing(max, ring int) *slots {
	n := uint64(1)
	for n < uint64(ring) {
		n <<= 1
	}
	s := &slots{max: int64(max), mask: n - 1, cells: make([]slotCell, n), room: make(chan struct{}, 1)}
	for i := range s.cells {
		s.cells[i].seq.Store(uint64(i))
	}
	return s
}

// tryTake returns a free record, or a new one while fewer than max exist;
// nil when max are in flight.
func (s *slots) tryTake() *record {
	if r := s.pop(); r != nil {
		return r
	}
	for {
		n := s.made.Load()
		if n >= s.max {
			return s.pop() // one may have come back meanwhile
		}
		if s.made.CompareAndSwap(n, n+1) {
			return new(record)
		}
	}
}

// take returns a record for a message, waiting for one until ctx ends (its
// error) or abort is closed (ErrClosed).
func (s *slots) take(ctx context.Context, abort <-chan struct{}) (*record, error) {
	if r := s.tryTake(); r != nil {
		return r, nil
	}
	if s.onFull != nil {
		s.onFull()
	}
	// Announce the wait before trying again: a put that misses the
	// announcement happened before the try, which then finds its record.
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	for {
		if r := s.tryTake(); r != nil {
			if s.enq.Load() != s.deq.Load() {
				s.signal() // more came back: wake another waiter too
			}
			return r, nil
		}
		select {
		case <-s.room:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-abort:
			return nil, ErrClosed
		}
	}
}

// put gives back the record of a finished message (released by the caller,
// which must not touch it afterwards) and wakes a waiting sender.
func (s *slots) put(r *record) {
	s.push(r)
	if s.waiting.Load() > 0 {
		s.signal()
	}
}

func (s *slots) signal() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

// push and pop are the bounded MPMC queue.
func (s *slots) push(r *record) {
	pos := s.enq.Load()
	for {
		c := &s.cells[pos&s.mask]
		seq := c.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if s.enq.CompareAndSwap(pos, pos+1) {
				c.r = r
				c.seq.Store(pos + 1)
				return
			}
		case d < 0: // full (more in flight than the ring holds): drop r
			s.made.Add(-1)
			return
		default:
			pos = s.enq.Load()
		}
	}
}

func (s *slots) pop() *record {
	pos := s.deq.Load()
	for {
		c := &s.cells[pos&s.mask]
		seq := c.seq.Load()
		switch d := int64(seq - (pos + 1)); {
		case d == 0:
			if s.deq.CompareAndSwap(pos, pos+1) {
				r := c.r
				c.r = nil
				c.seq.Store(pos + s.mask + 1)
				return r
			}
		case d < 0:
			return nil // empty
		default:
			pos = s.deq.Load()
		}
	}
}
