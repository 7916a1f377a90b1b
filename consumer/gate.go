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

// gone reports whether ps will never deliver again: it was stopped (revoked,
// lost, closed), or the ZooKeeper session that acquired it has ended.
// Ownership belongs to that session: once it has ended, even a fresh new
// session must not deliver the partition's messages.
func (ps *partState) gone() bool {
	return ps.stopped.Load() || (ps.session != 0 && ps.c.sess.ID() != ps.session)
}

// deliverable reports whether a message of ps may be handed out now: the
// member is not suspended, the partition is not gone and (group mode) the
// member can prove it still owns the partition — its session provably alive
// by the send time of the newest answered ZooKeeper request, ownership
// confirmed since the last lapse, and nothing (a change of its owner node, a
// refused commit) put it in doubt (coordinator.Group.MayDeliver). Callers
// re-check after every wait, so no window opens between the checks; a
// process woken from SIGSTOP fails the check on its stale proof before any
// goroutine has noticed anything.
func (c *Consumer) deliverable(ps *partState) bool {
	if c.gate.isSuspended() || ps.gone() {
		return false
	}
	return c.members == nil || c.members.MayDeliver(ps.ctp)
}

// deliverPoll is how often a partition paused by MayDeliver (not by the
// suspension gate, which has a channel) is checked again.
const deliverPoll = 5 * time.Millisecond

// waitDeliverable waits until ps may deliver; false if the partition is
// gone or a or b is closed first.
func (c *Consumer) waitDeliverable(ps *partState, a, b <-chan struct{}) bool {
	for !c.deliverable(ps) {
		if ps.gone() {
			return false
		}
		if c.gate.isSuspended() {
			if !c.gate.wait(a, b) {
				return false
			}
			continue
		}
		t := time.NewTimer(deliverPoll)
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
