// Package replica is master/slave replication of a broker's partitions
// (docs/REPLICATION.md): the master side (Tracker: per-follower acked
// offsets, the in-sync set and the sync gate), the follower (a client of a
// Source that copies the master's log byte for byte into its own store),
// and the Role interface the failover driver uses to switch a member
// between master and follower.
package replica

import (
	"context"
	"fmt"
)

// Partition names one partition of a topic.
type Partition struct {
	Topic string
	Part  int
}

func (p Partition) String() string { return fmt.Sprintf("%s-%d", p.Topic, p.Part) }

// Role is the broker side of a replica-set member, driven by the failover driver.
type Role interface {
	MemberID() int
	// LogEnds reports every partition's durable end (for the election's longest-log rule).
	LogEnds() map[Partition]int64
	// Follow makes the member a follower of the master at uri in epoch (truncating first,
	// rule 5). It returns once following has started.
	Follow(ctx context.Context, epoch int64, uri string) error
	// Lead makes the member the master of epoch (rule 3); it returns once puts are accepted.
	Lead(ctx context.Context, epoch int64) error
	// InSync reports whether this follower is currently caught up (for standing in elections).
	InSync() bool
}
