package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotEnoughReplicas is matched (errors.Is) by *NotEnoughReplicasError.
var ErrNotEnoughReplicas = errors.New("not enough in-sync replicas")

// ErrNotLeading is what puts waiting for their replicas get when the
// Tracker stops (the broker stops being master or shuts down).
var ErrNotLeading = errors.New("replica: this broker stopped being master before the put was replicated; retry (it may have been stored)")

// NotEnoughReplicasError refuses a put (rule 1): fewer sync slaves are in
// the in-sync set than minSyncSlaves. Wire code 503, retriable.
type NotEnoughReplicasError struct {
	Have, Need int
}

func (e *NotEnoughReplicasError) Error() string {
	return fmt.Sprintf("not enough in-sync replicas (have %d, need %d)", e.Have, e.Need)
}

// Is makes errors.Is(err, ErrNotEnoughReplicas) true.
func (e *NotEnoughReplicasError) Is(target error) bool { return target == ErrNotEnoughReplicas }

// TrackerOptions configure a master's Tracker.
type TrackerOptions struct {
	// MinSyncSlaves: puts are refused while fewer sync slaves are in sync.
	MinSyncSlaves int
	// MaxDelay (slaveMaxDelayInMills): an in-sync follower whose
	// acknowledgements lag longer leaves the in-sync set. Default 10 s.
	MaxDelay time.Duration
	// InSync is the persisted in-sync set the master starts with.
	InSync []int
	// Persist durably records a new in-sync set (the ZooKeeper isr node)
	// before the Tracker uses it (rule 2). Nil keeps it in memory only.
	Persist func(ctx context.Context, inSync []int) error
	// End returns the master's durable end of a partition.
	End func(Partition) int64
	// Partitions lists the master's partitions.
	Partitions func() []Partition
	// The owner calls Tracker.Appended after each advance of a
	// partition's End: between two checks the Tracker looks only at the
	// partitions that advanced or that a follower was behind on.
	// CheckInterval is how often lag is checked; default MaxDelay/4 within [10ms, 1s].
	CheckInterval time.Duration
	// OnAdvance, when set, is called (without the Tracker's locks) after
	// the high watermark of a partition may have moved: an in-sync
	// follower acknowledged more, or the in-sync set changed. It must not
	// block; the broker wakes the consumers' long polls with it.
	OnAdvance func(Partition)
	Now       func() time.Time
	Logger    *slog.Logger
}

// Tracker is the master side of replication: the followers' acknowledged
// offsets, their lag, the in-sync set, and the sync gate that holds put
// replies until every in-sync follower has the messages. Safe for
// concurrent use. Its loop goroutine runs from NewTracker until Close.
type Tracker struct {
	opts  TrackerOptions
	start time.Time

	pmu sync.Mutex // serialises changes of the in-sync set (held across Persist)

	mu        sync.Mutex // guards the fields below
	followers map[int]*peer
	seen      map[Partition]time.Time // when the Tracker first saw each partition
	inSync    []int                   // sorted; sync followers only
	joining   []int                   // followers being added to inSync (persist in progress): they count for acks already
	waiters   map[Partition][]waiter
	closed    bool
	admitOK   atomic.Bool // !closed && len(inSync) >= MinSyncSlaves, for Admit without the lock
	// The lag check walks only the partitions that can have a lag: those
	// whose end moved (Appended) or whose acknowledgement went back since
	// the last check (dirty), and those a watched follower was behind on at
	// the last check (behind). A follower starting to be watched (Attach of
	// a sync follower, or the in-sync set the Tracker starts with) may be
	// behind anywhere: the next check walks every partition (full).
	dirty  map[Partition]struct{}
	behind map[Partition]struct{}
	full   bool

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	checks   atomic.Int64 // check calls (tests count them)
	walked   atomic.Int64 // partitions looked at by checks (tests count them)
	idle     atomic.Bool  // the loop sleeps until kicked: nothing to check
	watching atomic.Bool  // a follower is watched: Appended records dirty partitions
}

// peer is the Tracker's view of one follower.
type peer struct {
	member   int
	sync     bool
	streams  int // attached replication streams
	since    time.Time
	acked    map[Partition]int64
	caughtUp map[Partition]time.Time // last time the follower was known to be at the master's end
	// atEnd holds the partitions where the last acknowledgement reached the
	// master's end and no advance of the end was seen since: the follower
	// stays caught up there until the next Appended, however long its
	// long-poll fetch is parked, so a follower idle for longer than
	// MaxDelay does not look lagging the moment new data arrives (lag counts
	// from that moment, not from its last fetch).
	atEnd map[Partition]bool
}

type waiter struct {
	end  int64
	done func(error)
}

// NewTracker starts a Tracker; Close stops it.
func NewTracker(opts TrackerOptions) *Tracker {
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 10 * time.Second
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = min(max(opts.MaxDelay/4, 10*time.Millisecond), time.Second)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Tracker{opts: opts, start: opts.Now(), followers: map[int]*peer{}, seen: map[Partition]time.Time{}, waiters: map[Partition][]waiter{},
		dirty: map[Partition]struct{}{}, behind: map[Partition]struct{}{}, full: true,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	t.watching.Store(len(opts.InSync) > 0)
	for _, m := range opts.InSync {
		t.peerLocked(m, true)
	}
	t.inSync = sortedSet(opts.InSync)
	t.refreshAdmitLocked()
	go t.loop()
	return t
}

func sortedSet(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func (t *Tracker) peerLocked(member int, isSync bool) *peer {
	p := t.followers[member]
	if p == nil {
		p = &peer{member: member, sync: isSync, since: t.opts.Now(), acked: map[Partition]int64{}, caughtUp: map[Partition]time.Time{},
			atEnd: map[Partition]bool{}}
		t.followers[member] = p
	}
	return p
}

// Attach registers a replication stream of member; the returned func
// detaches it. A member's acknowledgements survive reconnections.
func (t *Tracker) Attach(member int, isSync bool) (detach func()) {
	t.mu.Lock()
	p := t.peerLocked(member, isSync)
	p.sync = isSync
	p.streams++
	if isSync {
		t.full = true // it may be behind on any partition
		t.watching.Store(true)
	}
	t.mu.Unlock()
	if isSync {
		t.signal() // it may join the in-sync set: the loop must look
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			p.streams--
			t.mu.Unlock()
		})
	}
}

// Ack records that member has everything of part before offset durably
// (its get at offset) and releases the puts that this covers.
func (t *Tracker) Ack(member int, part Partition, offset int64) {
	t.mu.Lock()
	p := t.followers[member]
	if p == nil || t.closed {
		t.mu.Unlock()
		return
	}
	if old, ok := p.acked[part]; ok && offset < old && t.watching.Load() {
		t.dirty[part] = struct{}{} // behind again where it was not
	}
	p.acked[part] = offset
	now := t.opts.Now()
	if offset >= t.opts.End(part) {
		p.caughtUp[part] = now
		p.atEnd[part] = true
	} else {
		delete(p.atEnd, part)
	}
	var ready []func(error)
	counts := slices.Contains(t.inSync, member) || slices.Contains(t.joining, member)
	if counts {
		ready = t.releaseLocked(part, ready)
	} else if p.sync && p.streams > 0 {
		t.signal() // maybe it can join the in-sync set
	}
	t.mu.Unlock()
	for _, f := range ready {
		f(nil)
	}
	if counts && t.opts.OnAdvance != nil {
		t.opts.OnAdvance(part)
	}
}

// Appended records that part's End advanced: the next check looks at it,
// and a follower that was at the end until now falls behind from now (see
// peer.atEnd). Cheap when no follower is watched (one atomic load); it must
// not block.
func (t *Tracker) Appended(part Partition) {
	if !t.watching.Load() {
		return
	}
	t.mu.Lock()
	if t.watching.Load() {
		t.dirty[part] = struct{}{}
		var now time.Time
		for _, p := range t.followers {
			if !p.atEnd[part] {
				continue
			}
			if p.streams == 0 { // detached: it waits on nothing, its lag counts from its last ack
				delete(p.atEnd, part)
				continue
			}
			if now.IsZero() {
				now = t.opts.Now()
			}
			p.caughtUp[part] = now
			if p.acked[part] < t.opts.End(part) {
				delete(p.atEnd, part) // an Appended after the follower's ack of the new end keeps it
			}
		}
	}
	t.mu.Unlock()
}

// Watermark returns the high watermark of part: how far consumers may
// read. It is end (the master's durable end) bounded by the acknowledged
// offset of every sync follower in the in-sync set, so a consumer never
// reads a message that a failover to an in-sync follower could take back.
// With no follower in the in-sync set it is end.
func (t *Tracker) Watermark(part Partition, end int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.countingLocked() {
		if p := t.followers[m]; p != nil {
			end = min(end, p.acked[part])
		} else {
			return 0
		}
	}
	return end
}

// countingLocked is the followers whose acknowledgements a put waits for:
// the in-sync set and the followers joining it.
func (t *Tracker) countingLocked() []int {
	if len(t.joining) == 0 {
		return t.inSync
	}
	return append(slices.Clone(t.inSync), t.joining...)
}

// refreshAdmitLocked recomputes the lock-free admission flag after closed or
// inSync changed.
func (t *Tracker) refreshAdmitLocked() {
	t.admitOK.Store(!t.closed && len(t.inSync) >= t.opts.MinSyncSlaves)
}

// Admit refuses a put up front when fewer than MinSyncSlaves are in sync.
// It runs for every put on the event loop, so the common case is one atomic
// load; the lock is taken only to build the refusal.
func (t *Tracker) Admit() error {
	if t.admitOK.Load() {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrNotLeading
	}
	if have := len(t.inSync); have < t.opts.MinSyncSlaves {
		return &NotEnoughReplicasError{Have: have, Need: t.opts.MinSyncSlaves}
	}
	return nil
}

// Wait calls done once every in-sync follower acknowledged part up to end
// (at once, on the calling goroutine, when they already have), with a
// *NotEnoughReplicasError when the in-sync set shrinks below MinSyncSlaves
// first, or ErrNotLeading when the Tracker closes. Calls for one partition
// must come in increasing end order (the store's callback order). done
// must not block.
func (t *Tracker) Wait(part Partition, end int64, done func(error)) {
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		done(ErrNotLeading)
	case len(t.inSync) < t.opts.MinSyncSlaves:
		err := &NotEnoughReplicasError{Have: len(t.inSync), Need: t.opts.MinSyncSlaves}
		t.mu.Unlock()
		done(err)
	case len(t.waiters[part]) == 0 && t.coveredLocked(part, end):
		t.mu.Unlock()
		done(nil)
	default:
		t.waiters[part] = append(t.waiters[part], waiter{end: end, done: done})
		t.mu.Unlock()
	}
}

func (t *Tracker) coveredLocked(part Partition, end int64) bool {
	for _, m := range t.countingLocked() {
		p := t.followers[m]
		if p == nil || p.acked[part] < end {
			return false
		}
	}
	return true
}

// releaseLocked appends the callbacks of part's covered waiters to ready.
func (t *Tracker) releaseLocked(part Partition, ready []func(error)) []func(error) {
	ws := t.waiters[part]
	i := 0
	for i < len(ws) && t.coveredLocked(part, ws[i].end) {
		ready = append(ready, ws[i].done)
		i++
	}
	if i == len(ws) {
		delete(t.waiters, part)
	} else if i > 0 {
		t.waiters[part] = slices.Delete(ws, 0, i)
	}
	return ready
}

func (t *Tracker) signal() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// loop checks every CheckInterval while there is something to check
// (activeLocked) and sleeps without a timer otherwise, until a kick (Attach
// of a sync follower, or an Ack of one that may join) wakes it.
func (t *Tracker) loop() {
	defer close(t.done)
	tick := time.NewTicker(t.opts.CheckInterval)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-t.stop; cancel() }()
	active := true
	for {
		var ticks <-chan time.Time
		if active {
			ticks = tick.C
		}
		select {
		case <-t.stop:
			return
		case <-ticks:
		case <-t.kick:
		}
		t.check(ctx)
		t.mu.Lock()
		now := t.activeLocked()
		t.mu.Unlock()
		switch {
		case now && !active:
			tick.Reset(t.opts.CheckInterval)
		case !now && active:
			tick.Stop()
		}
		active = now
		t.idle.Store(!active)
	}
}

// activeLocked reports whether check has anything to look at: a follower
// in (or joining) the in-sync set whose lag must be watched, or a
// connected sync follower that may join it. Without one, check would walk
// every partition for nothing.
func (t *Tracker) activeLocked() bool {
	if len(t.inSync) > 0 || len(t.joining) > 0 {
		return true
	}
	for m, p := range t.followers {
		if p.sync && p.streams > 0 && !slices.Contains(t.inSync, m) {
			return true
		}
	}
	return false
}

// check shrinks the in-sync set by the followers lagging over MaxDelay and
// grows it by caught-up sync followers; the new set is persisted before it
// is used (rule 2).
func (t *Tracker) check(ctx context.Context) {
	t.checks.Add(1)
	t.pmu.Lock()
	defer t.pmu.Unlock()
	t.mu.Lock()
	if !t.activeLocked() { // nobody to look at: the in-sync set stays empty
		t.watching.Store(false)
		clear(t.dirty)
		clear(t.behind)
		t.mu.Unlock()
		return
	}
	now := t.opts.Now()
	parts, ends := t.walkLocked()
	var next []int
	for _, m := range t.inSync {
		if _, ms := t.lagLocked(t.followers[m], parts, ends, now); ms <= t.opts.MaxDelay {
			next = append(next, m)
		} else {
			t.opts.Logger.Warn("replica: follower leaves the in-sync set", "member", m, "lag", ms)
		}
	}
	for m, p := range t.followers {
		if p.sync && p.streams > 0 && !slices.Contains(t.inSync, m) {
			if b, _ := t.lagLocked(p, parts, ends, now); b == 0 {
				next = append(next, m)
				t.opts.Logger.Info("replica: follower joins the in-sync set", "member", m)
			}
		}
	}
	next = sortedSet(next)
	same := slices.Equal(next, t.inSync)
	// A joining follower counts for acknowledgements from now on, before
	// the grown set is persisted: once it is in the persisted set it may be
	// elected, so it must hold every put acknowledged from then on. It keeps
	// counting after a failed write (which may have reached ZooKeeper) until
	// a write succeeds.
	pending := len(t.joining) > 0
	for _, m := range next {
		if !slices.Contains(t.inSync, m) && !slices.Contains(t.joining, m) {
			t.joining = append(t.joining, m)
		}
	}
	t.mu.Unlock()
	if same && !pending {
		return
	}
	if t.opts.Persist != nil {
		pctx, cancel := context.WithTimeout(ctx, max(t.opts.MaxDelay, 5*time.Second))
		err := t.opts.Persist(pctx, next)
		cancel()
		if err != nil {
			t.opts.Logger.Error("replica: cannot record the in-sync set; puts waiting for replicas stay held", "in_sync", next, "err", err)
			return
		}
	}
	t.mu.Lock()
	t.joining = nil
	t.inSync = next
	t.refreshAdmitLocked()
	var ready, refused []func(error)
	short := len(next) < t.opts.MinSyncSlaves
	for part, ws := range t.waiters {
		if short {
			for _, w := range ws {
				refused = append(refused, w.done)
			}
			delete(t.waiters, part)
			continue
		}
		ready = t.releaseLocked(part, ready)
	}
	t.mu.Unlock()
	for _, f := range ready {
		f(nil)
	}
	err := &NotEnoughReplicasError{Have: len(next), Need: t.opts.MinSyncSlaves}
	for _, f := range refused {
		f(err)
	}
	if t.opts.OnAdvance != nil { // the watermark of every partition may have moved
		for _, part := range t.opts.Partitions() {
			t.opts.OnAdvance(part)
		}
	}
}

// walkLocked returns the partitions the check looks at and their ends:
// every partition after a follower started being watched, else only the
// dirty ones and those a watched follower was behind on; it records which
// of them a watched follower is behind on now.
func (t *Tracker) walkLocked() ([]Partition, []int64) {
	var parts []Partition
	if t.full {
		parts = t.opts.Partitions()
		t.full = false
		clear(t.behind)
	} else {
		parts = make([]Partition, 0, len(t.dirty)+len(t.behind))
		for part := range t.dirty {
			parts = append(parts, part)
		}
		for part := range t.behind {
			if _, ok := t.dirty[part]; !ok {
				parts = append(parts, part)
			}
		}
	}
	clear(t.dirty)
	t.walked.Add(int64(len(parts)))
	ends := make([]int64, len(parts))
	watched := t.watchedLocked()
	for i, part := range parts {
		ends[i] = t.opts.End(part)
		lagging := false
		for _, p := range watched {
			if p == nil || p.acked[part] < ends[i] {
				lagging = true
				break
			}
		}
		if lagging {
			t.behind[part] = struct{}{}
		} else {
			delete(t.behind, part)
		}
	}
	return parts, ends
}

// watchedLocked is the followers whose lag check looks at: the in-sync
// set, the joining followers and the connected sync followers (nil for a
// member of the in-sync set the Tracker knows nothing of).
func (t *Tracker) watchedLocked() []*peer {
	var out []*peer
	for _, m := range t.countingLocked() {
		out = append(out, t.followers[m])
	}
	for m, p := range t.followers {
		if p.sync && p.streams > 0 && !slices.Contains(t.inSync, m) && !slices.Contains(t.joining, m) {
			out = append(out, p)
		}
	}
	return out
}

// lagLocked returns how far p is behind over parts, whose ends are ends
// (nil: ask End): bytes, and the time since it last reached the end of a
// partition it is behind on.
func (t *Tracker) lagLocked(p *peer, parts []Partition, ends []int64, now time.Time) (int64, time.Duration) {
	var bytes int64
	var d time.Duration
	for i, part := range parts {
		var end int64
		if ends != nil {
			end = ends[i]
		} else {
			end = t.opts.End(part)
		}
		seen, ok := t.seen[part]
		if !ok {
			seen = now
			t.seen[part] = now
		}
		// Lag counts from the last time the follower reached the end, at
		// the earliest from when it attached or the partition appeared.
		since := latest(t.start, seen)
		var acked int64
		if p != nil {
			acked = p.acked[part]
			since = latest(since, p.since, p.caughtUp[part])
		}
		if acked >= end {
			continue
		}
		bytes += end - acked
		d = max(d, now.Sub(since))
	}
	return bytes, d
}

// InSync returns the in-sync set in use.
func (t *Tracker) InSync() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.inSync)
}

// FollowerStats is one follower as the master sees it.
type FollowerStats struct {
	Member     int
	Sync       bool
	Connected  bool
	InSync     bool
	AckedBytes int64 // sum of the acknowledged offsets over all partitions
	LagBytes   int64
	Lag        time.Duration
}

// Stats returns every known follower, by member id.
func (t *Tracker) Stats() []FollowerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.opts.Now()
	parts := t.opts.Partitions()
	out := make([]FollowerStats, 0, len(t.followers))
	for m, p := range t.followers {
		s := FollowerStats{Member: m, Sync: p.sync, Connected: p.streams > 0, InSync: slices.Contains(t.inSync, m)}
		for _, a := range p.acked {
			s.AckedBytes += a
		}
		s.LagBytes, s.Lag = t.lagLocked(p, parts, nil, now)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b FollowerStats) int { return a.Member - b.Member })
	return out
}

// Close stops the Tracker; waiting puts get ErrNotLeading. Idempotent.
func (t *Tracker) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.done
		return
	}
	t.closed = true
	t.refreshAdmitLocked()
	var refused []func(error)
	for part, ws := range t.waiters {
		for _, w := range ws {
			refused = append(refused, w.done)
		}
		delete(t.waiters, part)
	}
	t.mu.Unlock()
	close(t.stop)
	<-t.done
	for _, f := range refused {
		f(ErrNotLeading)
	}
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
