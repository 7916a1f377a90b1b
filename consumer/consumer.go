package consumer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Sentinel errors.
var (
	// ErrAuth: a broker refused the credentials of WithSASL (the error
	// carries its reason), or could not prove it knows them. The partitions
	// of that broker are retried with backoff; PartitionStats.Err shows it.
	ErrAuth = conn.ErrAuth
	// ErrClosed is returned by calls on a closed Consumer.
	ErrClosed = errors.New("consumer: closed")
	// ErrStarted is returned by Subscribe or Start after Start.
	ErrStarted = errors.New("consumer: already started")
	// ErrNotStarted is returned by Poll, Commit, ... before Start.
	ErrNotStarted = errors.New("consumer: not started")
	// ErrNoTopics means Start found neither Subscribe calls nor WithTopics.
	ErrNoTopics = errors.New("consumer: no topics: call Subscribe or use WithTopics")
	// ErrHandlerStyle is returned by Poll/Messages on a consumer that uses
	// Subscribe handlers.
	ErrHandlerStyle = errors.New("consumer: Poll and Messages need WithTopics (this consumer has Subscribe handlers)")
	// ErrNotOwner means a commit was refused because this consumer does not
	// own the partition (any more); the stored offset was not changed.
	ErrNotOwner = coordinator.ErrNotOwner
	// ErrCorrupt marks a partition stopped at a corrupt message (a CRC
	// mismatch seen by the consumer, or a broker refusing to serve corrupt
	// data); see Stats.
	ErrCorrupt = errors.New("consumer: corrupt message")
)

// Message is one consumed message.
//
// Lifetime: the consumer never reuses a Message or its Payload. Messages of
// one fetch share one allocation (the fetched bytes and a slab of Message
// structs), so keeping a single Message keeps its whole fetch (up to the
// fetch size) in memory: copy Payload when you keep small parts of many
// messages for long.
type Message struct {
	Topic     string
	BrokerID  int
	Partition int
	// Offset is the byte offset of this message in its partition;
	// NextOffset the offset right after it (what a commit stores).
	Offset     int64
	NextOffset int64
	ID         int64 // message id as assigned by the broker (opaque)
	Flag       int32
	Payload    []byte
	Attribute  string // "" when the message has none

	ps *partState // the partition state it was fetched by (nil for user-made messages)
}

// TopicPartition returns the message's partition.
func (m *Message) TopicPartition() TopicPartition {
	return TopicPartition{Topic: m.Topic, BrokerID: m.BrokerID, Partition: m.Partition}
}

// Handler processes one message. Returning an error retries it (WithRetry).
// ctx ends when the partition is lost or Close gives up waiting.
type Handler func(ctx context.Context, m *Message) error

// PartitionLag is the lag of one partition of the group.
type PartitionLag struct {
	Topic     string
	BrokerID  int
	Partition int
	Committed int64 // -1 when nothing committed
	LogEnd    int64 // -1 when the broker could not be asked
	Lag       int64 // LogEnd - Committed (LogEnd when nothing committed), -1 when unknown
	Owner     string
}

// Consumer consumes topics as a member of a consumer group (or, with
// WithBroadcast, every partition on its own). Create it with New, add
// handlers with Subscribe (or use WithTopics and Poll/Messages), Start it
// and Close it.
type Consumer struct {
	group string
	opts  options
	log   *slog.Logger
	paths coordinator.Paths

	mu       sync.Mutex // guards handlers, started, closed, parts
	handlers map[string]Handler
	started  bool
	closed   bool
	parts    map[TopicPartition]*partState

	sess    *zkrecipes.Session
	view    *coordinator.ClusterView
	members *coordinator.Group // nil in broadcast mode
	brokers *brokerPool
	offsets *fileOffsets // broadcast mode only

	sem    chan struct{} // handler slots (handler style)
	pollCh chan *batch   // fetched batches (poll style)
	pollMu sync.Mutex    // serialises Poll and the iterators; guards poll
	poll   pollState     // guarded by pollMu
	ready  chan struct{} // closed once Start has joined (members/offsets set)

	polledMsgs polled
	gate       gate           // suspension
	stop       chan struct{}  // closed by Close
	wg         sync.WaitGroup // committer, broadcast watcher
	stats      counters

	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
	pollStyle atomic.Bool
}

// New validates the options and returns a Consumer of group (not started).
func New(group string, opts ...Option) (*Consumer, error) {
	o := defaultOptions()
	for _, fn := range opts {
		if err := fn(&o); err != nil {
			return nil, err
		}
	}
	if !protocol.ValidGroup(group) || group == "" {
		return nil, fmt.Errorf("consumer: invalid group name %q", group)
	}
	if len(o.zkServers) == 0 {
		return nil, errors.New("consumer: no ZooKeeper: use WithZooKeeper")
	}
	o.topics = uniqueSorted(o.topics)
	c := &Consumer{group: group, opts: o, log: o.log.With("group", group), paths: coordinator.NewPaths(o.zkRoot),
		handlers: map[string]Handler{}, parts: map[TopicPartition]*partState{},
		sem: make(chan struct{}, o.concurrency), stop: make(chan struct{}), ready: make(chan struct{})}
	c.gate.init()
	return c, nil
}

// Subscribe registers the handler of topic (handler style). Call it before Start.
func (c *Consumer) Subscribe(topic string, h Handler) error {
	if err := protocol.ValidTopic(topic); err != nil {
		return fmt.Errorf("consumer: Subscribe: %w", err)
	}
	if h == nil {
		return errors.New("consumer: Subscribe: nil handler")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.started:
		return ErrStarted
	case len(c.opts.topics) > 0:
		return errors.New("consumer: Subscribe cannot be combined with WithTopics (poll style)")
	}
	c.handlers[topic] = h
	return nil
}

// topics returns the subscribed topics, sorted.
func (c *Consumer) topics() []string {
	if len(c.opts.topics) > 0 {
		return c.opts.topics
	}
	ts := make([]string, 0, len(c.handlers))
	for t := range c.handlers {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// Start connects to ZooKeeper, joins the group (or, in broadcast mode, takes
// every partition) and starts fetching. It returns once the member is
// registered; partitions arrive in the background.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.started:
		c.mu.Unlock()
		return ErrStarted
	case len(c.handlers) == 0 && len(c.opts.topics) == 0:
		c.mu.Unlock()
		return ErrNoTopics
	}
	c.started = true
	c.pollStyle.Store(len(c.handlers) == 0)
	if c.pollStyle.Load() {
		c.pollCh = make(chan *batch, c.opts.bufferBatches)
	}
	c.mu.Unlock()
	if err := c.start(ctx); err != nil {
		c.shutdown(context.Background())
		return err
	}
	return nil
}

// Poll returns up to max messages (at least one), waiting until some arrive,
// ctx ends (ctx.Err()) or the consumer is closed (ErrClosed). The messages
// returned by one call count as processed (their offsets become committable)
// at the next Poll call, or at Commit/Close. Poll needs WithTopics; it is
// safe for concurrent use but messages of one partition are returned in
// order only to a single caller at a time. While the group member is
// suspended (ZooKeeper unreachable) Poll returns nothing new.
func (c *Consumer) Poll(ctx context.Context, max int) ([]*Message, error) {
	if err := c.pollCheck(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	return c.pollMessages(ctx, max)
}

// Messages returns an iterator over messages (poll style, WithTopics). A
// message counts as processed when the loop body returns for it. The
// iteration ends when ctx ends or the consumer is closed (without yielding
// an error); other errors are yielded with a nil message.
//
//	for m, err := range c.Messages(ctx) {
//		if err != nil { ... }
//		process(m)
//	}
func (c *Consumer) Messages(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		if err := c.pollCheck(); err != nil {
			yield(nil, err)
			return
		}
		for {
			m, err := c.pollOne(ctx)
			if err != nil {
				if errors.Is(err, ErrClosed) || ctx.Err() != nil {
					return
				}
				if !yield(nil, err) {
					return
				}
				continue
			}
			more := yield(m, nil)
			c.markPolled()
			if !more {
				return
			}
		}
	}
}

// Commit stores, for each partition of msgs, the NextOffset of its last
// message (fenced by ownership: ErrNotOwner when this consumer does not own
// the partition). Without arguments it commits every partition's processed
// position now (poll style: what Poll returned). With auto-commit it is
// optional.
func (c *Consumer) Commit(ctx context.Context, msgs ...*Message) error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	if len(msgs) == 0 {
		c.markPolled()
		return c.commitAll(ctx)
	}
	return c.commitMessages(ctx, msgs)
}

// Lag reports, per partition, the committed offset, the log end (asked from
// the brokers), the lag and the owner's member id.
func (c *Consumer) Lag(ctx context.Context) ([]PartitionLag, error) {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return nil, ErrNotStarted
	}
	return c.lag(ctx)
}

// Close stops fetching, waits for in-flight handlers (until ctx ends; then
// their ctx is cancelled), commits processed offsets (poll style: including
// the messages the last Poll returned), leaves the group and
// closes connections and the ZooKeeper session. Idempotent.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeOnce.Do(func() { c.closeErr = c.shutdown(ctx) })
	return c.closeErr
}

// MemberID returns the group member id ("" in broadcast mode or before Start).
func (c *Consumer) MemberID() string {
	if c.members == nil {
		return ""
	}
	return c.members.MemberID()
}

// Assigned returns the partitions this consumer fetches now, sorted.
func (c *Consumer) Assigned() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	if a.BrokerID != b.BrokerID {
		return a.BrokerID - b.BrokerID
	}
	return a.Partition - b.Partition
}

func uniqueSorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
