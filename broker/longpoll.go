package broker

import (
	"errors"
	"sync"
	"time"

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
	mu    sync.Mutex // guards chans
	chans map[string]chan struct{}
}

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
	}
	return ch
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
	}
	n.mu.Unlock()
	if ok {
		close(ch)
	}
}

// readWaiting reads like Partition.Read but, when the offset is at the end of
// the visible data (or the partition does not exist yet), waits up to maxWait
// for data to arrive (or the broker to stop).
func (b *Broker) readWaiting(topic string, part int, offset int64, maxSize int, maxWait time.Duration) (store.Slice, error) {
	key := partKey(topic, part)
	var deadline <-chan time.Time
	for {
		woken := b.waiters.wait(key)
		p, err := b.store.Partition(topic, part, false)
		if err == nil {
			sl, err := p.Read(offset, maxSize)
			if err != store.ErrCaughtUp || maxWait <= 0 {
				return sl, err
			}
			if p.End() > offset {
				continue
			}
		} else if maxWait <= 0 || !errors.Is(err, store.ErrNoPartition) {
			return store.Slice{}, err
		}
		if deadline == nil {
			t := time.NewTimer(min(maxWait, maxLongPoll))
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-woken:
		case <-deadline:
			return store.Slice{}, store.ErrCaughtUp
		case <-b.stopCh:
			return store.Slice{}, store.ErrCaughtUp
		}
	}
}
