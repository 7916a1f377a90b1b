package broker

import (
	"context"
	"sync"
)

// inflightCounter counts requests being served off the event loop. Unlike a
// sync.WaitGroup it may be incremented while someone waits for it to drain
// (requests keep arriving while Shutdown waits).
type inflightCounter struct {
	mu   sync.Mutex // guards n and zero
	n    int
	zero chan struct{} // closed when n drops to 0; nil when nobody waits
}

// Add adds delta (which may be negative) to the count.
func (c *inflightCounter) Add(delta int) {
	c.mu.Lock()
	c.n += delta
	if c.n == 0 && c.zero != nil {
		close(c.zero)
		c.zero = nil
	}
	c.mu.Unlock()
}

// Done is Add(-1).
func (c *inflightCounter) Done() { c.Add(-1) }

// Wait blocks until the count is zero or ctx ends.
func (c *inflightCounter) Wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.zero == nil {
		c.zero = make(chan struct{})
	}
	ch := c.zero
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
