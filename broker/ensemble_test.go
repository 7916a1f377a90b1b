package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// putGet does one put and reads it back on a fresh connection.
func putGet(t *testing.T, addr string, i int) {
	t.Helper()
	c := brokertest.Dial(t, addr)
	data := fmt.Sprintf("during-zk-trouble-%d", i)
	c.Send(t, putLine("ens", 0, data, i))
	r := expectReply(t, c, 200, int32(i))
	_, _, off := putResult(t, r)
	c.Send(t, fmt.Sprintf("get ens g 0 %d 4096 %d\r\n", off, i))
	line, body := c.ReadReply(t)
	require.Regexp(t, `^value `, line)
	require.Equal(t, data, string(messages(t, body)[0].Data))
}

// TestBrokerServesThroughZooKeeperLeaderAndQuorumLoss: a broker registered in
// a 3-node ensemble keeps serving put/get when the ZooKeeper leader dies and
// when 2 of 3 servers die (nothing on the put/get path needs ZooKeeper), and
// is registered again once the quorum returns.
func TestBrokerServesThroughZooKeeperLeaderAndQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node ensemble: skipped in -short mode")
	}
	e := zktest.StartEnsembleT(t, 3, zktest.Options{})
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.ZK = broker.ZKOptions{Enable: true, Servers: e.Addrs(), Root: "/ens", SessionTimeout: 4 * time.Second}
	}})
	raw := zktest.Connect(t, e.Addrs(), 4*time.Second)
	master := "/ens/brokers/ids/0/master"
	registered := func() bool {
		ok, _, err := raw.Exists(master)
		return err == nil && ok
	}
	require.True(t, registered())
	putGet(t, b.Addr(), 1)

	// Leader loss: clients continue within 10 s.
	leader := e.Leader()
	require.NotNil(t, leader)
	leader.Kill()
	putGet(t, b.Addr(), 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, e.WaitServing(ctx, 2))
	require.Eventually(t, registered, 10*time.Second, 20*time.Millisecond, "registration readable after the leader change")
	require.NoError(t, leader.Start(ctx))

	// Quorum loss: put/get keep working.
	var stopped []*zktest.Server
	for _, s := range e.Servers[:2] {
		s.Kill()
		stopped = append(stopped, s)
	}
	putGet(t, b.Addr(), 3)
	require.Eventually(t, func() bool { return b.ZKSession().State() != zkrecipes.StateConnected }, 20*time.Second, 20*time.Millisecond,
		"the broker's session notices the lost quorum")
	putGet(t, b.Addr(), 4)

	// Quorum back: the broker is registered again (same session, or a new one
	// after expiry) within 15 s.
	returned := time.Now()
	for _, s := range stopped {
		require.NoError(t, s.Start(ctx))
	}
	require.NoError(t, e.WaitServing(ctx, 3))
	require.Eventually(t, func() bool {
		_, st, err := raw.Get(master)
		return err == nil && st.EphemeralOwner == b.ZKSession().ID()
	}, 15*time.Second, 50*time.Millisecond, "registered again after the quorum returns")
	t.Logf("registered again %v after the quorum returned", time.Since(returned))
	putGet(t, b.Addr(), 5)
}
