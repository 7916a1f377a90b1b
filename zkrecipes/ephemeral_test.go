package zkrecipes_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func lkEphemeral(t *testing.T, s *zkrecipes.Session, p string, data string) *zkrecipes.EphemeralNode {
	t.Helper()
	e, err := zkrecipes.NewEphemeralNode(s, p, []byte(data))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e
}

// ownedBy reports whether p exists, is owned by session s, and holds data.
func ownedBy(t *testing.T, obs, s *zkrecipes.Session, p, data string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, st, err := obs.Get(ctx, p)
	return err == nil && st.EphemeralOwner == s.ID() && s.ID() != 0 && string(got) == data
}

// TestEphemeralNodeSelfHeals: the node comes back after a deletion by someone
// else and after its session expires; SetData and Close work.
func TestEphemeralNodeSelfHeals(t *testing.T) {
	srv := zktest.Shared(t)
	p := testRoot(t) + "/members/me"
	ctx := lkCtx(t, 30*time.Second)
	s, obs := connect(t, []string{srv.Addr}), connect(t, []string{srv.Addr})
	e := lkEphemeral(t, s, p, "v1")
	require.Equal(t, p, e.Path())
	require.NoError(t, e.Start(ctx))
	require.True(t, ownedBy(t, obs, s, p, "v1"))
	require.Eventually(t, func() bool {
		ws := lkWatchers(t, srv.Addr, p[:len(p)-len("/me")])[p]
		return len(ws) == 1 && ws[0] == lkSessionHex(s)
	}, 10*time.Second, 10*time.Millisecond, "the owner keeps one watch on its node")

	require.NoError(t, obs.Delete(ctx, p, -1))
	require.Eventually(t, func() bool { return ownedBy(t, obs, s, p, "v1") }, 10*time.Second, 10*time.Millisecond,
		"not re-created after a deletion")

	oldID := s.ID()
	expire(t, srv.Addr, s)
	require.Eventually(t, func() bool { return s.ID() != oldID && ownedBy(t, obs, s, p, "v1") }, 10*time.Second, 10*time.Millisecond,
		"not re-created by the new session after expiry")

	require.NoError(t, e.SetData(ctx, []byte("v2")))
	// Eventually, not at once: under load the test's short session can flap
	// again, and the node then comes back (with v2) under the next session ID.
	require.Eventually(t, func() bool { return ownedBy(t, obs, s, p, "v2") }, 10*time.Second, 10*time.Millisecond,
		"SetData's value not held by the owner's node")
	require.NoError(t, e.Close(ctx))
	ok, _, err := obs.Exists(ctx, p)
	require.NoError(t, err)
	require.False(t, ok, "Close must delete the node")
}

// TestEphemeralNodeWaitsForOldSessionNode: the path is taken by another
// session's node (as after an expiry the server has not processed yet); the
// node is not fought over: Start waits for it to go and then creates.
func TestEphemeralNodeWaitsForOldSessionNode(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/members"
	p := dir + "/me"
	ctx := lkCtx(t, 30*time.Second)
	raw := zktest.Connect(t, []string{srv.Addr}, 2*time.Second)
	s := connect(t, []string{srv.Addr})
	require.NoError(t, s.EnsurePath(ctx, dir))
	_, err := raw.Create(p, []byte("old"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	e := lkEphemeral(t, s, p, "new")
	started := make(chan error, 1)
	go func() { started <- e.Start(ctx) }()
	require.Eventually(t, func() bool {
		ws := lkWatchers(t, srv.Addr, dir)[p]
		return len(ws) == 1 && ws[0] == lkSessionHex(s)
	}, 10*time.Second, 10*time.Millisecond, "must wait on the old node with one watch")
	select {
	case err := <-started:
		t.Fatalf("Start returned while the old session's node existed: %v", err)
	default:
	}
	require.Zero(t, s.WatchEvents(), "nothing fired yet: the old node is waited for, not polled")

	require.NoError(t, raw.Expire(ctx, srv.Addr))
	require.NoError(t, <-started)
	require.True(t, ownedBy(t, s, s, p, "new"))
}
