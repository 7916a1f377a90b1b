package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeEnds struct {
	mu   sync.Mutex
	ends map[Partition]int64
}

func (f *fakeEnds) set(p Partition, e int64) { f.mu.Lock(); f.ends[p] = e; f.mu.Unlock() }

// advance moves p's end to e and tells tr, as the broker's store hook does.
func advance(tr *Tracker, f *fakeEnds, p Partition, e int64) {
	f.set(p, e)
	tr.Appended(p)
}
func (f *fakeEnds) end(p Partition) int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.ends[p] }
func (f *fakeEnds) parts() []Partition {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Partition
	for p := range f.ends {
		out = append(out, p)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The gate: no delay without in-sync followers; a put waits for every
// in-sync follower's acknowledgement; a lagging follower is dropped only
// after the new set is persisted, and then the waiting puts are refused
// when fewer than MinSyncSlaves remain.
func TestTrackerGate(t *testing.T) {
	p := Partition{"t", 0}
	ends := &fakeEnds{ends: map[Partition]int64{p: 0}}
	var persisted atomic.Pointer[[]int]
	var persistErr atomic.Bool
	var failed atomic.Int32
	tr := NewTracker(TrackerOptions{MinSyncSlaves: 1, MaxDelay: 200 * time.Millisecond, End: ends.end, Partitions: ends.parts,
		Persist: func(_ context.Context, s []int) error {
			if persistErr.Load() {
				failed.Add(1)
				return errors.New("zk down")
			}
			persisted.Store(&s)
			return nil
		}})
	defer tr.Close()
	if err := tr.Admit(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("Admit with nobody in sync: %v", err)
	}
	detach := tr.Attach(1, true)
	tr.Ack(1, p, 0)
	eventually(t, "member 1 in sync", func() bool { return len(tr.InSync()) == 1 })
	if got := persisted.Load(); got == nil || len(*got) != 1 {
		t.Fatalf("in-sync set used before it was persisted: %v", got)
	}
	if err := tr.Admit(); err != nil {
		t.Fatalf("Admit with one in sync (min 1): %v", err)
	}
	advance(tr, ends, p, 100)
	res := make(chan error, 1)
	tr.Wait(p, 100, func(err error) { res <- err })
	select {
	case err := <-res:
		t.Fatalf("put answered before the follower acknowledged: %v", err)
	default:
	}
	tr.Ack(1, p, 100)
	if err := <-res; err != nil {
		t.Fatal(err)
	}

	// The follower goes away; ZooKeeper is down: the put stays held.
	detach()
	persistErr.Store(true)
	advance(tr, ends, p, 200)
	tr.Wait(p, 200, func(err error) { res <- err })
	eventually(t, "two failed attempts to record the shrink", func() bool { return failed.Load() >= 2 })
	select {
	case err := <-res:
		t.Fatalf("put answered while the shrink could not be persisted: %v", err)
	default:
	}
	persistErr.Store(false)
	if err := <-res; !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("held put: %v, want not enough replicas", err)
	}
	if s := *persisted.Load(); len(s) != 0 {
		t.Fatalf("persisted %v after the shrink", s)
	}
	if err := tr.Admit(); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("Admit after the shrink: %v, want not enough replicas", err)
	}
	tr.Close()
	if err := tr.Admit(); !errors.Is(err, ErrNotLeading) {
		t.Fatalf("Admit after Close: %v, want ErrNotLeading", err)
	}
}

// An async follower never joins the in-sync set and never holds a put.
func TestTrackerAsyncNeverCounts(t *testing.T) {
	p := Partition{"t", 0}
	ends := &fakeEnds{ends: map[Partition]int64{p: 50}}
	tr := NewTracker(TrackerOptions{MaxDelay: time.Hour, End: ends.end, Partitions: ends.parts, CheckInterval: time.Millisecond})
	defer tr.Close()
	tr.Attach(2, false)
	tr.Ack(2, p, 50)
	done := make(chan error, 1)
	tr.Wait(p, 60, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := tr.InSync(); len(s) != 0 {
		t.Fatalf("async follower in the in-sync set: %v", s)
	}
}

// A follower joining the in-sync set counts for acknowledgements from the
// moment the Tracker decides to add it, while the grown set is being
// persisted: once the set is in ZooKeeper the follower may be elected, so
// a put acknowledged without it in that window could be lost. Without the
// rule the put below is answered at once (the set in use is still empty).
func TestTrackerJoiningFollowerCountsWhileTheSetIsPersisted(t *testing.T) {
	p := Partition{"t", 0}
	ends := &fakeEnds{ends: map[Partition]int64{p: 0}}
	persisting := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	tr := NewTracker(TrackerOptions{MaxDelay: time.Minute, End: ends.end, Partitions: ends.parts,
		Persist: func(ctx context.Context, s []int) error {
			once.Do(func() { close(persisting) })
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
	defer tr.Close()
	tr.Attach(1, true)
	tr.Ack(1, p, 0)
	<-persisting // the Tracker decided that member 1 joins and is writing it
	advance(tr, ends, p, 100)
	res := make(chan error, 1)
	tr.Wait(p, 100, func(err error) { res <- err })
	if hw := tr.Watermark(p, 100); hw != 0 {
		t.Fatalf("watermark %d while the joining follower has acknowledged 0", hw)
	}
	close(release)
	eventually(t, "member 1 in sync", func() bool { return len(tr.InSync()) == 1 })
	select {
	case err := <-res:
		t.Fatalf("put answered before the joining follower acknowledged it: %v", err)
	default:
	}
	tr.Ack(1, p, 100)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if hw := tr.Watermark(p, 100); hw != 100 {
		t.Fatalf("watermark %d after the acknowledgement, want 100", hw)
	}
}

// Admit is lock-free while puts are admitted; it must still refuse as soon as
// the tracker is closed (this broker stopped leading).
func TestTrackerAdmitRefusesAfterClose(t *testing.T) {
	ends := &fakeEnds{ends: map[Partition]int64{}}
	tr := NewTracker(TrackerOptions{MaxDelay: time.Minute, End: ends.end, Partitions: ends.parts})
	if err := tr.Admit(); err != nil {
		t.Fatalf("Admit with no minimum: %v", err)
	}
	tr.Close()
	if err := tr.Admit(); !errors.Is(err, ErrNotLeading) {
		t.Fatalf("Admit after Close: %v, want ErrNotLeading", err)
	}
}

// A Tracker with nobody to watch (no follower in or joining the in-sync
// set, no connected sync follower) sleeps without a timer and walks no
// partition: an idle single broker of 10,000 partitions used to build the
// list of every partition each second. Attaching a sync follower wakes it:
// the follower joins, and its lag is still noticed.
func TestTrackerWithoutFollowersWalksNoPartition(t *testing.T) {
	p := Partition{"t", 0}
	ends := &fakeEnds{ends: map[Partition]int64{p: 10, {"t", 1}: 0, {"u", 0}: 5}}
	var walks atomic.Int64
	tr := NewTracker(TrackerOptions{MaxDelay: 100 * time.Millisecond, CheckInterval: time.Millisecond, End: ends.end,
		Partitions: func() []Partition { walks.Add(1); return ends.parts() }})
	defer tr.Close()
	eventually(t, "the loop asleep", tr.idle.Load)
	for i := 0; i < 5; i++ { // checks that run (kicked) find nothing to walk
		n := tr.checks.Load()
		tr.signal()
		eventually(t, "a kicked check", func() bool { return tr.checks.Load() > n && tr.idle.Load() })
	}
	if w := walks.Load(); w != 0 {
		t.Fatalf("a Tracker without followers listed the partitions %d times", w)
	}

	detach := tr.Attach(1, true)
	tr.Ack(1, p, 10)
	tr.Ack(1, Partition{"u", 0}, 5)
	eventually(t, "member 1 in sync", func() bool { return len(tr.InSync()) == 1 })
	if tr.idle.Load() {
		t.Fatal("the loop sleeps while a follower is in sync")
	}
	advance(tr, ends, p, 20) // member 1 never acknowledges: it must leave the set
	eventually(t, "member 1 out of sync", func() bool { return len(tr.InSync()) == 0 })
	detach()
	eventually(t, "the loop asleep again", tr.idle.Load)
	w := walks.Load()
	for i := 0; i < 3; i++ {
		n := tr.checks.Load()
		tr.signal()
		eventually(t, "a kicked check", func() bool { return tr.checks.Load() > n && tr.idle.Load() })
	}
	if got := walks.Load(); got != w {
		t.Fatalf("an idle Tracker listed the partitions %d more times", got-w)
	}
}

// With a caught-up in-sync follower, a check looks only at the partitions
// that advanced (or that a follower is behind on), not at all of them:
// an idle replicated broker of 10,000 partitions walked them all each
// check. The lag on the one partition that advanced is still noticed.
func TestTrackerCheckWalksOnlyWhatAdvanced(t *testing.T) {
	const n = 100
	ends := &fakeEnds{ends: map[Partition]int64{}}
	for i := 0; i < n; i++ {
		ends.ends[Partition{"t", i}] = 10
	}
	tr := NewTracker(TrackerOptions{MaxDelay: 200 * time.Millisecond, CheckInterval: time.Millisecond, End: ends.end, Partitions: ends.parts})
	defer tr.Close()
	tr.Attach(1, true)
	for i := 0; i < n; i++ {
		tr.Ack(1, Partition{"t", i}, 10)
	}
	eventually(t, "member 1 in sync", func() bool { return len(tr.InSync()) == 1 })
	waitChecks := func(k int64) {
		t.Helper()
		c := tr.checks.Load()
		eventually(t, "more checks", func() bool { return tr.checks.Load() >= c+k })
	}
	waitChecks(2) // past the walk that found member 1 behind, if any
	w := tr.walked.Load()
	waitChecks(20)
	if got := tr.walked.Load() - w; got != 0 {
		t.Fatalf("20 checks of an idle partition set looked at %d partitions", got)
	}

	p := Partition{"t", 7}
	advance(tr, ends, p, 20) // member 1 does not acknowledge it: it must leave the set
	c := tr.checks.Load()
	eventually(t, "member 1 out of sync", func() bool { return len(tr.InSync()) == 0 })
	walked, checks := tr.walked.Load()-w, tr.checks.Load()-c
	t.Logf("%d checks looked at %d partitions until the lag was noticed", checks, walked)
	if walked > checks+1 {
		t.Fatalf("%d checks looked at %d partitions: more than the one that advanced", checks, walked)
	}
}

// The lag check of an idle master of 10,000 partitions with one caught-up
// in-sync follower (it ran once per CheckInterval, a second by default).
func BenchmarkTrackerIdleCheck10k(b *testing.B) {
	ends := &fakeEnds{ends: map[Partition]int64{}}
	for i := 0; i < 10000; i++ {
		ends.ends[Partition{fmt.Sprintf("topic%d", i/100), i % 100}] = 100
	}
	tr := NewTracker(TrackerOptions{MaxDelay: time.Hour, CheckInterval: time.Hour, End: ends.end, Partitions: ends.parts, InSync: []int{1}})
	defer tr.Close()
	tr.Attach(1, true)
	for p := range ends.ends {
		tr.Ack(1, p, 100)
	}
	tr.check(context.Background()) // the full walk after the attach
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.check(context.Background())
	}
}

// A caught-up follower whose long-poll fetch stays parked for longer than
// MaxDelay (an idle partition) is not lagging when data arrives: its lag
// counts from the append that put it behind, not from its last fetch. It
// still leaves the in-sync set when it then does not acknowledge for
// MaxDelay, and a detached follower's lag counts from its last ack.
func TestTrackerIdleFollowerLagCountsFromTheAppend(t *testing.T) {
	p := Partition{"t", 0}
	ends := &fakeEnds{ends: map[Partition]int64{p: 100}}
	var mu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tick := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	tr := NewTracker(TrackerOptions{MinSyncSlaves: 1, MaxDelay: time.Second, CheckInterval: time.Millisecond,
		End: ends.end, Partitions: ends.parts, Now: now})
	defer tr.Close()
	detach := tr.Attach(1, true)
	tr.Ack(1, p, 100) // its fetch at the end, then parked
	eventually(t, "member 1 in sync", func() bool { return len(tr.InSync()) == 1 })
	waitChecks := func(k int64) {
		t.Helper()
		c := tr.checks.Load()
		eventually(t, "more checks", func() bool { return tr.checks.Load() >= c+k })
	}

	tick(time.Hour) // idle: the fetch stays parked
	advance(tr, ends, p, 200)
	waitChecks(3)
	if len(tr.InSync()) != 1 {
		t.Fatal("a follower parked at the end for an hour left the in-sync set the moment data arrived")
	}
	tr.Ack(1, p, 200) // it got the data at once
	tick(time.Hour)
	advance(tr, ends, p, 300)
	tick(500 * time.Millisecond) // behind, but for less than MaxDelay
	waitChecks(3)
	if len(tr.InSync()) != 1 {
		t.Fatal("left the in-sync set after lagging 500 ms (MaxDelay 1 s)")
	}
	tick(time.Second) // now behind for 1.5 s
	eventually(t, "member 1 out of sync", func() bool { return len(tr.InSync()) == 0 })

	// Detached at the end: an append while it is away counts from its last ack.
	tr.Ack(1, p, 300)
	eventually(t, "member 1 in sync again", func() bool { return len(tr.InSync()) == 1 })
	detach()
	tick(time.Hour)
	advance(tr, ends, p, 400)
	eventually(t, "detached member 1 out of sync", func() bool { return len(tr.InSync()) == 0 })
}
