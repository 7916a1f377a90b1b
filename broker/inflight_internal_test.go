package broker

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A drain waits for every request admitted before it closed admission, and
// no request is admitted after: shown under concurrent admit/Done with -race,
// many rounds so the lock-free handshake's interleavings are exercised.
func TestInflightCounterDrainWaitsForEveryAdmittedRequest(t *testing.T) {
	for round := 0; round < 200; round++ {
		var c inflightCounter
		var drained atomic.Bool // set once Wait returned
		var late atomic.Int64   // requests admitted and still running after the drain ended
		var afterClose atomic.Int64
		var closed atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					wasClosed := closed.Load()
					if !c.admit() {
						continue
					}
					if wasClosed {
						afterClose.Add(1)
					}
					if drained.Load() {
						late.Add(1)
					}
					runtime.Gosched() // the request runs
					c.Done()
				}
			}()
		}
		c.closeAdmission()
		closed.Store(true) // after: a request that sees it must be refused
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.NoError(t, c.Wait(ctx), "round %d: the drain must end", round)
		drained.Store(true)
		cancel()
		require.Zero(t, afterClose.Load(), "round %d: admitted after closeAdmission", round)
		require.False(t, c.admit())
		close(stop)
		wg.Wait()
		require.Zero(t, late.Load(), "round %d: Wait returned while an admitted request was running", round)
		require.Zero(t, c.n.Load())
	}
}

// Wait returns at once on an idle counter, and after the last Done otherwise;
// the counter keeps working after a Wait (a second drain).
func TestInflightCounterWaitAndReuse(t *testing.T) {
	var c inflightCounter
	require.NoError(t, c.Wait(context.Background()))
	require.True(t, c.admit())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	require.ErrorIs(t, c.Wait(ctx), context.DeadlineExceeded, "one request is still in flight")
	cancel()
	done := make(chan error, 1)
	go func() { done <- c.Wait(context.Background()) }()
	c.Done()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the last Done")
	}
	require.True(t, c.admit())
	c.Add(-1)
	require.NoError(t, c.Wait(context.Background()))
}
