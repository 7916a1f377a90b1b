package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ErrViewClosed is returned by a Topology used after Close.
var ErrViewClosed = errors.New("coordinator: cluster view closed")

// DefaultBrokerPort is the port of a meta:// URI that names none.
const DefaultBrokerPort = 8123

// BrokerPartition is one partition of a topic on a broker master, with the
// address clients dial.
type BrokerPartition struct {
	BrokerID  int
	Partition int
	Addr      string // host:port
}

// String returns "<brokerId>-<partition>", MetaQ's name for a partition.
func (p BrokerPartition) String() string { return PartitionName(p.BrokerID, p.Partition) }

// TopicPartitions is a snapshot of the partitions of one topic.
type TopicPartitions struct {
	Topic string
	// Partitions are sorted by broker id, then partition. The slice is shared
	// by every caller of the same snapshot: treat it as read-only.
	Partitions []BrokerPartition
	// Version increases with every change of the view (any topic or broker).
	Version uint64
}

// Topology is what a client needs to route to partitions: the ZooKeeper
// ClusterView and the StaticView (one broker, no ZooKeeper) both implement it.
type Topology interface {
	// Partitions returns the partitions of topic open to publishing, sorted
	// by broker id then partition. A ClusterView starts watching a topic on
	// its first use and waits (within ctx) for the first read.
	Partitions(ctx context.Context, topic string) (TopicPartitions, error)
	// Brokers returns the live brokers: id → address (host:port).
	Brokers() map[int]string
	// Changed returns a channel that is closed at the next change of the
	// view. Call it again after it fires to wait for the one after.
	Changed() <-chan struct{}
	// Close stops watching. Idempotent.
	Close() error
}

// ParseBrokerURI turns "meta://host:port" (or "host:port", or "meta://host")
// into host:port.
func ParseBrokerURI(uri string) (string, error) {
	s := strings.TrimSpace(uri)
	s = strings.TrimPrefix(s, "meta://")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return "", fmt.Errorf("coordinator: empty broker URI %q", uri)
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return net.JoinHostPort(s, strconv.Itoa(DefaultBrokerPort)), nil
		}
		return "", fmt.Errorf("coordinator: broker URI %q: %w", uri, err)
	}
	return s, nil
}

// StaticView is a Topology without ZooKeeper: one broker (id BrokerID at
// Addr) serving Partitions partitions of every topic. It never changes.
type StaticView struct {
	parts   []BrokerPartition
	changed chan struct{}
}

// NewStaticView returns a view of one broker at addr ("host:port" or
// "meta://host:port") with n partitions for every topic.
func NewStaticView(addr string, brokerID, n int) (*StaticView, error) {
	a, err := ParseBrokerURI(addr)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("coordinator: static view: %d partitions, want at least 1", n)
	}
	v := &StaticView{changed: make(chan struct{})}
	for p := 0; p < n; p++ {
		v.parts = append(v.parts, BrokerPartition{BrokerID: brokerID, Partition: p, Addr: a})
	}
	return v, nil
}

// Partitions implements Topology.
func (v *StaticView) Partitions(_ context.Context, topic string) (TopicPartitions, error) {
	return TopicPartitions{Topic: topic, Partitions: v.parts, Version: 1}, nil
}

// Brokers implements Topology.
func (v *StaticView) Brokers() map[int]string {
	return map[int]string{v.parts[0].BrokerID: v.parts[0].Addr}
}

// Changed implements Topology; a static view never changes.
func (v *StaticView) Changed() <-chan struct{} { return v.changed }

// Close implements Topology.
func (v *StaticView) Close() error { return nil }

// ClusterView keeps the brokers and the publish partitions of topics current
// from ZooKeeper (PROTOCOL.md §10): brokers from brokers/ids/*/master,
// partitions from topics-pub/<topic>/* (or the legacy topics/<topic>/* when
// topics-pub/<topic> does not exist), sorted by broker id then partition. It
// watches the children of ids and of each topic's node, and the data of each
// master, so brokers that come, go or move are seen without a restart. One
// goroutine watches the broker list, one each broker's master node, and one
// each topic asked for.
type ClusterView struct {
	s     *zkrecipes.Session
	paths Paths
	log   *slog.Logger

	ctx    context.Context // of the watch goroutines; ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu            sync.Mutex                   // guards every field below
	brokersLoaded chan struct{}                // closed after the first read of ids
	masters       map[int]*masterState         // watched broker ids
	topics        map[string]*topicState       // watched topics
	parts         map[string][]BrokerPartition // computed, per topic
	version       uint64
	changed       chan struct{} // closed and replaced at each change
	closed        bool
	accepts       map[int][]TopicPattern // WithAcceptedTopics: broker id → accepted topics
	acceptLoaded  chan struct{}          // WithAcceptedTopics: closed after the first read; nil without

	// ready is an immutable copy of the loaded topics' partitions, for
	// lock-free reads; republished under mu after every change.
	ready    atomic.Pointer[readyView]
	isClosed atomic.Bool
}

type readyView struct {
	version uint64
	parts   map[string][]BrokerPartition // loaded topics only
}

// publishLocked republishes ready. Call with v.mu held.
func (v *ClusterView) publishLocked() {
	select {
	case <-v.brokersLoaded:
	default:
		return
	}
	if v.acceptLoaded != nil {
		select {
		case <-v.acceptLoaded:
		default:
			return
		}
	}
	rv := &readyView{version: v.version, parts: make(map[string][]BrokerPartition, len(v.topics))}
	for t, ts := range v.topics {
		select {
		case <-ts.loaded:
			rv.parts[t] = v.parts[t]
		default:
		}
	}
	v.ready.Store(rv)
}

type masterState struct {
	cancel context.CancelFunc
	addr   string // "" while the master node is absent
	loaded bool
}

type topicState struct {
	loaded chan struct{} // closed after the first read
	regs   map[int]int   // broker id → partition count
}

// ClusterViewOption tunes a ClusterView.
type ClusterViewOption func(*ClusterView)

// WithViewLogger sets the logger (default: discard).
func WithViewLogger(l *slog.Logger) ClusterViewOption {
	return func(v *ClusterView) {
		if l != nil {
			v.log = l
		}
	}
}

// NewClusterView starts watching the brokers under paths on session s. Topics
// are watched from their first Partitions call (or Watch). Close it when done;
// the session stays the caller's.
func NewClusterView(s *zkrecipes.Session, paths Paths, opts ...ClusterViewOption) *ClusterView {
	ctx, cancel := context.WithCancel(context.Background())
	v := &ClusterView{s: s, paths: paths, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ctx: ctx, cancel: cancel, brokersLoaded: make(chan struct{}),
		masters: map[int]*masterState{}, topics: map[string]*topicState{},
		parts: map[string][]BrokerPartition{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(v)
	}
	v.wg.Add(1)
	go v.brokersLoop()
	if v.acceptLoaded != nil {
		v.wg.Add(1)
		go v.acceptLoop()
	}
	return v
}

// Watch starts watching topic (if not yet) and waits for its first read.
func (v *ClusterView) Watch(ctx context.Context, topic string) error {
	_, err := v.Partitions(ctx, topic)
	return err
}

// Partitions implements Topology.
func (v *ClusterView) Partitions(ctx context.Context, topic string) (TopicPartitions, error) {
	if rv := v.ready.Load(); rv != nil && !v.isClosed.Load() {
		if ps, ok := rv.parts[topic]; ok {
			return TopicPartitions{Topic: topic, Partitions: ps, Version: rv.version}, nil
		}
	}
	if err := protocol.ValidTopic(topic); err != nil {
		return TopicPartitions{}, fmt.Errorf("coordinator: partitions: %w", err)
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return TopicPartitions{}, ErrViewClosed
	}
	ts := v.topics[topic]
	if ts == nil {
		ts = &topicState{loaded: make(chan struct{})}
		v.topics[topic] = ts
		v.wg.Add(1)
		go v.topicLoop(topic, ts)
	}
	waits := []chan struct{}{v.brokersLoaded, ts.loaded}
	if v.acceptLoaded != nil {
		waits = append(waits, v.acceptLoaded)
	}
	v.mu.Unlock()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return TopicPartitions{}, fmt.Errorf("coordinator: waiting for the partitions of %q: %w", topic, ctx.Err())
		case <-v.ctx.Done():
			return TopicPartitions{}, ErrViewClosed
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return TopicPartitions{Topic: topic, Partitions: v.parts[topic], Version: v.version}, nil
}

// Brokers implements Topology.
func (v *ClusterView) Brokers() map[int]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[int]string, len(v.masters))
	for id, m := range v.masters {
		if m.addr != "" {
			out[id] = m.addr
		}
	}
	return out
}

// ClusterSnapshot is a consistent copy of a ClusterView.
type ClusterSnapshot struct {
	Version uint64
	Brokers map[int]string               // id → host:port, live masters only
	Topics  map[string][]BrokerPartition // watched topics
}

// Snapshot returns a copy of the whole view.
func (v *ClusterView) Snapshot() ClusterSnapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	snap := ClusterSnapshot{Version: v.version, Brokers: map[int]string{}, Topics: map[string][]BrokerPartition{}}
	for id, m := range v.masters {
		if m.addr != "" {
			snap.Brokers[id] = m.addr
		}
	}
	for t, ps := range v.parts {
		snap.Topics[t] = slices.Clone(ps)
	}
	return snap
}

// Changed implements Topology.
func (v *ClusterView) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

// Close stops every watch goroutine and waits for them. Idempotent.
func (v *ClusterView) Close() error {
	v.mu.Lock()
	v.closed = true
	v.isClosed.Store(true)
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
	return nil
}

// recompute rebuilds the partition lists and signals a change when any list
// or the broker set changed. Call with v.mu held.
func (v *ClusterView) recomputeLocked(brokersChanged bool) {
	changed := brokersChanged
	for topic, ts := range v.topics {
		var ps []BrokerPartition
		ids := make([]int, 0, len(ts.regs))
		for id := range ts.regs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			m := v.masters[id]
			if m == nil || m.addr == "" {
				continue
			}
			for p := 0; p < ts.regs[id]; p++ {
				ps = append(ps, BrokerPartition{BrokerID: id, Partition: p, Addr: m.addr})
			}
		}
		if len(ts.regs) == 0 && v.acceptLoaded != nil {
			ps = v.acceptedPartitionsLocked(topic) // not registered yet: the brokers that would create it
		}
		if !slices.Equal(ps, v.parts[topic]) {
			v.parts[topic] = ps
			changed = true
		}
	}
	if changed {
		v.version++
		close(v.changed)
		v.changed = make(chan struct{})
	}
	v.publishLocked()
}

// pause waits a backoff step and for the session to be connected; false
// when the view is closing.
func (v *ClusterView) pause(attempt int) bool {
	d := min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-v.ctx.Done():
		return false
	}
	return v.s.WaitConnected(v.ctx) == nil
}

// await waits for one of the watches, the loss of session id, or Close.
func (v *ClusterView) await(id int64, w1, w2 <-chan zk.Event) bool {
	select {
	case <-w1:
	case <-w2:
	case <-v.s.Expired(id):
	case <-v.ctx.Done():
		return false
	}
	return v.ctx.Err() == nil
}

func (v *ClusterView) brokersLoop() {
	defer v.wg.Done()
	ctx := v.ctx
	for attempt := 0; ; {
		id := v.s.ID()
		names, _, w, err := v.s.ChildrenW(ctx, v.paths.BrokerIDs())
		var w2 <-chan zk.Event
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, w2, err = v.s.ExistsW(ctx, v.paths.BrokerIDs())
			if err == nil && ok {
				continue // created meanwhile: list it
			}
			names = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("cluster view: listing brokers", "err", err)
			if attempt++; !v.pause(attempt) {
				return
			}
			continue
		}
		attempt = 0
		v.syncMasters(names)
		if !v.await(id, w, w2) {
			return
		}
	}
}

// syncMasters starts a watch for every new broker id and stops those gone.
func (v *ClusterView) syncMasters(names []string) {
	want := map[int]bool{}
	for _, n := range names {
		if id, err := strconv.Atoi(n); err == nil && id >= 0 {
			want[id] = true
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	removed := false
	for id, m := range v.masters {
		if !want[id] {
			m.cancel()
			delete(v.masters, id)
			removed = removed || m.addr != ""
		}
	}
	var started []*masterState
	for id := range want {
		if v.masters[id] == nil {
			ctx, cancel := context.WithCancel(v.ctx)
			m := &masterState{cancel: cancel}
			v.masters[id] = m
			started = append(started, m)
			v.wg.Add(1)
			go v.masterLoop(ctx, id, m)
		}
	}
	if len(started) == 0 {
		v.markBrokersLoadedLocked()
	}
	v.recomputeLocked(removed)
}

// markBrokersLoadedLocked closes brokersLoaded once every known master was read.
func (v *ClusterView) markBrokersLoadedLocked() {
	select {
	case <-v.brokersLoaded:
		return
	default:
	}
	for _, m := range v.masters {
		if !m.loaded {
			return
		}
	}
	close(v.brokersLoaded)
	v.publishLocked()
}

func (v *ClusterView) masterLoop(ctx context.Context, brokerID int, m *masterState) {
	defer v.wg.Done()
	p := v.paths.BrokerMaster(brokerID)
	for attempt := 0; ; {
		id := v.s.ID()
		data, _, w, err := v.s.GetW(ctx, p)
		addr := ""
		if err == nil {
			if addr, err = ParseBrokerURI(string(data)); err != nil {
				v.log.Warn("cluster view: bad master URI", "path", p, "err", err)
				addr, err = "", nil
			}
		} else if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, w, err = v.s.ExistsW(ctx, p)
			if err == nil && ok {
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("cluster view: reading broker master", "path", p, "err", err)
			if attempt++; !v.pause(attempt) {
				return
			}
			continue
		}
		attempt = 0
		v.mu.Lock()
		if ctx.Err() == nil {
			changed := m.addr != addr
			m.addr, m.loaded = addr, true
			v.markBrokersLoadedLocked()
			if changed {
				v.log.Debug("cluster view: broker master", "broker", brokerID, "addr", addr)
				v.recomputeLocked(true)
			}
		}
		v.mu.Unlock()
		select {
		case <-w:
		case <-v.s.Expired(id):
		case <-ctx.Done():
			return
		}
	}
}

func (v *ClusterView) topicLoop(topic string, ts *topicState) {
	defer v.wg.Done()
	for attempt := 0; ; {
		id := v.s.ID()
		regs, w1, w2, err := v.readTopic(topic)
		if errors.Is(err, errRetryNow) {
			continue
		}
		if err != nil {
			if v.ctx.Err() != nil {
				return
			}
			v.log.Warn("cluster view: reading topic", "topic", topic, "err", err)
			if attempt++; !v.pause(attempt) {
				return
			}
			continue
		}
		attempt = 0
		v.mu.Lock()
		ts.regs = regs
		v.recomputeLocked(false)
		select {
		case <-ts.loaded:
		default:
			close(ts.loaded)
			v.publishLocked()
		}
		v.mu.Unlock()
		if !v.await(id, w1, w2) {
			return
		}
	}
}

// readTopic reads the registrations of topic from topics-pub, or from the
// legacy topics node when topics-pub/<topic> does not exist, and sets the
// watches that tell when to read again.
func (v *ClusterView) readTopic(topic string) (map[int]int, <-chan zk.Event, <-chan zk.Event, error) {
	ctx := v.ctx
	pub := v.paths.TopicPubDir(topic)
	names, _, w1, err := v.s.ChildrenW(ctx, pub)
	if err == nil {
		regs, err := v.readRegs(names, func(id int) string { return v.paths.TopicPub(topic, id) }, parsePubData)
		return regs, w1, nil, err
	}
	if !errors.Is(err, zk.ErrNoNode) {
		return nil, nil, nil, err
	}
	ok, _, w1, err := v.s.ExistsW(ctx, pub)
	if err != nil {
		return nil, nil, nil, err
	}
	if ok {
		return nil, nil, nil, errRetryNow
	}
	legacy := v.paths.TopicLegacyDir(topic)
	names, _, w2, err := v.s.ChildrenW(ctx, legacy)
	if errors.Is(err, zk.ErrNoNode) {
		ok, _, w2, err = v.s.ExistsW(ctx, legacy)
		if err != nil {
			return nil, nil, nil, err
		}
		if ok {
			return nil, nil, nil, errRetryNow
		}
		return map[int]int{}, w1, w2, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	regs, err := v.readRegs(names, func(id int) string { return v.paths.TopicLegacy(topic, id) }, parseLegacyData)
	return regs, w1, w2, err
}

// errRetryNow marks a race (a node appeared between two reads).
var errRetryNow = errors.New("coordinator: node appeared meanwhile")

func (v *ClusterView) readRegs(names []string, nodePath func(brokerID int) string, parse func([]byte) (int, error)) (map[int]int, error) {
	regs := map[int]int{}
	for _, n := range names {
		id, master, err := ParseBrokerNodeName(n)
		if err != nil || !master {
			continue
		}
		p := nodePath(id)
		data, _, err := v.s.Get(v.ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone meanwhile; the child watch fires
		}
		if err != nil {
			return nil, err
		}
		num, err := parse(data)
		if err != nil || num < 0 {
			v.log.Warn("cluster view: bad topic registration", "path", p, "data", string(data), "err", err)
			continue
		}
		regs[id] = num
	}
	return regs, nil
}

func parsePubData(data []byte) (int, error) {
	var pi PartitionInfo
	if err := json.Unmarshal(data, &pi); err != nil {
		return 0, err
	}
	return pi.NumParts, nil
}

func parseLegacyData(data []byte) (int, error) {
	return strconv.Atoi(strings.TrimSpace(string(data)))
}
