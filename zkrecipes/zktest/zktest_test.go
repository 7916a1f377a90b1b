package zktest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/zkwire"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }

func TestFourLetterWordsListDataWatches(t *testing.T) {
	srv := zktest.Shared(t)
	c := zktest.Connect(t, []string{srv.Addr}, 2*time.Second)
	p := "/flw-" + time.Now().Format("150405.000000000")
	_, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	_, _, _, err = c.GetW(p)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		out, err := srv.FourLetter("wchp")
		return err == nil && strings.Contains(out, p)
	}, 10*time.Second, 20*time.Millisecond)
	for _, cmd := range []string{"cons", "dump", "wchc", "srvr"} {
		out, err := srv.FourLetter(cmd)
		require.NoError(t, err, cmd)
		require.NotContains(t, out, "is not executed because it is not in the whitelist", cmd)
	}
}

func TestExpireSessionFromSecondConnection(t *testing.T) {
	srv := zktest.Shared(t)
	var expired atomic.Bool
	rec := &zktest.Recorder{}
	conn, _, err := zk.Connect([]string{srv.Addr}, 2*time.Second, zk.WithDialer(rec.Dial), zk.WithLogger(zktest.QuietLogger{}),
		zk.WithEventCallback(func(e zk.Event) {
			if e.Type == zk.EventSession && e.State == zk.StateExpired {
				expired.Store(true)
			}
		}))
	require.NoError(t, err)
	defer conn.Close()
	require.Eventually(t, func() bool { return conn.State() == zk.StateHasSession }, 10*time.Second, 10*time.Millisecond)
	old := conn.SessionID()
	_, err = conn.Create("/expire-me", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, zktest.ExpireSession(ctx, srv.Addr, rec.Credentials()))

	require.Eventually(t, expired.Load, 10*time.Second, 10*time.Millisecond, "client never saw StateExpired")
	require.Eventually(t, func() bool { return conn.State() == zk.StateHasSession && conn.SessionID() != old }, 10*time.Second, 10*time.Millisecond)
	ok, _, err := conn.Exists("/expire-me")
	require.NoError(t, err)
	require.False(t, ok, "ephemeral node of the expired session must be gone")
}

func TestProxyCutsConnectionAfterRequestBeforeReply(t *testing.T) {
	srv := zktest.Shared(t)
	p := zktest.NewProxyT(t, srv.Addr)
	c := zktest.Connect(t, []string{p.Addr()}, 4*time.Second)
	cut := p.CutAfterRequest(func(op int32) bool { return op == zkwire.OpCreate || op == zkwire.OpCreate2 })
	_, err := c.Create("/cut-create", []byte("x"), 0, zk.WorldACL(zk.PermAll))
	require.Error(t, err, "the reply must be lost")
	require.True(t, errors.Is(err, zk.ErrConnectionClosed), "got %v", err)
	<-cut
	// The server did the work: the node exists, seen from a direct connection.
	d := zktest.Connect(t, []string{srv.Addr}, 4*time.Second)
	ok, _, err := d.Exists("/cut-create")
	require.NoError(t, err)
	require.True(t, ok)
}

func TestProxyFreezeDisconnectsClient(t *testing.T) {
	srv := zktest.Shared(t)
	p := zktest.NewProxyT(t, srv.Addr)
	var disconnected atomic.Bool
	conn, _, err := zk.Connect([]string{p.Addr()}, 1*time.Second, zk.WithLogger(zktest.QuietLogger{}),
		zk.WithEventCallback(func(e zk.Event) {
			if e.State == zk.StateDisconnected {
				disconnected.Store(true)
			}
		}))
	require.NoError(t, err)
	defer conn.Close()
	require.Eventually(t, func() bool { return conn.State() == zk.StateHasSession }, 10*time.Second, 10*time.Millisecond)
	p.Freeze()
	require.Eventually(t, disconnected.Load, 10*time.Second, 10*time.Millisecond)
	p.Unfreeze()
	require.Eventually(t, func() bool { return conn.State() == zk.StateHasSession }, 10*time.Second, 10*time.Millisecond)
}

func TestEnsembleSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("ensemble test skipped in -short mode")
	}
	e := zktest.StartEnsembleT(t, 3, zktest.Options{})
	c := zktest.Connect(t, e.Addrs(), 4*time.Second)
	_, err := c.Create("/ens", nil, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	leader := e.Leader()
	require.NotNil(t, leader)
	leader.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.WaitServing(ctx, 2))
	require.Eventually(t, func() bool {
		_, err := c.Create("/ens/after", nil, 0, zk.WorldACL(zk.PermAll))
		return err == nil || errors.Is(err, zk.ErrNodeExists)
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, leader.Start(ctx))
	require.NoError(t, e.WaitServing(ctx, 3))
}
