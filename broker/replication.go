package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/coordinator"
	clientconn "github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// ReplicationOptions make the broker a member of a replica set (one
// brokerId, docs/REPLICATION.md). The zero value is a master that accepts
// followers and requires none.
type ReplicationOptions struct {
	// MemberID is 0 for the configured master, N >= 1 for slave N
	// ([replication] slaveId). A slave starts as a follower.
	MemberID int
	// Async makes this member an async follower (mode=async): it never
	// delays puts and is never promoted.
	Async bool
	// ServeReads lets a follower answer consumers' gets.
	ServeReads bool
	// MinSyncSlaves: as master, refuse puts while fewer sync followers are
	// in the in-sync set.
	MinSyncSlaves int
	// MaxDelay (slaveMaxDelayInMills): a sync follower lagging longer
	// leaves the in-sync set. Default 10 s.
	MaxDelay time.Duration
	// MasterAddr is host:port of the master to follow at start (without
	// ZooKeeper); empty = the failover driver decides.
	MasterAddr string
	// FollowerMaxWait is the follower's long-poll wait of a caught-up
	// partition; default replica.DefaultFollowerMaxWait (20 s).
	FollowerMaxWait time.Duration
	// MasterTLS, when set, makes the follower connect to its master over TLS
	// (internal/tlsconf.Client builds one; the master's host is the server
	// name verified). Nil: plaintext.
	MasterTLS *tls.Config
	// MasterUser and MasterPassword, when MasterUser is set, authenticate
	// the follower to its master with SCRAM-SHA-256 on every connection
	// ([security] brokerUser and brokerPasswordFile).
	MasterUser, MasterPassword string
	// Failover runs the ZooKeeper failover driver (needs ZK.Enable): the
	// member neither leads nor follows until the driver decides (master
	// election, epochs, automatic promotion). Set from a [replication]
	// section in the configuration.
	Failover bool
}

// replState is the broker's replication role. mu serialises role changes;
// the atomics are read on request paths.
type replState struct {
	mu       sync.Mutex
	follower atomic.Bool                     // puts refused, reads only with ServeReads
	tracker  atomic.Pointer[replica.Tracker] // set while master
	fol      *replica.Follower               // set while following; guarded by mu
	master   atomic.Pointer[string]          // URI of the master followed
	epoch    atomic.Int64                    // the epoch this member is in
	history  *replica.EpochHistory           // <dataDir>/replication/epochs
	loadISR  func(context.Context) ([]int, error)
	persist  func(context.Context, []int) error
	onLead   func(context.Context) error
	onFollow func(context.Context) error
	failover *replica.Failover // set by Start when Replication.Failover; then read-only
}

// openReplication sets the initial role: a configured slave starts as a
// follower (following starts in Start), the configured master as master.
func (b *Broker) openReplication() error {
	h, err := replica.OpenEpochHistory(b.opts.DataDir)
	if err != nil {
		return err
	}
	b.repl.history = h
	b.repl.epoch.Store(h.Last())
	if b.opts.Replication.MemberID > 0 || b.opts.Replication.Failover {
		b.repl.follower.Store(true) // until following starts, or the failover driver calls Lead
		return nil
	}
	b.repl.tracker.Store(b.newTracker(nil))
	return nil
}

func (b *Broker) newTracker(inSync []int) *replica.Tracker {
	ro := b.opts.Replication
	return replica.NewTracker(replica.TrackerOptions{
		MinSyncSlaves: ro.MinSyncSlaves, MaxDelay: ro.MaxDelay, InSync: inSync, Persist: b.repl.persist,
		End: func(p replica.Partition) int64 {
			if sp, err := b.store.Partition(p.Topic, p.Part, false); err == nil {
				return sp.End()
			}
			return 0
		},
		Partitions: b.replicaPartitions, Logger: b.log,
		OnAdvance: func(p replica.Partition) { b.waiters.notify(partKey(p.Topic, p.Part)) },
	})
}

// readableEnd is how far consumers may read p: on a master, the high
// watermark (its durable end bounded by every in-sync sync follower's
// acknowledgement, replica.Tracker.Watermark); otherwise (a follower
// serving reads, a broker without replication) the durable end.
func (b *Broker) readableEnd(p *store.Partition) int64 {
	end := p.End()
	if t := b.repl.tracker.Load(); t != nil {
		return t.Watermark(replica.Partition{Topic: p.Topic(), Part: p.ID()}, end)
	}
	return end
}

// wakeReaders wakes every parked long poll (the readable end of every
// partition may have changed: a new term or a change of role).
func (b *Broker) wakeReaders() {
	for _, p := range b.store.Partitions() {
		b.waiters.notify(partKey(p.Topic(), p.ID()))
	}
}

func (b *Broker) replicaPartitions() []replica.Partition {
	ps := b.store.Partitions()
	out := make([]replica.Partition, len(ps))
	for i, p := range ps {
		out[i] = replica.Partition{Topic: p.Topic(), Part: p.ID()}
	}
	return out
}

// startReplication follows the configured master address, if any. The
// master may not be up yet: the broker starts anyway (refusing puts as a
// slave) and keeps trying in the background until it follows.
func (b *Broker) startReplication(context.Context) error {
	ro := b.opts.Replication
	if ro.MemberID == 0 || ro.MasterAddr == "" || ro.Failover {
		return nil
	}
	uri := "meta://" + ro.MasterAddr
	b.bg.run(func(ctx context.Context) {
		for ctx.Err() == nil {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := b.Follow(fctx, b.repl.epoch.Load(), uri)
			cancel()
			if err == nil || ctx.Err() != nil {
				return
			}
			b.log.Warn("replication: cannot start following the master yet; retrying", "master", uri, "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// stopReplication ends both roles (Shutdown): puts waiting for replicas
// are refused, the follower stops.
func (b *Broker) stopReplication() {
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	if t := b.repl.tracker.Swap(nil); t != nil {
		t.Close()
	}
	if b.repl.fol != nil {
		b.repl.fol.Stop()
		b.repl.fol = nil
	}
}

// MemberID implements replica.Role.
func (b *Broker) MemberID() int { return b.opts.Replication.MemberID }

// LogEnds implements replica.Role.
func (b *Broker) LogEnds() map[replica.Partition]int64 {
	out := map[replica.Partition]int64{}
	for _, p := range b.store.Partitions() {
		out[replica.Partition{Topic: p.Topic(), Part: p.ID()}] = p.End()
	}
	return out
}

// InSync implements replica.Role: a follower that is connected and found
// nothing new in its last fetch of every partition.
func (b *Broker) InSync() bool {
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	return b.repl.fol != nil && b.repl.fol.Status().CaughtUp
}

// Lead implements replica.Role: it records the epoch's start in the epoch
// history (rule 3), starts the in-sync tracking with the persisted set and
// accepts puts.
func (b *Broker) Lead(ctx context.Context, epoch int64) error {
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	if b.repl.fol != nil {
		b.repl.fol.Stop()
		b.repl.fol = nil
	}
	if err := b.repl.history.Append(replica.EpochStart{Epoch: epoch, Start: b.LogEnds()}); err != nil {
		return err
	}
	var inSync []int
	if b.repl.loadISR != nil {
		var err error
		if inSync, err = b.repl.loadISR(ctx); err != nil {
			return err
		}
	}
	b.repl.epoch.Store(epoch)
	if old := b.repl.tracker.Swap(b.newTracker(inSync)); old != nil {
		old.Close()
	}
	b.closeReplicaStreams() // followers of an earlier term shake hands again
	b.wakeReaders()
	if b.tx != nil {
		if err := b.tx.adoptReplicated(); err != nil {
			return fmt.Errorf("replication: take over the transactions of the transaction stream: %w", err)
		}
	}
	uri := b.URI()
	b.repl.master.Store(&uri)
	b.repl.follower.Store(false)
	if b.repl.onLead != nil {
		if err := b.repl.onLead(ctx); err != nil {
			return err
		}
	}
	b.log.Info("replication: leading", "epoch", epoch, "in_sync", inSync)
	return nil
}

// Follow implements replica.Role: it stops accepting puts, truncates every
// partition to where the master's first epoch after this member's last
// one started (rule 5), adopts the master's epoch history and starts
// following.
func (b *Broker) Follow(ctx context.Context, epoch int64, uri string) error {
	b.repl.mu.Lock()
	defer b.repl.mu.Unlock()
	b.repl.master.Store(&uri)
	b.repl.follower.Store(true)
	if t := b.repl.tracker.Swap(nil); t != nil {
		t.Close()
	}
	b.closeReplicaStreams()
	b.wakeReaders()
	if b.repl.onFollow != nil {
		if err := b.repl.onFollow(ctx); err != nil {
			b.log.Warn("replication: removing the master registration", "err", err)
		}
	}
	if b.repl.fol != nil {
		b.repl.fol.Stop()
		b.repl.fol = nil
	}
	addr, err := hostPort(uri)
	if err != nil {
		return err
	}
	dial := replica.DialConn(addr, b.followerConnOptions())
	if err := b.truncateFor(ctx, dial, epoch); err != nil {
		return err
	}
	b.repl.epoch.Store(epoch)
	ro := b.opts.Replication
	b.repl.fol = replica.StartFollower(replica.FollowerOptions{BrokerID: b.opts.BrokerID, MemberID: ro.MemberID,
		Sync: !ro.Async, Epoch: epoch, Store: b.store, Dial: dial, MaxFetchBytes: b.opts.MaxTransferSize,
		MaxWait: ro.FollowerMaxWait, Logger: b.log})
	b.log.Info("replication: following", "master", uri, "epoch", epoch)
	return nil
}

// followerConnOptions are the options of the follower's connections to its
// master: TLS and credentials from ReplicationOptions.
func (b *Broker) followerConnOptions() clientconn.Options {
	ro := b.opts.Replication
	o := clientconn.Options{Logger: b.log, TLS: ro.MasterTLS}
	if ro.MasterUser != "" {
		o.Auth = &clientconn.Auth{Mechanism: protocol.MechSCRAMSHA256, User: ro.MasterUser, Password: ro.MasterPassword}
	}
	return o
}

// truncateFor applies rule 5 against the master reached by dial.
func (b *Broker) truncateFor(ctx context.Context, dial func(context.Context) (replica.Source, error), epoch int64) error {
	src, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("replication: reach the master: %w", err)
	}
	defer src.Close()
	ro := b.opts.Replication
	err = src.Handshake(ctx, protocol.ReplicateRequest{BrokerID: int32(b.opts.BrokerID), MemberID: int32(ro.MemberID), Sync: !ro.Async, Epoch: epoch})
	if err != nil {
		return err
	}
	st, err := src.State(ctx)
	if err != nil {
		return err
	}
	if start, ok := replica.FirstAfter(st.Epochs, b.repl.history.Last()); ok {
		for _, p := range b.store.Partitions() {
			to, known := start.Start[replica.Partition{Topic: p.Topic(), Part: p.ID()}]
			if !known {
				to = p.Earliest() // the partition did not exist when the epoch started
			}
			if p.End() > to {
				b.log.Warn("replication: truncating a tail the master does not have", "topic", p.Topic(), "partition", p.ID(),
					"from", p.End(), "to", to, "epoch", start.Epoch)
				if err := p.Truncate(ctx, max(to, p.Earliest())); err != nil {
					return err
				}
			}
		}
	}
	if len(st.Epochs) > 0 {
		return b.repl.history.Replace(st.Epochs)
	}
	return nil
}

func hostPort(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("replication: master URI %q is not meta://host:port", uri)
	}
	return u.Host, nil
}

func (b *Broker) masterURI() string {
	if p := b.repl.master.Load(); p != nil {
		return *p
	}
	return "(not known yet)"
}

// slaveRefusal is the body of a put refused by a follower.
func (b *Broker) slaveRefusal() string {
	return fmt.Sprintf("this broker is a slave of brokerId %d: send to the master at %s", b.opts.BrokerID, b.masterURI())
}

// replicaStream marks a connection that sent `replicate`: its gets are a
// follower's acknowledgements.
type replicaStream struct {
	member  int
	tracker *replica.Tracker
	detach  func()

	listMu     sync.Mutex // guards the fields below (replicationStateBody, on read workers)
	listSent   bool       // a full partition list was sent on this stream
	listParts  int        // the store's partition count then
	listEpochs int        // the epoch history's length then
	listSkips  int        // lists left out since
}

// fullListEvery: a follower's stream is sent the full partition list at
// least every this many reads (every ~5 s at the follower's 500 ms), so
// that its view of the master's ends (its lag_bytes) stays fresh.
const fullListEvery = 10

func (cn *conn) handleReplicate(r *protocol.ReplicateRequest) {
	b := cn.b
	t := b.repl.tracker.Load()
	switch {
	case t == nil || b.repl.follower.Load():
		cn.reply(protocol.CodeForbidden, r.OpaqueID, b.slaveRefusal())
		return
	case int(r.BrokerID) != b.opts.BrokerID:
		cn.reply(protocol.CodeForbidden, r.OpaqueID, fmt.Sprintf("this broker is brokerId %d, not %d: check the follower's brokerId and masterAddr", b.opts.BrokerID, r.BrokerID))
		return
	case r.Epoch > b.repl.epoch.Load():
		cn.reply(protocol.CodeConflict, r.OpaqueID, fmt.Sprintf("follower is in epoch %d, this master in %d: it is not the current master", r.Epoch, b.repl.epoch.Load()))
		return
	case int(r.MemberID) == b.opts.Replication.MemberID:
		cn.reply(protocol.CodeForbidden, r.OpaqueID, fmt.Sprintf("member %d is this broker itself: give every member its own slaveId", r.MemberID))
		return
	}
	if cn.replica != nil {
		cn.replica.detach()
	}
	cn.replica = &replicaStream{member: int(r.MemberID), tracker: t, detach: t.Attach(int(r.MemberID), r.Sync)}
	cn.isReplica.Store(true)
	cn.reply(protocol.CodeOK, r.OpaqueID, "")
}

// replicaGet handles a follower's get on the loop: it acknowledges the
// offset, or answers 301 with the master's end when the follower is beyond
// it (a tail this master does not have is never counted). It reports
// whether the get is answered.
func (cn *conn) replicaGet(r *protocol.GetRequest) bool {
	if cn.b.repl.tracker.Load() != cn.replica.tracker {
		// This broker stepped down (or leads a new term) since the
		// handshake: the follower must reconnect and shake hands again.
		cn.reply(protocol.CodeForbidden, r.OpaqueID, "replication stream of an earlier term of this broker: reconnect")
		return true
	}
	p, err := cn.b.store.Partition(r.Topic, int(r.Partition), false)
	end := int64(0)
	if err == nil {
		end = p.End()
	}
	if r.Offset > end {
		cn.reply(protocol.CodeMoved, r.OpaqueID, strconv.FormatInt(end, 10))
		return true
	}
	cn.replica.tracker.Ack(cn.replica.member, replica.Partition{Topic: r.Topic, Part: int(r.Partition)}, r.Offset)
	return false
}

// readRefusal is the reply of a follower without serveReads to a consumer.
func (b *Broker) readRefusal() string {
	return fmt.Sprintf("this broker is a slave of brokerId %d and does not serve reads (serveReads=false): read from the master at %s", b.opts.BrokerID, b.masterURI())
}

// replicationStats is `stats replication`.
func (b *Broker) replicationStats(add func(k string, v any)) {
	if b.repl.follower.Load() {
		var lag int64
		b.repl.mu.Lock()
		if b.repl.fol != nil {
			lag = b.repl.fol.Status().LagBytes
		}
		b.repl.mu.Unlock()
		add("role", fmt.Sprintf("follower master %s epoch %d lag_bytes %d", b.masterURI(), b.repl.epoch.Load(), lag))
	} else {
		add("role", fmt.Sprintf("master epoch %d", b.repl.epoch.Load()))
	}
	b.replicationState(func(k, v string) { add(k, v) })
	if t := b.repl.tracker.Load(); t != nil {
		for _, f := range t.Stats() {
			mode := protocol.ReplicateAsync
			if f.Sync {
				mode = protocol.ReplicateSync
			}
			add("slave", fmt.Sprintf("%d mode %s in_sync %t acked_bytes %d lag_bytes %d lag_ms %d",
				f.Member, mode, f.InSync, f.AckedBytes, f.LagBytes, f.Lag.Milliseconds()))
		}
	}
}

// replicationState adds the lines a follower reads (replica.ParseState):
// every partition with its durable end, and the epoch history.
func (b *Broker) replicationState(add func(k, v string)) {
	for _, p := range b.store.Partitions() {
		add("partition", replica.PartitionLine(replica.Partition{Topic: p.Topic(), Part: p.ID()}, p.End()))
	}
	for _, e := range b.repl.history.Entries() {
		add("epoch", replica.FormatEpochLine(e))
	}
}

// replicationStateBody is the `stats replication` reply to a follower's
// stream rs: the role line and replicationState, without the per-follower
// lines (whose lag walks every partition) that only operators read. The
// partition list and the epochs are left out, for a `partitions_unchanged
// <count>` line, when neither the partition set nor the epoch history
// changed since the stream was last sent them and fewer than fullListEvery
// reads ago: an idle follower of 10,000 partitions reads the list twice a
// second. A follower (replica.ParseState) only adds the partitions it is
// told of, so a list left out changes nothing for it.
func (b *Broker) replicationStateBody(rs *replicaStream) []byte {
	var lines []protocol.StatsLine
	add := func(k, v string) { lines = append(lines, protocol.StatsLine{Key: k, Value: v}) }
	add("role", fmt.Sprintf("master epoch %d", b.repl.epoch.Load()))
	n, epochs := b.store.PartitionCount(), len(b.repl.history.Entries()) // before the list: a partition added meanwhile is in it or sends the next one
	rs.listMu.Lock()
	full := !rs.listSent || n != rs.listParts || epochs != rs.listEpochs || rs.listSkips+1 >= fullListEvery
	if full {
		rs.listSent, rs.listParts, rs.listEpochs, rs.listSkips = true, n, epochs, 0
	} else {
		rs.listSkips++
	}
	rs.listMu.Unlock()
	if full {
		b.replicationState(add)
	} else {
		add("partitions_unchanged", strconv.Itoa(n))
	}
	return protocol.AppendStatsBody(nil, lines)
}

// replicaPutError maps the sync gate's refusals to put replies.
func replicaPutError(err error) (int32, string, bool) {
	switch {
	case errors.Is(err, replica.ErrNotEnoughReplicas):
		return protocol.CodeUnavailable, err.Error(), true
	case errors.Is(err, replica.ErrNotLeading):
		return protocol.CodeUnavailable, err.Error(), true
	}
	return 0, "", false
}

// gate holds a durable put batch until the in-sync followers have it.
// Before replication is set up (New completing commits interrupted by a
// crash, from the transaction journal) nothing is held.
func (b *Broker) gate(topic string, part int, end int64, done func(error)) {
	if b.repl.history == nil {
		done(nil)
		return
	}
	t := b.repl.tracker.Load()
	if t == nil {
		done(replica.ErrNotLeading)
		return
	}
	t.Wait(replica.Partition{Topic: topic, Part: part}, end, done)
}

var _ replica.Role = (*Broker)(nil)

// startFailover wires the ZooKeeper failover driver (repl-zk's
// replica.Failover) to this broker's Role: the in-sync set is persisted
// through it, Lead registers the master and topic nodes, Follow removes
// them.
func (b *Broker) startFailover() error {
	rs := coordinator.NewReplicaSet(b.zk, coordinator.NewPaths(b.opts.ZK.Root), b.opts.BrokerID, b.log)
	fo, err := replica.NewFailover(replica.FailoverConfig{Replicas: rs, Role: b, URI: b.URI(), Log: b.log})
	if err != nil {
		return err
	}
	me := b.opts.Replication.MemberID
	b.repl.persist = fo.WriteISR
	b.repl.loadISR = func(ctx context.Context) ([]int, error) {
		isr, err := rs.ISR(ctx)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(slices.Clone(isr.InSync), func(m int) bool { return m == me }), nil
	}
	b.repl.onLead = b.registerMaster
	b.repl.onFollow = func(ctx context.Context) error {
		if reg := b.reg.Swap(nil); reg != nil {
			return reg.Close(ctx)
		}
		return nil
	}
	b.repl.failover = fo
	return fo.Start()
}

// sessionRefusal is non-empty when a master under the failover driver may
// not acknowledge puts (rule 4): its ZooKeeper session is not provably
// alive, so another member may be promoted any moment.
func (b *Broker) sessionRefusal() string {
	if b.repl.failover == nil || b.zk == nil {
		return ""
	}
	timeout := b.opts.ZK.SessionTimeout
	if until := b.zk.Liveness().Until(timeout, timeout/3); time.Now().Before(until) {
		return ""
	}
	return "this master's ZooKeeper session is not provably alive (it may be replaced by a slave): retry shortly"
}

// PrepareHandoff implements replica.Handoff for a planned switchover: the
// master stops accepting puts (refused as on a follower) and returns once
// member has acknowledged every partition's end. On an error it accepts
// puts again.
func (b *Broker) PrepareHandoff(ctx context.Context, member int) error {
	t := b.repl.tracker.Load()
	if t == nil {
		return replica.ErrNotLeading
	}
	b.repl.follower.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, f := range t.Stats() {
			if f.Member == member && f.Connected && f.LagBytes == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if b.repl.tracker.Load() == t {
				b.repl.follower.Store(false)
			}
			return fmt.Errorf("member %d did not acknowledge this master's log ends: %w", member, ctx.Err())
		case <-tick.C:
		}
	}
}

var _ replica.Handoff = (*Broker)(nil)

// CanLead implements replica.LeadChecker: a member without epoch history
// (its data directory is new or was wiped) must not lead an existing
// replica set, whatever the in-sync set says; it follows and copies first.
func (b *Broker) CanLead() error {
	if b.repl.history.Last() == 0 {
		return fmt.Errorf("no epoch history in %s/replication: this member's data is new or was wiped, so it must follow a master and copy its log before it may lead", b.opts.DataDir)
	}
	return nil
}

var _ replica.LeadChecker = (*Broker)(nil)

// closeReplicaStreams closes the connections of followers' streams (their
// followers reconnect and shake hands with the current term, or learn that
// this broker no longer leads).
func (b *Broker) closeReplicaStreams() {
	if b.srv == nil {
		return
	}
	b.srv.connsMu.Lock()
	defer b.srv.connsMu.Unlock()
	for cn := range b.srv.conns {
		if cn.isReplica.Load() {
			_ = cn.gc.Close()
		}
	}
}
