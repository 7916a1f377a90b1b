package zkrecipes_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/zkwire"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// drain reads events from sub until pred matches one (or 15s pass) and returns all read.
func drain(t *testing.T, sub *zkrecipes.Subscription, pred func(zkrecipes.Event) bool) []zkrecipes.Event {
	t.Helper()
	var out []zkrecipes.Event
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			require.True(t, ok, "subscription closed; got %v", out)
			out = append(out, ev)
			if pred(ev) {
				return out
			}
		case <-deadline:
			t.Fatalf("event not seen within 15s; got %v", out)
		}
	}
}

func states(evs []zkrecipes.Event) []zkrecipes.State {
	out := make([]zkrecipes.State, len(evs))
	for i, e := range evs {
		out[i] = e.State
	}
	return out
}

// TestSessionStatesReachSlowSubscriberInOrder lets events pile up unread
// across a reconnect and a real expiry, then checks none was dropped.
func TestSessionStatesReachSlowSubscriberInOrder(t *testing.T) {
	s, px := proxied(t)
	sub := s.Subscribe()
	defer sub.Close()
	old := s.ID()
	expired := s.Expired(old)

	// Reconnect (same session), several times, nothing read meanwhile.
	for range 3 {
		px.Refuse(true)
		px.DropAll()
		require.Eventually(t, func() bool { return s.State() == zkrecipes.StateSuspended }, 10*time.Second, 5*time.Millisecond)
		px.Refuse(false)
		require.Eventually(t, func() bool { return s.State() == zkrecipes.StateReconnected }, 10*time.Second, 5*time.Millisecond)
	}
	require.Equal(t, old, s.ID())
	// Real expiry.
	expire(t, zktest.Shared(t).Addr, s)
	require.Eventually(t, func() bool { id := s.ID(); return id != 0 && id != old }, 15*time.Second, 5*time.Millisecond)
	select {
	case <-expired:
	default:
		t.Fatal("Expired(old) not closed after the session expired")
	}
	select {
	case <-s.Expired(old):
	default:
		t.Fatal("Expired of a past session must be closed")
	}

	evs := drain(t, sub, func(e zkrecipes.Event) bool { return e.State == zkrecipes.StateConnected })
	st := states(evs)
	// Three suspend/reconnect pairs, then (maybe a suspension), the loss, the new session.
	require.GreaterOrEqual(t, len(st), 8, "events %v", st)
	for i := range 3 {
		require.Equal(t, zkrecipes.StateSuspended, st[2*i], "events %v", st)
		require.Equal(t, zkrecipes.StateReconnected, st[2*i+1], "events %v", st)
		require.Equal(t, old, evs[2*i+1].SessionID)
	}
	rest := st[6:]
	require.Equal(t, zkrecipes.StateLost, rest[len(rest)-2], "events %v", st)
	require.Equal(t, old, evs[len(evs)-2].SessionID, "Lost names the session that ended")
	last := evs[len(evs)-1]
	require.True(t, last.NewSession, "Connected after Lost must be flagged NewSession")
	require.NotEqual(t, old, last.SessionID)
	for _, x := range rest[:len(rest)-2] {
		require.Equal(t, zkrecipes.StateSuspended, x, "events %v", st)
	}
	for i := 1; i < len(evs); i++ {
		require.False(t, evs[i].Time.Before(evs[i-1].Time), "times in order")
	}
}

// TestSessionPresumedLostAfterFreeze blackholes the connection for longer
// than the session timeout: the session is declared lost locally (Presumed)
// and the client comes back with a new session id, never the old one.
func TestSessionPresumedLostAfterFreeze(t *testing.T) {
	s, px := proxied(t)
	sub := s.Subscribe()
	defer sub.Close()
	old := s.ID()
	heardBefore := s.LastHeard()
	require.False(t, heardBefore.IsZero())
	// LastHeard advances while connected (pings every third of the timeout).
	require.Eventually(t, func() bool { return s.LastHeard().After(heardBefore) }, 5*time.Second, 20*time.Millisecond)

	freezeAt := time.Now()
	px.Freeze()
	defer px.Unfreeze()
	// The suspension the freeze causes is the first Suspended stamped at or
	// after the freeze: on a loaded machine the 2 s session may have been
	// suspended and resumed before it (those events are still queued), or
	// may still be suspended from such a hiccup (then Lost comes next).
	evs := drain(t, sub, func(e zkrecipes.Event) bool {
		return e.State == zkrecipes.StateLost || e.State == zkrecipes.StateSuspended && !e.Time.Before(freezeAt)
	})
	if evs[len(evs)-1].State == zkrecipes.StateSuspended {
		// Suspension is noticed only after ~2/3 of the timeout of silence: LastHeard stopped.
		require.Greater(t, time.Since(s.LastHeard()), s.Timeout()/3, "LastHeard must stop while frozen")
	}
	frozenHeard := s.LastHeard()

	if evs[len(evs)-1].State != zkrecipes.StateLost {
		evs = drain(t, sub, func(e zkrecipes.Event) bool { return e.State == zkrecipes.StateLost })
	}
	lost := evs[len(evs)-1]
	require.True(t, lost.Presumed, "loss decided locally")
	require.Equal(t, old, lost.SessionID)
	require.Equal(t, frozenHeard, s.LastHeard(), "nothing heard while frozen")
	select {
	case <-s.Expired(old):
	default:
		t.Fatal("Expired(old) must be closed at a presumed loss")
	}
	require.Zero(t, s.ID(), "no session while lost")

	px.Unfreeze()
	evs = drain(t, sub, func(e zkrecipes.Event) bool { return e.State == zkrecipes.StateConnected })
	for _, e := range evs {
		require.NotEqual(t, zkrecipes.StateReconnected, e.State, "the old session must never be resumed: %v", states(evs))
	}
	back := evs[len(evs)-1]
	require.True(t, back.NewSession)
	require.NotEqual(t, old, back.SessionID)
	require.Equal(t, back.SessionID, s.ID())
	ctx := coCtx(t, 10*time.Second)
	_, _, err := s.Exists(ctx, "/")
	require.NoError(t, err)
}

func TestSessionChrootMapsPathsBothWays(t *testing.T) {
	plain := coShared(t, 1)[0]
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	require.NoError(t, plain.EnsurePath(ctx, root))
	s := connect(t, []string{zktest.Shared(t).Addr}, zkrecipes.WithChroot(root))

	created, err := s.Create(ctx, "/x", []byte("1"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, "/x", created)
	data, _, err := plain.Get(ctx, root+"/x")
	require.NoError(t, err)
	require.Equal(t, "1", string(data))

	seq, err := s.CreateParents(ctx, "/d/item-", nil, zkrecipes.PersistentSequential)
	require.NoError(t, err)
	require.Equal(t, "/d/item-0000000000", seq)

	res, err := s.Multi(ctx, &zk.CreateRequest{Path: "/y", Data: []byte("2")},
		&zk.SetDataRequest{Path: "/x", Data: []byte("1b"), Version: -1})
	require.NoError(t, err)
	require.Equal(t, "/y", res[0].String)

	kids, _, err := s.Children(ctx, "/")
	require.NoError(t, err)
	sort.Strings(kids)
	require.Equal(t, []string{"d", "x", "y"}, kids)

	// Watch event paths come back relative to the chroot.
	_, _, ch, err := s.GetW(ctx, "/x")
	require.NoError(t, err)
	_, err = plain.Set(ctx, root+"/x", []byte("3"), -1)
	require.NoError(t, err)
	ev, err := s.WaitEvent(ctx, s.ID(), ch)
	require.NoError(t, err)
	require.Equal(t, "/x", ev.Path)
	require.Equal(t, zk.EventNodeDataChanged, ev.Type)

	p, err := s.CreateProtected(ctx, "/eph", "n-", nil, true)
	require.NoError(t, err)
	require.Equal(t, "/eph", p[:4])
	ok, _, err := plain.Exists(ctx, root+p)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestSessionDigestAuthACL(t *testing.T) {
	addr := zktest.Shared(t).Addr
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	owner := connect(t, []string{addr}, zkrecipes.WithDigestAuth("alice", "secret"))
	other := connect(t, []string{addr})
	require.NoError(t, other.EnsurePath(ctx, root))
	_, err := owner.Create(ctx, root+"/guarded", []byte("v"), zkrecipes.Persistent)
	require.NoError(t, err)

	data, _, err := other.Get(ctx, root+"/guarded")
	require.NoError(t, err, "world may read")
	require.Equal(t, "v", string(data))
	_, err = other.Set(ctx, root+"/guarded", []byte("w"), -1)
	require.ErrorIs(t, err, zk.ErrNoAuth)
	err = other.Delete(ctx, root+"/guarded", -1)
	require.NoError(t, err, "delete is governed by the parent's ACL, which is open")

	_, err = owner.Create(ctx, root+"/guarded", []byte("v"), zkrecipes.Persistent)
	require.NoError(t, err)
	_, err = other.Create(ctx, root+"/guarded/child", nil, zkrecipes.Persistent)
	require.ErrorIs(t, err, zk.ErrNoAuth, "no create under a guarded node")
	sameUser := connect(t, []string{addr}, zkrecipes.WithDigestAuth("alice", "secret"))
	_, err = sameUser.Set(ctx, root+"/guarded", []byte("w"), -1)
	require.NoError(t, err, "the same identity may write")
	require.NoError(t, owner.Delete(ctx, root+"/guarded", -1))
}

// TestCreateProtectedAfterLostReply cuts the connection right after the
// server executed the create: CreateProtected must find and return that node
// and leave exactly one. go-zookeeper v1.0.4's Create sends OpCreate (1).
func TestCreateProtectedAfterLostReply(t *testing.T) {
	for _, sequential := range []bool{true, false} {
		s, px := proxied(t)
		root := testRoot(t)
		ctx := coCtx(t, 20*time.Second)
		require.NoError(t, s.EnsurePath(ctx, root))
		cut := px.CutAfterRequest(func(op int32) bool { return op == zkwire.OpCreate || op == zkwire.OpCreate2 })
		p, err := s.CreateProtected(ctx, root, "n-", []byte("d"), sequential)
		require.NoError(t, err)
		select {
		case <-cut:
		default:
			t.Fatal("the create reply was not cut")
		}
		kids, _, err := s.Children(ctx, root)
		require.NoError(t, err)
		require.Len(t, kids, 1, "exactly one node")
		require.Equal(t, root+"/"+kids[0], p)
		_, st, err := s.Get(ctx, p)
		require.NoError(t, err)
		require.Equal(t, s.ID(), st.EphemeralOwner)
	}
}

// TestCreateProtectedCancelledLeavesNoOrphan holds the create in a frozen
// proxy until ctx ends; the create then reaches the server, and the node it
// made must be deleted.
func TestCreateProtectedCancelledLeavesNoOrphan(t *testing.T) {
	s, px := proxied(t)
	w := coShared(t, 1)[0]
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	require.NoError(t, w.EnsurePath(ctx, root))
	_, before, err := w.Exists(ctx, root)
	require.NoError(t, err)

	px.Freeze()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.CreateProtected(short, root, "n-", nil, true)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	px.Unfreeze()
	// The create happened (cversion +1) and was undone (+1 more, no children).
	require.Eventually(t, func() bool {
		_, st, err := w.Exists(ctx, root)
		return err == nil && st.Cversion >= before.Cversion+2 && st.NumChildren == 0
	}, 10*time.Second, 10*time.Millisecond)
}

// TestLivenessStampsSendTimeNotReadTime: an answer read late proves the
// session alive only from when its request was SENT (the server renews a
// session when it receives a packet). The request of a Get held by a frozen
// network is answered once the network thaws: LastHeard jumps to the read
// time, Liveness.Answered stays at a send time before the thaw. (Self-fencing
// on LastHeard let a process woken from SIGSTOP count an answer that waited
// in its socket buffer as fresh.)
func TestLivenessStampsSendTimeNotReadTime(t *testing.T) {
	px := zktest.NewProxyT(t, zktest.Shared(t).Addr)
	s := connect(t, []string{px.Addr()}, zkrecipes.WithSessionTimeout(30*time.Second)) // pings every 10 s: none in the way
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := s.Get(ctx, "/")
	require.NoError(t, err)
	l := s.Liveness()
	require.False(t, l.Answered.IsZero(), "an answered request is stamped")
	require.Equal(t, 20*time.Second, l.Window, "2/3 of the negotiated timeout")
	require.Equal(t, l.Answered.Add(30*time.Second-10*time.Second), l.Until(30*time.Second, 10*time.Second))

	px.Freeze()
	sent := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Get(ctx, "/")
		done <- err
	}()
	require.Eventually(t, func() bool { return time.Since(sent) > 300*time.Millisecond }, 5*time.Second, 10*time.Millisecond)
	thawed := time.Now()
	px.Unfreeze()
	require.NoError(t, <-done)
	got := s.Liveness()
	require.False(t, s.LastHeard().Before(thawed), "the answer was read after the thaw")
	require.True(t, got.Answered.Before(thawed), "Answered %s must be the send time (before the thaw at %s), not the read time",
		got.Answered.Format(time.StampMicro), thawed.Format(time.StampMicro))
	require.False(t, got.Answered.Before(l.Answered), "Answered never goes back")
	require.Equal(t, l.Run, got.Run, "no lapse: the session was provably alive all along")
}
