package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// ReplicaGroup is the consumer group of a follower's gets (the master
// treats a connection that sent `replicate` as a follower, whatever group).
const ReplicaGroup = "__replica"

// PartitionEnd is a partition of the master and its durable end.
type PartitionEnd struct {
	Partition
	End int64
}

// MasterState is what a master reports on the replication stream.
type MasterState struct {
	Partitions []PartitionEnd
	Epochs     []EpochStart
}

// FetchResult is the answer to one Fetch: Data (a whole-message set,
// possibly empty when the follower is caught up), or Moved set when the
// master says to continue at another offset (MovedTo).
type FetchResult struct {
	Data    []byte
	Moved   bool
	MovedTo int64
}

// Source is the follower's view of its master: the connection of one
// replication stream. Implementations: ConnSource (a network connection);
// tests may use their own.
type Source interface {
	// Handshake opens the stream (`replicate`); an error ends the stream.
	Handshake(ctx context.Context, req protocol.ReplicateRequest) error
	// State reads the master's partitions with their durable ends and its
	// epoch history.
	State(ctx context.Context) (MasterState, error)
	// Fetch asks for the master's log of p from offset (a long-poll get of
	// at most maxSize bytes held up to maxWait); the offset acknowledges
	// everything before it.
	Fetch(ctx context.Context, p Partition, offset int64, maxSize int, maxWait time.Duration) (FetchResult, error)
	Close() error
}

// DefaultFollowerMaxWait is a follower's default long-poll wait: an idle
// replicated broker of 10,000 partitions then makes 500 fetches a second
// instead of 20,000 (500 ms before). Below the master's 30 s cap on a long
// poll and the connection's 30 s heartbeat timeout (the partition list is
// read every RefreshInterval besides, so replies keep arriving).
const DefaultFollowerMaxWait = 20 * time.Second

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	BrokerID int
	MemberID int
	Sync     bool
	Epoch    int64
	Store    *store.Store
	// Dial opens a stream to the master.
	Dial func(ctx context.Context) (Source, error)
	// MaxFetchBytes bounds one fetch (the in-flight data per partition);
	// default 1 MiB.
	MaxFetchBytes int
	// MaxWait is the long-poll wait of a caught-up fetch; default
	// DefaultFollowerMaxWait. The master answers a parked fetch as soon as
	// data arrives, and counts a parked follower as caught up until then
	// (Tracker.Appended), so the wait costs no latency and no in-sync
	// membership: it only bounds how often an idle partition is asked for
	// again (partitions / MaxWait fetches a second). It must stay below the
	// connection's heartbeat timeout (30 s), since a parked fetch is a
	// request without a reply.
	MaxWait time.Duration
	// RetryInterval is the pause before reconnecting; default 200 ms.
	RetryInterval time.Duration
	// RefreshInterval is how often the master's partition list is read;
	// default 500 ms (a new partition is followed about that soon).
	RefreshInterval time.Duration
	Logger          *slog.Logger
}

// Follower copies its master's partitions into its store, byte for byte,
// over one Source at a time, reconnecting after errors. It resumes from its
// own log ends (a wiped store resyncs from the start). One goroutine per
// partition keeps one fetch in flight, so memory in flight is bounded by
// partitions × MaxFetchBytes.
type Follower struct {
	opts   FollowerOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex // guards the fields below
	connected bool
	master    map[Partition]int64 // master ends as last seen
	caughtUp  map[Partition]bool  // the last fetch of the partition found nothing new
	lastErr   error
}

// StartFollower starts following; Stop ends it.
func StartFollower(opts FollowerOptions) *Follower {
	if opts.MaxFetchBytes <= 0 {
		opts.MaxFetchBytes = 1 << 20
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultFollowerMaxWait
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 200 * time.Millisecond
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{opts: opts, cancel: cancel, done: make(chan struct{}),
		master: map[Partition]int64{}, caughtUp: map[Partition]bool{}}
	go f.run(ctx)
	return f
}

// Stop stops following and waits for the follower's goroutines. Idempotent.
func (f *Follower) Stop() {
	f.cancel()
	<-f.done
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	for ctx.Err() == nil {
		err := f.session(ctx)
		f.mu.Lock()
		f.connected, f.lastErr = false, err
		clear(f.caughtUp)
		f.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		f.opts.Logger.Warn("replica: replication stream ended; reconnecting", "err", err)
		t := time.NewTimer(f.opts.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session runs one stream: handshake, then a fetch loop per partition,
// until an error.
func (f *Follower) session(parent context.Context) error {
	src, err := f.opts.Dial(parent)
	if err != nil {
		return err
	}
	defer src.Close()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	err = src.Handshake(ctx, protocol.ReplicateRequest{BrokerID: int32(f.opts.BrokerID), MemberID: int32(f.opts.MemberID),
		Sync: f.opts.Sync, Epoch: f.opts.Epoch})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.connected = true
	f.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	running := map[Partition]bool{}
	tick := time.NewTicker(f.opts.RefreshInterval)
	defer tick.Stop()
	for {
		st, err := src.State(ctx)
		if err != nil {
			return err
		}
		for _, pe := range st.Partitions {
			f.noteMaster(pe.Partition, pe.End)
			if !running[pe.Partition] {
				running[pe.Partition] = true
				wg.Add(1)
				go func(p Partition) {
					defer wg.Done()
					if err := f.follow(ctx, src, p); err != nil && ctx.Err() == nil {
						cancel(fmt.Errorf("replica: partition %s: %w", p, err))
					}
				}(pe.Partition)
			}
		}
		select {
		case <-ctx.Done():
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (f *Follower) noteMaster(p Partition, end int64) {
	f.mu.Lock()
	f.master[p] = max(f.master[p], end)
	f.mu.Unlock()
}

// follow copies one partition until ctx ends or an error.
func (f *Follower) follow(ctx context.Context, src Source, p Partition) error {
	sp, err := f.opts.Store.Partition(p.Topic, p.Part, true)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		off := sp.End()
		res, err := src.Fetch(ctx, p, off, f.opts.MaxFetchBytes, f.opts.MaxWait)
		if err != nil {
			return err
		}
		if res.Moved {
			if err := f.moved(ctx, sp, off, res.MovedTo); err != nil {
				return err
			}
			continue
		}
		f.mu.Lock()
		f.caughtUp[p] = len(res.Data) == 0
		f.mu.Unlock()
		if len(res.Data) == 0 {
			continue
		}
		if _, err := sp.AppendRawSync(ctx, off, res.Data); err != nil {
			return err
		}
		// Durable before the next fetch acknowledges it, whatever the
		// topic's flush mode (in threshold mode the append only wrote).
		if err := sp.Flush(ctx); err != nil {
			return err
		}
		f.noteMaster(p, off+int64(len(res.Data)))
	}
	return nil
}

// moved handles a 301: the master's log starts after the follower's end
// (retention removed it): an empty partition starts there; a non-empty one
// cannot be continued (a hole).
func (f *Follower) moved(ctx context.Context, sp *store.Partition, off, to int64) error {
	if to > off && sp.Stats().Messages == 0 {
		f.opts.Logger.Info("replica: master's log starts later; starting the partition there", "topic", sp.Topic(), "partition", sp.ID(), "offset", to)
		return sp.Truncate(ctx, to)
	}
	if to > off {
		return fmt.Errorf("the master's log of %s-%d starts at %d, after this follower's end %d: stop the follower, remove its data directory and start it again for a full resync", sp.Topic(), sp.ID(), to, off)
	}
	return fmt.Errorf("the master's log of %s-%d ends at %d, before this follower's end %d: this follower has a tail the master does not (it must truncate per the leader-epoch rule; restart it)", sp.Topic(), sp.ID(), to, off)
}

// FollowerStatus is the follower's view of its replication.
type FollowerStatus struct {
	Connected bool
	LagBytes  int64 // master ends as last seen minus local ends
	CaughtUp  bool  // connected and the last fetch of every partition found nothing new
	Err       error // why the last stream ended
}

// Status reports the follower's state.
func (f *Follower) Status() FollowerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FollowerStatus{Connected: f.connected, Err: f.lastErr, CaughtUp: f.connected}
	for p, end := range f.master {
		var local int64
		if sp, err := f.opts.Store.Partition(p.Topic, p.Part, false); err == nil {
			local = sp.End()
		}
		s.LagBytes += max(0, end-local)
		if !f.caughtUp[p] {
			s.CaughtUp = false
		}
	}
	return s
}
