package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// Self-fencing: what a member may deliver, and when it must stop.
//
// A member may hand out messages of a partition only while it can prove
// that ZooKeeper still counts it as the owner:
//
//   - its session is provably alive: the newest request the server answered
//     was SENT less than the session timeout minus the safety margin ago
//     (zkrecipes.Liveness; the time an answer was read proves nothing after a
//     process pause);
//   - ownership was confirmed in the current liveness run: after any lapse
//     (a gap between answered requests longer than 2/3 of the session
//     timeout, e.g. a SIGSTOP) every owned partition is paused until its
//     owner node was read again and is still this session's, with this
//     member's data;
//   - nothing put it in doubt: a watch on the member's own owner node fired,
//     or a commit was refused (ErrNotOwner). A node that is gone or changed
//     means the partition is lost (Handler.Lost), while the session lives.

// MayDeliver reports whether a message of tp may be handed out now: the
// member owns tp, its session is provably alive with the safety margin in
// hand, and ownership was confirmed since the last lapse. It is cheap enough
// to call per message.
func (g *Group) MayDeliver(tp TopicPartition) bool {
	l := g.s.Liveness() // before the session id: see zkrecipes.Session.Liveness
	timeout := g.s.Timeout()
	if !time.Now().Before(l.Until(timeout, g.margin(timeout))) {
		return false
	}
	id := g.s.ID()
	g.mu.Lock()
	defer g.mu.Unlock()
	ref := g.owned[tp]
	return ref != nil && !g.suspended && !ref.doubt && ref.session == id && ref.verified == l.Run
}

func (g *Group) margin(timeout time.Duration) time.Duration {
	m := g.opts.SafetyMargin
	if m <= 0 || m >= timeout {
		m = timeout / 3
	}
	return m
}

// doubt marks tp in doubt if it is still owned through node, and wakes the
// member loop to check it.
func (g *Group) doubt(tp TopicPartition, node string) {
	g.mu.Lock()
	ref := g.owned[tp]
	if ref != nil && ref.node == node {
		ref.doubt = true
	}
	g.mu.Unlock()
	if ref == nil {
		return
	}
	select {
	case g.events <- loopEvent{kind: evVerify}:
	default: // the loop is busy; it checks doubts on every pass
	}
}

// forwardOwn delivers a firing of the own-node watch: the partition is put
// in doubt at once (delivery stops before the loop even sees the event).
func (g *Group) forwardOwn(ev loopEvent, ch <-chan zk.Event) {
	node := ev.node
	g.afterFiring(ch, func() {
		g.mu.Lock()
		if ref := g.owned[ev.tp]; ref != nil && ref.node == node {
			ref.doubt = true
		}
		g.mu.Unlock()
		g.deliver(ev)
	})
}

// verifyOwned re-reads the owner node of every owned partition that is in
// doubt or was not confirmed in the current liveness run, and re-arms its
// watch. A node that is gone, belongs to another session or holds another
// member's id means the partition is lost.
func (g *Group) verifyOwned(ctx context.Context, st *memberState) error {
	if !st.connUp || st.sessionID == 0 || g.s.ID() != st.sessionID {
		return nil // the session events decide; nothing can be confirmed now
	}
	for _, tp := range sortedTPs(st.parts) {
		ps := st.parts[tp]
		if ps == nil || !ps.owned {
			continue
		}
		for range 3 { // a lapse during the read starts a new run: read again
			run := g.s.Liveness().Run
			g.mu.Lock()
			ref := g.owned[tp]
			need := ref != nil && (ref.doubt || ref.verified != run)
			g.mu.Unlock()
			if !need && ps.ownArmed {
				break
			}
			ok, err := g.confirmOwner(ctx, st, tp, ps)
			if err != nil {
				return err
			}
			if !ok {
				g.loseOne(st, tp)
				break
			}
			g.mu.Lock()
			if ref := g.owned[tp]; ref != nil {
				ref.verified, ref.doubt, ref.version = run, false, ps.version
			}
			g.mu.Unlock()
			if g.s.Liveness().Run == run {
				break
			}
		}
	}
	return nil
}

// confirmOwner reads tp's owner node (arming the watch if none is armed):
// ok when it still exists, belongs to the member's session and holds its id.
func (g *Group) confirmOwner(ctx context.Context, st *memberState, tp TopicPartition, ps *partState) (bool, error) {
	var data []byte
	var stat *zk.Stat
	var err error
	if ps.ownArmed {
		data, stat, err = g.s.Get(ctx, ps.node)
	} else {
		var ch <-chan zk.Event
		data, stat, ch, err = g.s.GetW(ctx, ps.node)
		if err == nil {
			ps.ownArmed = true
			g.forwardOwn(loopEvent{kind: evOwnNode, epoch: st.epoch, tp: tp, node: ps.node}, ch)
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		g.log.Warn("owner node deleted while the session lives: partition lost", "partition", tp, "node", ps.node)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if stat.EphemeralOwner != st.sessionID || string(data) != g.opts.MemberID {
		g.log.Warn("owner node changed while the session lives: partition lost", "partition", tp, "node", ps.node,
			"data", string(data), "ephemeral_owner", fmt.Sprintf("0x%x", stat.EphemeralOwner))
		return false, nil
	}
	if ps.fence != "" {
		ok, fstat, err := g.s.Exists(ctx, ps.fence)
		if err != nil {
			return false, err
		}
		if !ok || fstat.EphemeralOwner != st.sessionID {
			g.log.Warn("fence node deleted while the session lives: partition lost", "partition", tp, "node", ps.fence)
			return false, nil
		}
	}
	ps.version = stat.Version // rewritten with our own id: adopt the version commits check
	return true, nil
}

// loseOne drops one partition whose ownership ended while the session
// lives: it is reported Lost (no commit is possible any more), its node (if
// still there) is deleted, and the next reconcile claims it again if it
// is still assigned here.
func (g *Group) loseOne(st *memberState, tp TopicPartition) {
	ps := st.parts[tp]
	delete(st.parts, tp)
	g.mu.Lock()
	delete(g.owned, tp)
	g.mu.Unlock()
	if ps != nil {
		st.release(ps)
	}
	g.count(func(s *GroupStats) { s.Lost++; s.OwnerLost++ })
	g.opts.Handler.Lost([]TopicPartition{tp})
}

// checkFence suspends the member when it cannot prove its session is alive
// with the safety margin in hand (zkrecipes.Liveness: the newest answered
// request was sent longer ago than the session timeout minus the margin), the
// connection is down, the session changed, or an owned partition waits to be
// confirmed after a lapse. It resumes once all of that is cleared. (MayDeliver
// checks the same per message, without waiting for this loop to notice.)
func (g *Group) checkFence(st *memberState) {
	if st.lost || st.sessionID == 0 {
		return
	}
	l := g.s.Liveness()
	timeout := g.s.Timeout()
	bad := !st.connUp || !time.Now().Before(l.Until(timeout, g.margin(timeout))) || g.s.ID() != st.sessionID
	if !bad { // a lapse pauses every partition until each is confirmed (a doubt only its own: MayDeliver)
		g.mu.Lock()
		for _, ref := range g.owned {
			if ref.verified != l.Run {
				bad = true
				break
			}
		}
		g.mu.Unlock()
	}
	g.setSuspended(bad)
}

func (g *Group) setSuspended(on bool) {
	g.mu.Lock()
	changed := g.suspended != on
	g.suspended = on
	g.mu.Unlock()
	if !changed {
		return
	}
	if on {
		g.log.Warn("suspending: ZooKeeper session or ownership in doubt")
		g.opts.Handler.Suspended()
	} else {
		g.log.Info("resumed: ZooKeeper session and ownership confirmed")
		g.opts.Handler.Resumed()
	}
}
