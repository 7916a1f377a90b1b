package store_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// fakeClock is a settable clock the retention loop's goroutine may read.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// dailyAt is a schedule firing at the given whole hours (UTC) every day,
// like deleteWhen "0 0 6,18 * * ?".
func dailyAt(hours ...int) func(time.Time) time.Time {
	return func(after time.Time) time.Time {
		day := after.UTC().Truncate(24 * time.Hour)
		for d := 0; d < 2; d++ {
			for _, h := range hours {
				if at := day.Add(time.Duration(24*d+h) * time.Hour); at.After(after) {
					return at
				}
			}
		}
		return time.Time{}
	}
}

// askLog wraps a schedule and counts the calls per argument: the loop asks
// its schedule about a time both when it plans a round at that time and when
// the next round checks it, so two calls about t prove a round ran at t.
type askLog struct {
	next func(time.Time) time.Time
	mu   sync.Mutex
	asks map[time.Time]int
}

func (a *askLog) schedule(after time.Time) time.Time {
	a.mu.Lock()
	a.asks[after]++
	a.mu.Unlock()
	return a.next(after)
}

func (a *askLog) asked(t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asks[t]
}

// TestRetentionRunsOnSchedule: age-based retention runs at the activations of
// the schedule (deleteWhen) and not before, although the store's loop wakes
// every millisecond; a topic's own schedule overrides the store's; size-based
// retention runs on every interval tick. The clock is fake.
func TestRetentionRunsOnSchedule(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		clock := &fakeClock{}
		clock.Set(day.Add(4*time.Hour + 30*time.Minute))
		global := &askLog{next: dailyAt(6, 18), asks: map[time.Time]int{}}
		s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300, Now: clock.Now,
			RetentionInterval: time.Millisecond, RetentionSchedule: global.schedule,
			Topic: func(topic string) store.TopicOptions {
				switch topic {
				case "late":
					return store.TopicOptions{Retention: store.RetentionPolicy{MaxAge: time.Hour}, RetentionSchedule: dailyAt(7)}
				case "sized":
					return store.TopicOptions{Retention: store.RetentionPolicy{MaxAge: time.Hour, MaxBytes: 1}}
				}
				return store.TopicOptions{Retention: store.RetentionPolicy{MaxAge: time.Hour}}
			}})
		defer s.Close()
		parts := map[string]*store.Partition{}
		for _, topic := range []string{"t", "late", "sized"} {
			parts[topic] = mustPart(t, s, topic, 0)
			appendN(t, parts[topic], 0, 20) // 04:30: 70 minutes old at 05:40
		}
		clock.Set(day.Add(5*time.Hour + 40*time.Minute))
		for _, p := range parts {
			appendN(t, p, 20, 20) // fresh, in new segments (300 bytes each)
		}
		trimmed := func(topic string) bool { return parts[topic].Earliest() > 0 }

		eventually(t, 20*time.Second, "size retention on an interval tick", func() bool { return trimmed("sized") })
		for _, at := range []time.Duration{5*time.Hour + 40*time.Minute, 6*time.Hour - time.Millisecond} {
			now := day.Add(at)
			clock.Set(now)
			eventually(t, 20*time.Second, "a retention round at "+now.Format(time.TimeOnly), func() bool { return global.asked(now) >= 2 })
			if trimmed("t") || trimmed("late") {
				t.Fatalf("at %s, before the 06:00 activation, age-based retention ran", now.Format(time.StampMilli))
			}
		}
		clock.Set(day.Add(6 * time.Hour))
		eventually(t, 20*time.Second, "age-based retention at 06:00", func() bool { return trimmed("t") })
		now := day.Add(6*time.Hour + time.Minute)
		clock.Set(now)
		eventually(t, 20*time.Second, "a retention round at 06:01", func() bool { return global.asked(now) >= 2 })
		if trimmed("late") {
			t.Fatal("the topic scheduled at 07:00 was trimmed at 06:00")
		}
		clock.Set(day.Add(7 * time.Hour))
		eventually(t, 20*time.Second, "the topic's own schedule at 07:00", func() bool { return trimmed("late") })
	})
}
