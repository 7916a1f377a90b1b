package broker

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/secretfile"
	"github.com/metaq-go/metaq/internal/tlsconf"
)

// OptionsFromConfig turns a loaded server.ini (or YAML/TOML) into broker
// Options. Settings the broker does not act on are logged as warnings.
func OptionsFromConfig(cfg *config.Config, log *slog.Logger) Options {
	br, zk := cfg.Broker(), cfg.ZooKeeper()
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	o := Options{
		BrokerID:              br.BrokerID,
		ListenAddr:            net.JoinHostPort("0.0.0.0", strconv.Itoa(br.ServerPort)),
		HostName:              br.HostName,
		DataDir:               br.DataPath,
		Topics:                cfg.Topics(),
		MaxConnections:        br.MaxConnections,
		IdleTimeout:           br.IdleTimeout,
		MaxLineLength:         br.MaxLineLength,
		MaxMessageSize:        br.MaxMessageSize,
		MaxTransferSize:       br.MaxTransferSize,
		UpdateConsumerOffsets: br.UpdateConsumerOffsets,
		MaxConnectionsPerIP:   br.MaxConnectionsPerIP,
		PartialRequestTimeout: br.PartialRequestTimeout,
		MaxConnOutputBytes:    br.MaxConnOutputBytes,
		MaxTotalOutputBytes:   br.MaxTotalOutputBytes,
		ReadWorkers:           br.ReadWorkers,
		ConfigRaw:             cfg.Raw(),
		Multicore:             br.Multicore,
		TxLogDir:              defaultTxLogDir(br.DataLogPath),
		MaxTxTimeout:          br.MaxTxTimeout,
		FlushTxLogAtCommit:    TxLogFlushModeOf(int(br.FlushTxLogAtCommit)),
		Logger:                log,
		Store: store.Options{
			MaxSegmentSize:    br.MaxSegmentSize,
			RetentionInterval: br.RetentionCheckInterval,
			NoCommitLog:       !br.CommitLog,
		},
	}
	if br.MaxConnectionsPerIP == 0 {
		o.MaxConnectionsPerIP = -1 // 0 in the file means unlimited
	}
	if br.MaxConnections == 0 {
		o.MaxConnections = -1 // likewise
	}
	rc := cfg.Replication()
	o.Replication = ReplicationOptions{Failover: rc.Enabled && zk.Enable, MemberID: max(0, rc.SlaveID), Async: rc.Mode == config.ReplicationAsync,
		ServeReads: rc.ServeReads, MinSyncSlaves: rc.MinSyncSlaves, MaxDelay: rc.SlaveMaxDelay, MasterAddr: rc.MasterAddr}
	// Transaction limits.
	o.MaxTransactionsPerConnection, o.MaxTransactions = br.MaxTransactionsPerConnection, br.MaxTransactions
	o.XAHeuristicTimeout = br.XAHeuristicTimeout
	if zk.Enable {
		servers, root := zk.Connect, zk.Root
		if i := strings.IndexByte(servers, '/'); i >= 0 { // "host:port,host:port/chroot"
			root = strings.TrimRight(servers[i:], "/") + root
			servers = servers[:i]
		}
		o.ZK = ZKOptions{Enable: true, Servers: strings.Split(servers, ","), Root: root,
			SessionTimeout: zk.SessionTimeout, ConnectTimeout: zk.ConnectionTimeout, StaleNodeGrace: zk.StaleNodeGrace}
		o.ZK.DigestUser, o.ZK.DigestPassword = zk.Digest()
		if zk.StaleNodeGrace == 0 {
			o.ZK.StaleNodeGrace = -1 // zk.zkStaleNodeGraceMs=0: no wait
		}
	}
	def := cfg.Defaults()
	o.Store.Flush, o.Store.Retention = storePolicies(def)
	// Age-based retention runs on deleteWhen (MetaQ), per topic when its
	// section overrides it; size-based retention (retentionBytes, ours) every
	// retentionCheckIntervalMs.
	o.Store.RetentionSchedule = def.DeleteWhen.Next
	o.Store.Topic = func(topic string) store.TopicOptions {
		tc, ok := cfg.Topic(topic)
		if !ok {
			tc = def
		}
		f, r := storePolicies(tc)
		dir := tc.DataPath // MetaQ's per-topic dataPath: <dataPath>/<topic>-<n>
		if dir == br.DataPath {
			dir = ""
		}
		return store.TopicOptions{Flush: f, Retention: r, Dir: dir, RetentionSchedule: tc.DeleteWhen.Next}
	}
	o.Store.TopicDirs = cfg.TopicDataPaths()
	o.Topic = func(topic string) (TopicConfig, bool) {
		tc, ok := cfg.Topic(topic)
		if !ok {
			return TopicConfig{}, false
		}
		return TopicConfig{NumPartitions: tc.NumPartitions, AcceptPublish: tc.AcceptPublish,
			AcceptSubscribe: tc.AcceptSubscribe}, true
	}
	o.AcceptedTopics = acceptedTopics(cfg)
	if sc := cfg.Security(); sc.Enabled() {
		o.Security = SecurityOptions{UsersFile: sc.UsersFile, ACLFile: sc.ACLFile, Anonymous: AnonymousRefused}
		if sc.AllowAnonymous {
			o.Security.Anonymous = AnonymousAllowed
		}
	}
	return o
}

// ApplyReplicationClient reads the files of [security] brokerPasswordFile
// and tls.caFile (and the broker's own certificate, its client certificate)
// into o.Replication's MasterTLS, MasterUser and MasterPassword: how this
// broker connects to its master when it follows. Call it after
// OptionsFromConfig, where the files must be readable (as the broker's TLS
// files); errors name the key and the file, never the password.
func ApplyReplicationClient(o *Options, rc config.ReplicationClient) error {
	if rc.User != "" {
		pw, err := secretfile.Read(rc.PasswordFile)
		if err != nil {
			return fmt.Errorf("[security] brokerPasswordFile: %w", err)
		}
		o.Replication.MasterUser, o.Replication.MasterPassword = rc.User, pw
	}
	if rc.TLS {
		cfg, err := tlsconf.Client(rc.CAFile, rc.CertFile, rc.KeyFile)
		if err != nil {
			return fmt.Errorf("[security] tls.caFile (the CA of the master's certificate): %w", err)
		}
		o.Replication.MasterTLS = cfg
	}
	return nil
}

func storePolicies(tc config.TopicConfig) (store.FlushPolicy, store.RetentionPolicy) {
	f := store.FlushPolicy{Mode: store.GroupCommit}
	if tc.UnflushThreshold > 0 {
		f = store.FlushPolicy{Mode: store.Threshold, UnflushThreshold: tc.UnflushThreshold, UnflushInterval: tc.UnflushInterval}
	}
	r := store.RetentionPolicy{MaxAge: tc.DeletePolicy.MaxAge, MaxBytes: tc.RetentionBytes, Action: store.Delete}
	if tc.DeletePolicy.Action == config.PolicyArchive {
		r.Action = store.Archive
		if tc.DeletePolicy.Compress {
			r.Action = store.ArchiveZip
		}
	}
	return f, r
}

// acceptedTopics lists what cfg.Topic accepts in its order of precedence:
// named sections, wildcard sections most specific first, then "*" when
// autoCreateTopics is set.
func acceptedTopics(cfg *config.Config) []coordinator.TopicPattern {
	var out []coordinator.TopicPattern
	add := func(pattern string, tc config.TopicConfig) {
		out = append(out, coordinator.TopicPattern{Pattern: pattern, NumPartitions: tc.NumPartitions, AcceptPublish: tc.AcceptPublish})
	}
	for _, t := range cfg.Topics() {
		if tc, ok := cfg.Topic(t); ok {
			add(t, tc)
		}
	}
	for _, tc := range cfg.WildcardTopics() {
		add(tc.Name, tc)
	}
	if cfg.Broker().AutoCreateTopics {
		add("*", cfg.Defaults())
	}
	return out
}
