// Package config loads and validates the broker configuration (PROTOCOL.md §9).
//
// # Format
//
// The native format is MetaQ 1.4's server.ini, read unchanged:
//
//	[system]            broker-wide settings; per-topic keys here are every topic's defaults
//	[zookeeper]         zk.* settings
//	[topic=<name>]      one topic; may override numPartitions, stat, deletePolicy,
//	                    deleteWhen, dataPath, unflushInterval, unflushThreshold,
//	                    acceptPublish, acceptSubscribe (and ours: retentionBytes)
//	[topic=<pattern>]   '*' matches any run of characters; see Config.Topic for precedence
//
// Whole-line comments start with ';' or '#'; "key=value" or "key: value"; an empty value
// means the default (MetaQ's samples say "hostName="). Key and section names match
// case-insensitively; errors and this documentation use MetaQ's camelCase spelling.
// Numbers may be integer expressions ("1024*1024*1024"), because MetaQ evaluates them
// with Aviator. See iniCodec for the exact dialect.
//
// Keys that only tune MetaQ's Java internals (getProcessThreadCount,
// putProcessThreadCount, quartzThreadCount, maxCheckpoints, checkpointInterval,
// maxTxTimeoutTimerCapacity, loadMessageStoresInParallel, dashboardHttpPort,
// appClassPath, diamondZKDataId, diamondZKGroup, and "group.<name>" filter classes in
// topic sections) are accepted and ignored with a warning. Any other unknown key or
// section fails Load with ErrUnknownKey, naming the nearest valid key.
//
// The same settings can be written as YAML, TOML or JSON (chosen by file extension):
// top-level tables system, zookeeper and either topics.<name> or "topic=<name>".
// ZooKeeper keys may be flat ("zk.zkConnect") or nested (zk: {zkConnect: ...}).
// See testdata/server.yaml and testdata/server.toml.
//
// # Keys and defaults
//
//	[system]
//	brokerId               required, 0..1023
//	hostName               first non-loopback IPv4, else 127.0.0.1
//	serverPort             8123 (0 = any free port, for tests)
//	numPartitions          1 (1..65535)
//	dataPath               ~/meta ('~' expanded)
//	dataLogPath            = dataPath
//	unflushThreshold       0 = group commit (ours; MetaQ's default is 1000)
//	unflushInterval        10000 ms
//	maxSegmentSize         1073741824
//	maxTransferSize        1048576, raised to maxMessageSize+20 when smaller (a warning
//	                       when it was set explicitly) so a whole message always fits
//	maxMessageSize         4194304 (bytes of put data)
//	deletePolicy           delete,168 — delete,<N>[s|m|h] or archive,<N>[s|m|h][,true];
//	                       N without a unit is hours
//	deleteWhen             0 0 6,18 * * ? — Quartz cron, see Schedule: when age-based
//	                       retention (deletePolicy) runs, per topic when its section sets it
//	acceptPublish          true
//	acceptSubscribe        true
//	stat                   false — accepted (it must be a boolean) and ignored: MetaQ's
//	                       stat=true turns per-topic stats on; this broker keeps the
//	                       per-topic counters of `stats <topic>` for every topic
//	updateConsumerOffsets  false
//	maxTxTimeoutInSeconds  60
//	flushTxLogAtCommit     1 (0 OS decides, 1 fsync at prepare/commit/rollback, 2 every second)
//	autoCreateTopics       false (ours: accept topics that match no section)
//	maxConnections         10000 (ours; 0 = unlimited)
//	idleTimeoutMs          0 (ours; off — the Java client sends a heartbeat every 10 s, but
//	                       the contract does not promise it for the other clients, so an
//	                       idle producer must not lose its connection by default)
//	maxLineLength          4096 (ours; 1024..1048576) — the longest legal request line is a
//	                       transactional put: "put" + 255-char topic + partition, length,
//	                       flag, checksum and opaque (≤ 11 chars each) + an XA key
//	                       "XID:<formatId>:<128 hex>:<128 hex>:<qualifier>" (≈ 530 chars with
//	                       a 255-char qualifier) ≈ 850 bytes; a transaction line with a long
//	                       session id comes close to 1 KiB, so 4096 leaves ample margin
//	retentionBytes         0 (ours; per partition, 0 = no size limit)
//	retentionCheckIntervalMs 60000 (ours; how often size-based retention (retentionBytes)
//	                       runs — sizes grow between two deleteWhen activations; age-based
//	                       retention runs only on deleteWhen)
//	adminPort              0 (ours; 0 = off)
//	multicore              true (ours; gnet multicore)
//
//	[zookeeper]
//	zk.zkEnable            true
//	zk.zkConnect           required when enabled
//	zk.zkRoot              /meta
//	zk.zkSessionTimeoutMs  30000
//	zk.zkConnectionTimeoutMs 30000
//	zk.zkSyncTimeMs        5000
//
// # Environment variables
//
// Every [system] and [zookeeper] key can be set from the environment as
// METAQ_<SECTION>_<KEY> in upper case, ZooKeeper keys without their "zk." prefix:
//
//	METAQ_SYSTEM_BROKERID=3
//	METAQ_SYSTEM_SERVERPORT=8124
//	METAQ_ZOOKEEPER_ZKCONNECT=zk1:2181,zk2:2181
//
// EnvVar computes the name; WithEnvPrefix changes "METAQ", WithoutEnv turns this off.
// Empty variables are ignored. A variable under METAQ_SYSTEM_ or METAQ_ZOOKEEPER_ that
// names no key is an ErrUnknownKey error. Topic sections cannot be set from the
// environment.
//
// # Precedence
//
// For [system] and [zookeeper], viper layers the values: environment variable, then the
// file, then the built-in default. A topic takes its section's values, then the
// effective [system] values (including those set from the environment), then the
// built-in defaults.
//
// # Result
//
// Load returns an immutable *Config: accessors return copies. Checksum is the CRC-32
// (IEEE) of the raw file bytes (ZooKeeper master_config_checksum) and Raw the bytes
// themselves (`stats config`).
package config
