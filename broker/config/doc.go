// Package config loads and validates the broker configuration (PROTOCOL.md §9).
//
// # Format
//
// The native format is MetaQ 1.4's server.ini, read unchanged:
//
//	[system]            broker-wide settings; per-topic keys here are every topic's defaults
//	[zookeeper]         zk.* settings
//	[replication]       master/slave replication of this brokerId (docs/REPLICATION.md)
//	[security]          authentication, ACLs (docs/SECURITY.md)
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
//	maxMessageSize         2097152 (bytes of put data): the largest message MetaQ's Java
//	                       client can read (its 2 MiB MessageUtils.MAX_READ_BUFFER_SIZE); a
//	                       larger value works for our clients, but a MetaQ consumer loops
//	                       for ever on such a message, so the broker warns at start
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
//	maxTxTimeoutInSeconds  60: cap of a BEGIN's timeout; a BEGIN without one (or 0) has no
//	                       timer, as in MetaQ
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
//	adminHost              127.0.0.1 (ours) — the admin port's bind address; set 0.0.0.0
//	                       (e.g. inside a container whose port is published to the
//	                       host's loopback) to reach it from other hosts
//	multicore              true (ours; gnet multicore)
//	maxConnectionsPerIp    1000 (ours; 0 = unlimited) — connections from one client IP;
//	                       the next one gets "result 503" with the limit and is closed
//	partialRequestTimeoutMs 30000 (ours) — a connection whose request stays half-sent this
//	                       long is closed (slow senders); capped by idleTimeoutMs when set
//	maxConnectionOutputBytes 67108864 (ours; ≥ 65536) — replies a connection may have unsent
//	                       (gnet's buffer plus get replies being read). Past it the broker
//	                       stops decoding that connection's requests (they wait in its
//	                       input buffer) until the client reads; nothing is refused. A
//	                       client pipelining N gets of maxSize bytes on one connection is
//	                       slowed only when N × maxSize exceeds this
//	maxTotalOutputBytes    1073741824 (ours; ≥ 65536) — the same bound over all connections:
//	                       past it every connection that asks for more data waits
//	readWorkers            16 (ours; 1..4096) — goroutines serving gets, offset lookups,
//	                       partition creation and stats off the event loops; 64 requests
//	                       per worker may queue before connections wait
//	commitLog              true (ours) — a group-commit cycle of 2 or more partitions is
//	                       made durable by one append + fdatasync of the data directory's
//	                       commit log instead of syncing each segment (or the file system
//	                       with syncfs from 4 partitions on); the segments
//	                       are synced by a checkpoint every 16 MiB of log (broker/store
//	                       doc.go, "Commit log"). false = every cycle syncs its segments.
//	                       Logs left by an earlier run are replayed either way
//
//	Transaction limits (ours; PROTOCOL.md §7):
//	maxTransactionsPerConnection 10000 (1..2147483647) — live transactions begun on one
//	                       connection (until finished, or until the connection closes);
//	                       a BEGIN beyond it gets XAER_RMFAIL (-7) and the connection stays
//	                       usable. MetaQ's Java client shares one connection per broker
//	                       among all producers, hence room for thousands of threads.
//	maxTransactions        100000 (1..2147483647) — live transactions of the broker: active,
//	                       prepared, committing, or heuristically completed until FORGET;
//	                       a BEGIN beyond it gets XAER_RMFAIL (-7)
//	xaHeuristicTimeoutSeconds 0 (never) — when > 0, an XA transaction prepared longer than
//	                       this (counted from PREPARE, or from the broker start for one
//	                       recovered from the journal) is heuristically rolled back and
//	                       journaled as such: RECOVER lists it, COMMIT answers XA_HEURRB (6)
//	                       until the transaction manager FORGETs it. Off by default: a
//	                       transaction manager must be able to recover after a long outage
//
//	[zookeeper]
//	zk.zkEnable            true
//	zk.zkConnect           required when enabled
//	zk.zkRoot              /meta
//	zk.zkSessionTimeoutMs  30000
//	zk.zkConnectionTimeoutMs 30000
//	zk.zkSyncTimeMs        5000
//	zk.zkStaleNodeGraceMs  2000 (ours): a broker restarted within the session timeout
//	                       deletes the nodes of its previous session, waits this long
//	                       (after a sync) and only then registers again, so clients that
//	                       keep one watch on a topic's broker list (MetaQ's Python
//	                       producer) see it disappear and reconnect; 0 = no wait
//	zk.zkAuth              "" (ours) — the broker's ZooKeeper identity, "user:password" of
//	                       the digest scheme (the cluster identity, the same on every
//	                       broker). Set, every node the broker creates is writable only by
//	                       that identity and readable by all; at start the broker checks
//	                       the identity (a wrong password is a clear error), creates the
//	                       consumers node and restricts cluster nodes still open to the
//	                       world. Empty: world ACLs, as MetaQ. docs/security-zookeeper.md
//	zk.zkAuthFile          "" (ours) — a file holding zk.zkAuth's "user:password" instead
//	                       (one line; refused when group or others may read it). Set at
//	                       most one of the two. `stats config` shows zk.zkAuth (and any
//	                       key naming a password, token or secret) as <redacted>
//
//	[replication]          docs/REPLICATION.md. With ZooKeeper enabled, a [replication]
//	                       section with any key turns on the failover driver (epochs, master
//	                       election, automatic promotion): every member of the replica set
//	                       needs one. Without it the broker is a plain master, as before.
//	slaveId                -1 — MetaQ's key: -1 (or absent) = the configured master of the
//	                       brokerId (member 0); N in 1..1023 = slave N. Every member of a
//	                       replica set has the same [system] brokerId and its own dataPath.
//	                       Failover changes a member's role, never its slaveId
//	mode                   sync — of a slave: sync = the master holds put replies until this
//	                       slave has fsynced them (while it is in the in-sync set); async =
//	                       copies in the background, never delays a put, never promoted
//	serveReads             false — a follower answers gets (consumers normally read from
//	                       the master); a follower never accepts puts
//	minSyncSlaves          0 — on the master: puts are refused with 503 "not enough in-sync
//	                       replicas (have N, need M)" while fewer sync slaves are in the
//	                       in-sync set. 0 = no minimum: with no sync slave in sync the master
//	                       acknowledges alone, and since only in-sync members may be
//	                       promoted, failover then waits for this master (no acked message
//	                       is lost either way, but only M >= 1 survives losing the master's disk)
//	slaveMaxDelayInMills   10000 — MetaQ's key: a sync slave whose acknowledgement lags the
//	                       master's log by longer leaves the in-sync set (recorded in
//	                       ZooKeeper before any put is acknowledged without it)
//	masterAddr             "" — host:port of the master to follow; empty = the master node
//	                       of this brokerId in ZooKeeper (/meta/brokers/ids/<brokerId>/master)
//
//	[security]             docs/security-tls.md (TLS, admin port)
//	tls.certFile           "" — the broker's certificate (PEM, chain after the leaf). Set
//	                       with tls.keyFile, serverPort and the admin port speak TLS 1.2+
//	                       only; a plaintext client is closed (after a 503 line). SIGHUP
//	                       reloads the files; established connections stay
//	tls.keyFile            "" — its private key (PEM); required with tls.certFile
//	tls.clientCAFile       "" — CA bundle for client certificates: set, every client
//	                       must present a certificate chaining to it (mutual TLS) and its
//	                       Subject CommonName becomes the connection's principal
//	adminTokenFile         "" — file with the bearer token the admin port's mutating
//	                       endpoints require (Authorization: Bearer <token>); it must not
//	                       be readable by its group or others (chmod 600). Unset: those endpoints are refused
//	                       (unless an admin principal's client certificate is presented)
//	plaintextPort          0 (off) — with TLS on, an extra port speaking the plain MetaQ
//	                       protocol for clients without TLS (MetaQ's own); firewall it
//	                       Authentication (docs/SECURITY.md). Without these keys (or with
//	                       only allowAnonymous=true) nothing is checked, as in MetaQ.
//	usersFile              "" — users and their SCRAM-SHA-256 salted credentials, written by
//	                       `metaq users add|remove NAME --users-file FILE` ('~' expanded).
//	                       Clients log in with `auth` (SCRAM-SHA-256 or PLAIN). The broker
//	                       refuses to start when the file is missing or malformed; SIGHUP
//	                       reloads it and aclFile (a bad file is refused, the old one kept)
//	aclFile                "" — YAML list of rules such as
//	                       - {principal: alice, operations: [put, get], topics: ["orders*"], groups: ["billing"]}
//	                       (operations put, get, offset, transaction, stats, admin). Without
//	                       it, once security is on, every principal may do everything except
//	                       admin operations (stats config/replication/reset, replicate, other
//	                       principals' transactions)
//	allowAnonymous         false when usersFile is set, else true — clients that did not
//	                       authenticate act as the principal "anonymous" (MetaQ's own
//	                       clients cannot authenticate); false answers 401 to every request
//	                       but auth, version and quit until a successful auth
//	                       How a slave connects to its master (docs/security-clients.md):
//	brokerUser             "" — the user a slave authenticates to its master as (SCRAM-SHA-256,
//	                       on every connection); needs brokerPasswordFile
//	brokerPasswordFile     "" — file holding that user's password (one trailing newline is
//	                       dropped); the broker refuses to start unless only its owner can
//	                       read it (chmod 600)
//	tls.caFile             tls.clientCAFile — PEM CA that signed the master's certificate.
//	                       With it (or the default), or when this broker serves TLS itself
//	                       (then trusting the system's CAs), the slave connects to its
//	                       master over TLS, presenting tls.certFile/tls.keyFile as its
//	                       client certificate when they are set
//
// # Environment variables
//
// Every [system], [zookeeper], [replication] and [security] key can be set from the environment as
// METAQ_<SECTION>_<KEY> in upper case, ZooKeeper keys without their "zk." prefix:
//
//	METAQ_SYSTEM_BROKERID=3
//	METAQ_SYSTEM_SERVERPORT=8124
//	METAQ_ZOOKEEPER_ZKCONNECT=zk1:2181,zk2:2181
//	METAQ_SECURITY_TLS_CERTFILE=/etc/metaq/broker.pem
//
// EnvVar computes the name; WithEnvPrefix changes "METAQ", WithoutEnv turns this off.
// Empty variables are ignored. A variable under METAQ_SYSTEM_, METAQ_ZOOKEEPER_, METAQ_REPLICATION_ or METAQ_SECURITY_ that
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
// (IEEE) of the raw file bytes and Raw the bytes themselves. The broker shows and
// publishes them with secrets redacted (Redact): `stats config` is Redact(Raw) and
// ZooKeeper's master_config_checksum its CRC-32 (the same as Checksum for a file
// without secrets).
package config
