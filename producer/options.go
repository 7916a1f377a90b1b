package producer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// Defaults of the options.
const (
	DefaultLinger         = 100 * time.Microsecond
	DefaultMaxInFlight    = 4096
	DefaultRetryBackoff   = 50 * time.Millisecond
	DefaultMaxRetries     = 5
	DefaultMaxMessageSize = protocol.MetaQClientMaxMessageSize // a broker's default maxMessageSize
	maxBackoff            = 2 * time.Second
)

// Option configures a Producer; options are validated once by New.
type Option func(*options) error

type options struct {
	zkServers   []string
	zkRoot      string
	zkUser      string // WithZKDigestAuth
	zkPassword  string
	brokerAddr  string
	brokerParts int
	topology    coordinator.Topology

	partitioner    Partitioner
	linger         time.Duration
	maxInFlight    int
	retryBackoff   time.Duration
	maxRetries     int
	maxMessageSize int
	heartbeat      time.Duration
	log            *slog.Logger
	hooks          Hooks
	tls            *tls.Config // nil: plaintext
	auth           *conn.Auth  // nil: no authentication
}

func defaultOptions() options {
	return options{
		partitioner:    RoundRobin(),
		linger:         DefaultLinger,
		maxInFlight:    DefaultMaxInFlight,
		retryBackoff:   DefaultRetryBackoff,
		maxRetries:     DefaultMaxRetries,
		maxMessageSize: DefaultMaxMessageSize,
		log:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (o *options) validate() error {
	modes := 0
	if len(o.zkServers) > 0 {
		modes++
	}
	if o.brokerAddr != "" {
		modes++
	}
	if o.topology != nil {
		modes++
	}
	switch {
	case modes == 0:
		return errors.New("producer: no cluster: use WithZooKeeper, WithBroker or WithTopology")
	case modes > 1:
		return errors.New("producer: WithZooKeeper, WithBroker and WithTopology are exclusive")
	}
	return nil
}

// WithZooKeeper discovers brokers and partitions in ZooKeeper (servers are
// host:port; root "" means /meta) and follows changes.
func WithZooKeeper(servers []string, root string) Option {
	return func(o *options) error {
		if len(servers) == 0 {
			return errors.New("producer: WithZooKeeper: no servers")
		}
		o.zkServers, o.zkRoot = servers, root
		return nil
	}
}

// WithBroker sends to one broker at addr (host:port or meta://host:port)
// serving partitions partitions of every topic, without ZooKeeper (direct
// mode). Results name the partitions with broker id 0.
func WithBroker(addr string, partitions int) Option {
	return func(o *options) error {
		if addr == "" {
			return errors.New("producer: WithBroker: empty address")
		}
		if partitions <= 0 {
			return fmt.Errorf("producer: WithBroker: %d partitions, want at least 1", partitions)
		}
		o.brokerAddr, o.brokerParts = addr, partitions
		return nil
	}
}

// WithTopology routes with a topology the caller owns (e.g. a ClusterView
// shared with other clients); the producer does not close it.
func WithTopology(t coordinator.Topology) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("producer: WithTopology: nil")
		}
		o.topology = t
		return nil
	}
}

// WithPartitioner chooses how messages are spread: RoundRobin() (default),
// Random(), ByKey() or PartitionerFunc(...).
func WithPartitioner(p Partitioner) Option {
	return func(o *options) error {
		if p.pick == nil {
			return errors.New("producer: WithPartitioner: zero Partitioner")
		}
		o.partitioner = p
		return nil
	}
}

// WithLinger sets how long a busy connection waits for more messages before
// a write when little is queued (default 100 µs; 0 writes at once). A
// message on an idle connection is written at once. At most 1 s.
func WithLinger(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > time.Second {
			return fmt.Errorf("producer: WithLinger(%v): want 0..1s", d)
		}
		o.linger = d
		return nil
	}
}

// WithMaxInFlight bounds the messages accepted but not yet acknowledged
// (default 4096). Send and SendAsync block (within their ctx) when it is
// reached.
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("producer: WithMaxInFlight(%d): want at least 1", n)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithRetry sets the first backoff between attempts (doubling up to 2 s) and
// the number of retries after the first attempt (default 50 ms, 5). Retries
// also stop when the message's ctx ends. max 0 disables retries.
func WithRetry(backoff time.Duration, max int) Option {
	return func(o *options) error {
		if backoff < 0 || max < 0 {
			return fmt.Errorf("producer: WithRetry(%v, %d): negative", backoff, max)
		}
		o.retryBackoff, o.maxRetries = backoff, max
		return nil
	}
}

// WithMaxMessageSize sets the largest put data (payload plus attribute
// header) the brokers accept (their maxMessageSize, default 2 MiB); larger
// messages fail at once with ErrMessageTooLarge.
func WithMaxMessageSize(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("producer: WithMaxMessageSize(%d): want at least 1", n)
		}
		o.maxMessageSize = n
		return nil
	}
}

// WithHeartbeat sets how often an idle connection sends `version` (default
// 10 s); negative disables heartbeats.
func WithHeartbeat(d time.Duration) Option {
	return func(o *options) error {
		o.heartbeat = d
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("producer: WithLogger: nil")
		}
		o.log = l
		return nil
	}
}

// WithHooks installs observability hooks; nil fields are skipped.
func WithHooks(h Hooks) Option {
	return func(o *options) error {
		o.hooks = h
		return nil
	}
}
