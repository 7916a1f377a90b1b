package broker

import (
	"sync/atomic"
	"time"
)

// Periodic work of an idle broker: the loops that look at connections or
// transactions every so often stop their tickers while there is nothing
// to look at, so an idle broker is not woken for nothing.

// armCounter is a count of connections in some state whose rise from zero
// arms a sleeping ticker (a send on arm that never blocks). Add and Load
// are atomic.Int64's.
type armCounter struct {
	n   atomic.Int64
	arm chan struct{}
}

// Add adds d and returns the new count; the step from zero (or below) to
// above zero arms the ticker.
func (c *armCounter) Add(d int64) int64 {
	v := c.n.Add(d)
	if v > 0 && v-d <= 0 {
		signal(c.arm)
	}
	return v
}

// Load returns the count.
func (c *armCounter) Load() int64 { return c.n.Load() }

// signal fills the one-slot channel ch unless it is full or nil.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sleepyTicker calls look every period until stop is closed, except
// that once look reports nothing left to look at it stops its ticker,
// sets idle and waits for arm (or the stop) before it ticks again. Whoever
// creates work signals arm after making it visible to look, so a wake-up
// is never lost: the arm sent while the loop still ticks stays in the slot
// and costs at most one extra look.
func sleepyTicker(stop <-chan struct{}, period time.Duration, arm <-chan struct{}, idle *atomic.Bool, look func(time.Time) bool) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if look(now) {
				continue
			}
		}
		t.Stop()
		idle.Store(true)
		select {
		case <-stop:
			return
		case <-arm:
		}
		idle.Store(false)
		t.Reset(period)
	}
}
