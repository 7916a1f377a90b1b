package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/tlsconf"
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
	// StaleNodeGrace: see coordinator.WithStaleNodeGrace; 0 = the default
	// (coordinator.DefaultStaleNodeGrace), negative = no wait.
	StaleNodeGrace time.Duration
	// DigestUser and DigestPassword: the cluster identity the broker
	// authenticates as (ZooKeeper digest scheme); the nodes it creates are
	// writable only by that identity (docs/security-zookeeper.md). Empty:
	// no identity, world ACLs as MetaQ does.
	DigestUser, DigestPassword string
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
	// AcceptedTopics are the names and patterns Topic accepts, in its order of
	// precedence ("*" for autoCreateTopics), published in ZooKeeper so that
	// producers can send to a topic before its first put registers it
	// (coordinator/accept.go). None: nothing is published.
	AcceptedTopics []coordinator.TopicPattern

	MaxConnections        int           // 0 = default 10000; < 0 = unlimited (maxConnections=0 in server.ini)
	IdleTimeout           time.Duration // close connections silent this long; 0 = never
	MaxLineLength         int           // default protocol.DefaultMaxLineLength
	MaxMessageSize        int           // largest put data; default 2 MiB (protocol.MetaQClientMaxMessageSize)
	MaxTransferSize       int           // cap of one get; default 1 MiB, raised to MaxMessageSize+20 if smaller
	MaxInflightBytes      int           // put bytes per connection awaiting durability before 503; default 64 MiB
	UpdateConsumerOffsets bool          // 301 with the end offset for gets beyond the end

	// MaxDiscardSize is the largest body a put may declare over
	// MaxMessageSize and still get its 500 reply on a connection that stays
	// open: the broker reads and throws the body away as it arrives. A larger
	// declaration closes the connection after the reply. Default 64 MiB
	// (protocol.DefaultMaxDiscardSize); negative: every oversized put closes.
	MaxDiscardSize int

	// MaxConnectionsPerIP limits the connections from one client IP;
	// default 1000, negative = unlimited.
	MaxConnectionsPerIP int
	// PartialRequestTimeout closes a connection whose request stays
	// half-sent this long (capped by IdleTimeout when that is set); default 30s.
	PartialRequestTimeout time.Duration
	// MaxConnOutputBytes bounds the replies of one connection not yet sent
	// (gnet's outbound buffer plus get replies being read). Past it the
	// broker stops decoding the connection's requests until the client
	// reads; default 64 MiB.
	MaxConnOutputBytes int64
	// MaxTotalOutputBytes is the same bound over all connections; default 1 GiB.
	MaxTotalOutputBytes int64
	// ReadWorkers is the size of the pool serving disk reads (gets, offset
	// lookups), partition creation and stats off the event loops; default 16.
	ReadWorkers int

	ZK ZKOptions

	// TLS, when set, makes ListenAddr a TLS-only port (docs/security-tls.md):
	// the broker terminates TLS and relays to its event loops. Reload it
	// (Broker.ReloadTLS) to rotate certificates.
	TLS *tlsconf.Server
	// PlaintextAddr (with TLS only) is an extra host:port speaking the plain
	// protocol, for clients without TLS; "" = none.
	PlaintextAddr string
	// TLSHandshakeTimeout closes a connection to the TLS port that has not
	// completed its handshake in time (e.g. a plaintext client waiting for
	// the server to speak first); default 10s.
	TLSHandshakeTimeout time.Duration

	// Replication: this broker's member id and role in its replica set.
	Replication ReplicationOptions

	// Transactions (PROTOCOL.md §7).
	TxLogDir           string         // transaction journal; default <DataDir>/transactions
	MaxTxTimeout       time.Duration  // cap of BEGIN's timeout (a BEGIN without one, or with 0, has no timeout, as in MetaQ); default 60s
	FlushTxLogAtCommit TxLogFlushMode // default TxLogFsyncOnCommit
	MaxTxBytes         int64          // put data (plus 20 bytes a message) one transaction may hold; default 64 MiB
	TxLogMaxFileSize   int64          // journal rotation size; default txlog.DefaultMaxFileSize
	// MaxTransactionsPerConnection caps the live transactions begun on one
	// connection; a BEGIN beyond it gets XAER_RMFAIL. Default
	// DefaultMaxTransactionsPerConnection.
	MaxTransactionsPerConnection int
	// MaxTransactions caps the live transactions of the broker (active,
	// prepared, committing, or heuristically completed until FORGET); a
	// BEGIN beyond it gets XAER_RMFAIL. Default DefaultMaxTransactions.
	MaxTransactions int
	// XAHeuristicTimeout > 0 heuristically rolls back an XA transaction
	// prepared (or recovered at start) longer than this; 0 = never, the
	// default: a transaction manager must be able to recover after a long
	// outage.
	XAHeuristicTimeout time.Duration

	// Security: authentication and ACLs on the broker port (auth.go,
	// docs/SECURITY.md); the zero value is off.
	Security SecurityOptions

	ConfigRaw []byte // raw config file, for `stats config` and the checksum node (both with secrets redacted)
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
	if o.MaxConnections == 0 {
		o.MaxConnections = 10000
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = protocol.DefaultMaxLineLength
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = protocol.MetaQClientMaxMessageSize
	}
	if o.MaxDiscardSize == 0 {
		o.MaxDiscardSize = protocol.DefaultMaxDiscardSize
	}
	if o.MaxTransferSize <= 0 {
		o.MaxTransferSize = 1 << 20
	}
	if o.MaxTransferSize < o.MaxMessageSize+store.HeaderSize {
		o.MaxTransferSize = o.MaxMessageSize + store.HeaderSize
	}
	if o.MaxConnectionsPerIP == 0 {
		o.MaxConnectionsPerIP = 1000
	}
	if o.PartialRequestTimeout <= 0 {
		o.PartialRequestTimeout = 30 * time.Second
	}
	if o.MaxConnOutputBytes <= 0 {
		o.MaxConnOutputBytes = 64 << 20
	}
	if o.MaxTotalOutputBytes <= 0 {
		o.MaxTotalOutputBytes = 1 << 30
	}
	if o.ReadWorkers <= 0 {
		o.ReadWorkers = 16
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 64 << 20
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = defaultHSLimit
	}
	if o.PlaintextAddr != "" && o.TLS == nil {
		return o, errors.New("broker: a plaintext port is only for TLS setups (serverPort is already plaintext): remove plaintextPort")
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
	if o.MaxTransactionsPerConnection <= 0 {
		o.MaxTransactionsPerConnection = DefaultMaxTransactionsPerConnection
	}
	if o.MaxTransactions <= 0 {
		o.MaxTransactions = DefaultMaxTransactions
	}
	if o.XAHeuristicTimeout < 0 {
		return o, fmt.Errorf("broker: xaHeuristicTimeout %v is negative; use 0 (never) or a duration", o.XAHeuristicTimeout)
	}
	o.Store.BrokerID = o.BrokerID
	o.Store.MaxMessageSize = o.MaxMessageSize
	if o.Store.Logger == nil {
		o.Store.Logger = o.Logger
	}
	return o, nil
}

// logCompatWarnings warns about settings that MetaQ's own clients cannot
// live with (the broker serves them anyway: our clients can).
func (o Options) logCompatWarnings() {
	if o.MaxMessageSize > protocol.MetaQClientMaxMessageSize {
		o.Logger.Warn(fmt.Sprintf("maxMessageSize %d is above %d, the largest message MetaQ's Java client can read "+
			"(its 2 MiB read buffer): a MetaQ consumer loops for ever on a larger message; lower maxMessageSize to %d "+
			"unless every consumer is a metaq-go one", o.MaxMessageSize, protocol.MetaQClientMaxMessageSize, protocol.MetaQClientMaxMessageSize),
			"maxMessageSize", o.MaxMessageSize, "metaq_client_limit", protocol.MetaQClientMaxMessageSize)
	}
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
