package coordinator

// Consumer groups: the herd-free rebalance protocol of docs/REBALANCE.md.
//
// # ZooKeeper layout under <root>/consumers/<group>/ (paths.go builds every path)
//
//	ids/<group>_<consumerId>                             ephemeral   MetaQ Java consumers: if any exist we refuse to join (ErrMetaQConsumersPresent)
//	members/_c_<guid>-member-<seq10>                     ephemeral sequential, protected create
//	                                                     JSON memberInfo: {"id","instanceId","topics","host","pid","version"}
//	assign                                               persistent  JSON Snapshot {"generation","leader","members":{id:{"instanceId","topics":{topic:["b-p",...]}}}}
//	                                                                 read by a new leader and by tools; watched by nobody
//	assign/<memberId>                                    persistent  JSON memberAssignNode {"generation","topics":{topic:["b-p",...]}}
//	                                                                 written only when it changes; watched only by that member
//	owners/<topic>/<brokerId>-<partition>                ephemeral   data: owning member id — exactly MetaQ's owner node,
//	                                                                 so a MetaQ Java group can take over once ours has left
//	metaq/fence/<topic>/_c_<guid>-<brokerId>-<partition> ephemeral, protected; one per claim: the commits' fencing token
//	offsets/<topic>/<brokerId>-<partition>               persistent  "<msgId>-<offset>" (MetaQ compatible)
//
// Watches: each member has one data watch on its predecessor member node and
// one on its own assign/<memberId> node, plus one data watch on the owner
// node of each partition it was assigned but another member still holds
// (normally the previous owner, which lets go after Revoked), and one on the
// owner node of each partition it holds (a change or deletion puts the
// partition in doubt; see group_fence.go). Only the leader (the lowest
// member node of the current session) watches members' children and
// <root>/brokers/topics-sub/<topic> (children, and the data of each broker
// node under it).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ProtocolVersion is written in member nodes.
const ProtocolVersion = 1

// Sentinel errors of the group protocol.
var (
	// ErrMetaQConsumersPresent means MetaQ Java consumers are registered in
	// the group (consumers/<group>/ids): the two rebalance protocols must not
	// share a group.
	ErrMetaQConsumersPresent = errors.New("coordinator: MetaQ Java consumers are registered in this group; use another group name or stop them first")
	// ErrNotOwner means an offset commit was refused because this member does
	// not own the partition (any more): the stored offset was not touched.
	ErrNotOwner = errors.New("coordinator: not the owner of the partition")
	// ErrOffsetBackwards means a commit would move the committed offset back;
	// use ResetOffset to do that on purpose.
	ErrOffsetBackwards = errors.New("coordinator: commit would move the offset backwards")
	// ErrGroupClosed means the Group was closed.
	ErrGroupClosed = errors.New("coordinator: group member closed")
)

// Handler receives ownership changes. Every call is made from the member's
// own goroutine, one at a time, in order; a slow callback delays the
// member's further rebalancing (not other members'). Embed NopHandler to
// implement only some.
type Handler interface {
	// Assigned: these partitions are now owned; start fetching from the
	// committed offset (FetchOffset).
	Assigned(ctx context.Context, tps []TopicPartition)
	// Revoked: these partitions are being taken away; stop fetching, finish
	// or abandon in-flight work and commit before returning — ownership (and
	// so CommitOffset) holds until the callback returns, then the owner node
	// is deleted and the next owner may start.
	Revoked(ctx context.Context, tps []TopicPartition)
	// Lost: these partitions were lost without a chance to commit (the
	// session ended, or the member's own owner node was deleted or changed
	// while the session lived); stop at once. Commits for them fail with
	// ErrNotOwner.
	Lost(tps []TopicPartition)
	// Suspended: the session cannot be proven alive with the safety margin
	// in hand (the newest answered request was sent too long ago, or the
	// connection dropped), or ownership waits to be confirmed after such a
	// lapse: stop handing out messages of every owned partition until
	// Resumed. (MayDeliver says the same per partition without waiting for
	// this callback.)
	Suspended()
	// Resumed: the same session is back; ownership is intact.
	Resumed()
}

// NopHandler is a Handler that does nothing; embed it.
type NopHandler struct{}

// Assigned implements Handler.
func (NopHandler) Assigned(context.Context, []TopicPartition) {}

// Revoked implements Handler.
func (NopHandler) Revoked(context.Context, []TopicPartition) {}

// Lost implements Handler.
func (NopHandler) Lost([]TopicPartition) {}

// Suspended implements Handler.
func (NopHandler) Suspended() {}

// Resumed implements Handler.
func (NopHandler) Resumed() {}

// GroupOptions configure a member; only Group and Topics are required.
type GroupOptions struct {
	Group  string
	Topics []string
	// MemberID identifies the member in assign/<memberId> (default
	// <host>-<pid>-<random>). It stays the same across session losses.
	MemberID string
	// InstanceID enables static membership: when the member disappears its
	// partitions stay reserved for StaticGrace and a member with the same
	// InstanceID gets them back without any movement.
	InstanceID  string
	StaticGrace time.Duration // default 30s; only for members with an InstanceID
	// Debounce is how long the leader waits for more changes before it
	// computes an assignment (default 300ms); FormingDebounce is used while
	// the group has no assignment yet (default 1s).
	Debounce        time.Duration
	FormingDebounce time.Duration
	// SafetyMargin: the member stops delivering (MayDeliver, Suspended)
	// once the newest request ZooKeeper answered was sent longer ago than
	// the session timeout minus this (default a third of the session
	// timeout). Re-confirmation of ownership is triggered by gaps longer than
	// 2/3 of the timeout (zkrecipes.Liveness.Run), so a margin above a third
	// stops delivery earlier but re-confirms only after longer gaps.
	SafetyMargin time.Duration
	Handler      Handler      // default NopHandler
	Logger       *slog.Logger // default discard
	Host         string       // default os.Hostname()
}

func (o GroupOptions) withDefaults() (GroupOptions, error) {
	if o.Group == "" || strings.ContainsAny(o.Group, "/") {
		return o, fmt.Errorf("coordinator: group name %q must be non-empty and contain no '/'", o.Group)
	}
	for _, t := range o.Topics {
		if err := protocol.ValidTopic(t); err != nil {
			return o, fmt.Errorf("coordinator: group %s: %w", o.Group, err)
		}
	}
	o.Topics = slices.Clone(o.Topics)
	slices.Sort(o.Topics)
	o.Topics = slices.Compact(o.Topics)
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.MemberID == "" {
		o.MemberID = fmt.Sprintf("%s-%d-%s", o.Host, os.Getpid(), randomHex(4))
	}
	if strings.ContainsAny(o.MemberID, "/") {
		return o, fmt.Errorf("coordinator: member id %q must contain no '/'", o.MemberID)
	}
	if o.StaticGrace <= 0 {
		o.StaticGrace = 30 * time.Second
	}
	if o.Debounce <= 0 {
		o.Debounce = 300 * time.Millisecond
	}
	if o.FormingDebounce <= 0 {
		o.FormingDebounce = time.Second
	}
	if o.Handler == nil {
		o.Handler = NopHandler{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// memberInfo is the JSON of a member node.
type memberInfo struct {
	ID         string   `json:"id"`
	InstanceID string   `json:"instanceId,omitempty"`
	Topics     []string `json:"topics"`
	Host       string   `json:"host"`
	PID        int      `json:"pid"`
	Version    int      `json:"version"`
}

// memberAssignNode is the JSON of assign/<memberId>.
type memberAssignNode struct {
	Generation int64                  `json:"generation"`
	Topics     map[string][]Partition `json:"topics"`
}

// ownerRef is an owned partition's fencing token and delivery state.
type ownerRef struct {
	node      string
	version   int32
	fence     string  // the claim's fence node (GroupFences)
	committed *Offset // last offset known to be stored, nil if unknown
	session   int64   // the session the owner node belongs to
	verified  int64   // zkrecipes Liveness.Run in which ownership was last confirmed
	doubt     bool    // the owner node changed or a commit was refused: confirm before delivering
}

// Group is this process's membership of a consumer group: it keeps a member
// node registered, leads when it is the lowest member, follows its own
// assignment, takes and releases partition ownership and fences offset
// commits. Create it with JoinGroup; Close it when done.
type Group struct {
	s     *zkrecipes.Session
	paths Paths
	opts  GroupOptions
	log   *slog.Logger

	mu        sync.Mutex // guards owned, suspended, leading, gen, closed, stats
	owned     map[TopicPartition]*ownerRef
	suspended bool
	leading   bool
	gen       int64
	closed    bool
	stats     GroupStats

	commitMu sync.Mutex // serialises commits (keeps them in order)

	events  chan loopEvent
	stop    chan struct{}
	done    chan struct{}
	joined  chan error // first join result
	wg      sync.WaitGroup
	closeMu sync.Mutex // serialises Close
}

// JoinGroup registers a member of opts.Group subscribed to opts.Topics and
// returns once its member node exists (assignment and ownership follow in
// the background and are reported to opts.Handler). It refuses with
// ErrMetaQConsumersPresent if MetaQ Java consumers use the group.
func JoinGroup(ctx context.Context, s *zkrecipes.Session, paths Paths, opts GroupOptions) (*Group, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkNoMetaQConsumers(ctx, s, paths, opts.Group); err != nil {
		return nil, err
	}
	g := &Group{s: s, paths: paths, opts: opts, log: opts.Logger.With("group", opts.Group, "member", opts.MemberID),
		owned: map[TopicPartition]*ownerRef{}, events: make(chan loopEvent, 64), stop: make(chan struct{}),
		done: make(chan struct{}), joined: make(chan error, 1)}
	g.wg.Add(1)
	go g.loop()
	select {
	case err := <-g.joined:
		if err != nil {
			_ = g.Close(context.Background())
			return nil, err
		}
		return g, nil
	case <-ctx.Done():
		_ = g.Close(context.Background())
		return nil, fmt.Errorf("coordinator: join group %s: %w", opts.Group, ctx.Err())
	}
}

func checkNoMetaQConsumers(ctx context.Context, s *zkrecipes.Session, paths Paths, group string) error {
	kids, _, err := s.Children(ctx, paths.GroupMetaQIDs(group))
	if err = ignoreNoNode(err); err != nil {
		return err
	}
	if len(kids) > 0 {
		slices.Sort(kids)
		return fmt.Errorf("%w: group %q has %d MetaQ consumer(s) under %s (e.g. %s)", ErrMetaQConsumersPresent,
			group, len(kids), paths.GroupMetaQIDs(group), kids[0])
	}
	return nil
}

// GroupStats counts what a member did (for tests, tools and metrics hooks).
type GroupStats struct {
	LeaderRounds int64 // assignment computations done while leading
	LeaderWrites int64 // assignment Multis committed while leading
	LeaderSeen   int   // live members the leader's last round saw
	Assigned     int64 // partitions taken over
	Revoked      int64 // partitions handed back
	Lost         int64 // partitions lost with a session or with their owner node
	OwnerLost    int64 // of Lost: partitions whose owner node changed or vanished while the session lived
}

// Stats returns a snapshot of the member's counters.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

func (g *Group) count(fn func(*GroupStats)) {
	g.mu.Lock()
	fn(&g.stats)
	g.mu.Unlock()
}

// MemberID returns this member's id.
func (g *Group) MemberID() string { return g.opts.MemberID }

// Owned returns the partitions this member owns now, sorted.
func (g *Group) Owned() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]TopicPartition, 0, len(g.owned))
	for tp := range g.owned {
		out = append(out, tp)
	}
	slices.SortFunc(out, TopicPartition.Compare)
	return out
}

// IsLeader reports whether this member currently computes the group's assignment.
func (g *Group) IsLeader() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leading
}

// Suspended reports whether the member has stopped handing out messages
// because it cannot be sure its session is alive.
func (g *Group) Suspended() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.suspended
}

// Generation returns the generation of the last assignment this member applied.
func (g *Group) Generation() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// FetchOffset reads the committed offset of a partition (found is false if
// none was committed). For an owned partition the value also becomes the
// floor that CommitOffset will not go below.
func (g *Group) FetchOffset(ctx context.Context, topic string, brokerID, partition int) (o Offset, found bool, err error) {
	tp := TopicPartition{topic, Partition{brokerID, partition}}
	o, found, err = FetchOffset(ctx, g.s, g.paths, g.opts.Group, tp)
	if err == nil && found {
		g.mu.Lock()
		if ref := g.owned[tp]; ref != nil && ref.committed == nil {
			c := o
			ref.committed = &c
		}
		g.mu.Unlock()
	}
	return o, found, err
}

// CommitOffset stores the offset of an owned partition, fenced by the
// ownership: one Multi of a version check on this member's owner node and
// the write. A member that does not own the partition (or whose session
// ended) gets ErrNotOwner and the stored offset is untouched. A commit below
// the last offset this member committed or fetched gets ErrOffsetBackwards
// (use ResetOffset to rewind).
func (g *Group) CommitOffset(ctx context.Context, topic string, brokerID, partition int, msgID, offset int64) error {
	return g.commit(ctx, TopicPartition{topic, Partition{brokerID, partition}}, Offset{MsgID: msgID, Offset: offset}, false)
}

// ResetOffset stores o even if it is below the committed offset (an
// explicit rewind); it is fenced by ownership like CommitOffset.
func (g *Group) ResetOffset(ctx context.Context, tp TopicPartition, o Offset) error {
	return g.commit(ctx, tp, o, true)
}

func (g *Group) commit(ctx context.Context, tp TopicPartition, o Offset, reset bool) error {
	if o.Offset < 0 {
		return fmt.Errorf("coordinator: negative offset %d for %s", o.Offset, tp)
	}
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	g.mu.Lock()
	ref := g.owned[tp]
	var tok fenceToken
	var floor *Offset
	if ref != nil {
		tok, floor = fenceToken{fence: ref.fence, owner: ref.node, version: ref.version}, ref.committed
	}
	g.mu.Unlock()
	if ref == nil {
		return fmt.Errorf("%w: %s is not owned by %s", ErrNotOwner, tp, g.opts.MemberID)
	}
	if floor == nil && !reset {
		cur, found, err := FetchOffset(ctx, g.s, g.paths, g.opts.Group, tp)
		if err != nil {
			return err
		}
		if found {
			floor = &cur
		}
	}
	if !reset && floor != nil && o.Offset < floor.Offset {
		return fmt.Errorf("%w: %s committed %d, asked %d", ErrOffsetBackwards, tp, floor.Offset, o.Offset)
	}
	if err := commitFenced(ctx, g.s, g.paths, g.opts.Group, tp, tok, o); err != nil {
		if errors.Is(err, ErrNotOwner) {
			g.doubt(tp, tok.owner) // stop delivering it until the owner node is checked
		}
		return err
	}
	g.mu.Lock()
	if r := g.owned[tp]; r == ref {
		c := o
		r.committed = &c
	}
	g.mu.Unlock()
	return nil
}

// Close leaves the group: owned partitions are revoked (Handler.Revoked, so
// offsets can be committed), owner nodes, the member node and this member's
// assign node are deleted, and the member's goroutines end. Idempotent. The
// Session is not closed.
func (g *Group) Close(ctx context.Context) error {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	g.mu.Lock()
	already := g.closed
	g.closed = true
	g.mu.Unlock()
	if already {
		return nil
	}
	select {
	case g.events <- loopEvent{kind: evClose, ctx: ctx}:
	case <-g.done:
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		close(g.stop)
		g.wg.Wait()
		return ctx.Err()
	}
	close(g.stop)
	g.wg.Wait()
	return nil
}

func randomHex(n int) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 2*n)
	for i := range b {
		b[i] = hexdigits[randN(16)]
	}
	return string(b)
}
