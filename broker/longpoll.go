package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/broker/store"
)

// maxLongPoll caps how long a long-poll get may be held.
const maxLongPoll = 30 * time.Second

// notifier wakes long-poll gets parked on a partition when new data becomes
// visible there. A waiter takes the partition's current channel before it
// re-checks the log end, so no wake-up is lost between the check and the wait.
// Waiters are keyed by partition name, so a long-poll may also wait for a
// partition that has never been written (and so does not exist yet).
type notifier struct {
	mu          sync.Mutex // guards chans
	chans       map[string]chan struct{}
	waiting     atomic.Int64  // len(chans), for a lock-free idle check
	serving     atomic.Int64  // gets being served on their park goroutine (getJob.serveWoken)
	servedWoken atomic.Uint64 // how many were, ever (tests)
	requeued    atomic.Uint64 // woken gets requeued to the loop instead, ever (tests)
}

// startServing takes one of limit slots for serving a woken get on its park
// goroutine; false when all are taken.
func (n *notifier) startServing(limit int) bool {
	if n.serving.Add(1) > int64(limit) {
		n.serving.Add(-1)
		return false
	}
	n.servedWoken.Add(1)
	return true
}

func (n *notifier) doneServing() { n.serving.Add(-1) }

// idle reports whether no get waits on any partition (a hint: a waiter
// that parks right after it finds the data it waits for by itself).
func (n *notifier) idle() bool { return n.waiting.Load() == 0 }

func (n *notifier) wait(key string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.chans == nil {
		n.chans = map[string]chan struct{}{}
	}
	ch, ok := n.chans[key]
	if !ok {
		ch = make(chan struct{})
		n.chans[key] = ch
		n.waiting.Store(int64(len(n.chans)))
	}
	return ch
}

// has reports whether a get waits on the partition.
func (n *notifier) has(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.chans[key]
	return ok
}

// notify wakes every waiter of a partition; it costs a map lookup when nobody waits.
func (n *notifier) notify(key string) {
	n.mu.Lock()
	if len(n.chans) == 0 {
		n.mu.Unlock()
		return
	}
	ch, ok := n.chans[key]
	if ok {
		delete(n.chans, key)
		n.waiting.Store(int64(len(n.chans)))
	}
	n.mu.Unlock()
	if ok {
		close(ch)
	}
}

// read reads like Partition.Read; a partition never written is ErrNoPartition.
// A consumer's read (raw false) stops at the readable end (the high
// watermark on a master with in-sync followers): an offset at or beyond
// it, up to the durable end, is caught up. A follower's replication read
// (raw) reads up to the durable end.
func (b *Broker) read(topic string, part int, offset int64, maxSize int, raw bool) (store.Slice, error) {
	p, err := b.store.Partition(topic, part, false)
	if err != nil {
		return store.Slice{}, err
	}
	if !raw {
		hw := b.readableEnd(p)
		if offset >= hw && offset <= p.End() && hw < p.End() {
			return store.Slice{}, store.ErrCaughtUp
		}
		if offset >= 0 && offset < hw { // a negative offset is the store's to refuse
			// hw is a message boundary, so Read's whole-first-message
			// rule never reaches beyond it.
			maxSize = int(min(int64(maxSize), hw-offset))
		}
	}
	return p.Read(offset, maxSize)
}

// awaitData waits until the partition's visible end is no longer offset
// (true: data arrived, or the log changed under the reader, which the next
// read reports), or until expired fires or the broker stops (false). For a
// consumer (raw false) data arrived when the readable end (read) passed
// offset. It takes the partition's wake-up channel before it checks, so no
// wake-up is lost between the check and the wait; the partition need not
// exist yet. The store's fsyncs and the Tracker's watermark advances
// (OnAdvance) notify the channel.
func (b *Broker) awaitData(topic string, part int, offset int64, raw bool, expired <-chan time.Time) bool {
	key := partKey(topic, part)
	for {
		woken := b.waiters.wait(key)
		if b.dataPast(topic, part, offset, raw) {
			return true
		}
		select {
		case <-woken:
			// Check before registering again: a waiter that leaves with
			// its data registers nothing, so the commit cycle's next
			// onSync finds the notifier idle instead of closing a channel
			// nobody waits on.
			if b.dataPast(topic, part, offset, raw) {
				return true
			}
		case <-expired:
			return false
		case <-b.stopCh:
			return false
		}
	}
}

// dataPast reports whether the partition's visible end is no longer offset
// (see awaitData).
func (b *Broker) dataPast(topic string, part int, offset int64, raw bool) bool {
	p, err := b.store.Partition(topic, part, false)
	if err != nil {
		return false
	}
	end := p.End()
	return end != offset && (raw || end < offset || b.readableEnd(p) > offset)
}

// chainOnSync adds the broker's hook to the store's OnSync (the caller's
// hook, e.g. an fsync-latency histogram, runs first).
func chainOnSync(user func(string, int, time.Duration, error), ours func(topic string, part int)) func(string, int, time.Duration, error) {
	return func(topic string, part int, took time.Duration, err error) {
		if user != nil {
			user(topic, part, took, err)
		}
		if err == nil {
			ours(topic, part)
		}
	}
}

// onSync runs on a partition's writer (the store's commit loop) after a successful fsync,
// once the store has made its data visible (its End moved) and before the
// puts it covers are answered: it tells the replication tracker (whose lag
// check looks only at partitions that moved) and wakes the long-poll gets
// parked on the partition straight from the commit cycle.
func (b *Broker) onSync(topic string, part int) {
	if t := b.repl.tracker.Load(); t != nil {
		t.Appended(replica.Partition{Topic: topic, Part: part})
	}
	if b.waiters.idle() {
		return
	}
	b.waiters.notify(partKey(topic, part))
}
