package broker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/txlog"
	"github.com/metaq-go/metaq/protocol"
)

// txPutLine builds a transactional put (7-token checksum form).
func txPutLine(topic string, part int, data, key string, opaque int) string {
	return fmt.Sprintf("put %s %d %d 0 %d %s %d\r\n%s", topic, part, len(data), protocol.Checksum([]byte(data)), key, opaque, data)
}

// txLine builds a transaction request; extra are the optional timeout and qualifier tokens.
func txLine(key, typ string, opaque int, extra ...string) string {
	toks := append([]string{"transaction", key, "sess", typ}, extra...)
	return strings.Join(append(toks, fmt.Sprint(opaque)), " ") + "\r\n"
}

// txCall sends a request and reads its reply.
func txCall(t testing.TB, c *brokertest.Client, line string, opaque int) reply {
	t.Helper()
	c.Send(t, line)
	r, closed, err := readOne(c, 10*time.Second)
	require.NoError(t, err)
	require.False(t, closed, "connection closed after %q", line)
	require.Equal(t, int32(opaque), r.opaque, "reply %q to %q", r.line, line)
	return r
}

// requireOK checks a 200 reply.
func requireOK(t testing.TB, r reply) {
	t.Helper()
	require.Equal(t, int32(200), r.code, "reply %q body %q", r.line, r.body)
}

// requireXA checks a 500 reply carrying an XAException with code.
func requireXA(t testing.TB, r reply, code int32) {
	t.Helper()
	require.Equal(t, int32(500), r.code, "reply %q body %q", r.line, r.body)
	xe, err := protocol.ParseXAError(string(r.body))
	require.NoError(t, err, "body %q", r.body)
	require.Equal(t, code, xe.Code, "body %q", r.body)
}

// payloads reads a partition of a topic from offset 0 to its end.
func payloads(t testing.TB, addr, topic string, part int) []protocol.Message {
	t.Helper()
	c := brokertest.Dial(t, addr)
	defer c.Close()
	var out []protocol.Message
	off := int64(0)
	for op := int32(1); ; op++ {
		c.Send(t, fmt.Sprintf("get %s g %d %d 1048576 %d\r\n", topic, part, off, op))
		r, closed, err := readOne(c, 10*time.Second)
		require.NoError(t, err)
		require.False(t, closed)
		if !r.value {
			require.Equal(t, int32(404), r.code, "%q %q", r.line, r.body)
			return out
		}
		it := protocol.NewMessageIterator(r.body)
		for it.Next() {
			m := it.Message()
			m.Data = append([]byte(nil), m.Data...)
			out = append(out, m)
		}
		require.NoError(t, it.Err())
		off += int64(it.Consumed())
	}
}

func dataOf(ms []protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Data)
	}
	return out
}

func TestTxLocalCommitVisibleOnlyAfterCommitRollbackDiscards(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	c := brokertest.Dial(t, b.Addr())
	const k1, k2 = "TX:sess:1", "TX:sess:2"
	requireOK(t, txCall(t, c, txLine(k1, "BEGIN", 1), 1))
	ids := map[string]int64{}
	for i, d := range []string{"a0", "a1", "a2"} {
		r := txCall(t, c, txPutLine("tx", 0, d, k1, 10+i), 10+i)
		requireOK(t, r)
		id, part, off := putResult(t, r)
		require.Equal(t, int32(0), part)
		require.Equal(t, int64(-1), off, "a put in a transaction has offset -1")
		ids[d] = id
	}
	// Legacy 7-token form without checksum: put <topic> <part> <len> <flag> <txKey> <opaque>.
	c.Send(t, fmt.Sprintf("put tx 1 2 0 %s 13\r\nb0", k1))
	r := expectReply(t, c, 200, 13)
	ids["b0"], _, _ = putResult(t, r)

	require.Empty(t, payloads(t, b.Addr(), "tx", 0), "uncommitted messages are invisible")
	require.Empty(t, payloads(t, b.Addr(), "tx", 1))
	requireOK(t, txCall(t, c, txLine(k1, "COMMIT_ONE_PHASE", 20), 20))
	got0 := payloads(t, b.Addr(), "tx", 0)
	require.Equal(t, []string{"a0", "a1", "a2"}, dataOf(got0))
	for _, m := range got0 {
		require.Equal(t, ids[string(m.Data)], m.ID, "the stored id is the one the put reply gave")
	}
	require.Equal(t, []string{"b0"}, dataOf(payloads(t, b.Addr(), "tx", 1)))

	requireOK(t, txCall(t, c, txLine(k2, "BEGIN", 30), 30))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "gone", k2, 31), 31))
	requireOK(t, txCall(t, c, txLine(k2, "ROLLBACK", 32), 32))
	require.Len(t, payloads(t, b.Addr(), "tx", 0), 3, "rollback discards")

	// Replays: a finished commit or rollback answers as it did.
	requireOK(t, txCall(t, c, txLine(k1, "COMMIT_ONE_PHASE", 40), 40))
	requireOK(t, txCall(t, c, txLine(k2, "ROLLBACK", 41), 41))
	requireXA(t, txCall(t, c, txLine(k2, "COMMIT_ONE_PHASE", 42), 42), protocol.XARBOther)
	requireXA(t, txCall(t, c, txLine(k1, "ROLLBACK", 43), 43), protocol.XAErrProto)
	require.Len(t, payloads(t, b.Addr(), "tx", 0), 3, "a replayed commit appends nothing")

	require.Equal(t, "2", statsValue(t, b.Addr(), "tx_begin"))
	require.Equal(t, "0", statsValue(t, b.Addr(), "tx_xa_begin"))
	require.Equal(t, "1", statsValue(t, b.Addr(), "tx_commit"))
	require.Equal(t, "1", statsValue(t, b.Addr(), "tx_rollback"))
}

func TestTxProtocolErrors(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	c := brokertest.Dial(t, b.Addr())
	x := "XID:1:0a0b:01:q1"
	requireXA(t, txCall(t, c, txLine("TX:sess:9", "COMMIT_ONE_PHASE", 1), 1), protocol.XAErrNOTA)
	requireXA(t, txCall(t, c, txPutLine("tx", 0, "x", "TX:sess:9", 2), 2), protocol.XAErrNOTA)
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "BEGIN", 3), 3))
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "BEGIN", 4), 4))                                // MetaQ: BEGIN of a known key changes nothing
	requireXA(t, txCall(t, brokertest.Dial(t, b.Addr()), txLine("TX:sess:1", "BEGIN", 4), 4), -8) // another connection: XAER_DUPID
	requireXA(t, txCall(t, c, txLine("TX:sess:1", "PREPARE", 5), 5), protocol.XAErrProto)
	requireXA(t, txCall(t, c, txLine("TX:sess:1", "COMMIT_TWO_PHASE", 6), 6), protocol.XAErrProto)
	requireXA(t, txCall(t, c, txLine("TX:sess:1", "FORGET", 7), 7), protocol.XAErrProto)

	// A local transaction is bound to its connection.
	c2 := brokertest.Dial(t, b.Addr())
	requireXA(t, txCall(t, c2, txPutLine("tx", 0, "x", "TX:sess:1", 8), 8), protocol.XAErrNOTA)

	// XA: read-only prepare, then the branch is finished.
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 9), 9))
	r := txCall(t, c, txLine(x, "PREPARE", 10), 10)
	requireOK(t, r)
	require.Equal(t, "3", string(r.body), "XA_RDONLY without puts")
	requireXA(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 11), 11), protocol.XAErrNOTA)

	// END has no reply: the next reply is the version's.
	c.Send(t, txLine(x, "END", 12))
	requireOK(t, txCall(t, c, "version 13\r\n", 13))

	// XA puts may come from any connection; no puts after PREPARE.
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 14), 14))
	requireOK(t, txCall(t, c2, txPutLine("tx", 1, "xa", x, 15), 15))
	r = txCall(t, c2, txLine(x, "PREPARE", 16), 16)
	requireOK(t, r)
	require.Equal(t, "0", string(r.body))
	requireXA(t, txCall(t, c, txPutLine("tx", 1, "late", x, 17), 17), protocol.XAErrProto)
	requireXA(t, txCall(t, c, txLine(x, "PREPARE", 18), 18), protocol.XAErrProto)
	requireOK(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 19), 19))
	require.Equal(t, []string{"xa"}, dataOf(payloads(t, b.Addr(), "tx", 1)))
	requireOK(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 20), 20)) // replayed two-phase commit
}

func TestTxMultiPartitionCommitIsAtomicPerPartition(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 3})
	const txs, per = 30, 7
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var torn []string
	var mu sync.Mutex
	for p := 0; p < 3; p++ {
		wg.Add(1)
		go func() { // a consumer polling: a partition only ever holds whole batches
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n := len(payloads(t, b.Addr(), "tx", p)); n%per != 0 {
					mu.Lock()
					torn = append(torn, fmt.Sprintf("partition %d holds %d messages", p, n))
					mu.Unlock()
				}
			}
		}()
	}
	c := brokertest.Dial(t, b.Addr())
	for i := 0; i < txs; i++ {
		key := fmt.Sprintf("TX:sess:%d", i)
		c.Send(t, txLine(key, "BEGIN", 1))
		for p := 0; p < 3; p++ {
			for j := 0; j < per; j++ {
				c.Send(t, txPutLine("tx", p, fmt.Sprintf("t%d-p%d-%d", i, p, j), key, 2))
			}
		}
		c.Send(t, txLine(key, "COMMIT_ONE_PHASE", 3)) // pipelined: one round trip per transaction
		requireOK(t, expectReply(t, c, 200, 1))
		for j := 0; j < 3*per; j++ {
			expectReply(t, c, 200, 2)
		}
		requireOK(t, expectReply(t, c, 200, 3))
	}
	close(stop)
	wg.Wait()
	require.Empty(t, torn)
	for p := 0; p < 3; p++ {
		got := dataOf(payloads(t, b.Addr(), "tx", p))
		require.Len(t, got, txs*per)
		for i := 0; i < txs; i++ {
			for j := 0; j < per; j++ {
				require.Equal(t, fmt.Sprintf("t%d-p%d-%d", i, p, j), got[i*per+j])
			}
		}
	}
}

// restartable runs a broker on a fixed data directory that a test can stop and start again.
type restartable struct {
	t   *testing.T
	dir string
	b   *broker.Broker
	mod func(*broker.Options)
}

func newRestartable(t *testing.T, mod func(*broker.Options)) *restartable {
	r := &restartable{t: t, dir: t.TempDir(), mod: mod}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *restartable) start() {
	b, err := brokertest.New(r.t, brokertest.Options{Partitions: 2, DataDir: r.dir, Modify: r.mod})
	require.NoError(r.t, err)
	require.NoError(r.t, b.Start(context.Background()))
	r.b = b
}

func (r *restartable) stop() {
	if r.b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(r.t, r.b.Shutdown(ctx))
	r.b = nil
}

func TestTxPreparedSurvivesRestartOthersRolledBack(t *testing.T) {
	for _, mode := range []broker.TxLogFlushMode{broker.TxLogFsyncOnCommit, broker.TxLogOSDecides, broker.TxLogFsyncEverySecond} {
		t.Run(fmt.Sprintf("flushTxLogAtCommit=%d", []int{1, 0, 1, 2}[mode]), func(t *testing.T) {
			testPreparedSurvivesRestart(t, mode)
		})
	}
}

func testPreparedSurvivesRestart(t *testing.T, mode broker.TxLogFlushMode) {
	rb := newRestartable(t, func(o *broker.Options) { o.FlushTxLogAtCommit = mode })
	c := brokertest.Dial(t, rb.b.Addr())
	xa1, xa2, xaOpen := "XID:7:aa:01:node1", "XID:7:bb:01:node2", "XID:7:cc:01:node1"
	for i, k := range []string{xa1, xa2} {
		requireOK(t, txCall(t, c, txLine(k, "BEGIN", 1), 1))
		requireOK(t, txCall(t, c, txPutLine("tx", i, "prep-"+k, k, 2), 2))
		requireOK(t, txCall(t, c, txPutLine("tx", 1-i, "prep2-"+k, k, 3), 3))
		r := txCall(t, c, txLine(k, "PREPARE", 4), 4)
		requireOK(t, r)
		require.Equal(t, "0", string(r.body))
	}
	requireOK(t, txCall(t, c, txLine(xaOpen, "BEGIN", 5), 5))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "open", xaOpen, 6), 6))
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "BEGIN", 7), 7))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "local", "TX:sess:1", 8), 8))
	r := txCall(t, c, txLine("null", "RECOVER", 9, "node1"), 9)
	requireOK(t, r)
	require.Equal(t, xa1, string(r.body))

	rb.stop()
	rb.start()
	c = brokertest.Dial(t, rb.b.Addr())
	r = txCall(t, c, txLine("null", "RECOVER", 10), 10)
	requireOK(t, r)
	require.Equal(t, xa1+"\r\n"+xa2, string(r.body), "both prepared transactions are back")
	r = txCall(t, c, txLine("null", "RECOVER", 11, "node2"), 11)
	require.Equal(t, xa2, string(r.body), "RECOVER filters by unique qualifier")
	require.Len(t, rb.b.InDoubt(), 2)
	requireXA(t, txCall(t, c, txLine(xaOpen, "COMMIT_ONE_PHASE", 12), 12), protocol.XAErrNOTA)
	requireXA(t, txCall(t, c, txLine("TX:sess:1", "COMMIT_ONE_PHASE", 13), 13), protocol.XAErrNOTA)
	require.Empty(t, payloads(t, rb.b.Addr(), "tx", 0))

	requireOK(t, txCall(t, c, txLine(xa1, "COMMIT_TWO_PHASE", 14), 14))
	requireOK(t, txCall(t, c, txLine(xa2, "ROLLBACK", 15), 15))
	require.Equal(t, []string{"prep-" + xa1}, dataOf(payloads(t, rb.b.Addr(), "tx", 0)))
	require.Equal(t, []string{"prep2-" + xa1}, dataOf(payloads(t, rb.b.Addr(), "tx", 1)))

	// Outcomes survive a restart: a transaction manager replaying its decisions gets 200.
	rb.stop()
	rb.start()
	c = brokertest.Dial(t, rb.b.Addr())
	requireOK(t, txCall(t, c, txLine(xa1, "COMMIT_TWO_PHASE", 16), 16))
	requireOK(t, txCall(t, c, txLine(xa2, "ROLLBACK", 17), 17))
	r = txCall(t, c, txLine("null", "RECOVER", 18), 18)
	require.Empty(t, r.body)
	require.Len(t, payloads(t, rb.b.Addr(), "tx", 0), 1)
}

func TestTxTimeoutRollsBack(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "BEGIN", 1, "1"), 1))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "late", "TX:sess:1", 2), 2))
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "tx_rollback") == "1" }, 10*time.Second, 20*time.Millisecond)
	requireXA(t, txCall(t, c, txLine("TX:sess:1", "COMMIT_ONE_PHASE", 3), 3), protocol.XARBTimeout)
	requireXA(t, txCall(t, c, txPutLine("tx", 0, "later", "TX:sess:1", 4), 4), protocol.XARBTimeout)
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "ROLLBACK", 5), 5))
	require.Empty(t, payloads(t, b.Addr(), "tx", 0))
}

func TestTxTimeoutIsCappedByMaxTxTimeout(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.MaxTxTimeout = 300 * time.Millisecond }})
	c := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c, txLine("XID:1:01:01:q", "BEGIN", 1, "3600"), 1))
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "tx_rollback") == "1" }, 10*time.Second, 20*time.Millisecond)
	requireXA(t, txCall(t, c, txLine("XID:1:01:01:q", "PREPARE", 2), 2), protocol.XARBTimeout)
}

func TestTxConnectionCloseRollsBackLocalTransactions(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c, txLine("TX:sess:1", "BEGIN", 1), 1))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "orphan", "TX:sess:1", 2), 2))
	requireOK(t, txCall(t, c, txLine("XID:1:02:01:q", "BEGIN", 3), 3))
	c.Close()
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "tx_rollback") == "1" }, 10*time.Second, 10*time.Millisecond)
	c2 := brokertest.Dial(t, b.Addr())
	requireXA(t, txCall(t, c2, txLine("TX:sess:1", "COMMIT_ONE_PHASE", 4), 4), protocol.XARBOther)
	// An XA transaction is global: it survives its connection.
	requireOK(t, txCall(t, c2, txPutLine("tx", 0, "xa", "XID:1:02:01:q", 5), 5))
	requireOK(t, txCall(t, c2, txLine("XID:1:02:01:q", "COMMIT_ONE_PHASE", 6), 6))
	require.Equal(t, []string{"xa"}, dataOf(payloads(t, b.Addr(), "tx", 0)))
}

func TestTxHeuristicCompletionByOperator(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	hc, hr := "XID:3:01:01:q", "XID:3:02:01:q"
	for _, k := range []string{hc, hr} {
		requireOK(t, txCall(t, c, txLine(k, "BEGIN", 1), 1))
		requireOK(t, txCall(t, c, txPutLine("tx", 0, k, k, 2), 2))
		requireOK(t, txCall(t, c, txLine(k, "PREPARE", 3), 3))
	}
	ctx := context.Background()
	require.ErrorIs(t, b.CommitInDoubt(ctx, "XID:3:09:01:q"), broker.ErrTxUnknown)
	require.NoError(t, b.CommitInDoubt(ctx, hc))
	require.ErrorIs(t, b.CommitInDoubt(ctx, hc), broker.ErrTxState)
	require.NoError(t, b.RollbackInDoubt(ctx, hr))
	require.Equal(t, []string{hc}, dataOf(payloads(t, b.Addr(), "tx", 0)))
	in := b.InDoubt()
	require.Len(t, in, 2)
	require.Equal(t, "heuristically committed", in[0].State)
	require.Equal(t, "heuristically rolled back", in[1].State)

	r := txCall(t, c, txLine("null", "RECOVER", 4), 4)
	require.Equal(t, hc+"\r\n"+hr, string(r.body), "RECOVER lists heuristically completed transactions")
	requireXA(t, txCall(t, c, txLine(hc, "COMMIT_TWO_PHASE", 5), 5), protocol.XAHeurCom)
	requireXA(t, txCall(t, c, txLine(hr, "COMMIT_TWO_PHASE", 6), 6), protocol.XAHeurRB)
	requireXA(t, txCall(t, c, txLine(hr, "ROLLBACK", 7), 7), protocol.XAHeurRB)
	requireOK(t, txCall(t, c, txLine(hc, "FORGET", 8), 8))
	requireOK(t, txCall(t, c, txLine(hr, "FORGET", 9), 9))
	requireXA(t, txCall(t, c, txLine(hr, "FORGET", 10), 10), protocol.XAErrNOTA)
	r = txCall(t, c, txLine("null", "RECOVER", 11), 11)
	require.Empty(t, r.body)
	require.Empty(t, b.InDoubt())
	var xe *protocol.XAError
	require.False(t, errors.As(b.RollbackInDoubt(ctx, hc), &xe))
}

// TestTxRecoveryCompletesAHalfWrittenCommit builds, by hand, the state a
// crash in the middle of a commit can leave — a durable COMMIT record, no
// DONE, and in one partition only a prefix of the transaction's batch,
// behind messages appended by others since the commit recorded the
// partition's end — and checks that the broker's recovery appends exactly
// the missing messages, for every prefix length.
func TestTxRecoveryCompletesAHalfWrittenCommit(t *testing.T) {
	const n = 5
	for k := 0; k <= n; k++ {
		t.Run(fmt.Sprintf("prefix%d", k), func(t *testing.T) {
			dir := t.TempDir()
			st, err := store.Open(dir, store.Options{})
			require.NoError(t, err)
			p0, err := st.Partition("tx", 0, true)
			require.NoError(t, err)
			p1, err := st.Partition("tx", 1, true)
			require.NoError(t, err)
			ctx := context.Background()
			_, err = p0.AppendSync(ctx, []byte("before"), 0)
			require.NoError(t, err)
			key := "TX:crash:1"
			var msgs []txlog.Message
			for i := 0; i < n; i++ {
				msgs = append(msgs, txlog.Message{Topic: "tx", Partition: 0, ID: st.NewMessageID(), Data: []byte(fmt.Sprintf("m%d", i))})
			}
			msgs = append(msgs, txlog.Message{Topic: "tx", Partition: 1, ID: st.NewMessageID(), Data: []byte("other")})
			parts := []txlog.PartStart{{Topic: "tx", Partition: 0, Offset: p0.End()}, {Topic: "tx", Partition: 1, Offset: p1.End()}}
			_, err = p0.AppendSync(ctx, []byte("interleaved"), 0) // a plain put between the recorded end and the batch
			require.NoError(t, err)
			var prefix []store.Message
			for _, m := range msgs[:k] {
				prefix = append(prefix, store.Message{Data: m.Data, ID: m.ID})
			}
			if k > 0 {
				_, err = p0.AppendBatchSync(ctx, prefix)
				require.NoError(t, err)
			}
			if k == n { // partition 1 complete too
				_, err = p1.AppendBatchSync(ctx, []store.Message{{Data: msgs[n].Data, ID: msgs[n].ID}})
				require.NoError(t, err)
			}
			require.NoError(t, st.Close())
			j, _, err := txlog.Open(filepath.Join(dir, "transactions"), txlog.Options{})
			require.NoError(t, err)
			require.NoError(t, j.AppendWait(txlog.Record{Kind: txlog.KindCommit, Key: key, Inline: true, Msgs: msgs, Parts: parts}, true))
			require.NoError(t, j.Close())

			b := brokertest.Start(t, brokertest.Options{Partitions: 2, DataDir: dir})
			want := []string{"before", "interleaved", "m0", "m1", "m2", "m3", "m4"}
			got := payloads(t, b.Addr(), "tx", 0)
			require.Equal(t, want, dataOf(got))
			for i, m := range got[2:] {
				require.Equal(t, msgs[i].ID, m.ID, "recovery keeps the pre-assigned ids")
			}
			require.Equal(t, []string{"other"}, dataOf(payloads(t, b.Addr(), "tx", 1)))
			require.Empty(t, b.InDoubt())
			c := brokertest.Dial(t, b.Addr())
			requireOK(t, txCall(t, c, txLine(key, "COMMIT_ONE_PHASE", 1), 1))
		})
	}
}

// TestTxJournalRotationKeepsItBounded commits many transactions with a
// small rotation size and checks the journal stays small, while a prepared
// transaction from the start is carried through every rotation.
func TestTxJournalRotationKeepsItBounded(t *testing.T) {
	const maxFile = 32 << 10
	rb := newRestartable(t, func(o *broker.Options) { o.TxLogMaxFileSize = maxFile })
	c := brokertest.Dial(t, rb.b.Addr())
	x := "XID:5:01:01:q"
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 1), 1))
	requireOK(t, txCall(t, c, txPutLine("tx", 0, "kept", x, 2), 2))
	requireOK(t, txCall(t, c, txLine(x, "PREPARE", 3), 3))
	payload := strings.Repeat("j", 1000)
	logDir := filepath.Join(rb.dir, "transactions")
	var peak int64
	for i := 0; i < 500; i++ {
		key := fmt.Sprintf("TX:sess:%d", i)
		c.Send(t, txLine(key, "BEGIN", 4)+txPutLine("tx", 1, payload, key, 5)+txLine(key, "COMMIT_ONE_PHASE", 6))
		expectReply(t, c, 200, 4)
		expectReply(t, c, 200, 5)
		expectReply(t, c, 200, 6)
		st, err := txlog.DirStats(logDir)
		require.NoError(t, err)
		peak = max(peak, st.Bytes)
	}
	st, err := txlog.DirStats(logDir)
	require.NoError(t, err)
	t.Logf("journal after 500 commits of 1 KB: %d files, %d bytes, peak %d bytes, file seq %d", st.Files, st.Bytes, peak, st.Seq)
	require.Greater(t, st.Seq, uint64(5), "the journal rotated")
	require.LessOrEqual(t, st.Files, 2)
	require.Less(t, peak, int64(4*maxFile), "the journal stays bounded")
	rb.stop()
	rb.start()
	c = brokertest.Dial(t, rb.b.Addr())
	r := txCall(t, c, txLine("null", "RECOVER", 7), 7)
	require.Equal(t, x, string(r.body), "the prepared transaction survived every rotation")
	requireOK(t, txCall(t, c, txLine("TX:sess:499", "COMMIT_ONE_PHASE", 8), 8)) // its outcome too
	requireOK(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 9), 9))
	require.Equal(t, []string{"kept"}, dataOf(payloads(t, rb.b.Addr(), "tx", 0)))
	require.Len(t, payloads(t, rb.b.Addr(), "tx", 1), 500)
}
