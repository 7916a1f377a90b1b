package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/internal/conn"
)

// broker is the producer's view of one broker address: whether sends should
// avoid it for now. Its connection lives in the producer's conn.Pool.
type broker struct {
	p    *Producer
	addr string

	downUntil atomic.Int64              // unix nanos; 0 = available
	failures  atomic.Int32              // consecutive failures, for the backoff (reset by a dial or an acknowledgement)
	conn      atomic.Pointer[conn.Conn] // the pool's connection last returned; checked for life on use
}

// available reports whether sends may use the broker now. It reads the
// clock only while the broker is marked down.
func (b *broker) available() bool {
	d := b.downUntil.Load()
	if d == 0 {
		return true
	}
	if d > time.Now().UnixNano() {
		return false
	}
	b.downUntil.CompareAndSwap(d, 0)
	return true
}

// markDown makes sends avoid the broker for a backoff step that grows with
// consecutive failures. A failure while the broker is avoided already
// belongs to the same episode (a lost connection fails every request in
// flight on it; a busy broker refuses a burst) and counts once: counted
// each, hundreds in flight made a broker that is back at once unavailable
// for the longest step, longer than the messages' retries.
func (b *broker) markDown() {
	now := time.Now()
	if b.downUntil.Load() > now.UnixNano() {
		return
	}
	n := b.failures.Add(1)
	d := min(b.p.opts.retryBackoff<<min(n-1, 16), maxBackoff)
	b.downUntil.Store(now.Add(max(d, time.Millisecond)).UnixNano())
}

// markUp clears the failures after a successful dial.
func (b *broker) markUp() {
	b.failures.Store(0)
	b.downUntil.Store(0)
}

// connFailed notes that a request failed because its connection ended.
func (b *broker) connFailed(err error) {
	if errors.Is(err, conn.ErrClosed) {
		return
	}
	b.markDown()
}

// get returns a live connection to the broker (dialling if needed). The
// pool's answer is kept so that most sends skip the pool's lock.
func (b *broker) get(ctx context.Context) (*conn.Conn, error) {
	if c := b.conn.Load(); c != nil {
		select {
		case <-c.Done(): // ended: ask the pool, which replaces it
		default:
			return c, nil
		}
	}
	c, err := b.p.pool.Get(ctx, b.addr)
	if err == nil {
		b.conn.Store(c)
	}
	return c, err
}

// endLingers makes every broker connection write what it has queued now,
// without lingering for more: called when the in-flight window is full, so
// no more messages come until acknowledgements do, and a linger would only
// delay them (and with them the next messages).
func (p *Producer) endLingers() {
	if m := p.brokers.m.Load(); m != nil {
		for _, b := range *m {
			if c := b.conn.Load(); c != nil {
				c.FlushSoon()
			}
		}
	}
}

// cowMap is a map for per-message lookups that change rarely: read through
// an atomic snapshot without a lock, written (under the producer's mu) by
// copying.
type cowMap[V any] struct{ m atomic.Pointer[map[string]V] }

func (cm *cowMap[V]) get(k string) V {
	var v V
	if m := cm.m.Load(); m != nil {
		v = (*m)[k]
	}
	return v
}

// setLocked stores k → v; the caller holds the producer's mu.
func (cm *cowMap[V]) setLocked(k string, v V) {
	n := map[string]V{k: v}
	if m := cm.m.Load(); m != nil {
		for ok, ov := range *m {
			if ok != k {
				n[ok] = ov
			}
		}
	}
	cm.m.Store(&n)
}

// onDial is the pool's report of a dial attempt.
func (p *Producer) onDial(addr string, err error) {
	b := p.brokerFor(addr)
	if err != nil {
		b.markDown()
		p.opts.log.Warn("producer: cannot connect to broker", "addr", addr, "err", err)
	} else {
		b.markUp()
		p.stats.dials.Add(1)
		p.opts.log.Debug("producer: connected to broker", "addr", addr)
	}
	if h := p.opts.hooks.OnConnect; h != nil {
		h(addr, err)
	}
}

// brokerFor returns the state of the broker at addr, creating it.
func (p *Producer) brokerFor(addr string) *broker {
	if b := p.brokers.get(addr); b != nil {
		return b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.brokerForLocked(addr)
}

// brokerForLocked is brokerFor for a caller holding p.mu.
func (p *Producer) brokerForLocked(addr string) *broker {
	b := p.brokers.get(addr)
	if b == nil {
		b = &broker{p: p, addr: addr}
		p.brokers.setLocked(addr, b)
	}
	return b
}

// route is the producer's routing table for one topic at one version of the
// topology. It is immutable but for changed.
type route struct {
	topic   string
	version uint64
	parts   []Partition // current, sorted
	brokers []*broker   // the broker of each of parts (states are never removed)
	// keySpace is every partition seen for the topic during the producer's
	// life, sorted; live says which are in parts (with their current address),
	// keyBrokers their brokers (nil where not live).
	keySpace   []Partition
	live       []bool
	keyBrokers []*broker
	// changed is the topology's Changed channel taken just before the read
	// this route matches: while it stays open the route is current, which
	// a send checks without asking the topology (an interface call, a map
	// lookup and a copy per message otherwise).
	changed atomic.Pointer[<-chan struct{}]
}

// current reports whether the topology has not changed since the route was
// last matched with it.
func (rt *route) current() bool {
	ch := rt.changed.Load()
	if ch == nil {
		return false
	}
	select {
	case <-*ch:
		return false
	default:
		return true
	}
}

// routeFor returns the routing table of topic, rebuilt when the topology changed.
func (p *Producer) routeFor(ctx context.Context, topic string) (*route, error) {
	last := p.lastRoute.Load()
	rt := last
	if rt == nil || rt.topic != topic {
		rt = p.routes.get(topic) // a map lookup: skipped while the topic stays the same
	}
	if rt != nil && rt.current() {
		if rt != last {
			p.lastRoute.Store(rt)
		}
		return rt, nil
	}
	if rt == nil {
		// The topic's first load may wait on ZooKeeper: give up at Close too.
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(p.ctx, cancel)
		defer stop()
		ctx = mctx
	}
	changed := p.topo.Changed() // before the read: a change after it closes this
	tp, err := p.topo.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if rt != nil && rt.version == tp.Version {
		rt.changed.Store(&changed)
		if rt != last {
			p.lastRoute.Store(rt)
		}
		return rt, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rt = p.routes.get(topic); rt != nil && rt.version == tp.Version {
		rt.changed.Store(&changed)
		p.lastRoute.Store(rt)
		return rt, nil
	}
	nrt := &route{topic: topic, version: tp.Version, parts: tp.Partitions}
	type key struct{ b, p int }
	seen := map[key]Partition{}
	if rt != nil {
		for _, kp := range rt.keySpace {
			seen[key{kp.BrokerID, kp.Partition}] = kp
		}
	}
	live := map[key]bool{}
	for _, cp := range tp.Partitions {
		seen[key{cp.BrokerID, cp.Partition}] = cp
		live[key{cp.BrokerID, cp.Partition}] = true
	}
	for _, kp := range seen {
		nrt.keySpace = append(nrt.keySpace, kp)
	}
	slices.SortFunc(nrt.keySpace, func(a, b Partition) int {
		if a.BrokerID != b.BrokerID {
			return a.BrokerID - b.BrokerID
		}
		return a.Partition - b.Partition
	})
	for _, kp := range nrt.keySpace {
		l := live[key{kp.BrokerID, kp.Partition}]
		nrt.live = append(nrt.live, l)
		var b *broker
		if l {
			b = p.brokerForLocked(kp.Addr)
		}
		nrt.keyBrokers = append(nrt.keyBrokers, b)
	}
	for _, cp := range nrt.parts {
		nrt.brokers = append(nrt.brokers, p.brokerForLocked(cp.Addr))
	}
	nrt.changed.Store(&changed)
	p.routes.setLocked(topic, nrt)
	p.lastRoute.Store(nrt)
	return nrt, nil
}

// choose picks r's partition and broker for this attempt.
func (p *Producer) choose(r *record) (Partition, *broker, error) {
	rt, err := p.routeFor(r.ctx, r.msg.Topic)
	if err != nil {
		if p.closed.Load() {
			err = errors.Join(ErrClosed, err)
		}
		return Partition{}, nil, fmt.Errorf("producer: partitions of %q: %w", r.msg.Topic, err)
	}
	pt := p.opts.partitioner
	if pt.ordered {
		if len(rt.keySpace) == 0 {
			return Partition{}, nil, newErr(fmt.Sprintf("producer: topic %q has no partitions", r.msg.Topic), ErrNoPartitions)
		}
		i := pt.pick(&r.msg, rt.keySpace, 0)
		if i < 0 || i >= len(rt.keySpace) {
			return Partition{}, nil, newErr(fmt.Sprintf("producer: partitioner %s chose index %d of %d", pt.name, i, len(rt.keySpace)), ErrInvalidMessage)
		}
		part := rt.keySpace[i]
		if !rt.live[i] {
			return part, nil, newErr(fmt.Sprintf("producer: partition %s of %q: its broker is not registered", part, r.msg.Topic), ErrPartitionUnavailable)
		}
		b := rt.keyBrokers[i]
		if !b.available() {
			return part, nil, newErr(fmt.Sprintf("producer: partition %s of %q: broker %s is unreachable", part, r.msg.Topic, part.Addr), ErrPartitionUnavailable)
		}
		return part, b, nil
	}
	n := len(rt.parts)
	if n == 0 {
		return Partition{}, nil, newErr(fmt.Sprintf("producer: topic %q has no partitions", r.msg.Topic), ErrNoPartitions)
	}
	// The message's first-send order is the round-robin sequence (one atomic
	// add per message fewer); a retry moves on by its attempt number.
	k := pt.pick(&r.msg, rt.parts, r.order-1+uint64(r.attempt))
	if k < 0 || k >= n { // a custom partitioner's index, reduced modulo n
		if k %= n; k < 0 {
			k += n
		}
	}
	for range n { // from k on, wrapping around (no division per message)
		if b := rt.brokers[k]; b.available() {
			return rt.parts[k], b, nil
		}
		if k++; k == n {
			k = 0
		}
	}
	return Partition{}, nil, newErr(fmt.Sprintf("producer: every broker of %q is unreachable", r.msg.Topic), ErrNoPartitions)
}
