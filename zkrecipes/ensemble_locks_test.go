package zkrecipes_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestLocksSurviveEnsembleLeaderKill: on a 3-node ensemble, killing the
// ZooKeeper leader does not break a mutex handoff or the leader latch.
func TestLocksSurviveEnsembleLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node ZooKeeper ensemble")
	}
	ens := zktest.StartEnsembleT(t, 3, zktest.Options{})
	addrs := ens.Addrs()
	ctx := lkCtx(t, 90*time.Second)
	const dir = "/ensemble"
	s1, s2 := connect(t, addrs), connect(t, addrs)
	m1, m2 := lkMutex(t, s1, dir+"/lock"), lkMutex(t, s2, dir+"/lock")
	l1, l2 := lkLatch(t, s1, dir+"/latch", "one"), lkLatch(t, s2, dir+"/latch", "two")
	require.NoError(t, m1.Lock(ctx))
	require.NoError(t, l1.Start(ctx))
	require.NoError(t, l1.AwaitLeadership(ctx))
	require.NoError(t, l2.Start(ctx))
	got2 := make(chan error, 1)
	go func() { got2 <- m2.Lock(ctx) }()
	require.Eventually(t, func() bool { return len(lkChildren(t, s1, dir+"/lock")) == 2 }, 20*time.Second, 20*time.Millisecond)

	leader := ens.Leader()
	require.NotNil(t, leader)
	leader.Kill()
	require.NoError(t, ens.WaitServing(ctx, 2))

	// Mutex handoff after the kill (Unlock retries through the reconnect; if a
	// session did not survive the election, the lock was lost and the waiter
	// rejoined with its new session: it still gets the lock exactly once).
	err := m1.Unlock(ctx)
	if err != nil {
		require.ErrorIs(t, err, zkrecipes.ErrSessionLost)
	}
	t.Logf("holder's Unlock after the leader kill: %v", err)
	require.NoError(t, <-got2)
	require.True(t, m2.Held())
	require.Eventually(t, func() bool { return len(lkChildren(t, s2, dir+"/lock")) == 1 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, m2.Unlock(ctx))

	// Exactly one latch leads; closing it hands leadership to the other.
	require.Eventually(t, func() bool { return l1.IsLeader() != l2.IsLeader() }, 30*time.Second, 20*time.Millisecond)
	leading, other := l1, l2
	if l2.IsLeader() {
		leading, other = l2, l1
	}
	require.NoError(t, leading.Close(ctx))
	require.NoError(t, other.AwaitLeadership(ctx))
	ids, err := other.Participants(ctx)
	require.NoError(t, err)
	require.Len(t, ids, 1)
}
