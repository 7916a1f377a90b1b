package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// Version is the broker's version.
const Version = "metaq-go 1.4.6"

// versionReply is the body of the `version` reply: the version followed by
// the protocol extensions this broker understands (clients look for
// protocol.LongPollCapability before sending long-poll gets).
const versionReply = Version + " " + protocol.LongPollCapability

// TopicConfig is how the broker serves one topic.
type TopicConfig struct {
	NumPartitions   int
	AcceptPublish   bool
	AcceptSubscribe bool
}

// ZKOptions say how the broker registers in ZooKeeper.
type ZKOptions struct {
	Enable         bool
	Servers        []string      // host:port
	Root           string        // default /meta
	SessionTimeout time.Duration // default 30s
	ConnectTimeout time.Duration // default 30s
}

// Options configure a Broker. They are validated once by New and never change.
type Options struct {
	BrokerID   int    // 0..1023
	ListenAddr string // host:port to listen on; port 0 picks a free port
	// HostName is the host registered in ZooKeeper (meta://HostName:port);
	// default: the listen host, or the first non-loopback IPv4 when listening on all interfaces.
	HostName string
	DataDir  string // partition logs

	Store store.Options // storage tuning; BrokerID, MaxMessageSize and Logger are filled in

	// Topic resolves a topic's settings; ok=false means the topic is not
	// accepted (puts get 500, gets 404). Nil accepts every valid topic with
	// one partition.
	Topic func(topic string) (cfg TopicConfig, ok bool)
	// Topics are created and registered at start.
	Topics []string

	MaxConnections        int           // default 10000
	IdleTimeout           time.Duration // close connections silent this long; 0 = never
	MaxLineLength         int           // default protocol.DefaultMaxLineLength
	MaxMessageSize        int           // largest put data; default 4 MiB
	MaxTransferSize       int           // cap of one get; default 1 MiB, raised to MaxMessageSize+20 if smaller
	MaxInflightBytes      int           // put bytes per connection awaiting durability before 503; default 64 MiB
	UpdateConsumerOffsets bool          // 301 with the end offset for gets beyond the end

	ZK ZKOptions

	// Transactions (PROTOCOL.md §7).
	TxLogDir           string         // transaction journal; default <DataDir>/transactions
	MaxTxTimeout       time.Duration  // cap (and default) of BEGIN's timeout; default 60s
	FlushTxLogAtCommit TxLogFlushMode // default TxLogFsyncOnCommit
	MaxTxBytes         int64          // put data (plus 20 bytes a message) one transaction may hold; default 64 MiB
	TxLogMaxFileSize   int64          // journal rotation size; default txlog.DefaultMaxFileSize

	ConfigRaw []byte // raw config file, for `stats config` and the checksum node
	Multicore bool   // gnet multicore (one event loop per CPU)

	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.BrokerID < 0 || o.BrokerID > 1023 {
		return o, fmt.Errorf("broker: brokerId %d out of range 0..1023", o.BrokerID)
	}
	if o.ListenAddr == "" {
		o.ListenAddr = "0.0.0.0:8123"
	}
	host, _, err := net.SplitHostPort(o.ListenAddr)
	if err != nil {
		return o, fmt.Errorf("broker: listen address %q: %w (want host:port)", o.ListenAddr, err)
	}
	if o.HostName == "" {
		o.HostName = host
		if host == "" || host == "0.0.0.0" || host == "::" {
			o.HostName = firstNonLoopbackIPv4()
		}
	}
	if o.DataDir == "" {
		return o, errors.New("broker: no data directory: set dataPath in the config")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Topic == nil {
		o.Topic = func(topic string) (TopicConfig, bool) {
			return TopicConfig{NumPartitions: 1, AcceptPublish: true, AcceptSubscribe: true}, protocol.ValidTopic(topic) == nil
		}
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 10000
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = protocol.DefaultMaxLineLength
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = protocol.DefaultMaxMessageSize
	}
	if o.MaxTransferSize <= 0 {
		o.MaxTransferSize = 1 << 20
	}
	if o.MaxTransferSize < o.MaxMessageSize+store.HeaderSize {
		o.MaxTransferSize = o.MaxMessageSize + store.HeaderSize
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	if o.ZK.Enable && len(o.ZK.Servers) == 0 {
		return o, errors.New("broker: ZooKeeper is enabled but zk.zkConnect is empty: set it (e.g. 127.0.0.1:2181) or set zk.zkEnable=false")
	}
	if o.ZK.SessionTimeout <= 0 {
		o.ZK.SessionTimeout = 30 * time.Second
	}
	if o.ZK.ConnectTimeout <= 0 {
		o.ZK.ConnectTimeout = 30 * time.Second
	}
	if o.TxLogDir == "" {
		o.TxLogDir = defaultTxLogDir(o.DataDir)
	}
	if o.MaxTxTimeout <= 0 {
		o.MaxTxTimeout = 60 * time.Second
	}
	if o.FlushTxLogAtCommit < TxLogFlushDefault || o.FlushTxLogAtCommit > TxLogFsyncEverySecond {
		return o, fmt.Errorf("broker: flushTxLogAtCommit mode %d is invalid", o.FlushTxLogAtCommit)
	}
	if o.MaxTxBytes <= 0 {
		o.MaxTxBytes = 64 << 20
	}
	o.Store.BrokerID = o.BrokerID
	o.Store.MaxMessageSize = o.MaxMessageSize
	if o.Store.Logger == nil {
		o.Store.Logger = o.Logger
	}
	return o, nil
}

func firstNonLoopbackIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// TxLogFlushMode is flushTxLogAtCommit: when PREPARE, ROLLBACK and FORGET
// records of the transaction journal are fsynced. (A COMMIT record is
// always fsynced before the commit's appends start: per-partition atomicity
// across a crash depends on it.) The zero value is the default, mode 1.
type TxLogFlushMode int

// Transaction journal flush modes.
const (
	TxLogFlushDefault     TxLogFlushMode = iota // = TxLogFsyncOnCommit
	TxLogOSDecides                              // flushTxLogAtCommit=0: never fsync, the OS writes back
	TxLogFsyncOnCommit                          // flushTxLogAtCommit=1: fsync before answering
	TxLogFsyncEverySecond                       // flushTxLogAtCommit=2: fsync once a second
)

// TxLogFlushModeOf maps a flushTxLogAtCommit value (0, 1, 2) to the mode.
func TxLogFlushModeOf(flushTxLogAtCommit int) TxLogFlushMode {
	switch flushTxLogAtCommit {
	case 0:
		return TxLogOSDecides
	case 2:
		return TxLogFsyncEverySecond
	}
	return TxLogFsyncOnCommit
}
