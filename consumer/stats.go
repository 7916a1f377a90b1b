package consumer

import (
	"slices"
	"sync/atomic"
)

// Stats is a snapshot of a consumer's counters and partition positions.
type Stats struct {
	Fetches             int64 // get replies with data
	FetchedMsgs         int64 // messages decoded
	FetchedBytes        int64 // message bytes decoded (headers included)
	Delivered           int64 // messages handed to a handler or returned by Poll
	Filtered            int64 // messages skipped by WithFilter (still committed)
	Retries             int64 // handler calls that failed and were retried
	DeadLettered        int64 // messages given to the dead-letter hook successfully
	DroppedAfterRetries int64 // messages skipped after WithRetry's attempts without a hook
	Commits             int64 // offsets stored
	CommitErrors        int64
	Errors              int64 // fetch errors (connection, broker replies other than 200/301/404)
	ChecksumErrors      int64 // corrupt messages seen (never delivered)
	Redirects           int64 // 301 replies adopted
	FetchGrowths        int64 // maxSize doublings for a message larger than the fetch size
	// PartitionsLost counts partitions lost without a revocation (see
	// RebalanceListener.Lost): with the ZooKeeper session, or because the
	// owner node changed or vanished. Each is logged at Warn.
	PartitionsLost int64
	Suspended      bool // the group member is suspended: nothing is handed out
	Partitions     []PartitionStats
}

// PartitionStats is the position of one fetched partition.
type PartitionStats struct {
	TopicPartition
	FetchOffset int64  // next offset to fetch
	Processed   int64  // NextOffset of the last processed message (-1 none yet)
	Committed   int64  // last offset stored (-1 unknown)
	FetchSize   int    // current maxSize
	LongPoll    bool   // the broker supports long polls
	Err         string // last error of the partition ("" if fine); a corrupt message stops it here
}

// counters are the consumer-wide counters (atomics; no lock).
type counters struct {
	fetches, fetchedMsgs, fetchedBytes, delivered, filtered, retries, deadLettered, dropped atomic.Int64
	commits, commitErrors, errors, checksumErrors, redirects, growths, lost                 atomic.Int64
}

// Stats returns a snapshot of the counters and of every fetched partition.
func (c *Consumer) Stats() Stats {
	s := Stats{
		Fetches: c.stats.fetches.Load(), FetchedMsgs: c.stats.fetchedMsgs.Load(), FetchedBytes: c.stats.fetchedBytes.Load(),
		Delivered: c.stats.delivered.Load(), Filtered: c.stats.filtered.Load(), Retries: c.stats.retries.Load(),
		DeadLettered: c.stats.deadLettered.Load(), DroppedAfterRetries: c.stats.dropped.Load(),
		Commits: c.stats.commits.Load(), CommitErrors: c.stats.commitErrors.Load(), Errors: c.stats.errors.Load(),
		ChecksumErrors: c.stats.checksumErrors.Load(), Redirects: c.stats.redirects.Load(), FetchGrowths: c.stats.growths.Load(),
		PartitionsLost: c.stats.lost.Load(), Suspended: c.gate.isSuspended(),
	}
	c.mu.Lock()
	for _, ps := range c.parts {
		s.Partitions = append(s.Partitions, ps.snapshot())
	}
	c.mu.Unlock()
	slices.SortFunc(s.Partitions, func(a, b PartitionStats) int { return compareTP(a.TopicPartition, b.TopicPartition) })
	return s
}
