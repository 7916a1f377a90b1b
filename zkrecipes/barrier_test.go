package zkrecipes_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
)

func TestBarrierHoldsWaitersUntilRemoved(t *testing.T) {
	ss := coShared(t, 4)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	b0, err := zkrecipes.NewBarrier(ss[0], root+"/b")
	require.NoError(t, err)
	require.NoError(t, b0.Set(ctx))
	require.NoError(t, b0.Set(ctx), "setting twice is fine")

	var released atomic.Int32
	var wg sync.WaitGroup
	for _, s := range ss[1:] {
		b, err := zkrecipes.NewBarrier(s, root+"/b")
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Wait(ctx); err == nil {
				released.Add(1)
			}
		}()
	}
	// A waiter with a short deadline times out while the barrier is up.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = b0.Wait(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, released.Load())

	require.NoError(t, b0.Remove(ctx))
	wg.Wait()
	require.EqualValues(t, 3, released.Load())
	require.NoError(t, b0.Remove(ctx), "removing twice is fine")
	require.NoError(t, b0.Wait(ctx), "a lowered barrier does not block")
	coRequireTree(t, ss[0], root)
}

func TestBarrierWaitSurvivesSessionExpiry(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	b0, _ := zkrecipes.NewBarrier(ss[0], root+"/b")
	b1, _ := zkrecipes.NewBarrier(ss[1], root+"/b")
	require.NoError(t, b0.Set(ctx))
	done := make(chan error, 1)
	go func() { done <- b1.Wait(ctx) }()
	coExpire(t, ss[1])
	select {
	case err := <-done:
		t.Fatalf("Wait returned while the barrier is up: %v", err)
	default:
	}
	require.NoError(t, b0.Remove(ctx))
	require.NoError(t, <-done)
}

func TestDoubleBarrierEnterAndLeaveTogether(t *testing.T) {
	const n = 4
	ss := coShared(t, n)
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	var entered, left atomic.Int32
	var mu sync.Mutex
	var order []string // "enter" / "leave" as seen by each participant
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, s := range ss {
		db, err := zkrecipes.NewDoubleBarrier(s, root+"/db", n)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == n-1 { // the last one comes late: nobody may enter before it
				require.Eventually(t, func() bool { return len(coTree(t, s, root+"/db")) == n-1 }, 10*time.Second, 10*time.Millisecond)
				if entered.Load() != 0 {
					errs <- errors.New("entered before all members were present")
					return
				}
			}
			if err := db.Enter(ctx); err != nil {
				errs <- err
				return
			}
			entered.Add(1)
			mu.Lock()
			order = append(order, "enter")
			mu.Unlock()
			if i == 0 { // the first one leaves late: nobody may finish leaving before it
				require.Eventually(t, func() bool { return entered.Load() == n }, 10*time.Second, 5*time.Millisecond)
				// Everyone else has deleted its node or is the lowest, waiting for us.
				require.Eventually(t, func() bool { return len(coTree(t, s, root+"/db")) <= 3 }, 10*time.Second, 10*time.Millisecond)
				if left.Load() != 0 {
					errs <- errors.New("left before all members left")
					return
				}
			}
			if err := db.Leave(ctx); err != nil {
				errs <- err
				return
			}
			left.Add(1)
			mu.Lock()
			order = append(order, "leave")
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, n, entered.Load())
	require.EqualValues(t, n, left.Load())
	for i, o := range order {
		if i < n {
			require.Equal(t, "enter", o, "order %v", order)
		} else {
			require.Equal(t, "leave", o, "order %v", order)
		}
	}
	coRequireTree(t, ss[0], root+"/db") // nodes and "ready" are gone
}

func TestDoubleBarrierEnterCancelledLeavesNoNode(t *testing.T) {
	ss := coShared(t, 1)
	root := testRoot(t)
	db, err := zkrecipes.NewDoubleBarrier(ss[0], root+"/db", 3)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = db.Enter(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	coRequireTree(t, ss[0], root+"/db")
	require.ErrorIs(t, db.Leave(coCtx(t, time.Second)), zkrecipes.ErrNotHeld)
}
