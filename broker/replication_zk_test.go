package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
	"github.com/stretchr/testify/require"
)

func startZKMember(t *testing.T, root string, member int) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, ZK: zktest.Shared(t).Addr, ZKRoot: root,
		Modify: func(o *broker.Options) {
			o.Replication = broker.ReplicationOptions{Failover: true, MemberID: member, MinSyncSlaves: 1,
				MaxDelay: 10 * time.Second, FollowerMaxWait: 100 * time.Millisecond}
		}})
}

func roleLine(t *testing.T, c *conn.Conn) string {
	lines, err := c.Stats(context.Background(), "replication")
	require.NoError(t, err)
	for _, l := range lines {
		if l.Key == "role" {
			return l.Value
		}
	}
	return ""
}

// Under the failover driver: member 0 leads epoch 1, member 1 follows and
// joins the in-sync set; a planned switchover (metaq cluster promote) makes
// member 1 master of epoch 2 with every acknowledged message, member 0
// follows it, and puts resume on the new master once member 0 is in sync.
func TestFailoverDriverSwitchoverLosesNothing(t *testing.T) {
	root := fmt.Sprintf("/repl-%d/meta", time.Now().UnixNano())
	m := startZKMember(t, root, 0)
	mc := dialT(t, m.Addr())
	require.Eventually(t, func() bool { return roleLine(t, mc) == "master epoch 1" }, 30*time.Second, 10*time.Millisecond)
	s := startZKMember(t, root, 1)
	sc := dialT(t, s.Addr())
	waitInSync(t, mc, 1, true)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []ackedPut
	for i := 0; i < 40; i++ {
		a, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("sw-%d", i)))
		require.NoError(t, err)
		all = append(all, a)
	}
	zs, err := zkrecipes.Connect(ctx, []string{zktest.Shared(t).Addr})
	require.NoError(t, err)
	defer zs.Close()
	rs := coordinator.NewReplicaSet(zs, coordinator.NewPaths(root), 5, nil)
	require.NoError(t, rs.RequestPromotion(ctx, 1))
	require.Eventually(t, func() bool { return roleLine(t, sc) == "master epoch 2" }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return strings.HasPrefix(roleLine(t, mc), "follower master "+s.URI()+" epoch 2") },
		30*time.Second, 10*time.Millisecond)
	for _, a := range all {
		requireHas(t, s, a)
	}
	waitInSync(t, sc, 0, true)
	a, err := put(ctx, sc, 0, []byte("after-switchover"))
	require.NoError(t, err)
	requireHas(t, m, a)
	_, err = put(ctx, mc, 0, []byte("to-the-old-master"))
	require.ErrorContains(t, err, "this broker is a slave of brokerId 5")
}

// Rule 4: a master under the failover driver refuses puts while its
// ZooKeeper session is not provably alive (here: ZooKeeper unreachable
// behind a frozen proxy), before the session can expire on the server and
// another member be promoted; puts resume once ZooKeeper answers again.
func TestMasterRefusesPutsWithoutLiveSession(t *testing.T) {
	px := zktest.NewProxyT(t, zktest.Shared(t).Addr)
	root := fmt.Sprintf("/repl-%d/meta", time.Now().UnixNano())
	m := brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, ZK: px.Addr(), ZKRoot: root,
		Modify: func(o *broker.Options) {
			o.Replication = broker.ReplicationOptions{Failover: true}
		}})
	mc := dialT(t, m.Addr())
	require.Eventually(t, func() bool { return roleLine(t, mc) == "master epoch 1" }, 30*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := put(ctx, mc, 0, []byte("alive"))
	require.NoError(t, err)

	px.Freeze()
	require.Eventually(t, func() bool {
		_, err := put(ctx, mc, 0, []byte("frozen"))
		return err != nil && strings.Contains(err.Error(), "ZooKeeper session is not provably alive")
	}, 30*time.Second, 10*time.Millisecond)
	px.Unfreeze()
	require.Eventually(t, func() bool {
		_, err := put(ctx, mc, 0, []byte("back"))
		return err == nil
	}, 60*time.Second, 50*time.Millisecond)
}

// logLines is a slog destination tests can search.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// A master whose data directory was wiped, restarted while it is the only
// live member of the in-sync set, must not lead (it would lead with an
// empty log and the slave would truncate every acknowledged message to
// follow it). It waits; when the slave returns, the slave leads and the
// wiped member copies everything from it.
func TestWipedMasterDoesNotLeadAlone(t *testing.T) {
	root := fmt.Sprintf("/repl-%d/meta", time.Now().UnixNano())
	mdir, sdir := t.TempDir(), t.TempDir()
	start := func(dir string, member int, log io.Writer) *broker.Broker {
		b, err := brokertest.New(t, brokertest.Options{BrokerID: 5, Partitions: 2, ZK: zktest.Shared(t).Addr, ZKRoot: root, DataDir: dir,
			Modify: func(o *broker.Options) {
				o.Replication = broker.ReplicationOptions{Failover: true, MemberID: member, MinSyncSlaves: 1,
					MaxDelay: time.Minute, FollowerMaxWait: 100 * time.Millisecond}
				if log != nil {
					o.Logger = slog.New(slog.NewTextHandler(log, nil))
				}
			}})
		require.NoError(t, err)
		require.NoError(t, b.Start(context.Background()))
		t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
		return b
	}
	m := start(mdir, 0, nil)
	mc := dialT(t, m.Addr())
	require.Eventually(t, func() bool { return roleLine(t, mc) == "master epoch 1" }, 30*time.Second, 10*time.Millisecond)
	s := start(sdir, 1, nil)
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []ackedPut
	for i := 0; i < 20; i++ {
		a, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("keep-%d", i)))
		require.NoError(t, err)
		all = append(all, a)
	}
	require.NoError(t, s.Shutdown(ctx))
	require.NoError(t, m.Shutdown(ctx))

	require.NoError(t, os.RemoveAll(mdir))
	var logs logLines
	m = start(mdir, 0, &logs)
	require.Eventually(t, func() bool { return logs.contains("in the in-sync set but not standing") }, 60*time.Second, 10*time.Millisecond)
	s = start(sdir, 1, nil)
	sc := dialT(t, s.Addr())
	require.Eventually(t, func() bool { return strings.HasPrefix(roleLine(t, sc), "master epoch 2") }, 60*time.Second, 10*time.Millisecond)
	for _, a := range all {
		requireHas(t, s, a)
	}
	require.Eventually(t, func() bool {
		for _, a := range all {
			p, err := m.Store().Partition("rt", int(a.part), false)
			if err != nil || p.End() <= a.offset {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond)
	for _, a := range all {
		requireHas(t, m, a)
	}
}
