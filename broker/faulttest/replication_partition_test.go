package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/netfault"
	"github.com/metaq-go/metaq/protocol"
)

// A network partition between the master and its sync slave (real
// binaries, the slave reaching the master through a proxy that is cut):
// with minSyncSlaves=1 the master drops the slave from the in-sync set
// after slaveMaxDelayInMills and refuses puts (503) until the link heals;
// then the slave catches up, rejoins the set, puts are acknowledged again,
// and both sides hold every acknowledged message at its offset.
func TestReplicationPartitionMasterSlave(t *testing.T) {
	m := startBroker(t, config{replication: []string{"minSyncSlaves=1", "slaveMaxDelayInMills=1000"}})
	px, err := netfault.New(m.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = px.Close() })
	s := startBroker(t, config{replication: []string{"slaveId=1", "mode=sync", "serveReads=true", "masterAddr=" + px.Addr()}})
	inSync := func(want bool) {
		eventually(t, 60*time.Second, func() (bool, string) {
			return hasLine(m.addr, fmt.Sprintf("slave 1 mode sync in_sync %t", want)), fmt.Sprintf("slave 1 in_sync %t: %q", want, replStats(m.addr))
		})
	}
	inSync(true)

	l := newLedger()
	load(t, m.addr, "before", 3, []int32{0, 1, 2, 3}, l, 200, func() { px.Cut() })
	inSync(false)
	c := dial(t, m.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.send("during-partition", 0)
	_, err = c.Put(ctx, putReq(0, "during-partition"))
	var se *conn.ServerError
	require.ErrorAs(t, err, &se, "a put while the only sync slave is cut off")
	require.Equal(t, int32(protocol.CodeUnavailable), se.Code)
	require.Equal(t, "not enough in-sync replicas (have 0, need 1)", se.Msg)

	px.Heal()
	inSync(true)
	// A loaded machine may make the slave lag past the limit again: a
	// refusal is retriable, only acknowledged puts count.
	for i := 0; i < 20; i++ {
		payload := fmt.Sprintf("after-heal-%d", i)
		l.send(payload, int32(i%parts))
		r, err := c.Put(ctx, putReq(int32(i%parts), payload))
		for err != nil && ctx.Err() == nil {
			require.ErrorAs(t, err, &se)
			require.Equal(t, int32(protocol.CodeUnavailable), se.Code, se.Msg)
			r, err = c.Put(ctx, putReq(int32(i%parts), payload))
		}
		require.NoError(t, err)
		l.acknowledged(payload, ack{part: r.Partition, offset: r.Offset, id: r.MsgID})
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		a, _ := partitionEnds(m.addr)
		b, _ := partitionEnds(s.addr)
		return a == b, fmt.Sprintf("slave caught up: master %d, slave %d", a, b)
	})
	l.audit(t, readAll(t, m.addr, false), auditOpts{})
	l.audit(t, readAll(t, s.addr, false), auditOpts{})
}
