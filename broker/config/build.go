package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/metaq-go/metaq/zkrecipes"
)

// field reads typed values of one section; the first problem is kept in err and later
// reads become no-ops, so build code reads straight through.
type field struct {
	section string
	get     func(key string) (value, source string)
	err     error
}

func (f *field) text(key string) (string, string, bool) {
	if f.err != nil {
		return "", "", false
	}
	v, src := f.get(key)
	return v, src, v != ""
}

func (f *field) fail(key, value, source, format string, args ...any) {
	if f.err != nil {
		return
	}
	shown := fmt.Sprintf("%q", value)
	if source != "" {
		shown += " (from " + source + ")"
	}
	f.err = badValue(f.section, key, "%s %s", shown, fmt.Sprintf(format, args...))
}

func (f *field) str(key, def string) string {
	if v, _, ok := f.text(key); ok {
		return v
	}
	return def
}

func (f *field) int(key string, def, lo, hi int64) int64 {
	v, src, ok := f.text(key)
	if !ok {
		return def
	}
	n, err := evalInt(v)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt64 {
			f.fail(key, v, src, "is not an integer ≥ %d", lo)
		} else {
			f.fail(key, v, src, "is not an integer %d..%d", lo, hi)
		}
		return def
	}
	return n
}

func (f *field) millis(key string, def time.Duration, lo int64) time.Duration {
	return time.Duration(f.int(key, def.Milliseconds(), lo, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond
}

func (f *field) boolean(key string, def bool) bool {
	v, src, ok := f.text(key)
	if !ok {
		return def
	}
	b, err := parseBool(v)
	if err != nil {
		f.fail(key, v, src, "is not a boolean (true or false)")
		return def
	}
	return b
}

func (f *field) policy(key string, def DeletePolicy) DeletePolicy {
	v, src, ok := f.text(key)
	if !ok {
		return def
	}
	p, err := ParseDeletePolicy(v)
	if err != nil {
		f.fail(key, v, src, "is not a delete policy: %v", err)
		return def
	}
	return p
}

func (f *field) schedule(key string, def Schedule) Schedule {
	v, src, ok := f.text(key)
	if !ok {
		return def
	}
	s, err := ParseSchedule(v)
	if err != nil {
		f.fail(key, v, src, "is not a Quartz cron expression: %v", err)
		return def
	}
	return s
}

func (f *field) path(key, def string) string {
	v, src, ok := f.text(key)
	if !ok {
		v = def
	}
	p, err := expandHome(v)
	if err != nil {
		f.fail(key, v, src, "cannot be expanded: %v", err)
	}
	return p
}

// expandHome expands a leading "~" or "~/" to the user's home directory and cleans the
// path. "~user" is not supported and is kept literally.
func expandHome(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		p = filepath.Join(home, p[1:])
	}
	return filepath.Clean(p), nil
}

const maxInt32 = math.MaxInt32

func build(d *document, l *layers) (*Config, error) {
	c := &Config{warnings: d.warnings, topics: map[string]TopicConfig{}}
	sys := &field{section: sectionSystem, get: func(k string) (string, string) { return l.get(sectionSystem, k) }}
	c.defaults = readTopic(sys, systemTopicDefaults(sys), sectionSystem)
	c.broker = readBroker(sys, c.defaults.DataPath)
	zk := &field{section: sectionZooKeeper, get: func(k string) (string, string) { return l.get(sectionZooKeeper, k) }}
	c.zk = readZooKeeper(zk)
	repl := &field{section: sectionReplication, get: func(k string) (string, string) { return l.get(sectionReplication, k) }}
	c.repl = readReplication(repl)
	c.repl.Enabled = len(d.replication) > 0
	sec := &field{section: sectionSecurity, get: func(k string) (string, string) { return l.get(sectionSecurity, k) }}
	c.security = readSecurity(sec, &c.warnings)
	c.replClient = readReplicationClient(sec, c.security)
	for _, f := range []*field{sys, zk, repl, sec} {
		if f.err != nil {
			return nil, f.err
		}
	}
	if err := c.validate(sys); err != nil {
		return nil, err
	}
	return c, c.addTopics(d)
}

func systemTopicDefaults(f *field) TopicConfig {
	policy, _ := ParseDeletePolicy(DefaultDeletePolicy)
	when, _ := ParseSchedule(DefaultDeleteWhen)
	return TopicConfig{
		NumPartitions:    DefaultNumPartitions,
		DataPath:         f.path(keyDataPath, DefaultDataPath),
		UnflushThreshold: DefaultUnflushThreshold,
		UnflushInterval:  DefaultUnflushInterval,
		DeletePolicy:     policy,
		DeleteWhen:       when,
		AcceptPublish:    true,
		AcceptSubscribe:  true,
	}
}

// readTopic reads the per-topic keys of a section over def.
func readTopic(f *field, def TopicConfig, section string) TopicConfig {
	f.boolean(keyStat, false) // accepted (a boolean) and ignored, see doc.go
	return TopicConfig{
		Name:             def.Name,
		Section:          section,
		NumPartitions:    int(f.int(keyNumPartitions, int64(def.NumPartitions), 1, 65535)),
		DataPath:         f.path(keyDataPath, def.DataPath),
		UnflushThreshold: int(f.int(keyUnflushThreshold, int64(def.UnflushThreshold), math.MinInt32, maxInt32)),
		UnflushInterval:  f.millis(keyUnflushInterval, def.UnflushInterval, 1),
		DeletePolicy:     f.policy(keyDeletePolicy, def.DeletePolicy),
		DeleteWhen:       f.schedule(keyDeleteWhen, def.DeleteWhen),
		AcceptPublish:    f.boolean(keyAcceptPublish, def.AcceptPublish),
		AcceptSubscribe:  f.boolean(keyAcceptSubscribe, def.AcceptSubscribe),
		RetentionBytes:   f.int(keyRetentionBytes, def.RetentionBytes, 0, math.MaxInt64),
	}
}

func readBroker(f *field, dataPath string) Broker {
	return Broker{
		BrokerID:               int(f.int(keyBrokerID, -1, 0, 1023)),
		HostName:               f.str(keyHostName, ""),
		ServerPort:             int(f.int(keyServerPort, DefaultServerPort, 0, 65535)),
		DataPath:               dataPath,
		DataLogPath:            f.path(keyDataLogPath, dataPath),
		MaxSegmentSize:         f.int(keyMaxSegmentSize, DefaultMaxSegmentSize, 1, math.MaxInt64),
		MaxTransferSize:        int(f.int(keyMaxTransferSize, DefaultMaxTransferSize, 1, maxInt32)),
		MaxMessageSize:         int(f.int(keyMaxMessageSize, DefaultMaxMessageSize, 1, maxInt32-MessageHeaderSize)),
		UpdateConsumerOffsets:  f.boolean(keyUpdateConsumerOffsets, false),
		MaxTxTimeout:           time.Duration(f.int(keyMaxTxTimeoutInSeconds, 60, 1, maxInt32)) * time.Second,
		FlushTxLogAtCommit:     TxLogFlush(f.int(keyFlushTxLogAtCommit, int64(DefaultFlushTxLogAtCommit), 0, 2)),
		AutoCreateTopics:       f.boolean(keyAutoCreateTopics, false),
		MaxConnections:         int(f.int(keyMaxConnections, DefaultMaxConnections, 0, maxInt32)),
		IdleTimeout:            f.millis(keyIdleTimeoutMs, DefaultIdleTimeout, 0),
		MaxLineLength:          int(f.int(keyMaxLineLength, DefaultMaxLineLength, MinMaxLineLength, 1<<20)),
		AdminPort:              int(f.int(keyAdminPort, 0, 0, 65535)),
		AdminHost:              f.str(keyAdminHost, DefaultAdminHost),
		Multicore:              f.boolean(keyMulticore, true),
		RetentionCheckInterval: f.millis(keyRetentionCheckIntervalMs, DefaultRetentionCheckInterval, 1),
		MaxConnectionsPerIP:    int(f.int(keyMaxConnectionsPerIP, DefaultMaxConnectionsPerIP, 0, maxInt32)),
		PartialRequestTimeout:  f.millis(keyPartialRequestTimeoutMs, DefaultPartialRequestTimeout, 1),
		MaxConnOutputBytes:     f.int(keyMaxConnOutputBytes, DefaultMaxConnOutputBytes, 64<<10, math.MaxInt64),
		MaxTotalOutputBytes:    f.int(keyMaxTotalOutputBytes, DefaultMaxTotalOutputBytes, 64<<10, math.MaxInt64),
		ReadWorkers:            int(f.int(keyReadWorkers, DefaultReadWorkers, 1, 4096)),
		CommitLog:              f.boolean(keyCommitLog, true),

		// Transaction limits.
		MaxTransactionsPerConnection: int(f.int(keyMaxTransactionsPerConnection, DefaultMaxTransactionsPerConnection, 1, maxInt32)),
		MaxTransactions:              int(f.int(keyMaxTransactions, DefaultMaxTransactions, 1, maxInt32)),
		XAHeuristicTimeout:           time.Duration(f.int(keyXAHeuristicTimeoutSeconds, DefaultXAHeuristicTimeout, 0, maxInt32)) * time.Second,
	}
}

func readZooKeeper(f *field) ZooKeeper {
	return ZooKeeper{
		Enable:            f.boolean(keyZkEnable, true),
		Connect:           f.str(keyZkConnect, ""),
		Root:              f.str(keyZkRoot, DefaultZkRoot),
		SessionTimeout:    f.millis(keyZkSessionTimeoutMs, DefaultZkSessionTimeout, 1),
		ConnectionTimeout: f.millis(keyZkConnectionTimeoutMs, DefaultZkConnectionTimeout, 1),
		SyncTime:          f.millis(keyZkSyncTimeMs, DefaultZkSyncTime, 1),
		StaleNodeGrace:    f.millis(keyZkStaleNodeGraceMs, DefaultZkStaleNodeGrace, 0),
		AuthFile:          f.str(keyZkAuthFile, ""),
		digestPassword:    f.str(keyZkAuth, ""), // split by readDigest
	}
}

// readDigest resolves the broker's ZooKeeper digest identity from zk.zkAuth
// or zk.zkAuthFile. Its errors never show the secret.
func (z *ZooKeeper) readDigest() error {
	auth := z.digestPassword
	z.digestPassword = ""
	switch {
	case auth != "" && z.AuthFile != "":
		return badValue(sectionZooKeeper, keyZkAuth, "is set together with %s; set only one of them (prefer the file, mode 0600)", keyZkAuthFile)
	case auth != "":
		u, pw, err := zkrecipes.ParseDigest(auth)
		if err != nil {
			return badValue(sectionZooKeeper, keyZkAuth, "%v (the value is not shown)", err)
		}
		z.digestUser, z.digestPassword = u, pw
	case z.AuthFile != "":
		file, err := expandHome(z.AuthFile)
		if err != nil {
			return badValue(sectionZooKeeper, keyZkAuthFile, "%q cannot be expanded: %v", z.AuthFile, err)
		}
		u, pw, err := zkrecipes.ReadDigestFile(file)
		if err != nil {
			return &Error{Kind: ErrBadValue, Section: sectionZooKeeper, Key: keyZkAuthFile, Msg: err.Error(), Cause: err}
		}
		z.digestUser, z.digestPassword = u, pw
	}
	return nil
}

// validate checks what single keys cannot, fills computed defaults, and records warnings.
func (c *Config) validate(sys *field) error {
	b := &c.broker
	if b.BrokerID < 0 {
		return &Error{Kind: ErrMissing, Section: sectionSystem, Key: keyBrokerID,
			Msg: "missing; set it to an integer 0..1023, unique in the cluster"}
	}
	if b.AdminPort != 0 && b.AdminPort == b.ServerPort {
		return badValue(sectionSystem, keyAdminPort, "%d is also serverPort; use another port or 0 (off)", b.AdminPort)
	}
	if b.HostName == "" {
		b.HostName = defaultHostName()
	}
	if need := b.MaxMessageSize + MessageHeaderSize; b.MaxTransferSize < need {
		if _, _, set := sys.text(keyMaxTransferSize); set {
			c.warnings = append(c.warnings, fmt.Sprintf(
				"[system] maxTransferSize %d is smaller than maxMessageSize %d + %d-byte header; raised to %d so every message can be returned whole",
				b.MaxTransferSize, b.MaxMessageSize, MessageHeaderSize, need))
		}
		b.MaxTransferSize = need
	}
	if err := c.security.validate(b); err != nil {
		return err
	}
	return c.zk.validate()
}

func (z *ZooKeeper) validate() error {
	if !z.Enable {
		return nil
	}
	if err := z.readDigest(); err != nil {
		return err
	}
	if z.Connect == "" {
		return &Error{Kind: ErrMissing, Section: sectionZooKeeper, Key: keyZkConnect,
			Msg: `missing; set it to "host:port[,host:port...]" or set zk.zkEnable=false`}
	}
	hosts, _, _ := strings.Cut(z.Connect, "/")
	for _, h := range strings.Split(hosts, ",") {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " \t") {
			return badValue(sectionZooKeeper, keyZkConnect, "%q is not a host:port[,host:port...][/chroot] list", z.Connect)
		}
	}
	if !strings.HasPrefix(z.Root, "/") || len(z.Root) < 2 || strings.HasSuffix(z.Root, "/") || strings.Contains(z.Root, "//") {
		return badValue(sectionZooKeeper, keyZkRoot, "%q is not an absolute ZooKeeper path like /meta (no trailing '/')", z.Root)
	}
	return nil
}

// addTopics resolves every [topic=...] section over the [system] defaults.
func (c *Config) addTopics(d *document) error {
	for _, name := range sortedKeys(d.topics) {
		kv := d.topics[name]
		label := topicPrefix + name
		f := &field{section: label, get: func(k string) (string, string) { return kv[k], "" }}
		def := c.defaults
		def.Name = name
		t := readTopic(f, def, label)
		if f.err != nil {
			return f.err
		}
		if !strings.Contains(name, "*") {
			c.topics[name] = t
			c.names = append(c.names, name)
			continue
		}
		t.Name = ""
		c.wildcards = append(c.wildcards, wildcardTopic{pattern: newPattern(name), config: t})
	}
	sort.Slice(c.wildcards, func(i, j int) bool { return c.wildcards[i].pattern.moreSpecific(c.wildcards[j].pattern) })
	return nil
}
