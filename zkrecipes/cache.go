package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"
)

// NodeData is a cached node: its path, data and stat. Treat Data as read-only.
type NodeData struct {
	Path string
	Data []byte
	Stat zk.Stat
}

// changedFrom reports whether n is a different version of the node than old.
func (n *NodeData) changedFrom(old *NodeData) bool {
	if n == nil || old == nil {
		return n != old
	}
	return n.Stat.Czxid != old.Stat.Czxid || n.Stat.Mzxid != old.Stat.Mzxid || n.Stat.Version != old.Stat.Version
}

// recipeLoop is the lifecycle shared by the caches: one goroutine, started
// by start and stopped by stop, and a channel closed after the first
// complete load.
type recipeLoop struct {
	ctx       context.Context // of the run goroutine; ends at stop
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the run goroutine and watch forwarders
	loaded    chan struct{}
	loadOnce  sync.Once
	closeOnce sync.Once
}

func (l *recipeLoop) start(run func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.ctx, l.cancel = ctx, cancel
	l.loaded = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		run(ctx)
	}()
}

func (l *recipeLoop) markLoaded() { l.loadOnce.Do(func() { close(l.loaded) }) }

// waitLoaded waits for the first load or the end of ctx.
func (l *recipeLoop) waitLoaded(ctx context.Context) error {
	select {
	case <-l.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *recipeLoop) stop() {
	l.closeOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}

// sessionWake is what a cache's loop waits on besides its watches: the loss
// of the session its watches belong to, a reconnect, and its context.
type sessionWake struct {
	s   *Session
	sub *Subscription
	c   <-chan Event
}

func newSessionWake(s *Session) *sessionWake {
	sub := s.Subscribe()
	return &sessionWake{s: s, sub: sub, c: sub.C}
}

// events returns the session event channel (nil once it is closed).
func (w *sessionWake) events() <-chan Event { return w.c }

// resync reports whether a session event means the cache must re-read
// everything (a reconnect or a new session); it also disarms a closed channel.
func (w *sessionWake) resync(ev Event, ok bool) bool {
	if !ok {
		w.c = nil
		return true
	}
	return ev.State == StateReconnected || ev.State == StateConnected
}

func (w *sessionWake) close() { w.sub.Close() }

// NodeCache keeps the data and stat of one node current (Curator's
// NodeCache): a data watch while the node exists, an exists watch while it
// does not, re-armed and followed by a re-read after every event, after every
// reconnect and after a session loss. One watch per cache.
type NodeCache struct {
	s       *Session
	path    string
	loop    recipeLoop
	streams *streamSet[*NodeData]

	mu      sync.Mutex // guards current
	current *NodeData
}

// NewNodeCache starts caching the node at p and waits for the first read (or ctx).
func NewNodeCache(ctx context.Context, s *Session, p string) (*NodeCache, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	c := &NodeCache{s: s, path: p, streams: newStreamSet[*NodeData]()}
	c.loop.start(c.run)
	if err := c.loop.waitLoaded(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("zkrecipes: node cache %s: initial load: %w", p, err)
	}
	return c, nil
}

// Get returns the latest snapshot of the node, nil while it does not exist.
func (c *NodeCache) Get() *NodeData {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Subscribe returns a stream of snapshots: first the current one, then one
// per observed change (nil when the node is deleted). Close the stream when done.
func (c *NodeCache) Subscribe() *Stream[*NodeData] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams.add([]*NodeData{c.current})
}

// Close stops the cache and closes every stream. It creates and deletes nothing.
func (c *NodeCache) Close() {
	c.loop.stop()
	c.streams.close()
}

func (c *NodeCache) run(ctx context.Context) {
	wake := newSessionWake(c.s)
	defer wake.close()
	var bo retryDelay
	for {
		id, err := connectedSessionID(ctx, c.s)
		if err != nil {
			return // ctx ended or the session was closed
		}
		ch, err := c.refresh(ctx)
		if err != nil {
			if bo.wait(ctx) != nil {
				return
			}
			continue
		}
		bo.reset()
		c.loop.markLoaded()
	wait:
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-c.s.Expired(id):
		case ev, ok := <-wake.events():
			if !wake.resync(ev, ok) {
				goto wait
			}
		}
	}
}

// refresh re-reads the node, arms the right watch and publishes a change.
func (c *NodeCache) refresh(ctx context.Context) (<-chan zk.Event, error) {
	for {
		data, st, ch, err := c.s.GetW(ctx, c.path)
		if err == nil {
			c.set(&NodeData{Path: c.path, Data: data, Stat: *st})
			return ch, nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, err
		}
		ok, _, ch, err := c.s.ExistsW(ctx, c.path)
		if err != nil {
			return nil, err
		}
		if !ok {
			c.set(nil)
			return ch, nil
		}
		// Created in between: read it (the exists watch fires once, harmlessly).
	}
}

func (c *NodeCache) set(n *NodeData) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !n.changedFrom(c.current) {
		return
	}
	c.current = n
	c.streams.publish(n)
}

// ChildEventType says what happened to a child in a ChildrenCache.
type ChildEventType int

// Child event types.
const (
	ChildAdded ChildEventType = iota + 1
	ChildUpdated
	ChildRemoved
)

func (t ChildEventType) String() string {
	switch t {
	case ChildAdded:
		return "added"
	case ChildUpdated:
		return "updated"
	case ChildRemoved:
		return "removed"
	}
	return fmt.Sprintf("ChildEventType(%d)", int(t))
}

// ChildEvent is a change of one child of a ChildrenCache's path. For
// ChildRemoved, Data is the last data the cache had.
type ChildEvent struct {
	Type ChildEventType
	Name string // the child's name (last path element)
	Data NodeData
}

// ChildrenCache keeps the children of one node and their data current
// (Curator's PathChildrenCache): a child watch on the parent (an exists watch
// while the parent does not exist) and one data watch per child, re-armed
// after every event. A child event re-lists the parent and reads only the new
// children; a data event re-reads only that child. After a reconnect every
// child is re-read, after a session loss every watch is re-armed, and the
// differences come out as events, so nothing that happened meanwhile is lost.
type ChildrenCache struct {
	s       *Session
	path    string
	loop    recipeLoop
	streams *streamSet[ChildEvent]
	dataEv  chan childWatch

	mu       sync.Mutex // guards children and gen
	children map[string]*childEntry
	gen      uint64
}

type childEntry struct {
	data    NodeData
	gen     uint64 // of the data watch currently armed; events of older ones are ignored
	watchID int64  // session whose data watch is armed, 0 = none
}

type childWatch struct {
	name string
	gen  uint64
	ev   zk.Event
}

// NewChildrenCache starts caching the children of p and waits for the first
// complete load (or ctx). p need not exist yet.
func NewChildrenCache(ctx context.Context, s *Session, p string) (*ChildrenCache, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	c := &ChildrenCache{s: s, path: p, streams: newStreamSet[ChildEvent](), dataEv: make(chan childWatch),
		children: map[string]*childEntry{}}
	c.loop.start(c.run)
	if err := c.loop.waitLoaded(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("zkrecipes: children cache %s: initial load: %w", p, err)
	}
	return c, nil
}

// Snapshot returns the cached children by name.
func (c *ChildrenCache) Snapshot() map[string]NodeData {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]NodeData, len(c.children))
	for name, e := range c.children {
		out[name] = e.data
	}
	return out
}

// Get returns one cached child.
func (c *ChildrenCache) Get(name string) (NodeData, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.children[name]
	if !ok {
		return NodeData{}, false
	}
	return e.data, true
}

// Subscribe returns a stream of child events: first ChildAdded for every
// cached child (by name), then every change in the order the cache saw it.
// Close the stream when done.
func (c *ChildrenCache) Subscribe() *Stream[ChildEvent] {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := c.sortedNamesLocked()
	initial := make([]ChildEvent, 0, len(names))
	for _, n := range names {
		initial = append(initial, ChildEvent{Type: ChildAdded, Name: n, Data: c.children[n].data})
	}
	return c.streams.add(initial)
}

// Close stops the cache and closes every stream. It creates and deletes nothing.
func (c *ChildrenCache) Close() {
	c.loop.stop()
	c.streams.close()
}

func (c *ChildrenCache) sortedNamesLocked() []string {
	names := make([]string, 0, len(c.children))
	for n := range c.children {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *ChildrenCache) run(ctx context.Context) {
	wake := newSessionWake(c.s)
	defer wake.close()
	var bo retryDelay
	var childCh <-chan zk.Event
	var id int64
	synced, full := false, true
	for {
		if !synced {
			var err error
			if id, err = connectedSessionID(ctx, c.s); err != nil {
				return // ctx ended or the session was closed
			}
			if childCh, err = c.sync(ctx, id, full); err != nil {
				if bo.wait(ctx) != nil {
					return
				}
				full = true
				continue
			}
			bo.reset()
			synced, full = true, false
			c.loop.markLoaded()
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-childCh:
			synced = false
			full = full || ev.Type == zk.EventNotWatching
		case w := <-c.dataEv:
			if err := c.onData(ctx, id, w); err != nil {
				synced, full = false, true
			}
		case <-c.s.Expired(id):
			synced, full = false, true
		case ev, ok := <-wake.events():
			if wake.resync(ev, ok) {
				synced, full = false, true
			}
		}
	}
}

// sync lists the children (arming the child watch), drops children that are
// gone, reads new children (arming their data watches), re-arms data watches
// not armed under session id, and with full re-reads every other child too.
func (c *ChildrenCache) sync(ctx context.Context, id int64, full bool) (<-chan zk.Event, error) {
	kids, _, ch, err := c.s.ChildrenW(ctx, c.path)
	if errors.Is(err, zk.ErrNoNode) {
		var ok bool
		ok, _, ch, err = c.s.ExistsW(ctx, c.path)
		if err == nil && ok {
			return c.sync(ctx, id, full) // created in between
		}
		kids = nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(kids)
	present := make(map[string]bool, len(kids))
	for _, k := range kids {
		present[k] = true
	}
	c.mu.Lock()
	for _, n := range c.sortedNamesLocked() {
		if !present[n] {
			c.removeLocked(n)
		}
	}
	c.mu.Unlock()
	for _, k := range kids {
		if err := c.syncChild(ctx, id, k, full); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

func (c *ChildrenCache) syncChild(ctx context.Context, id int64, name string, full bool) error {
	c.mu.Lock()
	e := c.children[name]
	armed := e != nil && e.watchID == id
	c.mu.Unlock()
	if armed && !full {
		return nil
	}
	p := path.Join(c.path, name)
	if armed {
		data, st, err := c.s.Get(ctx, p) // the armed watch stays; just catch up
		return c.store(name, data, st, err, 0, nil, 0)
	}
	data, st, wch, err := c.s.GetW(ctx, p)
	return c.store(name, data, st, err, id, wch, 0)
}

// onData handles a data watch event of one child.
func (c *ChildrenCache) onData(ctx context.Context, id int64, w childWatch) error {
	c.mu.Lock()
	e := c.children[w.name]
	current := e != nil && e.gen == w.gen
	if current {
		e.watchID = 0 // fired: no longer armed
	}
	c.mu.Unlock()
	if !current {
		return nil // a watch from before a re-arm
	}
	if w.ev.Type == zk.EventNotWatching || w.ev.Err != nil {
		return ErrSessionLost
	}
	data, st, wch, err := c.s.GetW(ctx, path.Join(c.path, w.name))
	return c.store(w.name, data, st, err, id, wch, w.gen)
}

// store applies the result of a read of child name. With wch it records the
// newly armed watch under session id and starts its forwarder. onlyIfGen,
// when not 0, skips the update if the entry was re-armed meanwhile.
func (c *ChildrenCache) store(name string, data []byte, st *zk.Stat, err error, id int64, wch <-chan zk.Event, onlyIfGen uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.children[name]
	if onlyIfGen != 0 && (e == nil || e.gen != onlyIfGen) {
		return nil
	}
	if errors.Is(err, zk.ErrNoNode) {
		if e != nil {
			c.removeLocked(name)
		}
		return nil
	}
	if err != nil {
		return err
	}
	nd := NodeData{Path: path.Join(c.path, name), Data: data, Stat: *st}
	if e == nil {
		e = &childEntry{data: nd}
		c.children[name] = e
		c.streams.publish(ChildEvent{Type: ChildAdded, Name: name, Data: nd})
	} else if nd.changedFrom(&e.data) {
		e.data = nd
		c.streams.publish(ChildEvent{Type: ChildUpdated, Name: name, Data: nd})
	}
	if wch != nil {
		c.gen++
		e.gen, e.watchID = c.gen, id
		c.forward(name, e.gen, wch)
	}
	return nil
}

func (c *ChildrenCache) removeLocked(name string) {
	e := c.children[name]
	delete(c.children, name)
	c.streams.publish(ChildEvent{Type: ChildRemoved, Name: name, Data: e.data})
}

// forward hands the one event of a child's data watch to the run loop.
func (c *ChildrenCache) forward(name string, gen uint64, wch <-chan zk.Event) {
	done := c.loop.ctx.Done()
	c.loop.wg.Add(1)
	go func() {
		defer c.loop.wg.Done()
		select {
		case ev := <-wch:
			select {
			case c.dataEv <- childWatch{name: name, gen: gen, ev: ev}:
			case <-done:
			}
		case <-done:
		}
	}()
}
