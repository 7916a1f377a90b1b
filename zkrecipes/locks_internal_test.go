package zkrecipes

import (
	"context"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// These white-box tests check the owner rules directly: a node is only ever
// trusted for the session that is current now. (The package's TestMain, in
// main_test.go, starts the shared ZooKeeper for them too.)

// internalSessionTimeout is long because no test here waits for a session
// to expire: a 2 s session drops its connection (go-zookeeper gives up after
// 2/3 of the timeout without a reply) whenever a loaded machine stalls the
// client or the JVM for 1.3 s, and the setup calls here do not retry.
const internalSessionTimeout = 10 * time.Second

func internalSession(t *testing.T) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Connect(ctx, []string{zktest.Shared(t).Addr}, WithSessionTimeout(internalSessionTimeout))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func internalRoot(t *testing.T) string {
	return "/t/internal-" + t.Name() + "-" + time.Now().Format("150405.000000000")
}

// A lowest node whose creator session is not the current one never makes its
// holder: not through the recorded owner (mutex path), not through the
// node's Stat (latch path).
func TestInternalOldOwnerNeverHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := internalSession(t)
	raw := zktest.Connect(t, []string{zktest.Shared(t).Addr}, internalSessionTimeout)
	dir := internalRoot(t)
	require.NoError(t, s.EnsurePath(ctx, dir))
	p, err := raw.Create(dir+"/_c_0123456789abcdef0123456789abcdef-latch-", []byte("x"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	oldOwner := raw.SessionID()

	ok, err := s.awaitTurn(ctx, dir, ownedNode{path: p, owner: oldOwner}, []string{"latch-"}, decidePredecessor, true)
	require.ErrorIs(t, err, ErrSessionLost)
	require.False(t, ok)

	// The latch re-reads the owner from the node itself, so even a wrong
	// record claiming the current session does not make it lead.
	l, err := NewLeaderLatch(s, dir, "me")
	require.NoError(t, err)
	err = l.contend(ctx, ownedNode{path: p, owner: s.ID()})
	require.ErrorIs(t, err, ErrSessionLost)
	require.False(t, l.IsLeader())
}

// A node left at an EphemeralNode's path by one of its own previous sessions,
// with its own data, is deleted and re-created at once (no wait for the
// server to expire that session). (A foreign node is waited for: see
// TestEphemeralNodeWaitsForOldSessionNode.)
func TestInternalEphemeralDeletesOwnLeftover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := internalSession(t)
	raw := zktest.Connect(t, []string{zktest.Shared(t).Addr}, internalSessionTimeout)
	dir := internalRoot(t)
	require.NoError(t, s.EnsurePath(ctx, dir))
	p := dir + "/me"
	_, err := raw.Create(p, []byte("mine"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	e, err := NewEphemeralNode(s, p, []byte("mine"))
	require.NoError(t, err)
	e.previous[raw.SessionID()] = true // as if raw's session had been ours before a presumed loss
	require.NoError(t, e.Start(ctx))
	defer e.Close(ctx)
	_, st, err := s.Get(ctx, p)
	require.NoError(t, err)
	require.Equal(t, s.ID(), st.EphemeralOwner)
}
