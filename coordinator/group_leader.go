package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// errNotLeader: the leader's own member node failed the version check (its
// session ended): it must stop writing.
var errNotLeader = errors.New("coordinator: no longer the group leader")

// departed is a static member inside its grace period.
type departed struct {
	member Member
	since  time.Time
}

// leader computes and writes the group's assignment. It is the only client
// watching members' children and the topics' registrations.
type leader struct {
	g         *Group
	s         *zkrecipes.Session
	node      string
	version   int32
	sessionID int64

	wake    chan struct{}
	firedMu sync.Mutex      // guards fired
	fired   map[string]bool // watched paths whose watch fired since the last read

	memberKids  []string              // last listing of members/, nil until listed
	memberCache map[string]memberInfo // member node name → data
	topicKids   map[string][]string   // topic → broker node names (nil entry: not listed)
	brokerParts map[string][]Partition
	armed       map[string]bool // paths with a pending watch of ours

	loaded      bool
	prev        Assignment
	gen         int64
	snapVersion int32
	lastSeen    map[string]Member // static members seen live, by member id
	departed    map[string]departed
}

func newLeader(g *Group, node string, version int32, sessionID int64) *leader {
	return &leader{g: g, s: g.s, node: node, version: version, sessionID: sessionID,
		wake: make(chan struct{}, 1), fired: map[string]bool{}, memberCache: map[string]memberInfo{},
		topicKids: map[string][]string{}, brokerParts: map[string][]Partition{}, armed: map[string]bool{},
		lastSeen: map[string]Member{}, departed: map[string]departed{}}
}

func (l *leader) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// watch forwards one watch firing: the path is marked stale and the leader woken.
func (l *leader) watch(ctx context.Context, p string, ch <-chan zk.Event) {
	l.armed[p] = true
	l.g.wg.Add(1)
	go func() {
		defer l.g.wg.Done()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		l.firedMu.Lock()
		l.fired[p] = true
		l.firedMu.Unlock()
		l.kick()
	}()
}

// stale reports (and clears) whether p must be read again.
func (l *leader) stale(p string) bool {
	l.firedMu.Lock()
	defer l.firedMu.Unlock()
	if l.fired[p] {
		delete(l.fired, p)
		l.armed[p] = false
		return true
	}
	return !l.armed[p]
}

func (l *leader) run(ctx context.Context) {
	l.g.log.Info("became group leader", "node", l.node)
	defer l.g.log.Info("stopped leading", "node", l.node)
	first := true
	for {
		if !first {
			select {
			case <-l.wake:
			case <-ctx.Done():
				return
			}
		}
		d := l.g.opts.Debounce
		if first {
			_ = l.load(ctx) // a failure is retried by the round
		}
		if first && (!l.loaded || l.gen == 0) { // a forming group: wait for its members
			d = l.g.opts.FormingDebounce
		}
		if !l.debounce(ctx, d) {
			return
		}
		first = false
		backoff := 50 * time.Millisecond
		for {
			err := l.round(ctx)
			l.g.count(func(s *GroupStats) { s.LeaderRounds++ })
			if err == nil {
				break
			}
			if errors.Is(err, errNotLeader) || ctx.Err() != nil {
				l.g.log.Info("leader fenced or stopped", "err", err)
				return
			}
			l.g.log.Warn("assignment round failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)))):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// debounce waits until no wake-up came for d (at most 3d in all).
func (l *leader) debounce(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(3 * d)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-l.wake:
			t.Reset(min(d, time.Until(deadline)))
		}
	}
}

// load reads the assignment snapshot once (again after someone else wrote
// it): the previous assignment, its generation and the static members that
// held partitions.
func (l *leader) load(ctx context.Context) error {
	if l.loaded {
		return nil
	}
	if err := l.s.EnsurePath(ctx, l.g.paths.Group(l.g.opts.Group)); err != nil {
		return err
	}
	snap, ver, err := readSnapshot(ctx, l.s, l.g.paths, l.g.opts.Group)
	if err != nil {
		return err
	}
	l.prev, l.gen, l.snapVersion, l.loaded = snap.Members, snap.Generation, ver, true
	now := time.Now()
	for id, ma := range snap.Members {
		if ma.InstanceID != "" {
			l.departed[id] = departed{member: Member{ID: id, InstanceID: ma.InstanceID, Reserved: true}, since: now}
		}
	}
	return nil
}

// round reads what changed, computes the assignment and writes it if it differs.
func (l *leader) round(ctx context.Context) error {
	if err := l.load(ctx); err != nil {
		return err
	}
	live, err := l.readMembers(ctx)
	if err != nil {
		return err
	}
	l.g.count(func(s *GroupStats) { s.LeaderSeen = len(live) })
	members := l.withReservations(live)
	topics := map[string][]Partition{}
	for _, m := range members {
		for _, t := range m.Topics {
			if _, done := topics[t]; done {
				continue
			}
			ps, err := l.readTopic(ctx, t)
			if err != nil {
				return err
			}
			topics[t] = ps
		}
	}
	next := Assign(l.prev, members, topics)
	if err := validateAssignment(next, topics); err != nil {
		return err
	}
	return l.write(ctx, live, next)
}

// readMembers lists members (re-arming the child watch when it fired) and
// reads the data of nodes it does not know yet.
func (l *leader) readMembers(ctx context.Context) ([]Member, error) {
	dir := l.g.paths.GroupMembers(l.g.opts.Group)
	if l.stale(dir) || l.memberKids == nil {
		kids, _, ch, err := l.s.ChildrenW(ctx, dir)
		if err != nil {
			return nil, err
		}
		l.watch(ctx, dir, ch)
		l.memberKids = zkrecipes.SortBySequence(kids)
	}
	seen := map[string]bool{}
	var out []Member
	for _, k := range l.memberKids {
		info, ok := l.memberCache[k]
		if !ok {
			data, _, err := l.s.Get(ctx, path.Join(dir, k))
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone already; the child watch will tell
			}
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(data, &info); err != nil || info.ID == "" {
				l.g.log.Warn("ignoring unreadable member node", "node", k, "err", err)
				continue
			}
			l.memberCache[k] = info
		}
		seen[k] = true
		out = append(out, Member{ID: info.ID, InstanceID: info.InstanceID, Topics: info.Topics})
	}
	for k := range l.memberCache {
		if !seen[k] {
			delete(l.memberCache, k)
		}
	}
	return out, nil
}

// withReservations adds departed static members still inside their grace
// period as Reserved, and schedules a wake-up when the next grace ends.
func (l *leader) withReservations(live []Member) []Member {
	now := time.Now()
	liveIDs, liveInst := map[string]bool{}, map[string]bool{}
	for _, m := range live {
		liveIDs[m.ID], liveInst[m.InstanceID] = true, true
		if m.InstanceID != "" {
			l.lastSeen[m.ID] = m
			delete(l.departed, m.ID)
		}
	}
	for id, m := range l.lastSeen {
		if !liveIDs[id] {
			l.departed[id] = departed{member: Member{ID: id, InstanceID: m.InstanceID, Topics: m.Topics, Reserved: true}, since: now}
			delete(l.lastSeen, id)
		}
	}
	out := slices.Clone(live)
	var next time.Duration
	for id, d := range l.departed {
		left := l.g.opts.StaticGrace - now.Sub(d.since)
		if left <= 0 || liveInst[d.member.InstanceID] {
			delete(l.departed, id)
			continue
		}
		m := d.member
		if len(m.Topics) == 0 { // known only from the snapshot: it subscribed to what it held
			m.Topics = sortedKeys(l.prev[id].Topics)
		}
		out = append(out, m)
		if next == 0 || left < next {
			next = left
		}
	}
	if next > 0 {
		time.AfterFunc(next+10*time.Millisecond, l.kick)
	}
	return out
}

// readTopic returns the subscribable partitions of a topic, re-reading only
// what a watch said changed.
func (l *leader) readTopic(ctx context.Context, topic string) ([]Partition, error) {
	dir := l.g.paths.TopicSubDir(topic)
	kids, listed := l.topicKids[topic]
	if l.stale(dir) || !listed {
		var ch <-chan zk.Event
		var err error
		kids, _, ch, err = l.s.ChildrenW(ctx, dir)
		if errors.Is(err, zk.ErrNoNode) {
			ok, _, ech, eerr := l.s.ExistsW(ctx, dir)
			if eerr != nil {
				return nil, eerr
			}
			if ok {
				return l.readTopic(ctx, topic)
			}
			kids, ch, err = nil, ech, nil
		}
		if err != nil {
			return nil, err
		}
		l.watch(ctx, dir, ch)
		l.topicKids[topic] = kids
	}
	var out []Partition
	for _, k := range kids {
		p := path.Join(dir, k)
		ps, ok := l.brokerParts[p]
		if l.stale(p) || !ok {
			data, _, ch, err := l.s.GetW(ctx, p)
			if errors.Is(err, zk.ErrNoNode) {
				delete(l.brokerParts, p)
				continue
			}
			if err != nil {
				return nil, err
			}
			l.watch(ctx, p, ch)
			ps, err = partitionsFromBroker(k, data)
			if err != nil {
				l.g.log.Warn("ignoring unreadable topics-sub node", "path", p, "err", err)
			}
			l.brokerParts[p] = ps
		}
		out = append(out, ps...)
	}
	slices.SortFunc(out, Partition.Compare)
	return out, nil
}

// write stores next in one Multi: a version check of the leader's own
// member node, the assign/<member> nodes that changed (created, set or
// deleted) and the snapshot with generation+1 (CAS on its version). Nothing
// is written when no member's assignment changed.
func (l *leader) write(ctx context.Context, live []Member, next Assignment) error {
	group := l.g.opts.Group
	liveIDs := map[string]bool{}
	for _, m := range live {
		liveIDs[m.ID] = true
	}
	var changed []string
	for _, id := range sortedKeys(next) {
		if liveIDs[id] && !next[id].Equal(l.prev[id]) {
			changed = append(changed, id)
		}
	}
	var gone []string
	for _, id := range sortedKeys(l.prev) {
		if _, still := next[id]; !still && l.prev[id].Count() > 0 {
			gone = append(gone, id)
		}
	}
	if len(changed) == 0 && len(gone) == 0 && l.snapVersion >= 0 {
		l.prev = next
		return nil
	}
	kids, _, err := l.s.Children(ctx, l.g.paths.GroupAssign(group))
	if err = ignoreNoNode(err); err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, k := range kids {
		exists[k] = true
	}
	gen := l.gen + 1
	snap, err := json.Marshal(Snapshot{Generation: gen, Leader: l.g.opts.MemberID, Members: next})
	if err != nil {
		return err
	}
	ops := []any{&zk.CheckVersionRequest{Path: l.node, Version: l.version}}
	snapIdx := len(ops)
	if l.snapVersion < 0 {
		ops = append(ops, &zk.CreateRequest{Path: l.g.paths.GroupAssign(group), Data: snap})
	} else {
		ops = append(ops, &zk.SetDataRequest{Path: l.g.paths.GroupAssign(group), Data: snap, Version: l.snapVersion})
	}
	for _, id := range changed {
		data, err := json.Marshal(memberAssignNode{Generation: gen, Topics: next[id].Topics})
		if err != nil {
			return err
		}
		p := l.g.paths.GroupMemberAssign(group, id)
		if exists[id] {
			ops = append(ops, &zk.SetDataRequest{Path: p, Data: data, Version: -1})
		} else {
			ops = append(ops, &zk.CreateRequest{Path: p, Data: data})
		}
	}
	// Nodes of members that left (and are not reserved) go; so do stray ones.
	for _, k := range kids {
		if _, keep := next[k]; !keep && !liveIDs[k] {
			ops = append(ops, &zk.DeleteRequest{Path: l.g.paths.GroupMemberAssign(group, k), Version: -1})
		}
	}
	res, err := l.s.Multi(ctx, ops...)
	if err != nil {
		if len(res) > 0 && (errors.Is(res[0].Error, zk.ErrNoNode) || errors.Is(res[0].Error, zk.ErrBadVersion)) {
			return fmt.Errorf("%w: %w", errNotLeader, err)
		}
		if len(res) > snapIdx && (errors.Is(res[snapIdx].Error, zk.ErrBadVersion) || errors.Is(res[snapIdx].Error, zk.ErrNodeExists) ||
			errors.Is(res[snapIdx].Error, zk.ErrNoNode)) {
			l.loaded = false // someone else wrote the snapshot: read it again
		}
		return err
	}
	l.prev, l.gen = next, gen
	l.g.count(func(s *GroupStats) { s.LeaderWrites++ })
	if l.snapVersion < 0 {
		l.snapVersion = 0
	} else if res[snapIdx].Stat != nil {
		l.snapVersion = res[snapIdx].Stat.Version
	} else {
		l.snapVersion++
	}
	l.g.log.Debug("assignment written", "generation", gen, "changed", changed, "moved", len(changed))
	return nil
}
