package config

import (
	"slices"
	"time"

	"github.com/metaq-go/metaq/protocol"
)

// Defaults for the keys of PROTOCOL.md §9 and ours.
const (
	DefaultServerPort             = 8123
	DefaultNumPartitions          = 1
	DefaultDataPath               = "~/meta"
	DefaultUnflushThreshold       = 0 // ours: group commit
	DefaultUnflushInterval        = 10 * time.Second
	DefaultMaxSegmentSize         = 1 << 30
	DefaultMaxTransferSize        = 1 << 20
	DefaultMaxMessageSize         = 2 << 20 // what MetaQ's Java client can read (protocol.MetaQClientMaxMessageSize)
	DefaultDeletePolicy           = "delete,168"
	DefaultDeleteWhen             = "0 0 6,18 * * ?"
	DefaultMaxTxTimeout           = 60 * time.Second
	DefaultFlushTxLogAtCommit     = TxLogFsyncOnCommit
	DefaultZkRoot                 = "/meta"
	DefaultZkSessionTimeout       = 30 * time.Second
	DefaultZkConnectionTimeout    = 30 * time.Second
	DefaultZkSyncTime             = 5 * time.Second
	DefaultZkStaleNodeGrace       = 2 * time.Second
	DefaultMaxConnections         = 10000
	DefaultIdleTimeout            = 0 // off; see doc.go
	DefaultMaxLineLength          = 4096
	DefaultRetentionCheckInterval = time.Minute
	DefaultMaxConnectionsPerIP    = 1000
	DefaultPartialRequestTimeout  = 30 * time.Second
	DefaultMaxConnOutputBytes     = 64 << 20
	DefaultMaxTotalOutputBytes    = 1 << 30
	DefaultReadWorkers            = 16

	// MessageHeaderSize is the size of the on-disk/wire message header (PROTOCOL §4);
	// maxTransferSize is raised to at least maxMessageSize + MessageHeaderSize.
	MessageHeaderSize = 20
	// MinMaxLineLength is the smallest accepted maxLineLength: it must fit the longest
	// legal request line (about 0.9 KiB, see doc.go).
	MinMaxLineLength = 1024
)

// Defaults of the transaction limits (ours; see doc.go).
const (
	DefaultMaxTransactionsPerConnection = 10000
	DefaultMaxTransactions              = 100000
	DefaultXAHeuristicTimeout           = 0 // never
)

// TxLogFlush is flushTxLogAtCommit: when the transaction journal is fsynced.
type TxLogFlush int

const (
	TxLogOSDecides        TxLogFlush = 0 // let the OS write back
	TxLogFsyncOnCommit    TxLogFlush = 1 // fsync on prepare, commit and rollback
	TxLogFsyncEverySecond TxLogFlush = 2 // fsync once a second
)

// Broker holds the broker-wide settings of [system] (per-topic ones are in TopicConfig).
type Broker struct {
	BrokerID              int    // brokerId, 0..1023, required
	HostName              string // hostName; default first non-loopback IPv4, else 127.0.0.1
	ServerPort            int    // serverPort; 0 = pick a free port (tests)
	DataPath              string // dataPath of [system], '~' expanded
	DataLogPath           string // dataLogPath; default DataPath
	MaxSegmentSize        int64  // maxSegmentSize, bytes
	MaxTransferSize       int    // maxTransferSize, bytes (≥ MaxMessageSize+MessageHeaderSize)
	MaxMessageSize        int    // maxMessageSize, bytes of put data
	UpdateConsumerOffsets bool   // updateConsumerOffsets
	MaxTxTimeout          time.Duration
	FlushTxLogAtCommit    TxLogFlush

	// Ours.
	AutoCreateTopics       bool          // accept topics that match no section
	MaxConnections         int           // 0 = unlimited
	IdleTimeout            time.Duration // idleTimeoutMs; 0 = never close idle connections
	MaxLineLength          int           // longest request line accepted
	AdminPort              int           // 0 = off
	AdminHost              string        // adminHost: the admin port's bind address; default 127.0.0.1
	Multicore              bool          // gnet multicore
	RetentionCheckInterval time.Duration // retentionCheckIntervalMs: size-based retention
	MaxConnectionsPerIP    int           // maxConnectionsPerIp; 0 = unlimited
	PartialRequestTimeout  time.Duration // partialRequestTimeoutMs: how long a request may stay half-sent
	MaxConnOutputBytes     int64         // maxConnectionOutputBytes: unsent replies per connection before it is paused
	MaxTotalOutputBytes    int64         // maxTotalOutputBytes: unsent get replies broker-wide before connections are paused
	ReadWorkers            int           // readWorkers: goroutines serving disk reads
	CommitLog              bool          // commitLog: commit cycles of many partitions through the store's commit log

	// Ours: transaction limits.
	MaxTransactionsPerConnection int           // live transactions begun on one connection
	MaxTransactions              int           // live transactions of the broker
	XAHeuristicTimeout           time.Duration // xaHeuristicTimeoutSeconds; 0 = prepared XA transactions never expire
}

// ZooKeeper holds [zookeeper].
type ZooKeeper struct {
	Enable            bool   // zk.zkEnable
	Connect           string // zk.zkConnect, "host:port[,host:port...][/chroot]"
	Root              string // zk.zkRoot
	SessionTimeout    time.Duration
	ConnectionTimeout time.Duration
	SyncTime          time.Duration
	// StaleNodeGrace (zk.zkStaleNodeGraceMs, ours): after a restart within the
	// session timeout, how long to wait between deleting the previous
	// session's nodes and creating new ones; 0 = no wait.
	StaleNodeGrace time.Duration
	// AuthFile (zk.zkAuthFile, ours): the file holding the digest credentials
	// "user:password" (mode 0600 or stricter), instead of zk.zkAuth.
	AuthFile string
	// digestUser and digestPassword: the ZooKeeper digest identity of the
	// broker (the cluster identity), from zk.zkAuth or zk.zkAuthFile; never
	// printed.
	digestUser, digestPassword string
}

// Digest returns the broker's ZooKeeper digest identity (zk.zkAuth or
// zk.zkAuthFile); user is "" when none is configured.
func (z ZooKeeper) Digest() (user, password string) { return z.digestUser, z.digestPassword }

// TopicConfig is the effective configuration of one topic.
type TopicConfig struct {
	Name             string // the topic ("" for Config.Defaults)
	Section          string // the section it came from: "topic=<name or pattern>", or "system"
	NumPartitions    int
	DataPath         string
	UnflushThreshold int           // <= 0: group commit (ours, default)
	UnflushInterval  time.Duration // threshold mode: fsync at least this often
	DeletePolicy     DeletePolicy
	DeleteWhen       Schedule // when age-based retention runs (Schedule.Next feeds the store)
	AcceptPublish    bool
	AcceptSubscribe  bool
	RetentionBytes   int64 // ours: per partition; 0 = no size limit
}

// GroupCommit reports whether puts are acknowledged only after their fsync (PROTOCOL §8).
func (t TopicConfig) GroupCommit() bool { return t.UnflushThreshold <= 0 }

// Config is a loaded, validated broker configuration. It is immutable: accessors return
// copies. Safe for concurrent use.
type Config struct {
	path       string
	raw        []byte
	checksum   uint32
	broker     Broker
	zk         ZooKeeper
	repl       Replication
	security   Security
	replClient ReplicationClient
	defaults   TopicConfig
	topics     map[string]TopicConfig // explicit (non-wildcard) sections
	names      []string               // sorted keys of topics
	wildcards  []wildcardTopic        // by precedence, most specific first
	warnings   []string
}

type wildcardTopic struct {
	pattern pattern
	config  TopicConfig
}

// Broker returns the broker-wide settings.
func (c *Config) Broker() Broker { return c.broker }

// ZooKeeper returns the [zookeeper] settings.
func (c *Config) ZooKeeper() ZooKeeper { return c.zk }

// Replication returns the [replication] settings.
func (c *Config) Replication() Replication { return c.repl }

// Defaults returns the per-topic settings of [system], which every topic section
// overrides key by key.
func (c *Config) Defaults() TopicConfig { return c.defaults }

// Topics returns the explicitly configured topic names (sections without '*'), sorted,
// for the broker to register at start.
func (c *Config) Topics() []string { return slices.Clone(c.names) }

// WildcardTopics returns the wildcard sections ([topic=orders*]) in the order
// Topic tries them, most specific first; Name holds the pattern.
func (c *Config) WildcardTopics() []TopicConfig {
	out := make([]TopicConfig, 0, len(c.wildcards))
	for _, w := range c.wildcards {
		t := w.config
		t.Name = w.pattern.text
		out = append(out, t)
	}
	return out
}

// TopicDataPaths returns the distinct dataPath values of the topic sections
// (named and wildcard) that differ from the broker's dataPath, sorted: the
// directories besides dataPath where partitions live (MetaQ's
// MessageStoreManager scans the same set at start).
func (c *Config) TopicDataPaths() []string {
	var out []string
	add := func(p string) {
		if p != "" && p != c.broker.DataPath && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, n := range c.names {
		add(c.topics[n].DataPath)
	}
	for _, w := range c.wildcards {
		add(w.config.DataPath)
	}
	slices.Sort(out)
	return out
}

// Topic resolves the configuration of a topic:
//  1. the section [topic=<name>] when there is one;
//  2. else the most specific matching wildcard section: the pattern with the most
//     literal (non-'*') characters wins, then the one with fewer '*', then the
//     lexicographically smaller pattern;
//  3. else, when autoCreateTopics is set, the [system] defaults;
//  4. else not found (the broker refuses the topic).
//
// One section applies: a named section does not inherit from matching wildcard
// sections, only from [system]. Invalid topic names are never found.
func (c *Config) Topic(name string) (TopicConfig, bool) {
	if protocol.ValidTopic(name) != nil {
		return TopicConfig{}, false
	}
	if t, ok := c.topics[name]; ok {
		return t, true
	}
	for _, w := range c.wildcards {
		if w.pattern.match(name) {
			t := w.config
			t.Name = name
			return t, true
		}
	}
	if c.broker.AutoCreateTopics {
		t := c.defaults
		t.Name = name
		return t, true
	}
	return TopicConfig{}, false
}

// Raw returns a copy of the configuration file's bytes (for `stats config`).
func (c *Config) Raw() []byte { return slices.Clone(c.raw) }

// Checksum is the CRC-32 (IEEE) of the raw file bytes, as MetaQ publishes in
// master_config_checksum.
func (c *Config) Checksum() uint32 { return c.checksum }

// Path returns the file the configuration was loaded from ("" for Parse).
func (c *Config) Path() string { return c.path }

// Warnings returns what Load accepted but the operator should know about: ignored
// MetaQ-only keys, repeated keys, a raised maxTransferSize.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }
