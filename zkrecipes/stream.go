package zkrecipes

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Stream delivers a recipe's events on C in order; nothing is dropped however
// slowly C is read (events wait in an unbounded queue). C is closed after
// Close, or when the recipe that produced the stream is closed.
type Stream[T any] struct {
	C <-chan T

	out    chan T
	detach func(*Stream[T]) // removes the stream from its producer; may be nil
	mu     sync.Mutex       // guards queue and done
	queue  []T
	kick   chan struct{}
	quit   chan struct{}
	done   bool
}

func newStream[T any](detach func(*Stream[T])) *Stream[T] {
	out := make(chan T)
	st := &Stream[T]{C: out, out: out, detach: detach, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	go st.pump()
	return st
}

// push queues ev without blocking.
func (st *Stream[T]) push(ev T) {
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return
	}
	st.queue = append(st.queue, ev)
	st.mu.Unlock()
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

func (st *Stream[T]) pump() {
	defer close(st.out)
	for {
		st.mu.Lock()
		var ev T
		have := len(st.queue) > 0
		if have {
			ev = st.queue[0]
			var zero T
			st.queue[0] = zero
			st.queue = st.queue[1:]
		}
		st.mu.Unlock()
		if !have {
			select {
			case <-st.kick:
				continue
			case <-st.quit:
				return
			}
		}
		select {
		case st.out <- ev:
		case <-st.quit:
			return
		}
	}
}

// stop ends the stream without detaching it from its producer.
func (st *Stream[T]) stop() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.done {
		st.done = true
		st.queue = nil
		close(st.quit)
	}
}

// Close stops the stream; C is closed soon after. Undelivered events are discarded.
func (st *Stream[T]) Close() {
	if st.detach != nil {
		st.detach(st)
	}
	st.stop()
}

// streamSet is the producer side of a set of Streams. The zero value is not
// usable; make one with newStreamSet.
type streamSet[T any] struct {
	mu     sync.Mutex // guards subs and closed
	subs   map[*Stream[T]]struct{}
	closed bool
}

func newStreamSet[T any]() *streamSet[T] {
	return &streamSet[T]{subs: map[*Stream[T]]struct{}{}}
}

// add creates a stream whose first events are initial, registered atomically
// with respect to publish (call it with the producer's state lock held so
// that initial and later events neither overlap nor leave a gap).
func (ss *streamSet[T]) add(initial []T) *Stream[T] {
	st := newStream(ss.remove)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		st.stop()
		return st
	}
	for _, ev := range initial {
		st.push(ev)
	}
	ss.subs[st] = struct{}{}
	return st
}

func (ss *streamSet[T]) remove(st *Stream[T]) {
	ss.mu.Lock()
	delete(ss.subs, st)
	ss.mu.Unlock()
}

// publish queues ev on every stream (never blocks).
func (ss *streamSet[T]) publish(ev T) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for st := range ss.subs {
		st.push(ev)
	}
}

// close stops every stream.
func (ss *streamSet[T]) close() {
	ss.mu.Lock()
	subs := ss.subs
	ss.subs = map[*Stream[T]]struct{}{}
	ss.closed = true
	ss.mu.Unlock()
	for st := range subs {
		st.stop()
	}
}

// isTransientErr reports whether an operation failed for a reason that a retry on
// a (possibly new) connected session can cure: a dropped connection or an
// expired session. Logical errors (NoNode, BadVersion, NoAuth...) are not.
func isTransientErr(err error) bool {
	return IsRetriable(err) || errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, ErrSessionLost) ||
		errors.Is(err, zk.ErrSessionMoved)
}

// retryDelay is a capped exponential delay for retry loops.
type retryDelay struct{ next time.Duration }

// wait sleeps for the next delay, or until ctx ends (then it returns ctx's error).
func (b *retryDelay) wait(ctx context.Context) error {
	if b.next == 0 {
		b.next = 10 * time.Millisecond
	}
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next *= 2
	if b.next > time.Second {
		b.next = time.Second
	}
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *retryDelay) reset() { b.next = 0 }

// retryTransient runs op until it succeeds, fails with a non-transient error,
// or ctx ends; after a transient failure it waits for the session to be
// connected again (with retryDelay, since the state may lag the connection).
// Use it only for idempotent operations.
func retryTransient(ctx context.Context, s *Session, op func() error) error {
	var b retryDelay
	for {
		err := op()
		if err == nil || !isTransientErr(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		if werr := s.WaitConnected(ctx); werr != nil {
			return werr
		}
		if werr := b.wait(ctx); werr != nil {
			return err
		}
	}
}

// connectedSessionID waits until s is connected and returns the session id.
func connectedSessionID(ctx context.Context, s *Session) (int64, error) {
	for {
		if err := s.WaitConnected(ctx); err != nil {
			return 0, err
		}
		if id := s.ID(); id != 0 {
			return id, nil
		}
		var b retryDelay
		if err := b.wait(ctx); err != nil {
			return 0, err
		}
	}
}

// awaitWatch waits for a watch event on ch, the loss of session id, or ctx.
// A watch that the client dropped (EventNotWatching) and the loss of the
// session both return ErrSessionLost-wrapping or transient errors, so callers
// re-read and re-arm.
func awaitWatch(ctx context.Context, s *Session, id int64, ch <-chan zk.Event) error {
	ev, err := s.WaitEvent(ctx, id, ch)
	if err != nil {
		return err
	}
	if ev.Type == zk.EventNotWatching {
		return ErrSessionLost
	}
	return nil
}
