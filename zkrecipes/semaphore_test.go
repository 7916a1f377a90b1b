package zkrecipes_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func lkSemaphore(t *testing.T, s *zkrecipes.Session, dir string, n int) *zkrecipes.Semaphore {
	t.Helper()
	sm, err := zkrecipes.NewSemaphore(s, dir, n)
	require.NoError(t, err)
	return sm
}

// TestSemaphoreNeverMoreThanN audits the number of holders under contention.
func TestSemaphoreNeverMoreThanN(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/sem"
	ctx := lkCtx(t, 60*time.Second)
	const maxLeases, workers, rounds = 3, 8, 6
	var holders, peak, violations atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		s := connect(t, []string{srv.Addr})
		sm := lkSemaphore(t, s, dir, maxLeases)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				lease, err := sm.Acquire(ctx)
				if err != nil {
					violations.Add(1000)
					return
				}
				n := holders.Add(1)
				if n > maxLeases {
					violations.Add(1)
				}
				for cur := peak.Load(); n > cur && !peak.CompareAndSwap(cur, n); cur = peak.Load() {
				}
				for range 20 { // hold across server round trips: long enough to overlap
					_, _, _ = s.Exists(ctx, dir)
				}
				holders.Add(-1)
				if err := lease.Release(ctx); err != nil {
					violations.Add(1000)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, violations.Load())
	require.LessOrEqual(t, peak.Load(), int64(maxLeases))
	require.GreaterOrEqual(t, peak.Load(), int64(2), "the workload never overlapped: the audit proves nothing")
	t.Logf("peak concurrent holders: %d of %d", peak.Load(), maxLeases)
	obs := connect(t, []string{srv.Addr})
	require.Empty(t, lkChildren(t, obs, dir+"/leases"))
	require.Empty(t, lkChildren(t, obs, dir+"/locks"))
}

// TestSemaphoreReleaseWakesOne: with all leases held and several waiters, one
// release wakes at most two clients: the waiter that holds the internal mutex
// (its child watch on the leases; it gets the lease) and the next waiter in
// the mutex line (the handoff). Every other waiter sleeps.
func TestSemaphoreReleaseWakesOne(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/sem"
	ctx := lkCtx(t, 30*time.Second)
	const maxLeases = 2
	holderS := connect(t, []string{srv.Addr})
	hsm := lkSemaphore(t, holderS, dir, maxLeases)
	var leases []*zkrecipes.Lease
	for range maxLeases {
		l, err := hsm.Acquire(ctx)
		require.NoError(t, err)
		leases = append(leases, l)
	}
	const waiters = 5
	sessions := make([]*zkrecipes.Session, waiters)
	got := make(chan *zkrecipes.Lease, waiters)
	for i := range waiters {
		sessions[i] = connect(t, []string{srv.Addr})
		sm := lkSemaphore(t, sessions[i], dir, maxLeases)
		go func() {
			l, err := sm.Acquire(ctx)
			if err == nil {
				got <- l
			}
		}()
	}
	obs := connect(t, []string{srv.Addr})
	// One waiter (A) holds the internal mutex with a lease node pending; the
	// others queue on the mutex, each watching its predecessor.
	require.Eventually(t, func() bool {
		return len(lkChildren(t, obs, dir+"/locks")) == waiters && len(lkChildren(t, obs, dir+"/leases")) == maxLeases+1 &&
			len(lkWatchers(t, srv.Addr, dir+"/locks")) == waiters-1
	}, 10*time.Second, 10*time.Millisecond)
	// Who is A (mutex holder) and B (next in line)?
	line := zkrecipes.SortBySequence(lkChildren(t, obs, dir+"/locks"))
	byID := map[int64]int{}
	for i, s := range sessions {
		byID[s.ID()] = i
	}
	owner := func(name string) int {
		_, st, err := obs.Get(ctx, dir+"/locks/"+name)
		require.NoError(t, err)
		return byID[st.EphemeralOwner]
	}
	a, b := owner(line[0]), owner(line[1])
	for _, s := range sessions {
		require.Zero(t, s.WatchEvents())
	}
	require.NoError(t, leases[0].Release(ctx))
	var l *zkrecipes.Lease
	select {
	case l = <-got:
	case <-ctx.Done():
		t.Fatal("no waiter got the released lease")
	}
	require.Eventually(t, func() bool {
		return sessions[b].WatchEvents() == 1 && len(lkChildren(t, obs, dir+"/leases")) == maxLeases+1
	}, 10*time.Second, 10*time.Millisecond, "the mutex must pass to the next waiter, which then waits for room")
	require.LessOrEqual(t, sessions[a].WatchEvents(), int64(1), "the pending waiter wakes once (its child watch)")
	for i, s := range sessions {
		if i != a && i != b {
			require.Zero(t, s.WatchEvents(), "waiter %d woke although it is not next", i)
		}
	}
	select {
	case <-got:
		t.Fatal("more than maxLeases leases granted")
	default:
	}
	require.NoError(t, l.Release(ctx))
	require.ErrorIs(t, l.Release(ctx), zkrecipes.ErrNotHeld)
	require.NoError(t, leases[1].Release(ctx))
	for range waiters - 1 {
		select {
		case l := <-got:
			require.NoError(t, l.Release(ctx))
		case <-ctx.Done():
			t.Fatal("waiters starved")
		}
	}
	require.Empty(t, lkChildren(t, obs, dir+"/leases"))
}

// TestSemaphoreCancelWhileWaitingLeavesNothing: a waiter that holds the
// internal mutex with a pending lease, and one queued behind it, give up: both
// of their nodes go, and the semaphore still works.
func TestSemaphoreCancelWhileWaitingLeavesNothing(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/sem"
	ctx := lkCtx(t, 30*time.Second)
	s1, s2, s3 := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	held, err := lkSemaphore(t, s1, dir, 1).Acquire(ctx)
	require.NoError(t, err)

	wctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, 2)
	for _, s := range []*zkrecipes.Session{s2, s3} {
		sm := lkSemaphore(t, s, dir, 1)
		go func() {
			_, err := sm.Acquire(wctx)
			errs <- err
		}()
	}
	require.Eventually(t, func() bool {
		return len(lkChildren(t, s1, dir+"/locks")) == 2 && len(lkChildren(t, s1, dir+"/leases")) == 2
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	require.ErrorIs(t, <-errs, context.Canceled)
	require.Eventually(t, func() bool {
		return len(lkChildren(t, s1, dir+"/locks")) == 0 && len(lkChildren(t, s1, dir+"/leases")) == 1
	}, 10*time.Second, 10*time.Millisecond, "cancelled waiters left nodes behind")
	require.NoError(t, held.Release(ctx))
	l, err := lkSemaphore(t, s2, dir, 1).Acquire(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
}
