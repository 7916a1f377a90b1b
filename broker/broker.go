// Package broker is the metaq broker daemon as a library: New validates the
// options and opens the store, Start serves the MetaQ protocol on a gnet event
// loop server and registers in ZooKeeper, Shutdown stops it gracefully.
//
//	b, err := broker.New(opts)
//	if err != nil { ... }
//	err = b.Run(ctx) // Start, wait for ctx, Shutdown
//
// Requests are decoded on the event loop; anything that waits (fsync, reads
// that may miss the page cache) runs off the loop and replies asynchronously,
// so a slow disk never stalls other connections.
package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ErrShuttingDown is what requests get while the broker shuts down.
var ErrShuttingDown = errors.New("broker: shutting down")

// Broker serves partitions over the MetaQ protocol.
type Broker struct {
	opts           Options
	log            *slog.Logger
	store          *store.Store
	stats          *stats
	configChecksum uint32
	configShown    []byte // ConfigRaw with secrets redacted (config.Redact)
	srv            *server
	listenAddr     atomic.Value // string, set by the server when it starts listening
	listenPort     atomic.Int32
	tx             *txManager    // transactions and their journal
	sec            *wireSecurity // authentication and ACLs; nil = security off

	closedMu sync.RWMutex    // guards closedParts
	closed   map[string]bool // "topic-partition" closed by an operator
	closedN  atomic.Int32    // len(closed): every put checks it, without the lock while 0

	rr atomic.Uint64 // round robin for put partition -1

	// inflight counts puts awaiting durability and gets being served, and
	// gates new off-loop work once Shutdown starts draining: after its
	// closeAdmission no put batch, get or offset starts (they get 503) and
	// the drain cannot be prolonged.
	inflight inflightCounter
	waiters  notifier // long-poll gets parked on partitions

	putBatches   atomic.Int64  // put batches handed to the store (conn.flushPuts)
	putsExtended atomic.Int64  // puts added to a batch already queued (conn.extendQueued)
	stopCh       chan struct{} // closed when Shutdown begins

	workers   *workers       // disk reads, partition creation, stats: off the event loops
	longPolls sync.WaitGroup // long-poll gets parked off the workers
	bg        *background    // goroutines that outlive a request (topic registration, wake-ups)

	repl replState // master/slave role (replication.go)

	zk  *zkrecipes.Session
	reg atomic.Pointer[coordinator.Registrar] // master and topic nodes (nil while following)

	shutdownOnce sync.Once
	shutdownErr  error
	stopping     atomic.Bool
	started      atomic.Bool
}

// New validates opts, opens (and recovers) the data directory and returns a
// broker that is not serving yet.
func New(opts Options) (*Broker, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var hb atomic.Pointer[Broker] // set once the broker can take OnSync calls
	o.Store.OnSync = chainOnSync(o.Store.OnSync, func(topic string, part int) {
		if b := hb.Load(); b != nil {
			b.onSync(topic, part)
		}
	})
	o.logCompatWarnings()
	if err := checkDirPermissions(o); err != nil {
		return nil, err
	}
	sec, err := loadWireSecurity(o.Security, o.Logger)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(o.DataDir, o.Store)
	if err != nil {
		return nil, fmt.Errorf("broker: open data directory %s: %w", o.DataDir, err)
	}
	// Secrets (zk.zkAuth, passwords, tokens) never leave the broker: `stats
	// config` shows the file with their values redacted, and the checksum
	// published in ZooKeeper is of that text (a CRC of the secret would
	// narrow a search for it).
	shown := config.Redact(o.ConfigRaw)
	b := &Broker{opts: o, log: o.Logger, store: st, stats: newStats(), closed: map[string]bool{}, stopCh: make(chan struct{}), sec: sec,
		configShown: shown, configChecksum: crc32.ChecksumIEEE(shown), bg: newBackground()}
	for _, p := range st.Partitions() {
		b.stats.addTopic(p.Topic())
	}
	for _, t := range o.Topics {
		if err := b.createTopic(t); err != nil {
			st.Close()
			return nil, err
		}
	}
	if b.tx, err = openTxManager(b); err != nil {
		st.Close()
		return nil, err
	}
	if err := b.openReplication(); err != nil {
		b.tx.close()
		st.Close()
		return nil, err
	}
	b.workers = startWorkers(o.ReadWorkers, func(v any, stack []byte) {
		b.stats.c.handlerPanics.Add(1)
		b.log.Error("read worker job panicked", "panic", fmt.Sprint(v), "stack", string(stack))
	})
	hb.Store(b)
	return b, nil
}

// createTopic opens every partition of a configured topic.
func (b *Broker) createTopic(topic string) error {
	cfg, ok := b.opts.Topic(topic)
	if !ok {
		return fmt.Errorf("broker: topic %q is listed but has no configuration", topic)
	}
	for p := 0; p < cfg.NumPartitions; p++ {
		if _, err := b.store.Partition(topic, p, true); err != nil {
			return fmt.Errorf("broker: create partition %s-%d: %w", topic, p, err)
		}
	}
	b.stats.addTopic(topic)
	return nil
}

// Start begins serving and, when ZooKeeper is enabled, registers the broker.
// It returns once the broker accepts connections and is registered.
func (b *Broker) Start(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("broker: already started")
	}
	if _, err := startServer(b); err != nil { // sets b.srv
		return err
	}
	b.log.Info("broker listening", "addr", b.Addr(), "uri", b.URI(), "broker_id", b.opts.BrokerID, "data", b.opts.DataDir)
	if err := b.startReplication(ctx); err != nil {
		b.srv.stop(context.Background())
		return err
	}
	if !b.opts.ZK.Enable {
		b.log.Info("ZooKeeper disabled (zk.zkEnable=false): serving direct connections only")
		return nil
	}
	if err := b.register(ctx); err != nil {
		b.srv.stop(context.Background())
		return err
	}
	return nil
}

func (b *Broker) register(ctx context.Context) error {
	zo := b.opts.ZK
	cctx, cancel := context.WithTimeout(ctx, zo.ConnectTimeout)
	defer cancel()
	paths := coordinator.NewPaths(zo.Root)
	opts := append([]zkrecipes.Option{zkrecipes.WithSessionTimeout(zo.SessionTimeout), zkrecipes.WithLogger(b.log)},
		paths.SessionOptions(zo.DigestUser, zo.DigestPassword, coordinator.RoleCluster)...)
	s, err := zkrecipes.Connect(cctx, zo.Servers, opts...)
	if err != nil {
		return fmt.Errorf("broker: %w (or set zk.zkEnable=false to run without ZooKeeper)", err)
	}
	if zo.DigestUser != "" {
		if err := b.secureZK(cctx, s, paths); err != nil {
			s.Close()
			return err
		}
	}
	b.zk = s
	if b.opts.Replication.Failover {
		// The failover driver decides: Lead registers the master and
		// topic nodes, Follow the slave<N> node.
		if err := b.startFailover(); err != nil {
			s.Close()
			return err
		}
		b.log.Info("connected to ZooKeeper; the failover driver picks this member's role", "servers", zo.Servers, "session", fmt.Sprintf("0x%x", s.ID()))
		return nil
	}
	if err := b.registerMaster(cctx); err != nil {
		s.Close()
		return err
	}
	b.log.Info("registered in ZooKeeper", "servers", zo.Servers, "root", coordinator.NewPaths(zo.Root).Root, "session", fmt.Sprintf("0x%x", s.ID()))
	return nil
}

// secureZK checks the broker's ZooKeeper identity (the cluster identity) and
// tightens the cluster's nodes still open to the world (a cluster secured
// after it ran without identities): docs/security-zookeeper.md.
func (b *Broker) secureZK(ctx context.Context, s *zkrecipes.Session, paths coordinator.Paths) error {
	if err := coordinator.CheckIdentity(ctx, s, paths.Root); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	n, err := coordinator.SecureCluster(ctx, s, paths)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if n > 0 {
		b.log.Info("tightened the ACLs of ZooKeeper nodes that were open to the world", "nodes", n, "root", paths.Root, "zk_user", b.opts.ZK.DigestUser)
	}
	return nil
}

// registerMaster registers the broker's master node and its topics.
func (b *Broker) registerMaster(ctx context.Context) error {
	var regOpts []coordinator.RegistrarOption
	if g := b.opts.ZK.StaleNodeGrace; g != 0 {
		regOpts = append(regOpts, coordinator.WithStaleNodeGrace(g))
	}
	if b.opts.Replication.Failover {
		regOpts = append(regOpts, coordinator.WithTakeover()) // Lead won the election: the epoch fences the old master
	}
	reg := coordinator.NewRegistrar(b.zk, coordinator.NewPaths(b.opts.ZK.Root),
		coordinator.BrokerInfo{ID: b.opts.BrokerID, URI: b.URI(), ConfigChecksum: b.configChecksum,
			AcceptedTopics: b.opts.AcceptedTopics}, b.log, regOpts...)
	if err := reg.Start(ctx, b.topicRegistrations()); err != nil {
		return fmt.Errorf("broker: register in ZooKeeper: %w", err)
	}
	b.reg.Store(reg)
	return nil
}

func (b *Broker) topicRegistrations() []coordinator.TopicRegistration {
	var out []coordinator.TopicRegistration
	for _, t := range b.topicNames() {
		if cfg, ok := b.opts.Topic(t); ok {
			out = append(out, coordinator.TopicRegistration{Topic: t, NumPartitions: cfg.NumPartitions,
				AcceptPublish: cfg.AcceptPublish, AcceptSubscribe: cfg.AcceptSubscribe})
		}
	}
	return out
}

// Run starts the broker, serves until ctx ends, then shuts down gracefully
// (with up to 30 s for in-flight work).
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(ctx); err != nil {
		b.stopReplication()
		b.workers.stop()
		b.bg.stop()
		b.tx.close()
		b.store.Close()
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Shutdown(sctx)
}

// Shutdown stops the broker gracefully: deregister from ZooKeeper (producers
// route elsewhere), refuse new connections and requests, wait for in-flight
// puts and gets to finish (until ctx ends), close connections, flush, and
// close the store, which writes the clean-shutdown markers. Idempotent.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutdownOnce.Do(func() {
		b.stopping.Store(true)
		close(b.stopCh)
		b.bg.cancel() // topic registrations give up
		var errs []error
		if fo := b.repl.failover; fo != nil {
			errs = append(errs, fo.Close(ctx)) // no role change from here on
		}
		if reg := b.reg.Load(); reg != nil {
			errs = append(errs, reg.Close(ctx))
		}
		b.inflight.closeAdmission()
		b.stopReplication() // puts held for replicas are answered; the follower stops
		if err := b.inflight.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("broker: in-flight requests did not finish: %w", err))
		}
		if b.srv != nil {
			errs = append(errs, b.srv.stop(ctx))
		}
		b.longPolls.Wait() // stopCh ended their waits
		b.workers.stop()
		b.bg.stop()
		errs = append(errs, b.tx.close())
		errs = append(errs, b.store.Close())
		if b.zk != nil {
			b.zk.Close()
		}
		b.shutdownErr = errors.Join(errs...)
		b.log.Info("broker stopped", "err", b.shutdownErr)
	})
	return b.shutdownErr
}

// Addr returns the address the broker listens on (host:port).
func (b *Broker) Addr() string {
	if a, ok := b.listenAddr.Load().(string); ok {
		return a
	}
	return ""
}

// Port returns the listening port.
func (b *Broker) Port() int { return int(b.listenPort.Load()) }

// URI returns the meta:// URI the broker registers.
func (b *Broker) URI() string { return fmt.Sprintf("meta://%s:%d", b.opts.HostName, b.Port()) }

// Store returns the broker's store (for tools and tests).
func (b *Broker) Store() *store.Store { return b.store }

// ZKSession returns the ZooKeeper session, nil when ZooKeeper is disabled.
func (b *Broker) ZKSession() *zkrecipes.Session { return b.zk }

// admit registers one in-flight request (done with b.inflight.Done) unless
// the broker is draining for shutdown; the caller then answers 503.
func (b *Broker) admit() bool { return b.inflight.admit() }

func partKey(topic string, part int) string { return store.PartitionDirName(topic, part) }

// ClosePartition makes the broker refuse puts and gets on a partition with 403
// until OpenPartition (an operator's maintenance switch).
// The set of closed partitions is bounded by MaxClosedPartitions: beyond
// it (or for an invalid topic name) ClosePartition refuses with an error.
func (b *Broker) ClosePartition(topic string, part int) error {
	if err := protocol.ValidTopic(topic); err != nil {
		return fmt.Errorf("broker: close partition: %w", err)
	}
	if part < 0 {
		return fmt.Errorf("broker: close partition: partition %d is negative", part)
	}
	b.closedMu.Lock()
	defer b.closedMu.Unlock()
	key := partKey(topic, part)
	if !b.closed[key] && len(b.closed) >= MaxClosedPartitions {
		return fmt.Errorf("broker: %d partitions are closed already, the limit: open some first", MaxClosedPartitions)
	}
	b.closed[key] = true
	b.closedN.Store(int32(len(b.closed)))
	return nil
}

// MaxClosedPartitions bounds the partitions closed by an operator at once.
const MaxClosedPartitions = 4096

// OpenPartition undoes ClosePartition.
func (b *Broker) OpenPartition(topic string, part int) {
	b.closedMu.Lock()
	delete(b.closed, partKey(topic, part))
	b.closedN.Store(int32(len(b.closed)))
	b.closedMu.Unlock()
}

func (b *Broker) isClosed(topic string, part int) bool {
	if b.closedN.Load() == 0 {
		return false // the common case, without the shared lock's cache line
	}
	b.closedMu.RLock()
	defer b.closedMu.RUnlock()
	return len(b.closed) > 0 && b.closed[partKey(topic, part)]
}

func (b *Broker) partitionsOf(topic string) []*store.Partition {
	var out []*store.Partition
	for _, p := range b.store.Partitions() {
		if p.Topic() == topic {
			out = append(out, p)
		}
	}
	return out
}

// pickPartition chooses a partition for a put with partition -1.
func (b *Broker) pickPartition(n int) int {
	if n <= 1 {
		return 0
	}
	return int(b.rr.Add(1) % uint64(n))
}
