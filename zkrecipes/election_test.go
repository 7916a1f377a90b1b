package zkrecipes_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func lkLatch(t *testing.T, s *zkrecipes.Session, dir, id string) *zkrecipes.LeaderLatch {
	t.Helper()
	l, err := zkrecipes.NewLeaderLatch(s, dir, id)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func requireClosed(t *testing.T, ch <-chan struct{}, d time.Duration, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// TestLeaderLatchOrderAndHandoff: the first participant leads, each other
// one watches only its predecessor, and Close hands leadership on.
func TestLeaderLatchOrderAndHandoff(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/latch"
	ctx := lkCtx(t, 30*time.Second)
	ids := []string{"a", "b", "c"}
	var latches []*zkrecipes.LeaderLatch
	var sessions []*zkrecipes.Session
	for _, id := range ids {
		s := connect(t, []string{srv.Addr})
		l := lkLatch(t, s, dir, id)
		require.NoError(t, l.Start(ctx))
		latches, sessions = append(latches, l), append(sessions, s)
	}
	require.NoError(t, latches[0].AwaitLeadership(ctx))
	got, err := latches[0].Participants(ctx)
	require.NoError(t, err)
	require.Equal(t, ids, got)
	require.Eventually(t, func() bool {
		w := lkWatchers(t, srv.Addr, dir)
		return len(w) == 2 && len(w[latches[0].Path()]) == 1 && w[latches[0].Path()][0] == lkSessionHex(sessions[1]) &&
			len(w[latches[1].Path()]) == 1 && w[latches[1].Path()][0] == lkSessionHex(sessions[2])
	}, 10*time.Second, 10*time.Millisecond, "each follower must watch only its predecessor")
	require.False(t, latches[1].IsLeader())
	require.False(t, latches[2].IsLeader())

	term := latches[0].Leadership()
	require.NoError(t, latches[0].Close(ctx))
	requireClosed(t, term, time.Second, "leadership channel not closed by Close")
	require.False(t, latches[0].IsLeader())
	require.NoError(t, latches[1].AwaitLeadership(ctx))
	require.False(t, latches[2].IsLeader())
	got, err = latches[1].Participants(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, got)
	require.Equal(t, int64(0), sessions[2].WatchEvents(), "the leader's departure must not wake the last participant")
}

// TestLeaderLatchExpiryRejoins: an expired leader loses leadership, the next
// participant leads, and the old leader rejoins with a node of its new session.
func TestLeaderLatchExpiryRejoins(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/latch"
	ctx := lkCtx(t, 30*time.Second)
	sa, sb := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	a, b := lkLatch(t, sa, dir, "a"), lkLatch(t, sb, dir, "b")
	require.NoError(t, a.Start(ctx))
	require.NoError(t, a.AwaitLeadership(ctx))
	require.NoError(t, b.Start(ctx))
	term := a.Leadership()
	oldID := sa.ID()

	expire(t, srv.Addr, sa)
	requireClosed(t, term, 10*time.Second, "leadership not lost after session expiry")
	require.NoError(t, b.AwaitLeadership(ctx))
	require.Eventually(t, func() bool {
		got, err := b.Participants(ctx)
		return err == nil && fmt.Sprint(got) == "[b a]"
	}, 10*time.Second, 10*time.Millisecond, "the expired participant must rejoin")
	require.NotEqual(t, oldID, sa.ID())
	_, st, err := sa.Get(ctx, a.Path())
	require.NoError(t, err)
	require.Equal(t, sa.ID(), st.EphemeralOwner)
	require.False(t, a.IsLeader())

	require.NoError(t, b.Close(ctx))
	require.NoError(t, a.AwaitLeadership(ctx))
}

// TestLeaderLatchOldSessionNodeNeverLeads: the lowest node belongs to another
// session; nobody leads until that session is expired and its node gone.
func TestLeaderLatchOldSessionNodeNeverLeads(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/latch"
	ctx := lkCtx(t, 30*time.Second)
	raw := zktest.Connect(t, []string{srv.Addr}, 2*time.Second)
	s := connect(t, []string{srv.Addr})
	require.NoError(t, s.EnsurePath(ctx, dir))
	ghost, err := raw.Create(dir+"/_c_0123456789abcdef0123456789abcdef-latch-", []byte("ghost"),
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	l := lkLatch(t, s, dir, "me")
	require.NoError(t, l.Start(ctx))
	got, err := l.Participants(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"ghost", "me"}, got)
	require.Eventually(t, func() bool {
		ws := lkWatchers(t, srv.Addr, dir)[ghost]
		return len(ws) == 1 && ws[0] == lkSessionHex(s)
	}, 10*time.Second, 10*time.Millisecond)
	require.False(t, l.IsLeader())

	require.NoError(t, raw.Expire(ctx, srv.Addr))
	require.NoError(t, l.AwaitLeadership(ctx))
	ok, _, err := s.Exists(ctx, ghost)
	require.NoError(t, err)
	require.False(t, ok, "leader while the old session's node still existed")
	got, err = l.Participants(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"me"}, got)
}

// TestLeaderLatchChurn: participants leave and join; a sampler never sees two
// leaders, and after every change exactly one leads.
func TestLeaderLatchChurn(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/latch"
	ctx := lkCtx(t, 60*time.Second)
	sessions := []*zkrecipes.Session{connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})}
	var mu sync.Mutex // guards live
	var live []*zkrecipes.LeaderLatch
	next := 0
	join := func() {
		l := lkLatch(t, sessions[next%len(sessions)], dir, fmt.Sprintf("p%d", next))
		next++
		require.NoError(t, l.Start(ctx))
		mu.Lock()
		live = append(live, l)
		mu.Unlock()
	}
	leaders := func() (n int, who *zkrecipes.LeaderLatch) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range live {
			if l.IsLeader() {
				n, who = n+1, l
			}
		}
		return n, who
	}
	for range 5 {
		join()
	}
	var maxSeen atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if n, _ := leaders(); int64(n) > maxSeen.Load() {
					maxSeen.Store(int64(n))
				}
			}
		}
	}()
	for round := range 10 {
		var leader *zkrecipes.LeaderLatch
		require.Eventually(t, func() bool {
			n, who := leaders()
			leader = who
			return n == 1
		}, 10*time.Second, 5*time.Millisecond, "round %d: no single leader", round)
		require.NoError(t, leader.Close(ctx))
		mu.Lock()
		for i, l := range live {
			if l == leader {
				live = append(live[:i], live[i+1:]...)
				break
			}
		}
		mu.Unlock()
		join()
	}
	close(stop)
	<-sampled
	require.LessOrEqual(t, maxSeen.Load(), int64(1), "two leaders at once")
	require.Equal(t, int64(1), maxSeen.Load())
}
