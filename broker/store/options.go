package store

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// FlushMode selects when appends are acknowledged and become visible.
type FlushMode int

const (
	// GroupCommit acknowledges an append only after the fsync that covers
	// it; appends queued while a write+fsync runs share the next fsync.
	GroupCommit FlushMode = iota
	// Threshold acknowledges after the write and fsyncs after
	// UnflushThreshold messages or UnflushInterval, whichever comes first.
	// A power loss can take back acknowledged messages of that window.
	Threshold
)

// FlushPolicy configures durability of a partition.
type FlushPolicy struct {
	Mode             FlushMode
	UnflushThreshold int           // Threshold mode: fsync after this many messages (default 1000)
	UnflushInterval  time.Duration // Threshold mode: fsync at most this long after a write (default 10 s)
}

// RetentionAction says what happens to an expired closed segment.
type RetentionAction int

const (
	// Delete removes expired segments.
	Delete RetentionAction = iota
	// Archive renames expired segments to <start>.arc.
	Archive
	// ArchiveZip compresses expired segments into <start>.zip.
	ArchiveZip
)

// RetentionPolicy says which closed segments retention removes. Only whole
// closed segments at the start of the log are removed; the active segment
// never is.
type RetentionPolicy struct {
	// MaxAge removes a closed segment whose newest message (by message-id
	// time) is older than this. Negative disables age-based retention; a
	// policy that is entirely zero means the default, 168 hours.
	MaxAge time.Duration
	// MaxBytes removes the oldest closed segments while the partition holds
	// more than this many bytes. 0 disables size-based retention.
	MaxBytes int64
	// Action is what to do with the removed segments.
	Action RetentionAction
}

// TopicOptions overrides per topic.
type TopicOptions struct {
	// RetentionSchedule overrides Options.RetentionSchedule for the topic;
	// nil = the Store's.
	RetentionSchedule func(after time.Time) time.Time

	Flush     FlushPolicy
	Retention RetentionPolicy
	// Dir is the root directory of the topic's partition directories
	// (MetaQ's per-topic dataPath); "" = the store's directory. Any other
	// directory must be listed in Options.TopicDirs, so that Open finds the
	// topic's partitions again after a restart.
	Dir string
}

// Options configure a Store. The zero value is usable: group commit, 1 GiB
// segments, 168 h retention checked every 10 minutes, OS file system.
type Options struct {
	FS     FS           // file system; nil = OSFS
	Logger *slog.Logger // nil = discard

	BrokerID       int   // 0..1023, goes into message ids
	MaxSegmentSize int64 // roll threshold; default 1 GiB
	MaxMessageSize int   // largest put data accepted; default 4 MiB
	MaxQueueBytes  int64 // per-partition bytes waiting to be written before Append returns ErrQueueFull; default 64 MiB
	IndexInterval  int   // bytes between sparse index entries (16 B of memory each); default 64 KiB

	// MaxOpenSegments bounds the closed segments whose file (descriptor
	// and memory map) stays open for reads, over the whole Store; the least
	// recently read are closed first, never while a Slice uses them.
	// Active segments (one per partition) come on top. Default 1024.
	MaxOpenSegments int

	Flush     FlushPolicy     // default flush policy
	Retention RetentionPolicy // default retention; zero value = delete after 168 h
	// RetentionSchedule says when age-based retention (MaxAge) runs, as
	// MetaQ's deleteWhen cron does: it returns the first run strictly after
	// its argument, or the zero Time for never. nil = every
	// RetentionInterval. The Store's loop sleeps until the earliest next run
	// of any partition (or RetentionInterval, whichever is sooner).
	RetentionSchedule func(after time.Time) time.Time
	// RetentionInterval is how often the Store runs size-based retention
	// (MaxBytes), and age-based retention of partitions without a schedule;
	// it also bounds how long the loop sleeps before it plans the partitions
	// created meanwhile. 0 = 10 minutes, negative = no retention loop at all
	// (call RunRetention yourself).
	RetentionInterval time.Duration

	// Topic returns the options of a topic (zero fields get the same
	// defaults as above); nil = Flush and Retention above for every topic.
	Topic func(topic string) TopicOptions

	// TopicDirs are the directories besides the store's that
	// TopicOptions.Dir names. Open creates and locks each, and opens and
	// recovers the partitions in it of the topics whose Dir it is.
	TopicDirs []string

	// OnSync, when set, is called by the partition's writer (see writer) after
	// every fsync of a segment with how long it took and its error (for an
	// fsync-latency histogram). After a successful fsync it runs once the
	// fsynced data is visible to reads (End has moved), so it may wake
	// readers waiting for new data. It must be cheap and must not block.
	OnSync func(topic string, partition int, took time.Duration, err error)

	// SyncConcurrency bounds the segment files one commit cycle fdatasyncs
	// at the same time (the cross-partition group commit, commit.go).
	// Default 16.
	SyncConcurrency int
	// FilesystemSyncMin is the number of dirty partitions from which a
	// commit cycle makes them durable with one file-system sync (syncfs)
	// per data directory instead of one fdatasync per partition, when the
	// FS supports it (FilesystemSyncer). Default 4; negative = never.
	FilesystemSyncMin int

	// NoCommitLog turns the commit log off: every commit cycle then
	// syncs the segments it wrote (see doc.go, "Commit log"). Logs left
	// by an earlier run are replayed either way.
	NoCommitLog bool
	// CommitLogMin is the number of partitions in a commit cycle from
	// which the cycle commits through the commit log (one fdatasync of
	// the log) instead of syncing its segments. Default 2: one partition
	// alone fdatasyncs its segment, which costs the same as the log.
	CommitLogMin int
	// CommitLogMaxBytes is the size of a data root's commit log file from
	// which a checkpoint syncs the segments and starts a new file.
	// Default 16 MiB (with 128 MiB the p99 at 100 partitions doubled:
	// each checkpoint wrote back a burst of ~128 MiB while cycles waited).
	CommitLogMaxBytes int64

	// NoVerifyReads disables the CRC check of Slice.ReadAll.
	NoVerifyReads bool

	// Now is the clock (Unix time); nil = time.Now. For tests.
	Now func() time.Time
}

const (
	defaultMaxSegmentSize = 1 << 30
	defaultMaxMessageSize = 4 << 20
	defaultMaxQueueBytes  = 64 << 20
	defaultIndexInterval  = 64 << 10
	defaultMaxOpenSegs    = 1024
	defaultUnflushThresh  = 1000
	defaultUnflushIntvl   = 10 * time.Second
	defaultRetentionAge   = 168 * time.Hour
	defaultRetentionIntvl = 10 * time.Minute
)

func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.BrokerID < 0 || o.BrokerID > 1023 {
		return o, fmt.Errorf("store: BrokerID %d out of range 0..1023", o.BrokerID)
	}
	if o.MaxSegmentSize <= 0 {
		o.MaxSegmentSize = defaultMaxSegmentSize
	}
	if o.MaxSegmentSize > 1<<31-1 {
		return o, fmt.Errorf("store: MaxSegmentSize %d above 2 GiB", o.MaxSegmentSize)
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = defaultMaxMessageSize
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = defaultMaxQueueBytes
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = defaultIndexInterval
	}
	if o.SyncConcurrency <= 0 {
		o.SyncConcurrency = defaultSyncConcurrency
	}
	switch {
	case o.FilesystemSyncMin == 0:
		o.FilesystemSyncMin = defaultFilesystemSyncMin
	case o.FilesystemSyncMin < 0:
		o.FilesystemSyncMin = math.MaxInt
	}
	if o.CommitLogMin <= 0 {
		o.CommitLogMin = defaultCommitLogMin
	}
	if o.CommitLogMaxBytes <= 0 {
		o.CommitLogMaxBytes = defaultCommitLogMax
	}
	if o.MaxOpenSegments <= 0 {
		o.MaxOpenSegments = defaultMaxOpenSegs
	}
	o.Flush = o.Flush.withDefaults()
	o.Retention = o.Retention.withDefaults()
	if o.RetentionInterval == 0 {
		o.RetentionInterval = defaultRetentionIntvl
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

func (f FlushPolicy) withDefaults() FlushPolicy {
	if f.UnflushThreshold <= 0 {
		f.UnflushThreshold = defaultUnflushThresh
	}
	if f.UnflushInterval <= 0 {
		f.UnflushInterval = defaultUnflushIntvl
	}
	return f
}

func (r RetentionPolicy) withDefaults() RetentionPolicy {
	if r == (RetentionPolicy{}) {
		r.MaxAge = defaultRetentionAge
	}
	return r
}

func (o *Options) topic(topic string) TopicOptions {
	if o.Topic == nil {
		return TopicOptions{Flush: o.Flush, Retention: o.Retention, RetentionSchedule: o.RetentionSchedule}
	}
	t := o.Topic(topic)
	t.Flush = t.Flush.withDefaults()
	t.Retention = t.Retention.withDefaults()
	if t.RetentionSchedule == nil {
		t.RetentionSchedule = o.RetentionSchedule
	}
	return t
}
