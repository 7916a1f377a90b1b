package producer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Senders waiting for room all get a slot as slots come back, however the
// returns interleave with their waits, and never more than max are taken.
func TestSlotsWakeEveryWaiter(t *testing.T) {
	s := newSlots(2)
	abort := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const senders, rounds = 8, 200
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := s.take(ctx, abort); err != nil {
					t.Error(err)
					return
				}
				n := held.Add(1)
				for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
				}
				held.Add(-1)
				s.put()
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int64(2))
	require.Equal(t, int64(0), s.used.Load())
}

// A sender waiting for room gives up when its ctx ends or the producer is
// closed, without taking a slot.
func TestSlotsWaitEnds(t *testing.T) {
	s := newSlots(1)
	abort := make(chan struct{})
	require.NoError(t, s.take(context.Background(), abort))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.take(ctx, abort), context.DeadlineExceeded)
	close(abort)
	require.ErrorIs(t, s.take(context.Background(), abort), ErrClosed)
	require.Equal(t, int64(1), s.used.Load())
	s.put()
	require.NoError(t, s.take(context.Background(), make(chan struct{})))
}
