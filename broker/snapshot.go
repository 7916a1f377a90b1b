package broker

import (
	"sort"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Snapshot is a read-only, point-in-time copy of a broker's counters and
// state, for metrics exporters and health checks wired outside the broker
// (Prometheus lives in tools/, ARCHITECTURE.md practice 11). Counters are
// totals since the broker was created; they only grow.
type Snapshot struct {
	BrokerID int
	Version  string
	Addr     string // listen address, "" before Start
	URI      string // meta://host:port registered in ZooKeeper
	Started  time.Time
	Uptime   time.Duration
	Serving  bool // started and not shutting down

	Puts        int64 // messages put (failed puts included)
	Gets        int64 // get requests
	Offsets     int64 // offset requests
	GetMisses   int64 // gets that found nothing
	PutFailures int64 // puts refused or failed
	PutBytes    int64 // put data stored
	// PutBatches counts the store appends made for puts: one per connection
	// read and partition, unless the puts joined a batch of the same
	// connection still waiting in the partition's queue (PutsJoined).
	// Puts / PutBatches is the mean batch the partition writers see.
	PutBatches int64
	PutsJoined int64
	GetBytes   int64 // message bytes served
	TxBegin    int64
	TxXABegin  int64
	TxCommit   int64
	TxRollback int64

	Connections      int64 // currently open
	ConnectionsTotal int64 // accepted since start

	HandlerPanics     int64 // request handlers that panicked (their connection was closed)
	BufferedBytes     int64 // replies not yet sent, over all connections (gauge)
	PausedConnections int64 // connections not read until their replies drain (gauge)

	ZooKeeper  ZKSnapshot
	CommitLogs []store.CommitLogStat // the store's commit log per data directory
	Replicas   []ReplicaSnapshot     // on a master: its followers, by member id
	Topics     []TopicSnapshot       // sorted by topic
	Partitions []PartitionSnapshot   // sorted by topic, then partition
}

// ReplicaSnapshot is one follower as its master sees it.
type ReplicaSnapshot struct {
	Member   int
	Sync     bool
	InSync   bool
	LagBytes int64
	Lag      time.Duration
}

// ZKSnapshot is the broker's ZooKeeper state.
type ZKSnapshot struct {
	Enabled   bool
	State     string // "disabled", "not connected", or a zkrecipes.State ("connected", "suspended", ...)
	Connected bool   // a session is established (connected or reconnected)
	SessionID int64
}

// TopicSnapshot are one topic's counters and totals.
type TopicSnapshot struct {
	Topic       string
	Puts        int64
	Gets        int64
	Offsets     int64
	GetMisses   int64
	PutFailures int64
	PutBytes    int64
	GetBytes    int64
	Messages    int64 // stored messages over all its partitions
	Bytes       int64 // stored bytes over all its partitions
}

// PartitionSnapshot is one partition's offsets and size.
type PartitionSnapshot struct {
	Topic     string
	Partition int
	MinOffset int64
	MaxOffset int64
	Messages  int64
	Bytes     int64
	Segments  int
	Closed    bool   // closed by an operator (ClosePartition)
	Err       string // the sticky store error of a failed partition, "" if healthy
}

// Snapshot returns the broker's current counters and state. It takes no
// lock that a request holds for long; call it after Start has returned (it
// reads the ZooKeeper session that Start sets) — also after Shutdown.
func (b *Broker) Snapshot() Snapshot {
	s := b.stats
	snap := Snapshot{
		BrokerID: b.opts.BrokerID, Version: Version, Addr: b.Addr(), URI: b.URI(),
		Started: s.start, Uptime: time.Since(s.start),
		Serving: b.started.Load() && !b.stopping.Load(),

		Puts: s.c.cmdPut.Load(), Gets: s.c.cmdGet.Load(), Offsets: s.c.cmdOffset.Load(),
		GetMisses: s.c.getMiss.Load(), PutFailures: s.c.putFailed.Load(),
		PutBytes: s.c.putBytes.Load(), GetBytes: s.c.getBytes.Load(),
		TxBegin: s.c.txBegin.Load(), TxXABegin: s.c.txXABegin.Load(),
		TxCommit: s.c.txCommit.Load(), TxRollback: s.c.txRollb.Load(),
		Connections: s.c.currConns.Load(), ConnectionsTotal: s.c.totalConns.Load(),
		ZooKeeper:     b.zkSnapshot(),
		HandlerPanics: s.c.handlerPanics.Load(),
		PutBatches:    b.putBatches.Load(), PutsJoined: b.putsExtended.Load(),
	}
	out := b.output()
	snap.BufferedBytes, snap.PausedConnections = out.buffered, out.paused
	snap.CommitLogs = b.store.CommitLogStats()
	if t := b.repl.tracker.Load(); t != nil {
		for _, f := range t.Stats() {
			snap.Replicas = append(snap.Replicas, ReplicaSnapshot{Member: f.Member, Sync: f.Sync, InSync: f.InSync, LagBytes: f.LagBytes, Lag: f.Lag})
		}
	}
	names := b.topicNames()
	perTopic := make(map[string]*TopicSnapshot, len(names))
	for _, t := range names {
		ts := &TopicSnapshot{Topic: t}
		if tc := s.topic(t); tc != nil {
			ts.Puts, ts.Gets, ts.Offsets = tc.put.Load(), tc.get.Load(), tc.offset.Load()
			ts.GetMisses, ts.PutFailures = tc.getMiss.Load(), tc.putFailed.Load()
			ts.PutBytes, ts.GetBytes = tc.putBytes.Load(), tc.getBytes.Load()
		}
		perTopic[t] = ts
	}
	for _, p := range b.store.Partitions() {
		st := p.Stats()
		ps := PartitionSnapshot{Topic: st.Topic, Partition: st.Partition, MinOffset: st.MinOffset,
			MaxOffset: st.MaxOffset, Messages: st.Messages, Bytes: st.Bytes, Segments: st.Segments,
			Closed: b.isClosed(st.Topic, st.Partition)}
		if err := p.Err(); err != nil {
			ps.Err = err.Error()
		}
		snap.Partitions = append(snap.Partitions, ps)
		if ts := perTopic[st.Topic]; ts != nil {
			ts.Messages += st.Messages
			ts.Bytes += st.Bytes
		}
	}
	sort.Slice(snap.Partitions, func(i, j int) bool {
		a, c := snap.Partitions[i], snap.Partitions[j]
		if a.Topic != c.Topic {
			return a.Topic < c.Topic
		}
		return a.Partition < c.Partition
	})
	for _, t := range names {
		snap.Topics = append(snap.Topics, *perTopic[t])
	}
	return snap
}

func (b *Broker) zkSnapshot() ZKSnapshot {
	if !b.opts.ZK.Enable {
		return ZKSnapshot{State: "disabled"}
	}
	z := ZKSnapshot{Enabled: true, State: "not connected"}
	if s := b.zk; s != nil {
		st := s.State()
		z.State = st.String()
		z.Connected = st == zkrecipes.StateConnected || st == zkrecipes.StateReconnected
		z.SessionID = s.ID()
	}
	return z
}
