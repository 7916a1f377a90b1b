package compattest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// TestTransactionWithoutTimeoutHasNoTimer mirrors TransactionContext (the
// Java client's local and XA transactions: its transactionTimeout defaults
// to 0, and TransactionCommand then omits the timeout token) against
// TransactionalCommandProcessor.setTxTimeout: a timeout <= 0 sets no timer,
// a positive one is capped at maxTxTimeoutInSeconds. The transactions
// without a timeout must outlive one that timed out under the cap.
func TestTransactionWithoutTimeoutHasNoTimer(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxTxTimeout = 300 * time.Millisecond
	}})
	c := dialMetaQ(t, b.Addr())
	const local, xa, timed = "TX:sess:1", "XID:1:0a:01:q1", "TX:sess:2"
	requireCode(t, protocol.CodeOK, c.tx(local, protocol.TxBegin, 0, ""))
	requireCode(t, protocol.CodeOK, c.tx(xa, protocol.TxBegin, 0, "q1"))
	requireCode(t, protocol.CodeOK, c.call(&protocol.PutRequest{Topic: "tx", Data: []byte("local"), TxKey: local,
		Checksum: protocol.Checksum([]byte("local")), OpaqueID: c.nextOpaque()}))
	requireCode(t, protocol.CodeOK, c.call(&protocol.PutRequest{Topic: "tx", Data: []byte("xa"), TxKey: xa,
		Checksum: protocol.Checksum([]byte("xa")), OpaqueID: c.nextOpaque()}))
	// 3600 s is capped at maxTxTimeoutInSeconds (here 300 ms): it is rolled back.
	requireCode(t, protocol.CodeOK, c.tx(timed, protocol.TxBegin, 3600, ""))
	require.Eventually(t, func() bool { return c.statsValue("tx_rollback") == "1" }, 20*time.Second, 20*time.Millisecond)
	requireXA(t, protocol.XARBTimeout, c.tx(timed, protocol.TxCommitOnePhase, 0, ""))

	// The untimed ones, begun earlier, are still alive and commit.
	requireCode(t, protocol.CodeOK, c.tx(local, protocol.TxCommitOnePhase, 0, ""))
	c.send(&protocol.TransactionRequest{TxKey: xa, SessionID: "sess", Type: protocol.TxEnd, UniqueQualifier: "q1", OpaqueID: c.nextOpaque()})
	r := c.tx(xa, protocol.TxPrepare, 0, "q1")
	requireCode(t, protocol.CodeOK, r)
	require.Equal(t, "0", string(r.Body))
	requireCode(t, protocol.CodeOK, c.tx(xa, protocol.TxCommitTwoPhase, 0, "q1"))
	require.Equal(t, []string{"local", "xa"}, c.payloads("tx", 0))
}

// TestXATransactionStartEndStateMachine mirrors XATransactionContext (the
// Java client's XAResource, TransactionContext.start/end) and
// TransactionProcessor: xa_start sends BEGIN, xa_end (TMSUCCESS, TMFAIL or
// TMSUSPEND alike: the wire carries no flags) sends END without waiting for
// a reply, and a duplicate BEGIN of a known XID answers 200 as MetaQ's
// beginTransaction does. On the broker END dissociates the branch: work
// under it is refused (XAER_PROTO) until a BEGIN re-associates it (TMJOIN /
// TMRESUME); PREPARE and COMMIT after END work as the client sends them.
func TestXATransactionStartEndStateMachine(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := dialMetaQ(t, b.Addr())
	const xid, uq = "XID:1:0b:01:rm1", "rm1"
	put := func(data string) protocol.Reply {
		return c.call(&protocol.PutRequest{Topic: "xa", Data: []byte(data), TxKey: xid,
			Checksum: protocol.Checksum([]byte(data)), OpaqueID: c.nextOpaque()})
	}
	end := func() {
		c.send(&protocol.TransactionRequest{TxKey: xid, SessionID: "sess", Type: protocol.TxEnd, UniqueQualifier: uq, OpaqueID: c.nextOpaque()})
	}
	requireCode(t, protocol.CodeOK, c.tx(xid, protocol.TxBegin, 0, uq))
	requireCode(t, protocol.CodeOK, c.tx(xid, protocol.TxBegin, 0, uq)) // duplicate BEGIN: 200, as MetaQ
	requireCode(t, protocol.CodeOK, put("one"))

	end() // xa_end(TMSUCCESS): no reply — the next reply is the version's
	v := c.call(&protocol.VersionRequest{OpaqueID: c.nextOpaque()})
	requireCode(t, protocol.CodeOK, v)
	requireXA(t, protocol.XAErrProto, put("after end")) // not associated any more

	requireCode(t, protocol.CodeOK, c.tx(xid, protocol.TxBegin, 0, uq)) // xa_start(TMJOIN/TMRESUME)
	requireCode(t, protocol.CodeOK, put("two"))
	end()
	r := c.tx(xid, protocol.TxPrepare, 0, uq)
	requireCode(t, protocol.CodeOK, r)
	require.Equal(t, "0", string(r.Body), "XA_OK")
	end()                                                               // END of a prepared branch changes nothing
	requireCode(t, protocol.CodeOK, c.tx(xid, protocol.TxBegin, 0, uq)) // nor does BEGIN (MetaQ answers 200)
	requireXA(t, protocol.XAErrProto, put("after prepare"))
	requireCode(t, protocol.CodeOK, c.tx(xid, protocol.TxCommitTwoPhase, 0, uq))
	require.Equal(t, []string{"one", "two"}, c.payloads("xa", 0))

	// xa_end(TMFAIL) then rollback: the branch's work is discarded.
	const failed = "XID:1:0c:01:rm1"
	requireCode(t, protocol.CodeOK, c.tx(failed, protocol.TxBegin, 0, uq))
	requireCode(t, protocol.CodeOK, c.call(&protocol.PutRequest{Topic: "xa", Data: []byte("lost"), TxKey: failed,
		Checksum: protocol.Checksum([]byte("lost")), OpaqueID: c.nextOpaque()}))
	c.send(&protocol.TransactionRequest{TxKey: failed, SessionID: "sess", Type: protocol.TxEnd, UniqueQualifier: uq, OpaqueID: c.nextOpaque()})
	requireCode(t, protocol.CodeOK, c.tx(failed, protocol.TxRollback, 0, uq))
	require.Equal(t, []string{"one", "two"}, c.payloads("xa", 0))
}
