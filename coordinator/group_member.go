package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

func randN(n int) int { return rand.IntN(n) }

type evKind int

const (
	evPred      evKind = iota + 1 // predecessor member node changed
	evAssign                      // own assign node changed
	evOwnerPred                   // the owner node another member holds changed or went away
	evOwnNode                     // this member's own owner node changed or went away
	evVerify                      // an owned partition is in doubt (a commit was refused)
	evClose
)

type loopEvent struct {
	kind  evKind
	epoch int
	tp    TopicPartition
	ctx   context.Context // evClose
	node  string          // evOwnNode: the owner node watched
}

// partState is a partition this member owns or claims.
type partState struct {
	node      string // the partition's owner node (MetaQ's owners/<topic>/<b-p>)
	version   int32
	fence     string // owned: this claim's fence node
	owned     bool
	waitArmed bool // not owned: a watch on the other holder's node is armed
	needCheck bool // try to claim the node
	ownArmed  bool // owned: a watch on node itself is armed
}

// memberState is owned by the loop goroutine.
type memberState struct {
	epoch       int   // incremented on each join; older watch events are ignored
	sessionID   int64 // session of the member node
	node        string
	predArmed   string
	needElect   bool
	assignArmed bool
	needAssign  bool
	desired     map[TopicPartition]bool
	parts       map[TopicPartition]*partState
	toDelete    []string // owner nodes to delete (retried)
	connUp      bool
	lost        bool // session lost; wait for a new one
	leaderStop  context.CancelFunc
	leaderDone  chan struct{}
	assigned    []TopicPartition // newly owned, reported after the reconcile step
	firstJoin   bool
}

func (g *Group) loop() {
	defer g.wg.Done()
	defer close(g.done)
	sub := g.s.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	st := &memberState{desired: map[TopicPartition]bool{}, parts: map[TopicPartition]*partState{},
		connUp: g.s.State() == zkrecipes.StateConnected || g.s.State() == zkrecipes.StateReconnected, firstJoin: true}
	defer g.stopLeader(st)
	tick := time.NewTicker(max(20*time.Millisecond, g.s.Timeout()/10))
	defer tick.Stop()
	var retry <-chan time.Time
	backoff := 20 * time.Millisecond
	for {
		if err := g.reconcile(ctx, st); err != nil {
			if ctx.Err() != nil {
				return
			}
			if st.firstJoin && !zkrecipes.IsRetriable(err) && !errors.Is(err, zk.ErrSessionExpired) && !errors.Is(err, zkrecipes.ErrSessionLost) && st.node == "" {
				g.joined <- err
				return
			}
			g.log.Debug("group reconcile failed; retrying", "err", err, "backoff", backoff)
			retry = time.After(backoff + time.Duration(rand.Int64N(int64(backoff))))
			backoff = min(2*backoff, time.Second)
		} else {
			retry, backoff = nil, 20*time.Millisecond
		}
		select {
		case <-g.stop:
			return
		case ev := <-g.events:
			if ev.kind == evClose {
				g.leave(ev.ctx, st)
				return
			}
			g.onWatch(st, ev)
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			g.onSession(st, ev)
		case <-tick.C:
			g.checkFence(st)
		case <-retry:
		}
	}
}

// reconcile drives the member toward its desired state; every step is
// idempotent, and a failed step leaves its flag set for the retry.
func (g *Group) reconcile(ctx context.Context, st *memberState) error {
	g.checkFence(st)
	if st.lost {
		return nil
	}
	// Every ZooKeeper call below ends when the member's session does, so a
	// call to an unreachable server cannot hold up reporting the loss.
	if st.sessionID != 0 {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		expired := g.s.Expired(st.sessionID)
		go func() {
			select {
			case <-expired:
				cancel()
			case <-sctx.Done():
			}
		}()
		ctx = sctx
	}
	if st.node == "" {
		if err := g.join(ctx, st); err != nil {
			return err
		}
	}
	if st.needElect {
		if err := g.elect(ctx, st); err != nil {
			return err
		}
	}
	if st.needAssign {
		if err := g.readAssign(ctx, st); err != nil {
			return err
		}
	}
	if err := g.verifyOwned(ctx, st); err != nil {
		return err
	}
	err := g.apply(ctx, st)
	if len(st.assigned) > 0 {
		tps := st.assigned
		st.assigned = nil
		slices.SortFunc(tps, TopicPartition.Compare)
		g.log.Debug("partitions assigned", "partitions", tps)
		g.count(func(s *GroupStats) { s.Assigned += int64(len(tps)) })
		g.opts.Handler.Assigned(ctx, tps)
	}
	g.checkFence(st) // resume at once when this pass confirmed what a lapse put in doubt
	return err
}

func (g *Group) join(ctx context.Context, st *memberState) error {
	id := g.s.ID()
	if id == 0 {
		return zkrecipes.ErrNotConnected
	}
	data, err := json.Marshal(memberInfo{ID: g.opts.MemberID, InstanceID: g.opts.InstanceID, Topics: g.opts.Topics,
		Host: g.opts.Host, PID: os.Getpid(), Version: ProtocolVersion})
	if err != nil {
		return err
	}
	node, err := g.s.CreateProtected(ctx, g.paths.GroupMembers(g.opts.Group), MemberNodeName, data, true)
	if err != nil {
		return err
	}
	_, stat, err := g.s.Exists(ctx, node)
	if err != nil || stat == nil || stat.EphemeralOwner != id {
		// Created under a session that already ended, or we cannot tell: start over.
		_ = g.s.DeleteIfExists(ctx, node)
		return fmt.Errorf("coordinator: member node %s not owned by session 0x%x: %w", node, id, cmpErr(err, zkrecipes.ErrSessionLost))
	}
	st.epoch++
	st.sessionID, st.node = id, node
	st.predArmed, st.assignArmed = "", false
	st.needElect, st.needAssign = true, true
	g.log.Debug("joined group", "node", node, "session", fmt.Sprintf("0x%x", id))
	if st.firstJoin {
		st.firstJoin = false
		g.joined <- nil
	}
	return nil
}

func cmpErr(err, dflt error) error {
	if err != nil {
		return err
	}
	return dflt
}

// elect lists the members once: the lowest node of the current session
// leads; any other member watches only its predecessor.
func (g *Group) elect(ctx context.Context, st *memberState) error {
	dir := g.paths.GroupMembers(g.opts.Group)
	for {
		kids, _, err := g.s.Children(ctx, dir)
		if err != nil {
			return err
		}
		zkrecipes.SortBySequence(kids)
		i := slices.Index(kids, path.Base(st.node))
		if i < 0 {
			// Our node is gone while the session lives (deleted by hand?): re-create it.
			g.log.Warn("member node disappeared; re-joining", "node", st.node)
			g.stopLeader(st)
			st.node = ""
			return g.join(ctx, st)
		}
		if i == 0 {
			_, stat, err := g.s.Exists(ctx, st.node)
			if err != nil {
				return err
			}
			if stat == nil || stat.EphemeralOwner != st.sessionID || g.s.ID() != st.sessionID {
				return fmt.Errorf("coordinator: member node %s is not of the current session: %w", st.node, zkrecipes.ErrSessionLost)
			}
			st.needElect = false
			g.startLeader(st, stat.Version)
			return nil
		}
		pred := path.Join(dir, kids[i-1])
		if st.predArmed == pred {
			st.needElect = false
			return nil
		}
		ok, _, ch, err := g.s.ExistsW(ctx, pred)
		if err != nil {
			return err
		}
		if !ok {
			continue // it went away meanwhile: list again (the unused watch fires on creation only, never)
		}
		st.predArmed, st.needElect = pred, false
		g.forward(loopEvent{kind: evPred, epoch: st.epoch}, ch)
		return nil
	}
}

// readAssign reads (and re-watches) this member's assign node.
func (g *Group) readAssign(ctx context.Context, st *memberState) error {
	p := g.paths.GroupMemberAssign(g.opts.Group, g.opts.MemberID)
	for {
		data, _, ch, err := g.s.GetW(ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			ok, _, ech, eerr := g.s.ExistsW(ctx, p)
			if eerr != nil {
				return eerr
			}
			if ok {
				continue
			}
			g.forward(loopEvent{kind: evAssign, epoch: st.epoch}, ech)
			st.assignArmed, st.needAssign = true, false
			st.desired = map[TopicPartition]bool{}
			return nil
		}
		if err != nil {
			return err
		}
		g.forward(loopEvent{kind: evAssign, epoch: st.epoch}, ch)
		st.assignArmed, st.needAssign = true, false
		var an memberAssignNode
		if len(data) > 0 {
			if err := json.Unmarshal(data, &an); err != nil {
				g.log.Error("unreadable assignment; keeping the previous one", "path", p, "err", err)
				return nil
			}
		}
		desired := map[TopicPartition]bool{}
		for t, ps := range an.Topics {
			for _, pt := range ps {
				desired[TopicPartition{t, pt}] = true
			}
		}
		st.desired = desired
		g.mu.Lock()
		g.gen = an.Generation
		g.mu.Unlock()
		return nil
	}
}

// sessionGone reports whether the session this member state belongs to has
// ended (closed, lost, or replaced), so its owner nodes are gone.
func (g *Group) sessionGone(st *memberState) bool {
	switch g.s.State() {
	case zkrecipes.StateClosed, zkrecipes.StateLost:
		return true
	}
	return st.sessionID != 0 && g.s.ID() != st.sessionID
}

// apply releases partitions no longer desired and claims new ones.
func (g *Group) apply(ctx context.Context, st *memberState) error {
	if g.sessionGone(st) {
		g.loseAll(st) // a revocation now could not be committed: it is a loss
		return nil
	}
	var revoked []TopicPartition
	for tp, ps := range st.parts {
		if st.desired[tp] {
			continue
		}
		if ps.owned {
			revoked = append(revoked, tp)
			continue
		}
		st.release(ps)
		delete(st.parts, tp)
	}
	if len(revoked) > 0 {
		slices.SortFunc(revoked, TopicPartition.Compare)
		g.log.Debug("partitions revoked", "partitions", revoked)
		g.count(func(s *GroupStats) { s.Revoked += int64(len(revoked)) })
		g.opts.Handler.Revoked(ctx, revoked)
		g.mu.Lock()
		for _, tp := range revoked {
			delete(g.owned, tp)
		}
		g.mu.Unlock()
		for _, tp := range revoked {
			st.release(st.parts[tp])
			delete(st.parts, tp)
		}
	}
	if err := g.deletePending(ctx, st); err != nil {
		return err
	}
	for _, tp := range sortedTPs(st.desired) {
		if _, ok := st.parts[tp]; ok {
			continue
		}
		st.parts[tp] = &partState{node: g.ownerNode(tp), needCheck: true} // claimed below
	}
	for _, tp := range sortedTPs(st.parts) {
		if ps := st.parts[tp]; ps.needCheck {
			if err := g.claim(ctx, st, tp, ps); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *Group) deletePending(ctx context.Context, st *memberState) error {
	for len(st.toDelete) > 0 {
		if err := g.releaseOwner(ctx, st, st.toDelete[0]); err != nil {
			return err
		}
		st.toDelete = st.toDelete[1:]
	}
	return nil
}

func sortedTPs[V any](m map[TopicPartition]V) []TopicPartition {
	out := make([]TopicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	slices.SortFunc(out, TopicPartition.Compare)
	return out
}

func (g *Group) ownerNode(tp TopicPartition) string {
	return g.paths.GroupOwner(g.opts.Group, tp.Topic, tp.BrokerID, tp.Partition.Partition)
}

// claim takes tp's owner node the way MetaQ's consumers do: an ephemeral
// owners/<topic>/<brokerId>-<partition> whose data is the member id. A node
// this session already holds with our id (a create whose reply was lost) is
// ours; a node of anyone else is waited for with a data watch (the assigned
// successor is the only waiter). The read after the create also arms the
// owner's watch on its own node: a change or deletion puts the partition in
// doubt (group_fence.go).
func (g *Group) claim(ctx context.Context, st *memberState, tp TopicPartition, ps *partState) error {
	for {
		run := g.s.Liveness().Run // before the request: the answer proves ownership in this run
		if _, err := g.s.CreateParents(ctx, ps.node, []byte(g.opts.MemberID), zkrecipes.Ephemeral); err != nil &&
			!errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		data, stat, ch, err := g.s.GetW(ctx, ps.node)
		if errors.Is(err, zk.ErrNoNode) {
			continue // released meanwhile: create again
		}
		if err != nil {
			return err
		}
		if stat.EphemeralOwner == st.sessionID && string(data) == g.opts.MemberID {
			fence, err := g.createFence(ctx, st, tp)
			if err != nil {
				return err
			}
			ps.owned, ps.needCheck, ps.version, ps.ownArmed, ps.waitArmed, ps.fence = true, false, stat.Version, true, false, fence
			g.forwardOwn(loopEvent{kind: evOwnNode, epoch: st.epoch, tp: tp, node: ps.node}, ch)
			g.mu.Lock()
			g.owned[tp] = &ownerRef{node: ps.node, version: ps.version, fence: fence, session: st.sessionID, verified: run}
			g.mu.Unlock()
			st.assigned = append(st.assigned, tp)
			return nil
		}
		if stat.EphemeralOwner == st.sessionID {
			// Ours but rewritten by someone else: not trusted; release it and claim anew.
			if err := g.releaseOwner(ctx, st, ps.node); err != nil {
				return err
			}
			continue
		}
		// Held by someone else (the previous owner, or a MetaQ Java consumer):
		// wait for it to go.
		ps.waitArmed, ps.needCheck = true, false
		g.forward(loopEvent{kind: evOwnerPred, epoch: st.epoch, tp: tp}, ch)
		return nil
	}
}

// createFence creates this claim's fence node (GroupFences): unique per claim
// and ephemeral, so a commit of a member whose session ended fails even if
// the owner node was re-created meanwhile with the same version.
func (g *Group) createFence(ctx context.Context, st *memberState, tp TopicPartition) (string, error) {
	fence, err := g.s.CreateProtected(ctx, g.paths.GroupFences(g.opts.Group, tp.Topic), tp.Partition.String(), []byte(g.opts.MemberID), false)
	if err != nil {
		return "", err
	}
	if _, stat, err := g.s.Exists(ctx, fence); err != nil || stat == nil || stat.EphemeralOwner != st.sessionID {
		_ = g.s.DeleteIfExists(ctx, fence)
		return "", fmt.Errorf("coordinator: fence node %s not of session 0x%x: %w", fence, st.sessionID, cmpErr(err, zkrecipes.ErrSessionLost))
	}
	return fence, nil
}

// release queues a partition's nodes for deletion: the fence first, then
// the owner node (a commit between the two is refused).
func (st *memberState) release(ps *partState) {
	if ps.fence != "" {
		st.toDelete = append(st.toDelete, ps.fence)
	}
	st.toDelete = append(st.toDelete, ps.node)
}

// releaseOwner deletes an owner (or fence) node if this member's session
// holds it; a node of another session (a new owner) is left alone.
func (g *Group) releaseOwner(ctx context.Context, st *memberState, node string) error {
	for {
		ok, stat, err := g.s.Exists(ctx, node)
		if err != nil || !ok || stat.EphemeralOwner != st.sessionID {
			return err
		}
		err = g.s.Delete(ctx, node, stat.Version)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
	}
}

// forward delivers one watch firing to the loop.
func (g *Group) forward(ev loopEvent, ch <-chan zk.Event) {
	g.afterFiring(ch, func() { g.deliver(ev) })
}

// afterFiring runs fn in a goroutine the group owns once the watch ch fires,
// unless the group stops first or the watch died with its connection or
// session (then the session events say what happened and drive what to do
// next).
func (g *Group) afterFiring(ch <-chan zk.Event, fn func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		select {
		case zev := <-ch:
			if zev.Type == zk.EventNotWatching {
				return
			}
		case <-g.stop:
			return
		}
		fn()
	}()
}

// deliver hands ev to the loop, unless the group stops.
func (g *Group) deliver(ev loopEvent) {
	select {
	case g.events <- ev:
	case <-g.stop:
	}
}

func (g *Group) onWatch(st *memberState, ev loopEvent) {
	if ev.epoch != st.epoch {
		return
	}
	switch ev.kind {
	case evPred:
		st.predArmed, st.needElect = "", true
	case evAssign:
		st.assignArmed, st.needAssign = false, true
	case evOwnerPred:
		if ps := st.parts[ev.tp]; ps != nil && !ps.owned {
			ps.waitArmed, ps.needCheck = false, true
		}
	case evOwnNode:
		if ps := st.parts[ev.tp]; ps != nil && ps.node == ev.node {
			ps.ownArmed = false
			if !ps.owned {
				ps.needCheck = true // claim looks again
			}
		}
	}
}

func (g *Group) onSession(st *memberState, ev zkrecipes.Event) {
	switch ev.State {
	case zkrecipes.StateSuspended:
		st.connUp = false
	case zkrecipes.StateReconnected:
		st.connUp = true
	case zkrecipes.StateLost:
		st.connUp = false
		g.loseAll(st)
	case zkrecipes.StateConnected:
		st.connUp = true
		if ev.NewSession || (st.sessionID != 0 && ev.SessionID != st.sessionID) {
			g.loseAll(st)
			st.lost = false
		}
	}
	g.checkFence(st)
}

// loseAll drops everything of the ended session: partitions are reported
// Lost (no commit is possible), the member node is gone, leadership ends.
func (g *Group) loseAll(st *memberState) {
	if st.lost {
		return
	}
	st.lost = true
	g.stopLeader(st)
	lost := make([]TopicPartition, 0, len(st.parts))
	for tp, ps := range st.parts {
		if ps.owned {
			lost = append(lost, tp)
		}
	}
	g.mu.Lock()
	clear(g.owned)
	g.mu.Unlock()
	st.parts = map[TopicPartition]*partState{}
	st.toDelete = nil
	st.node, st.sessionID, st.predArmed, st.assignArmed = "", 0, "", false
	st.epoch++
	if len(lost) > 0 {
		slices.SortFunc(lost, TopicPartition.Compare)
		g.log.Warn("ZooKeeper session lost: partitions lost", "partitions", lost)
		g.count(func(s *GroupStats) { s.Lost += int64(len(lost)) })
		g.opts.Handler.Lost(lost)
	}
	g.setSuspended(false)
}

func (g *Group) startLeader(st *memberState, version int32) {
	if st.leaderStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	st.leaderStop, st.leaderDone = cancel, done
	l := newLeader(g, st.node, version, st.sessionID)
	g.mu.Lock()
	g.leading = true
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(done)
		l.run(ctx)
	}()
}

func (g *Group) stopLeader(st *memberState) {
	if st.leaderStop == nil {
		return
	}
	st.leaderStop()
	<-st.leaderDone
	st.leaderStop, st.leaderDone = nil, nil
	g.mu.Lock()
	g.leading = false
	g.mu.Unlock()
}

// leave revokes every owned partition (so offsets can be committed), then
// deletes the owner nodes, this member's assign node and its member node.
func (g *Group) leave(ctx context.Context, st *memberState) {
	g.stopLeader(st)
	st.desired = map[TopicPartition]bool{}
	if g.sessionGone(st) {
		g.loseAll(st) // no commit is possible: report Lost, not Revoked
	}
	if !st.lost {
		for {
			err := g.apply(ctx, st)
			if err == nil || ctx.Err() != nil || !(zkrecipes.IsRetriable(err)) {
				break
			}
			if g.s.WaitConnected(ctx) != nil {
				break
			}
		}
	}
	if st.node != "" {
		_ = g.s.DeleteIfExists(ctx, st.node)
	}
	_ = g.s.DeleteIfExists(ctx, g.paths.GroupMemberAssign(g.opts.Group, g.opts.MemberID))
	g.mu.Lock()
	clear(g.owned)
	g.mu.Unlock()
}
