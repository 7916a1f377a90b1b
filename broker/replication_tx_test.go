package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
	"github.com/stretchr/testify/require"
)

// A prepared XA transaction survives a failover: PREPARE is answered only
// once the in-sync sync slave has the prepared transaction (the
// transaction stream), so after the master is gone the promoted slave's
// RECOVER lists it, and its COMMIT publishes the messages exactly once.
// Without the stream the new master does not know the XID (RECOVER is
// empty, COMMIT answers XAER_NOTA).
func TestPreparedXATransactionSurvivesFailover(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	waitInSync(t, dialT(t, m.Addr()), 1, true)

	c := brokertest.Dial(t, m.Addr())
	const x = "XID:1:0a0b:01:node1"
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 1), 1))
	var ids []int64
	for i := 0; i < 4; i++ {
		r := txCall(t, c, txPutLine("rt", i%2, fmt.Sprintf("xa-%d", i), x, 10+i), 10+i)
		requireOK(t, r)
		id, _, _ := putResult(t, r)
		ids = append(ids, id)
	}
	c.Send(t, txLine(x, "END", 19))                                                                           // no reply
	requireXA(t, txCall(t, brokertest.Dial(t, s.Addr()), txLine(x, "PREPARE", 21), 21), protocol.XAErrRMFail) // a slave refuses transactions
	r := txCall(t, c, txLine(x, "PREPARE", 20), 20)
	requireOK(t, r)
	require.Equal(t, "0", string(r.body), "XA_OK")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, m.Shutdown(ctx)) // the master is gone
	require.NoError(t, s.Lead(ctx, 1))  // the in-sync slave takes over

	sc := brokertest.Dial(t, s.Addr())
	r = txCall(t, sc, txLine("null", "RECOVER", 30, "node1"), 30)
	requireOK(t, r)
	require.Equal(t, x, string(r.body), "the new master's RECOVER lists the prepared XID")
	gc := brokertest.Dial(t, s.Addr())
	gc.Send(t, "get __tx g 0 0 1048576 34\r\n")
	gr, _, err := readOne(gc, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, int32(404), gr.code, "the transaction stream is not served to consumers: %q", gr.body)
	_, err = dialT(t, s.Addr()).Put(ctx, &protocol.PutRequest{Topic: "__tx", Data: []byte("x"), Checksum: protocol.Checksum([]byte("x"))})
	require.ErrorContains(t, err, "internal transaction stream", "nobody but the master writes the transaction stream")
	topics, err := dialT(t, s.Addr()).Stats(ctx, "topics")
	require.NoError(t, err)
	for _, l := range topics {
		require.NotContains(t, l.Key, "__tx", "the transaction stream is not a topic: never listed (nor registered in ZooKeeper)")
	}
	for p := 0; p < 2; p++ {
		require.Empty(t, payloads(t, s.Addr(), "rt", p), "nothing of the prepared transaction is visible before COMMIT")
	}
	requireOK(t, txCall(t, sc, txLine(x, "COMMIT_TWO_PHASE", 31), 31))
	requireOK(t, txCall(t, sc, txLine(x, "COMMIT_TWO_PHASE", 32), 32)) // a TM replaying its decision
	for p := 0; p < 2; p++ {
		got := payloads(t, s.Addr(), "rt", p)
		require.Len(t, got, 2, "partition %d holds its messages exactly once", p)
		for i, msg := range got {
			require.Equal(t, ids[p+2*i], msg.ID)
			require.Equal(t, fmt.Sprintf("xa-%d", p+2*i), string(msg.Data))
		}
	}
	r = txCall(t, sc, txLine("null", "RECOVER", 33), 33)
	requireOK(t, r)
	require.Empty(t, string(r.body), "nothing in doubt after the commit")
}

// A commit the old master completed is not committed again by the new
// master: RECOVER does not list it, and a transaction manager replaying
// its COMMIT gets 200 without a second copy of the messages (the stream's
// COMMIT precedes the appends; a retry appends only what is missing).
func TestCommittedXATransactionIsNotRepeatedAfterFailover(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	waitInSync(t, dialT(t, m.Addr()), 1, true)
	c := brokertest.Dial(t, m.Addr())
	const x = "XID:2:0c0d:01:node1"
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 1), 1))
	for i := 0; i < 3; i++ {
		requireOK(t, txCall(t, c, txPutLine("rt", 0, fmt.Sprintf("done-%d", i), x, 10+i), 10+i))
	}
	requireOK(t, txCall(t, c, txLine(x, "PREPARE", 20), 20))
	requireOK(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 21), 21))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, m.Shutdown(ctx))
	require.NoError(t, s.Lead(ctx, 1))
	sc := brokertest.Dial(t, s.Addr())
	r := txCall(t, sc, txLine("null", "RECOVER", 30), 30)
	requireOK(t, r)
	require.Empty(t, string(r.body), "a committed transaction is not in doubt on the new master")
	requireOK(t, txCall(t, sc, txLine(x, "COMMIT_TWO_PHASE", 31), 31))
	got := payloads(t, s.Addr(), "rt", 0)
	require.Len(t, got, 3, "the committed messages exactly once")
	for i, msg := range got {
		require.Equal(t, fmt.Sprintf("done-%d", i), string(msg.Data))
	}
}
