package zkrecipes_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/zkwire"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// watchers parses the server's wchp output: data-watched path -> session ids,
// restricted to paths under prefix.
func lkWatchers(t *testing.T, addr, prefix string) map[string][]string {
	t.Helper()
	out, err := zktest.FourLetter(addr, "wchp")
	require.NoError(t, err)
	res := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "/"):
			cur = strings.TrimSpace(line)
		case strings.TrimSpace(line) != "" && cur != "" && strings.HasPrefix(cur, prefix+"/"):
			res[cur] = append(res[cur], strings.TrimSpace(line))
		}
	}
	return res
}

func lkSessionHex(s *zkrecipes.Session) string { return fmt.Sprintf("0x%x", s.ID()) }

func lkChildren(t *testing.T, s *zkrecipes.Session, dir string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kids, _, err := s.Children(ctx, dir)
	if err != nil {
		require.ErrorIs(t, err, zk.ErrNoNode)
		return nil
	}
	return kids
}

func lkCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func lkMutex(t *testing.T, s *zkrecipes.Session, dir string) *zkrecipes.Mutex {
	t.Helper()
	m, err := zkrecipes.NewMutex(s, dir)
	require.NoError(t, err)
	return m
}

// TestMutexHerdFree: 50 waiters on separate sessions; each lock node has at
// most one watcher, joining wakes nobody (so there is no child watch on the
// directory), and each release wakes exactly one client.
func TestMutexHerdFree(t *testing.T) {
	srv := zktest.Shared(t)
	addrs := []string{srv.Addr}
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 60*time.Second)

	holder := connect(t, addrs)
	first := lkMutex(t, holder, dir)
	require.NoError(t, first.Lock(ctx))

	const n = 50
	sessions := make([]*zkrecipes.Session, n)
	mutexes := make([]*zkrecipes.Mutex, n)
	for i := range n {
		sessions[i] = connect(t, addrs)
		mutexes[i] = lkMutex(t, sessions[i], dir)
	}
	waitCtx, cancelWaiters := context.WithCancel(ctx)
	defer cancelWaiters()
	acquired := make(chan int, n)
	failed := make(chan error, n)
	for i := range n {
		go func() {
			if err := mutexes[i].Lock(waitCtx); err != nil {
				failed <- err
				return
			}
			acquired <- i
		}()
	}
	// Every waiter queued and armed: 50 watched nodes, one watcher each.
	require.Eventually(t, func() bool { return len(lkWatchers(t, srv.Addr, dir)) == n }, 30*time.Second, 20*time.Millisecond)
	for p, ws := range lkWatchers(t, srv.Addr, dir) {
		require.Len(t, ws, 1, "node %s has %d watchers", p, len(ws))
	}
	require.Len(t, lkChildren(t, holder, dir), n+1)
	total := func() int64 {
		sum := holder.WatchEvents()
		for _, s := range sessions {
			sum += s.WatchEvents()
		}
		return sum
	}
	require.Zero(t, total(), "51 creates in the directory woke somebody: a child watch?")

	current := first
	const rounds = 5
	woken := map[int]bool{}
	for round := 1; round <= rounds; round++ {
		require.NoError(t, current.Unlock(ctx))
		select {
		case i := <-acquired:
			woken[i] = true
			current = mutexes[i]
			require.True(t, current.Held())
		case err := <-failed:
			t.Fatalf("waiter failed: %v", err)
		case <-ctx.Done():
			t.Fatal("no waiter acquired the lock")
		}
		require.Equal(t, int64(round), total(), "round %d: each release must wake exactly one client", round)
		for p, ws := range lkWatchers(t, srv.Addr, dir) {
			require.Len(t, ws, 1, "node %s has %d watchers", p, len(ws))
		}
	}
	// Nobody but the woken waiters ever received an event.
	for i, s := range sessions {
		if !woken[i] {
			require.Zero(t, s.WatchEvents(), "waiter %d was woken without getting the lock", i)
		}
	}
	select {
	case i := <-acquired:
		t.Fatalf("waiter %d acquired while %v holds", i, current.Path())
	default:
	}

	cancelWaiters()
	require.Eventually(t, func() bool { return len(lkChildren(t, holder, dir)) == 1 }, 20*time.Second, 20*time.Millisecond,
		"cancelled waiters left nodes behind")
	require.NoError(t, current.Unlock(ctx))
	require.Empty(t, lkChildren(t, holder, dir))
}

// TestMutexCancelWhileWaitingRemovesNode: a waiter whose ctx ends deletes its node.
func TestMutexCancelWhileWaitingRemovesNode(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	s1, s2 := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	holder, waiter := lkMutex(t, s1, dir), lkMutex(t, s2, dir)
	require.NoError(t, holder.Lock(ctx))

	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- waiter.Lock(wctx) }()
	require.Eventually(t, func() bool { return len(lkChildren(t, s1, dir)) == 2 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.False(t, waiter.Held())
	require.Eventually(t, func() bool { return len(lkChildren(t, s1, dir)) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, path.Base(holder.Path()), lkChildren(t, s1, dir)[0])

	ok, err := waiter.TryLock(ctx)
	require.NoError(t, err)
	require.False(t, ok, "TryLock must fail while another session holds")
	require.Len(t, lkChildren(t, s1, dir), 1, "a failed TryLock must leave no node")
	require.ErrorIs(t, waiter.Unlock(ctx), zkrecipes.ErrNotHeld)

	require.NoError(t, holder.Unlock(ctx))
	ok, err = waiter.TryLock(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, waiter.Unlock(ctx))
}

// TestMutexLostOnSessionExpiry: the holder's Lost fires within 1s of its
// client seeing the expiry, another session gets the lock, and the Mutex can
// be locked again with the new session.
func TestMutexLostOnSessionExpiry(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	s1, s2 := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	m1, m2 := lkMutex(t, s1, dir), lkMutex(t, s2, dir)
	require.NoError(t, m1.Lock(ctx))
	lost := m1.Lost()
	lostAt := make(chan time.Time, 1)
	go func() { <-lost; lostAt <- time.Now() }()
	sub := s1.Subscribe()
	defer sub.Close()

	got2 := make(chan error, 1)
	go func() { got2 <- m2.Lock(ctx) }()
	require.Eventually(t, func() bool { return len(lkChildren(t, s2, dir)) == 2 }, 10*time.Second, 10*time.Millisecond)

	oldID := s1.ID()
	expire(t, srv.Addr, s1)
	var seen time.Time
	for seen.IsZero() {
		select {
		case ev := <-sub.C:
			if ev.State == zkrecipes.StateLost && ev.SessionID == oldID {
				seen = ev.Time
			}
		case <-ctx.Done():
			t.Fatal("client never saw its session expire")
		}
	}
	var at time.Time
	select {
	case at = <-lostAt:
	case <-time.After(time.Second):
		t.Fatal("Lost not closed within 1s of the expiry")
	}
	delay := at.Sub(seen)
	require.GreaterOrEqual(t, delay, time.Duration(0))
	require.Less(t, delay, time.Second)
	t.Logf("Lost closed %v after the client saw StateLost", delay)
	require.False(t, m1.Held())
	require.NoError(t, <-got2, "the waiter must get the lock after the holder's session expired")
	require.True(t, m2.Held())

	require.ErrorIs(t, m1.Unlock(ctx), zkrecipes.ErrSessionLost)
	require.NoError(t, s1.WaitConnected(ctx))
	require.NotEqual(t, oldID, s1.ID())
	require.NoError(t, m2.Unlock(ctx))
	require.NoError(t, m1.Lock(ctx), "a Mutex must be usable again with the new session")
	_, st, err := s1.Get(ctx, m1.Path())
	require.NoError(t, err)
	require.Equal(t, s1.ID(), st.EphemeralOwner)
	require.NoError(t, m1.Unlock(ctx))
}

// TestMutexLostWhenNodeDeleted: Lost also fires when the lock node is deleted by someone else.
func TestMutexLostWhenNodeDeleted(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	s1, s2 := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	m := lkMutex(t, s1, dir)
	require.NoError(t, m.Lock(ctx))
	lost := m.Lost()
	require.Eventually(t, func() bool { return len(lkWatchers(t, srv.Addr, dir)[m.Path()]) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, s2.Delete(ctx, m.Path(), -1))
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("Lost not closed after the lock node was deleted")
	}
	require.False(t, m.Held())
	require.ErrorIs(t, m.Unlock(ctx), zk.ErrNoNode)
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))
}

// TestMutexLostCreateReply: the reply to the lock node's create is cut by the
// proxy; Lock finds its node by GUID, leaves no orphan, and holds exactly once.
func TestMutexLostCreateReply(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	proxy := zktest.NewProxyT(t, srv.Addr)
	s := connect(t, []string{proxy.Addr()})
	observer := connect(t, []string{srv.Addr})
	require.NoError(t, s.EnsurePath(ctx, dir))
	m := lkMutex(t, s, dir)

	cut := proxy.CutAfterRequest(func(op int32) bool { return op == zkwire.OpCreate || op == zkwire.OpCreate2 })
	require.NoError(t, m.Lock(ctx))
	select {
	case <-cut:
	default:
		t.Fatal("the create reply was never cut")
	}
	require.True(t, m.Held())
	kids := lkChildren(t, observer, dir)
	require.Equal(t, []string{path.Base(m.Path())}, kids, "exactly one lock node, ours")

	other := lkMutex(t, observer, dir)
	ok, err := other.TryLock(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, m.Unlock(ctx))
	require.Empty(t, lkChildren(t, observer, dir))
}

// TestMutexOldSessionNodeNeverHolds: the lowest node belongs to another
// session that is then expired; the waiter becomes holder only once that node
// is gone.
func TestMutexOldSessionNodeNeverHolds(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	raw := zktest.Connect(t, []string{srv.Addr}, 2*time.Second)
	s := connect(t, []string{srv.Addr})
	require.NoError(t, s.EnsurePath(ctx, dir))
	ghost, err := raw.Create(dir+"/_c_0123456789abcdef0123456789abcdef-lock-", []byte("ghost"),
		zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	m := lkMutex(t, s, dir)
	done := make(chan error, 1)
	go func() { done <- m.Lock(ctx) }()
	require.Eventually(t, func() bool {
		ws := lkWatchers(t, srv.Addr, dir)[ghost]
		return len(ws) == 1 && ws[0] == lkSessionHex(s)
	}, 10*time.Second, 10*time.Millisecond, "the waiter must watch the ghost node")
	require.False(t, m.Held())

	require.NoError(t, raw.Expire(ctx, srv.Addr))
	require.NoError(t, <-done)
	ok, _, err := s.Exists(ctx, ghost)
	require.NoError(t, err)
	require.False(t, ok, "holder while the old session's node still existed")
	require.True(t, m.Held())
	require.NoError(t, m.Unlock(ctx))
}

// TestMutexLostOnPartition: the holder's connection is blackholed. The
// server expires its session (the waiter gets the lock) and the client, which
// cannot hear that, presumes its session lost after a session timeout without
// a connection: Lost fires, Held turns false, and once the network is back the
// Mutex works again with a new session. The gap between the two moments is
// logged: during it only Session StateSuspended / LastHeard warn the holder.
func TestMutexLostOnPartition(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	proxy := zktest.NewProxyT(t, srv.Addr)
	s1, s2 := connect(t, []string{proxy.Addr()}), connect(t, []string{srv.Addr})
	m1, m2 := lkMutex(t, s1, dir), lkMutex(t, s2, dir)
	require.NoError(t, m1.Lock(ctx))
	lost := m1.Lost()
	got2 := make(chan time.Time, 1)
	go func() {
		if m2.Lock(ctx) == nil {
			got2 <- time.Now()
		}
	}()
	require.Eventually(t, func() bool { return len(lkChildren(t, s2, dir)) == 2 }, 10*time.Second, 10*time.Millisecond)

	start := time.Now()
	proxy.Freeze()
	var lostAt, acquiredAt time.Time
	for lostAt.IsZero() || acquiredAt.IsZero() {
		select {
		case <-lost:
			lostAt, lost = time.Now(), nil
			require.False(t, m1.Held())
		case acquiredAt = <-got2:
		case <-ctx.Done():
			t.Fatalf("partition: lost=%v acquired=%v", !lostAt.IsZero(), !acquiredAt.IsZero())
		}
	}
	t.Logf("after the freeze: waiter acquired at %v, holder's Lost at %v", acquiredAt.Sub(start), lostAt.Sub(start))
	proxy.Unfreeze()
	require.NoError(t, m2.Unlock(ctx))
	require.NoError(t, m1.Lock(ctx))
	require.True(t, m1.Held())
	require.NoError(t, m1.Unlock(ctx))
}

// lkKeepAlive takes over session creds on the server at addr from a raw
// connection and keeps it alive with pings (as a zombie holder would) until
// the returned stop function closes it. It asks for a 60 s timeout, which the
// server then applies to the session: with the client's 2 s a JVM starved
// for 2 s on a loaded machine could expire the session between two pings.
func lkKeepAlive(t *testing.T, addr string, creds zktest.Credentials) (stop func()) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	_, err = c.Write(zkwire.AppendConnectRequest(nil, creds.SessionID, creds.Password, 60000))
	require.NoError(t, err)
	frame, err := zkwire.ReadFrame(c)
	require.NoError(t, err)
	resp, err := zkwire.ParseConnectResponse(frame[4:])
	require.NoError(t, err)
	require.Equal(t, creds.SessionID, resp.SessionID, "the session to keep alive had already expired")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // drain replies
		defer wg.Done()
		for {
			if _, err := zkwire.ReadFrame(c); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				_, _ = c.Write(zkwire.AppendRequestHeaderOnly(nil, 1, zkwire.OpCloseSession))
				return
			case <-tick.C:
				if _, err := c.Write(zkwire.AppendRequestHeaderOnly(nil, zkwire.XidPing, zkwire.OpPing)); err != nil {
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			wg.Wait()
			c.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestMutexOwnOldSessionNodeLingers: the client presumes its session lost
// while the server keeps it alive (a zombie connection pings it), so the
// client's own lock node of the OLD session lingers and still holds the lock
// on the server. The Mutex must not count as held; a new Lock with the new
// session deletes that node (it is its own, from a session it gave up) and
// holds with a node of the new session.
func TestMutexOwnOldSessionNodeLingers(t *testing.T) {
	t.Run("delete succeeds", func(t *testing.T) { testOwnOldSessionNodeLingers(t, false) })
	// The delete of the old node meets a connection loss: it must be retried
	// on the new session, not given up as "the node's session ended" (it has
	// not: the zombie keeps it), or the new Lock waits behind that node until
	// the server expires the old session.
	t.Run("delete hits a connection loss", func(t *testing.T) { testOwnOldSessionNodeLingers(t, true) })
}

func testOwnOldSessionNodeLingers(t *testing.T, loseDelete bool) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/lock"
	ctx := lkCtx(t, 30*time.Second)
	proxy := zktest.NewProxyT(t, srv.Addr)
	s := connect(t, []string{proxy.Addr()})
	obs := connect(t, []string{srv.Addr})
	m := lkMutex(t, s, dir)
	require.NoError(t, m.Lock(ctx))
	lost := m.Lost()
	oldNode, oldID := m.Path(), s.ID()
	creds := zktest.Credentials{SessionID: oldID, Password: s.Password()}
	sub := s.Subscribe()
	defer sub.Close()

	// The zombie takes the session over (the server closes the client's
	// connection for it) before the client is cut off, so that no moment
	// passes in which nobody keeps the session alive: on a loaded machine
	// such a gap could outlast the 2 s session timeout and really expire it.
	proxy.Refuse(true)
	stopZombie := lkKeepAlive(t, srv.Addr, creds)
	proxy.DropAll()
	for presumed := false; !presumed; {
		select {
		case ev := <-sub.C:
			presumed = ev.State == zkrecipes.StateLost && ev.Presumed && ev.SessionID == oldID
		case <-ctx.Done():
			t.Fatal("the client never presumed its session lost")
		}
	}
	requireClosed(t, lost, 10*time.Second, "Lost not closed after the presumed session loss")
	require.False(t, m.Held())
	_, st, err := obs.Get(ctx, oldNode)
	require.NoError(t, err, "the old session's lock node must still exist for this test")
	require.Equal(t, oldID, st.EphemeralOwner)

	proxy.Refuse(false)
	require.NoError(t, s.WaitConnected(ctx))
	require.NotEqual(t, oldID, s.ID())
	other := lkMutex(t, obs, dir)
	ok, err := other.TryLock(ctx)
	require.NoError(t, err)
	require.False(t, ok, "the zombie's node still holds the lock on the server")

	// The new Lock drops the old session's node (its own, from a session it
	// has given up) instead of waiting for the server to expire that session,
	// and never counts that node as its hold.
	var deleteLost <-chan struct{}
	if loseDelete {
		deleteLost = proxy.DropRequest(func(op int32) bool { return op == zkwire.OpDelete })
	}
	lockCtx, cancelLock := context.WithTimeout(ctx, 15*time.Second)
	defer cancelLock()
	require.NoError(t, m.Lock(lockCtx), "Lock waits behind the old session's node")
	if loseDelete {
		requireClosed(t, deleteLost, 10*time.Second, "the delete of the old node never went through the proxy")
	}
	ok, _, err = obs.Exists(ctx, oldNode)
	require.NoError(t, err)
	require.False(t, ok, "the old session's node must be gone once the new hold starts")
	require.NotEqual(t, oldNode, m.Path())
	stopZombie()
	require.True(t, m.Held())
	_, st, err = obs.Get(ctx, m.Path())
	require.NoError(t, err)
	require.Equal(t, s.ID(), st.EphemeralOwner)
	require.NoError(t, m.Unlock(ctx))
}
