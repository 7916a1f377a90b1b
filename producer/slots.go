package producer

import (
	"context"
	"sync/atomic"
)

// slots bounds the messages in flight (WithMaxInFlight). Taking and
// returning a slot is one atomic operation while there is room — the
// buffered channel it replaces cost two channel operations per message,
// both on one lock that the sending goroutine and the connection's reader
// contended for. Only a sender that finds no room waits, on a channel.
type slots struct {
	max     int64
	used    atomic.Int64
	waiting atomic.Int32  // senders in take's slow path
	room    chan struct{} // cap 1: a slot was returned while a sender waited
}

func newSlots(max int) *slots {
	return &slots{max: int64(max), room: make(chan struct{}, 1)}
}

// tryTake takes a slot if one is free.
func (s *slots) tryTake() bool {
	for {
		n := s.used.Load()
		if n >= s.max {
			return false
		}
		if s.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// take takes a slot, waiting for one until ctx ends (its error) or abort
// is closed (ErrClosed).
func (s *slots) take(ctx context.Context, abort <-chan struct{}) error {
	if s.tryTake() {
		return nil
	}
	// Announce the wait before checking again: a put that misses the
	// announcement happened before the check, which then sees its room.
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	for {
		if s.tryTake() {
			if s.used.Load() < s.max {
				s.signal() // room for another waiter too
			}
			return nil
		}
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-abort:
			return ErrClosed
		}
	}
}

// put returns a slot and wakes a waiting sender.
func (s *slots) put() {
	s.used.Add(-1)
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
