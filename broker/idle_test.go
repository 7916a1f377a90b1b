package broker_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
)

// allIdle reports whether every periodic loop of b sleeps without a timer.
func allIdle(b *broker.Broker) func() bool {
	return func() bool { l := b.IdleLoops(); return l.Reaper && l.Resumer && l.TxReaper }
}

// An idle broker (no connection, no transaction) runs no ticker: its
// reaper, resumer and transaction reaper sleep until there is work, and
// look at nothing meanwhile. (Before, the resumer looked every 10 ms, the
// transaction reaper every 100 ms and the reaper every second, forever.)
func TestIdleBrokerLoopsLookAtNothing(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	require.Eventually(t, allIdle(b), 20*time.Second, 5*time.Millisecond,
		"a broker without connections or transactions still runs a ticker")
	before := b.IdleLoops()

	// Work that takes real time (each append waits for its fsync) but
	// involves no connection and no transaction: the loops stay asleep.
	p, err := b.Store().Partition("idle", 0, true)
	require.NoError(t, err)
	start := time.Now()
	for i := 0; i < 50; i++ {
		_, err := p.AppendSync(context.Background(), []byte("idle"), 0)
		require.NoError(t, err)
	}
	after := b.IdleLoops()
	t.Logf("%v of appends; looks before %+v after %+v", time.Since(start), before, after)
	require.Equal(t, before, after, "an idle broker's loops looked at their work")
}

// The reaper, asleep while there is no connection, wakes for the first
// one: a silent connection is still closed after the idle timeout, and the
// reaper sleeps again once it is gone.
func TestReaperWakesForTheFirstConnection(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.IdleTimeout = idle }})
	require.Eventually(t, func() bool { return b.IdleLoops().Reaper }, 20*time.Second, 5*time.Millisecond)
	quiet := brokertest.Dial(t, b.Addr())
	quiet.Send(t, "version 1\r\n")
	expectReply(t, quiet, 200, 1)
	expectClosed(t, quiet, 20*time.Second)
	require.Eventually(t, func() bool { return b.IdleLoops().Reaper }, 20*time.Second, 5*time.Millisecond,
		"the reaper sleeps again without connections")
}

// The resumer, asleep while no connection is paused or buffered, wakes
// when slow readers are paused by the broker-wide output limit: they get
// every reply (a connection paused by another's output hears of nothing
// but the resumer's look), and the resumer sleeps again afterwards.
func TestResumerWakesForPausedConnections(t *testing.T) {
	const (
		total   = 1 << 20
		n       = 40
		maxSize = 128 << 10
	)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxTotalOutputBytes = total
		o.MaxMessageSize = maxSize
	}})
	data := bytes.Repeat([]byte("r"), maxSize-protocolHeader)
	p, err := b.Store().Partition("slow", 0, true)
	require.NoError(t, err)
	_, err = p.AppendSync(context.Background(), data, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.IdleLoops().Resumer }, 20*time.Second, 5*time.Millisecond)

	c1, c2 := dialSlowReader(t, b.Addr()), dialSlowReader(t, b.Addr())
	pipelineGets(t, c1, "slow", n, maxSize)
	pipelineGets(t, c2, "slow", n, maxSize)
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "paused_connections") == "2" },
		30*time.Second, 20*time.Millisecond, "both connections are paused by the broker-wide limit")
	readAllGets(t, c1, n, data)
	readAllGets(t, c2, n, data)
	require.Eventually(t, func() bool {
		return statsValue(t, b.Addr(), "paused_connections") == "0" && statsValue(t, b.Addr(), "buffered_bytes") == "0"
	}, 20*time.Second, 20*time.Millisecond, "nothing stays accounted once everything is read")
	require.Eventually(t, func() bool { return b.IdleLoops().Resumer }, 20*time.Second, 5*time.Millisecond,
		"the resumer sleeps again once nothing is paused or buffered")
}

// The transaction reaper, asleep while no transaction is live, wakes for
// the first one: a transaction past its timeout is still rolled back, and
// the reaper sleeps again once none is live.
func TestTxReaperWakesForTheFirstTransaction(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.MaxTxTimeout = 300 * time.Millisecond }})
	require.Eventually(t, func() bool { return b.IdleLoops().TxReaper }, 20*time.Second, 5*time.Millisecond)
	c := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c, txLine("XID:1:01:01:q", "BEGIN", 1, "3600"), 1))
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "tx_rollback") == "1" }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return b.IdleLoops().TxReaper }, 20*time.Second, 5*time.Millisecond,
		"the transaction reaper sleeps again once no transaction is live")
}
