package config

import (
	"net"
	"strings"
	"time"
)

// Defaults of [replication] (see doc.go).
const (
	DefaultSlaveID              = -1 // the master of the replica set
	DefaultReplicationMode      = ReplicationSync
	DefaultMinSyncSlaves        = 0
	DefaultSlaveMaxDelayInMills = 10 * time.Second
)

// ReplicationMode is [replication] mode: how a slave's acknowledgements
// count on its master.
type ReplicationMode string

const (
	// ReplicationSync: the master holds put replies until this slave has
	// the messages durably (while it is in the in-sync set).
	ReplicationSync ReplicationMode = "sync"
	// ReplicationAsync: the slave copies in the background; it never delays
	// a put and never becomes master automatically.
	ReplicationAsync ReplicationMode = "async"
)

// Replication holds [replication].
type Replication struct {
	// Enabled: the file has a [replication] section with at least one
	// key. Then the broker runs the ZooKeeper failover driver (master
	// election, epochs); without it a broker is a plain master as before.
	Enabled bool
	// SlaveID is slaveId: -1 (or absent) for the configured master of the
	// brokerId, N >= 1 for slave N. A member keeps it for life; failover
	// changes its role, not its id.
	SlaveID int
	// Mode is mode=sync|async of a slave (ignored on the master).
	Mode ReplicationMode
	// ServeReads is serveReads: a follower answers gets (default false:
	// consumers read from the master).
	ServeReads bool
	// MinSyncSlaves is minSyncSlaves on a master: puts are refused (503)
	// while fewer sync slaves are in the in-sync set. 0 (default) = no
	// minimum: puts are acknowledged by the master alone while no sync
	// slave is in sync (a slave that is not in sync cannot become master,
	// so failover then waits for the old master).
	MinSyncSlaves int
	// SlaveMaxDelay is slaveMaxDelayInMills: a sync slave whose
	// acknowledgements lag more than this leaves the in-sync set.
	SlaveMaxDelay time.Duration
	// MasterAddr is masterAddr: host:port of the master to follow, for
	// setups without ZooKeeper (tests); empty = discover it in ZooKeeper.
	MasterAddr string
}

// IsSlave reports whether the member is configured as a slave.
func (r Replication) IsSlave() bool { return r.SlaveID >= 1 }

func readReplication(f *field) Replication {
	r := Replication{
		SlaveID:       int(f.int(keySlaveID, DefaultSlaveID, -1, 1023)),
		ServeReads:    f.boolean(keyServeReads, false),
		MinSyncSlaves: int(f.int(keyMinSyncSlaves, DefaultMinSyncSlaves, 0, 1023)),
		SlaveMaxDelay: f.millis(keySlaveMaxDelayInMills, DefaultSlaveMaxDelayInMills, 1),
		MasterAddr:    f.str(keyMasterAddr, ""),
	}
	switch mode, src, _ := f.text(keyReplicationMode); strings.ToLower(mode) {
	case "":
		r.Mode = DefaultReplicationMode
	case string(ReplicationSync), string(ReplicationAsync):
		r.Mode = ReplicationMode(strings.ToLower(mode))
	default:
		f.fail(keyReplicationMode, mode, src, "is not sync or async")
	}
	if r.SlaveID == 0 {
		f.fail(keySlaveID, "0", "", "is the master's member id; use -1 (or leave it out) for the master, 1..1023 for a slave")
	}
	if r.MasterAddr != "" {
		if _, _, err := net.SplitHostPort(r.MasterAddr); err != nil {
			f.fail(keyMasterAddr, r.MasterAddr, "", "is not host:port of the master's serverPort")
		}
	}
	return r
}
