package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// inflightCounter counts requests being served off the event loop. Unlike a
// sync.WaitGroup it may be incremented while someone waits for it to drain
// (requests keep arriving while Shutdown waits), and it can be closed to new
// requests (admit) once a drain starts.
//
// It is on the put path of every partition batch, from the store's answer
// goroutine and the event loops at once, so the common case is two atomic adds and no
// lock: the mutex is taken only when the count reaches zero while a drain
// waits. Correctness rests on the sequentially consistent order of Go's
// atomics (a Dekker-style handshake): admit adds to n and then loads closed,
// close stores closed and Wait then loads n — one of the two always sees the
// other; likewise Add stores n then loads waiting, Wait stores waiting then
// loads n.
type inflightCounter struct {
	n       atomic.Int64
	closed  atomic.Bool // admit refuses from now on
	waiting atomic.Bool // a Wait may be parked on zero

	mu   sync.Mutex    // guards zero
	zero chan struct{} // closed when n is seen at 0 while waiting; nil when nobody waits
}

// admit registers one request unless the counter is closed to new ones; it
// reports whether it did (the caller then owes one Done).
func (c *inflightCounter) admit() bool {
	c.n.Add(1)
	if c.closed.Load() {
		c.Done() // may be the zero a drain waits for
		return false
	}
	return true
}

// admitting reports whether admit would still admit (a hint: it may close
// right after).
func (c *inflightCounter) admitting() bool { return !c.closed.Load() }

// closeAdmission makes every later admit fail. Requests admitted before it
// are still counted, so a Wait after it waits for all of them.
func (c *inflightCounter) closeAdmission() { c.closed.Store(true) }

// Add adds delta (which may be negative) to the count.
func (c *inflightCounter) Add(delta int) {
	if c.n.Add(int64(delta)) == 0 && c.waiting.Load() {
		c.wakeIfZero()
	}
}

// Done is Add(-1).
func (c *inflightCounter) Done() { c.Add(-1) }

func (c *inflightCounter) wakeIfZero() {
	c.mu.Lock()
	if c.zero != nil && c.n.Load() == 0 {
		close(c.zero)
		c.zero = nil
	}
	c.mu.Unlock()
}

// Wait blocks until the count is zero or ctx ends.
func (c *inflightCounter) Wait(ctx context.Context) error {
	c.mu.Lock()
	if c.zero == nil {
		c.zero = make(chan struct{})
	}
	ch := c.zero
	c.waiting.Store(true)
	c.mu.Unlock()
	c.wakeIfZero() // the count may have been zero all along, or reached it before waiting was set
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
