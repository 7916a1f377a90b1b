package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// Defaults of the options.
const (
	DefaultAutoCommitInterval = time.Second
	DefaultConcurrency        = 16
	DefaultMaxFetchBytes      = 1 << 20 // first maxSize of a get; grows for a larger message
	DefaultLongPoll           = 500 * time.Millisecond
	DefaultSessionTimeout     = 10 * time.Second
	DefaultRetryBackoff       = 100 * time.Millisecond
	// MaxFetchBytesCap bounds the growth of maxSize for one large message:
	// twice the largest message a broker accepts by default (its
	// maxMessageSize, protocol.MetaQClientMaxMessageSize, plus the header).
	// Any message whose put data and header fit in it is fetched, so our
	// consumers read a broker configured with up to about twice the default
	// maxMessageSize; a larger message stops its partition with an error.
	MaxFetchBytesCap = 2 * (protocol.MetaQClientMaxMessageSize + protocol.MessageHeaderSize)
)

// StartPosition says where a partition without a committed offset starts.
type StartPosition struct {
	kind   startKind
	offset int64
}

type startKind uint8

const (
	startEarliest startKind = iota
	startLatest
	startAt
)

var (
	// StartEarliest starts at the oldest message still stored (default).
	StartEarliest = StartPosition{kind: startEarliest}
	// StartLatest starts at the end: only messages produced from now on.
	StartLatest = StartPosition{kind: startLatest}
)

// StartAt starts at a byte offset (the same for every partition). An offset
// before the log start or beyond its end is corrected by the broker (301) and
// the correction is logged.
func StartAt(offset int64) StartPosition { return StartPosition{kind: startAt, offset: offset} }

// String describes the position.
func (s StartPosition) String() string {
	switch s.kind {
	case startLatest:
		return "latest"
	case startAt:
		return fmt.Sprintf("offset %d", s.offset)
	}
	return "earliest"
}

// fetchOffset is the offset a fresh partition asks the broker for.
func (s StartPosition) fetchOffset() int64 {
	switch s.kind {
	case startLatest:
		return math.MaxInt64 // the broker answers 301 with the end offset
	case startAt:
		return s.offset
	}
	return 0 // before the first segment: the broker answers 301 with the earliest offset
}

// TopicPartition names one partition of a topic on one broker.
type TopicPartition struct {
	Topic     string
	BrokerID  int
	Partition int
}

// String returns "<topic>/<brokerId>-<partition>".
func (tp TopicPartition) String() string {
	return fmt.Sprintf("%s/%d-%d", tp.Topic, tp.BrokerID, tp.Partition)
}

func (tp TopicPartition) coord() coordinator.TopicPartition {
	return coordinator.TopicPartition{Topic: tp.Topic, Partition: coordinator.Partition{BrokerID: tp.BrokerID, Partition: tp.Partition}}
}

func tpList(tps []TopicPartition) string {
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = tp.String()
	}
	return strings.Join(s, ",")
}

// RebalanceListener is told about partition ownership changes. Every
// callback runs on the group member's goroutine, one at a time, in order.
// Nil fields are skipped.
type RebalanceListener struct {
	// Assigned: the partitions are now owned; fetching starts right after
	// the callback returns.
	Assigned func(ctx context.Context, tps []TopicPartition)
	// Revoked: the partitions are being handed to another member. When it
	// is called, fetching of them has stopped and their in-flight handlers
	// have returned; ownership still holds, so Commit works inside it (with
	// WithManualCommit this is the place to commit). With auto-commit the
	// consumer commits right after it returns, before ownership is released.
	Revoked func(ctx context.Context, tps []TopicPartition)
	// Lost: the partitions were lost without a revocation — with the
	// ZooKeeper session, or because the consumer's own owner node changed or
	// vanished while the session lived (found through its watch on the
	// node, or when a commit was refused with ErrNotOwner). When it is
	// called, delivery of them has stopped (in-flight handlers' ctx is
	// cancelled) and no commit is possible (it would fail with ErrNotOwner);
	// their messages processed since the last commit will be delivered again
	// to the next owner. Stats.PartitionsLost counts them. The consumer
	// queues for a lost partition again if it is still assigned to it.
	Lost func(tps []TopicPartition)
}

// Option configures a Consumer; options are validated once by New.
type Option func(*options) error

type options struct {
	zkServers      []string
	zkRoot         string
	zkUser         string // WithZKDigestAuth
	zkPassword     string
	topics         []string
	start          StartPosition
	autoCommit     time.Duration // 0 = manual commit
	concurrency    int
	maxFetchBytes  int
	longPoll       time.Duration
	broadcastDir   string
	retryAttempts  int // 0 = retry forever
	retryBackoff   time.Duration
	deadLetter     func(ctx context.Context, m *Message, err error) error
	filter         func(*Message) bool
	listener       RebalanceListener
	sessionTimeout time.Duration
	instanceID     string
	bufferBatches  int
	log            *slog.Logger
	tls            *tls.Config // nil: plaintext
	auth           *conn.Auth  // nil: no authentication
}

func defaultOptions() options {
	return options{
		zkRoot:         "/meta",
		start:          StartEarliest,
		autoCommit:     DefaultAutoCommitInterval,
		concurrency:    DefaultConcurrency,
		maxFetchBytes:  DefaultMaxFetchBytes,
		longPoll:       DefaultLongPoll,
		retryBackoff:   DefaultRetryBackoff,
		sessionTimeout: DefaultSessionTimeout,
		bufferBatches:  16,
		log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// WithZooKeeper sets the ZooKeeper servers (host:port) and the MetaQ root
// ("" means /meta). Required.
func WithZooKeeper(servers []string, root string) Option {
	return func(o *options) error {
		if len(servers) == 0 {
			return errors.New("consumer: WithZooKeeper: no servers")
		}
		o.zkServers = servers
		if root != "" {
			o.zkRoot = strings.TrimRight(root, "/")
		}
		return nil
	}
}

// WithTopics subscribes to topics for the poll style (Poll, Messages). A
// consumer uses either WithTopics or Subscribe, not both.
func WithTopics(topics ...string) Option {
	return func(o *options) error {
		for _, t := range topics {
			if err := protocol.ValidTopic(t); err != nil {
				return fmt.Errorf("consumer: WithTopics: %w", err)
			}
		}
		o.topics = append(o.topics, topics...)
		return nil
	}
}

// WithStart sets where partitions without a committed offset start
// (default StartEarliest).
func WithStart(p StartPosition) Option {
	return func(o *options) error {
		if p.kind == startAt && p.offset < 0 {
			return fmt.Errorf("consumer: WithStart: negative offset %d", p.offset)
		}
		o.start = p
		return nil
	}
}

// WithAutoCommit commits the offsets of processed messages every interval
// (default 1 s), on revocation and on Close.
func WithAutoCommit(interval time.Duration) Option {
	return func(o *options) error {
		if interval <= 0 {
			return fmt.Errorf("consumer: WithAutoCommit(%v): want > 0 (or use WithManualCommit)", interval)
		}
		o.autoCommit = interval
		return nil
	}
}

// WithManualCommit turns auto-commit off: offsets are stored only by Commit.
func WithManualCommit() Option {
	return func(o *options) error { o.autoCommit = 0; return nil }
}

// WithConcurrency bounds how many handlers run at once (default 16). One
// partition's messages are always handled one at a time, in order; different
// partitions in parallel.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("consumer: WithConcurrency(%d): want > 0", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithMaxFetchBytes sets the maxSize of a get (default 1 MiB). When a
// message does not fit, the consumer doubles it for that partition (up to
// MaxFetchBytesCap) so large messages are never stuck.
func WithMaxFetchBytes(n int) Option {
	return func(o *options) error {
		if n < protocol.MessageHeaderSize+1 || n > MaxFetchBytesCap {
			return fmt.Errorf("consumer: WithMaxFetchBytes(%d): want %d..%d", n, protocol.MessageHeaderSize+1, MaxFetchBytesCap)
		}
		o.maxFetchBytes = n
		return nil
	}
}

// WithLongPoll sets how long a caught-up get waits at the broker for new
// data (default 500 ms), on brokers that support it; 0 disables long polls.
// Without long polls a caught-up partition is polled with exponential
// back-off from 10 ms to 1 s, reset when data arrives.
func WithLongPoll(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > 30*time.Second {
			return fmt.Errorf("consumer: WithLongPoll(%v): want 0..30s", d)
		}
		o.longPoll = d
		return nil
	}
}

// WithBroadcast makes every instance consume every partition of its topics
// (no group ownership); offsets are kept in files under dir, one per
// partition, written crash-safely (temp file, fsync, rename, fsync dir).
func WithBroadcast(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("consumer: WithBroadcast: empty offset directory")
		}
		o.broadcastDir = dir
		return nil
	}
}

// WithRetry retries a message whose handler fails up to maxAttempts times in
// all, waiting backoff, 2×backoff, … (at most 30 s) between attempts; then
// the dead-letter hook gets it (WithDeadLetter), or, without a hook, it is
// logged, counted in Stats.DroppedAfterRetries and skipped. maxAttempts 0
// (the default) retries forever and never skips.
func WithRetry(maxAttempts int, backoff time.Duration) Option {
	return func(o *options) error {
		if maxAttempts < 0 || backoff < 0 {
			return fmt.Errorf("consumer: WithRetry(%d, %v): want non-negative", maxAttempts, backoff)
		}
		o.retryAttempts, o.retryBackoff = maxAttempts, backoff
		return nil
	}
}

// WithDeadLetter sets the hook that receives a message that failed every
// attempt of WithRetry, with the last error. When it returns nil the message
// counts as processed; when it fails it is called again (with back-off) until
// it succeeds or the partition is revoked: a message is never skipped
// silently. Wire a producer here to forward to a dead-letter topic.
func WithDeadLetter(hook func(ctx context.Context, m *Message, err error) error) Option {
	return func(o *options) error {
		if hook == nil {
			return errors.New("consumer: WithDeadLetter: nil hook")
		}
		o.deadLetter = hook
		return nil
	}
}

// WithFilter delivers only messages for which keep returns true; the others
// are skipped but still count as processed (their offsets are committed). It
// runs on the partition's goroutine and must be fast.
func WithFilter(keep func(*Message) bool) Option {
	return func(o *options) error {
		if keep == nil {
			return errors.New("consumer: WithFilter: nil")
		}
		o.filter = keep
		return nil
	}
}

// WithRebalanceListener sets callbacks for partition ownership changes.
func WithRebalanceListener(l RebalanceListener) Option {
	return func(o *options) error { o.listener = l; return nil }
}

// WithSessionTimeout sets the ZooKeeper session timeout (default 10 s): how
// long a dead consumer keeps its partitions.
func WithSessionTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("consumer: WithSessionTimeout(%v): want > 0", d)
		}
		o.sessionTimeout = d
		return nil
	}
}

// WithInstanceID enables static membership: after a restart with the same
// id the consumer gets its partitions back without a rebalance (within the
// group's grace period).
func WithInstanceID(id string) Option {
	return func(o *options) error {
		if id == "" || strings.Contains(id, "/") {
			return fmt.Errorf("consumer: WithInstanceID(%q): want non-empty, no '/'", id)
		}
		o.instanceID = id
		return nil
	}
}

// WithBufferBatches bounds how many fetched batches (each up to the fetch
// size) wait for Poll (default 16); fetchers stop when it is full.
func WithBufferBatches(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("consumer: WithBufferBatches(%d): want > 0", n)
		}
		o.bufferBatches = n
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l != nil {
			o.log = l
		}
		return nil
	}
}
