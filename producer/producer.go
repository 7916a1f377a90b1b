package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Message is one message to send.
type Message struct {
	Topic   string
	Payload []byte
	// Attribute is an optional string stored with the message (flag bit 0).
	Attribute string
	// Key selects the partition with the ByKey partitioner.
	Key []byte
}

// Result says where a message was stored.
type Result struct {
	MsgID     int64
	Partition Partition
	Offset    int64
}

// Producer sends messages to the partitions of a MetaQ cluster over one
// pipelined connection per broker. It is safe for concurrent use.
type Producer struct {
	opts     options
	topo     coordinator.Topology
	ownsTopo bool
	session  *zkrecipes.Session // owned, nil unless WithZooKeeper
	pool     *conn.Pool         // one connection per broker

	slots *slots // one per message in flight (WithMaxInFlight)
	// The counters a send and an acknowledgement touch are on cache lines
	// of their own: senders write seq and order, connection readers write
	// finished and the stats, and nobody writes a line the other side
	// writes per message (issue 16: one cache line moving between the
	// cores per message costs about as much as the rest of an atomic add).
	_         [64]byte
	seq       atomic.Uint64         // round-robin sequence of transactions (tx.go)
	order     atomic.Uint64         // messages accepted (first-send order, retry.go)
	lastRoute atomic.Pointer[route] // the route used last (routeFor)
	_         [64]byte
	// finished counts messages reported (acknowledged or failed): order -
	// finished are in flight.
	finished atomic.Uint64
	stats    counters
	_        [64]byte

	mu      sync.Mutex // serialises changes of brokers and routes
	brokers cowMap[*broker]
	routes  cowMap[*route]

	drainMu  sync.Mutex    // guards drainCh
	drainCh  chan struct{} // closed when nothing is in flight while Flush waits
	flushers atomic.Int32

	closed    atomic.Bool     // no new messages
	abort     chan struct{}   // closed when Close gives up on what is in flight
	ctx       context.Context // canceled with abort
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	goMu      sync.Mutex     // guards stopped and wg.Add
	stopped   bool           // no more goroutines may start
	wg        sync.WaitGroup // retry waits, dials and connection closers

	tx txSession // transactions (tx.go)

	retries retryQueue
}

// New validates the options and returns a producer. With WithZooKeeper it
// connects to ZooKeeper first and waits until the session is established or
// ctx ends (give ctx a deadline: an unreachable ZooKeeper is waited for as
// long as ctx allows); with WithBroker or WithTopology it does not block. ctx
// bounds only New: the producer lives until Close.
func New(ctx context.Context, opts ...Option) (*Producer, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	p := &Producer{opts: o, slots: newSlots(o.maxInFlight), abort: make(chan struct{})}
	p.slots.onFull = p.endLingers
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.retries.init(p)
	switch {
	case o.topology != nil:
		p.topo = o.topology
	case o.brokerAddr != "":
		v, err := coordinator.NewStaticView(o.brokerAddr, 0, o.brokerParts)
		if err != nil {
			p.cancel()
			return nil, fmt.Errorf("producer: %w", err)
		}
		p.topo, p.ownsTopo = v, true
	default:
		paths := coordinator.NewPaths(o.zkRoot)
		s, err := zkrecipes.Connect(ctx, o.zkServers, append([]zkrecipes.Option{zkrecipes.WithLogger(o.log)},
			paths.SessionOptions(o.zkUser, o.zkPassword, coordinator.RoleGroup)...)...)
		if err != nil {
			p.cancel()
			return nil, fmt.Errorf("producer: connect to ZooKeeper %v: %w", o.zkServers, err)
		}
		p.session = s
		p.topo = coordinator.NewClusterView(s, paths, coordinator.WithViewLogger(o.log),
			coordinator.WithAcceptedTopics()) // a topic not registered yet goes to a broker that creates it
		p.ownsTopo = true
	}
	p.pool = conn.NewPool(conn.Options{HeartbeatInterval: o.heartbeat, Linger: o.linger, Logger: o.log,
		TLS: o.tls, Auth: o.auth, AfterReplies: p.afterReplies}, p.onDial)
	return p, nil
}

// Send sends msg and waits for the broker's acknowledgement (the message is
// then as durable as the broker's flush mode promises). Retriable failures
// are retried within ctx. When ctx ends first Send returns ctx's error; the
// message may still be stored.
func (p *Producer) Send(ctx context.Context, msg Message) (Result, error) {
	w := waiterPool.Get().(*waiter)
	p.send(ctx, msg, nil, w)
	select {
	case r := <-w.ch:
		waiterPool.Put(w)
		return r.res, r.err
	case <-ctx.Done():
		// w is abandoned: the record still completes into its buffered channel.
		return Result{}, fmt.Errorf("producer: send to %q: %w", msg.Topic, ctx.Err())
	}
}

// SendAsync queues msg and returns; cb is called exactly once with the
// result or the error (IsRetriable says whether sending again may work).
// SendAsync waits (within ctx) only for room when MaxInFlight messages are
// outstanding, and for the topic's first discovery and the broker's first
// dial; when ctx ends first cb gets ctx's error.
// Retries of msg stop when ctx ends. cb may run on the calling goroutine (for
// an immediate failure) or on a connection's reader goroutine: keep it fast
// and never block in it (calling SendAsync from it is fine only with a ctx
// that bounds the wait).
//
// msg.Payload and msg.Key must not be modified until cb runs.
func (p *Producer) SendAsync(ctx context.Context, msg Message, cb func(Result, error)) {
	if cb == nil {
		cb = func(Result, error) {}
	}
	p.send(ctx, msg, cb, nil)
}

func (p *Producer) send(ctx context.Context, msg Message, cb func(Result, error), w *waiter) {
	size := len(msg.Payload)
	if msg.Attribute != "" {
		size += 4 + len(msg.Attribute)
	}
	var err error
	switch {
	case size > p.opts.maxMessageSize:
		err = newErr(fmt.Sprintf("producer: message of %d bytes for %q exceeds the maximum message size %d", size, msg.Topic, p.opts.maxMessageSize), ErrMessageTooLarge)
	case protocol.ValidTopic(msg.Topic) != nil:
		err = newErr("producer: "+protocol.ValidTopic(msg.Topic).Error(), ErrInvalidMessage)
	case p.opts.partitioner.needsKey && len(msg.Key) == 0:
		err = newErr("producer: the by-key partitioner needs a message key", ErrInvalidMessage)
	case ctx.Err() != nil:
		err = fmt.Errorf("producer: send to %q: %w", msg.Topic, ctx.Err())
	}
	var r *record
	if err == nil {
		r, err = p.acquire(ctx)
	}
	if err != nil {
		p.stats.failed.Add(1)
		if h := p.opts.hooks.OnError; h != nil {
			m := msg // only this branch pays for a heap copy
			h(&m, err)
		}
		if w != nil {
			w.ch <- sendResult{err: err}
		} else {
			cb(Result{}, err)
		}
		return
	}
	order := p.order.Add(1)
	*r = record{p: p, ctx: ctx, msg: msg, cb: cb, w: w, order: order, heapIdx: -1}
	if p.timed(order, w) {
		r.start = max(conn.Now(), 1) // 0 means not timed
	}
	if msg.Attribute != "" {
		r.flag = protocol.FlagAttribute
		r.data = protocol.AppendPutData(make([]byte, 0, size), r.flag, msg.Attribute, msg.Payload)
	} else {
		r.data = msg.Payload
	}
	r.checksum = protocol.Checksum(r.data)
	if p.closed.Load() {
		r.fail(ErrClosed)
		return
	}
	if p.retries.pending() { // keep our place behind earlier messages being retried
		r.due = time.Now()
		p.retries.push(r)
		return
	}
	p.dispatch(r)
}

// Latency sampling. Reading the clock is ~10% of a bulk send's CPU, so
// while more than timeAllInFlight messages are in flight only one in
// timeOneIn is timed for Stats' latencies (thousands of samples a second
// still); below that, and for a synchronous Send or with an OnAck hook
// (which gets every message's latency), every message is.
const (
	timeAllInFlight = 64
	timeOneIn       = 8
)

// timed says whether the message of the given order is timed.
func (p *Producer) timed(order uint64, w *waiter) bool {
	return order%timeOneIn == 0 || w != nil || p.opts.hooks.OnAck != nil ||
		order-p.finished.Load() <= timeAllInFlight
}

// acquire takes an in-flight slot: the record of the message.
func (p *Producer) acquire(ctx context.Context) (*record, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	r, err := p.slots.take(ctx, p.abort)
	if err != nil && !errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("producer: waiting for room in the in-flight buffer: %w", err)
	}
	return r, err
}

// Flush waits until no message is in flight (every callback has run) or ctx
// ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.flushers.Add(1)
	defer p.flushers.Add(-1)
	for {
		p.drainMu.Lock()
		if p.inFlight() == 0 {
			p.drainMu.Unlock()
			return nil
		}
		if p.drainCh == nil {
			p.drainCh = make(chan struct{})
		}
		ch := p.drainCh
		p.drainMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("producer: flush: %d messages still in flight: %w", p.inFlight(), ctx.Err())
		}
	}
}

// inFlight returns how many accepted messages are not reported yet. It
// reads finished before order: a message accepted after the first read
// cannot hide one still in flight (finished ≤ accepted at every moment, so
// equal counts mean nothing was in flight when finished was read).
func (p *Producer) inFlight() int64 {
	f := p.finished.Load()
	return int64(p.order.Load() - f)
}

// done marks n messages finished and wakes Flush when none is left. Only
// while a Flush waits does it read the senders' counter.
func (p *Producer) done(n uint64) {
	p.finished.Add(n)
	if p.flushers.Load() > 0 {
		p.drainMu.Lock()
		if p.drainCh != nil && p.inFlight() == 0 {
			close(p.drainCh)
			p.drainCh = nil
		}
		p.drainMu.Unlock()
	}
}

// Close stops accepting messages, waits (within ctx) for those in flight,
// then reports every message still in flight as failed with ErrClosed,
// closes the connections and, when the producer created them, the cluster
// view and the ZooKeeper session. It returns ctx's error when messages had
// to be failed. Idempotent; later calls return the first result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.closeErr = p.Flush(ctx)
		close(p.abort)
		p.cancel()
		_ = p.pool.Close() // requests in flight fail now, with ErrClosed
		if p.ownsTopo {
			_ = p.topo.Close()
		}
		if p.session != nil {
			p.session.Close()
		}
		p.goMu.Lock()
		p.stopped = true
		p.goMu.Unlock()
		p.wg.Wait()
		// Every record has now been reported; make sure of it.
		if err := p.Flush(context.Background()); err != nil {
			p.closeErr = errors.Join(p.closeErr, err)
		}
	})
	return p.closeErr
}

// spawn runs f on a goroutine Close waits for; false once Close stopped
// them (f does not run).
func (p *Producer) spawn(f func()) bool {
	p.goMu.Lock()
	defer p.goMu.Unlock()
	if p.stopped {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// Stats returns a snapshot of the counters.
func (p *Producer) Stats() Stats {
	q := p.stats.hist.Quantiles(0.5, 0.9, 0.99, 0.999)
	return Stats{
		Sent: p.stats.sent.Load(), Bytes: p.stats.bytes.Load(), Failed: p.stats.failed.Load(),
		Retried: p.stats.retried.Load(), InFlight: p.inFlight(), Dials: p.stats.dials.Load(),
		LatencyP50: q[0], LatencyP90: q[1], LatencyP99: q[2], LatencyP999: q[3],
		LatencyMax: p.stats.hist.Max(),
	}
}

// Topology returns the view the producer routes with.
func (p *Producer) Topology() coordinator.Topology { return p.topo }

type sendResult struct {
	res Result
	err error
}

type waiter struct{ ch chan sendResult }

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan sendResult, 1)} }}
