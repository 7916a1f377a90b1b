package consumer

import (
	"sync"
	"sync/atomic"
)

// gate stops delivery while the group member is suspended (self-fencing).
type gate struct {
	suspended atomic.Bool
	mu        sync.Mutex    // guards open
	open      chan struct{} // closed while not suspended
}

func (g *gate) init() {
	g.open = make(chan struct{})
	close(g.open)
}

func (g *gate) isSuspended() bool { return g.suspended.Load() }

func (g *gate) suspend() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.suspended.Load() {
		g.open = make(chan struct{})
		g.suspended.Store(true)
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.suspended.Load() {
		g.suspended.Store(false)
		close(g.open)
	}
}

// wait returns true once the gate is open, false if a or b is closed first.
func (g *gate) wait(a, b <-chan struct{}) bool {
	if !g.suspended.Load() {
		return true
	}
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-a:
		return false
	case <-b:
		return false
	}
}
