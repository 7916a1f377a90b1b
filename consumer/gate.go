package consumer

import (
	"sync"
	"sync/atomic"
	"time"
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

// fresh reports whether the group member's ZooKeeper session was heard from
// recently enough to hand out a message: a process that was stopped (SIGSTOP,
// a long GC or VM pause) past the session timeout must not deliver anything
// before its member goroutine notices and suspends. Broadcast mode has no
// ownership and is always fresh.
func (c *Consumer) fresh() bool {
	limit := c.fenceAge.Load()
	if limit <= 0 {
		return true
	}
	return time.Since(c.sess.LastHeard()) < time.Duration(limit)
}

// waitFresh waits until the session is fresh again (the member hears from
// ZooKeeper, or suspends: then the gate holds delivery). False if a or b is
// closed first.
func (c *Consumer) waitFresh(a, b <-chan struct{}) bool {
	for !c.fresh() {
		if c.gate.isSuspended() {
			if !c.gate.wait(a, b) {
				return false
			}
			continue
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-t.C:
		case <-a:
			t.Stop()
			return false
		case <-b:
			t.Stop()
			return false
		}
	}
	return true
}

// sessionOK reports whether the session that acquired the partition is still
// the current one. Ownership belongs to that session: once it has ended, even
// a fresh new session (whose handshake also refreshes LastHeard) must not
// deliver the partition's messages.
func (ps *partState) sessionOK() bool {
	return ps.session == 0 || ps.c.sess.ID() == ps.session
}

// deliverable reports whether a message of ps may be handed out now: the
// member is not suspended, ZooKeeper was heard from recently, and the
// partition's session is still the current one. Callers re-check after every
// wait, so no window opens between the checks.
func (c *Consumer) deliverable(ps *partState) bool {
	return !c.gate.isSuspended() && c.fresh() && ps.sessionOK()
}

// waitDeliverable waits until ps may deliver; false if the partition's
// session has ended or a or b is closed first.
func (c *Consumer) waitDeliverable(ps *partState, a, b <-chan struct{}) bool {
	for !c.deliverable(ps) {
		if !ps.sessionOK() {
			return false
		}
		if !c.gate.wait(a, b) || !c.waitFresh(a, b) {
			return false
		}
	}
	return true
}
