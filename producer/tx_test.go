package producer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

func directProducer(t testing.TB, addr string, parts int, opts ...producer.Option) *producer.Producer {
	t.Helper()
	p, err := producer.New(testCtx(t, 30*time.Second), append([]producer.Option{producer.WithBroker(addr, parts)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func payloadsOf(ms []protocol.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, string(m.Data))
	}
	return out
}

// allPayloads reads every partition of topic on addr.
func allPayloads(t testing.TB, addr, topic string, parts int) []string {
	t.Helper()
	var out []string
	for p := 0; p < parts; p++ {
		out = append(out, payloadsOf(readBack(t, addr, topic, p))...)
	}
	return out
}

func TestTxCommitMakesMessagesVisibleAtOnceRollbackDiscards(t *testing.T) {
	addr := startDirectBroker(t, 2)
	p := directProducer(t, addr, 2)
	ctx := testCtx(t, 30*time.Second)

	tx, err := p.Begin(ctx, producer.TxOptions{Timeout: 10 * time.Second})
	require.NoError(t, err)
	require.Empty(t, tx.Broker(), "no broker until the first message")
	ids := map[string]int64{}
	for i := 0; i < 4; i++ {
		d := fmt.Sprintf("c%d", i)
		res, err := tx.Send(ctx, producer.Message{Topic: "txt", Payload: []byte(d)})
		require.NoError(t, err)
		require.EqualValues(t, -1, res.Offset, "a put in a transaction has no offset yet")
		ids[d] = res.MsgID
	}
	require.Equal(t, addr, tx.Broker())
	require.Regexp(t, `^TX:[^:]+:1$`, tx.Key())
	require.Empty(t, allPayloads(t, addr, "txt", 2), "invisible before the commit")
	require.NoError(t, tx.Commit(ctx))
	got := map[string]int64{}
	for part := 0; part < 2; part++ {
		for _, m := range readBack(t, addr, "txt", part) {
			got[string(m.Data)] = m.ID
		}
	}
	require.Equal(t, ids, got, "every message visible after the commit, with the id its put reply gave")
	require.ErrorIs(t, tx.Commit(ctx), producer.ErrTxDone)
	require.ErrorIs(t, tx.Rollback(ctx), producer.ErrTxDone)
	_, err = tx.Send(ctx, producer.Message{Topic: "txt", Payload: []byte("late")})
	require.ErrorIs(t, err, producer.ErrTxDone)

	tx2, err := p.Begin(ctx, producer.TxOptions{Broker: "meta://" + addr})
	require.NoError(t, err)
	require.Regexp(t, `^TX:[^:]+:2$`, tx2.Key())
	for i := 0; i < 3; i++ {
		_, err := tx2.Send(ctx, producer.Message{Topic: "txt", Payload: []byte("gone"), Attribute: "a"})
		require.NoError(t, err)
	}
	require.NoError(t, tx2.Rollback(ctx))
	require.Len(t, allPayloads(t, addr, "txt", 2), 4, "a rollback discards")

	// An empty transaction commits trivially.
	tx3, err := p.Begin(ctx, producer.TxOptions{})
	require.NoError(t, err)
	require.NoError(t, tx3.Commit(ctx))
}

func TestTxPipelinedSendsThenCommit(t *testing.T) {
	addr := startDirectBroker(t, 3)
	p := directProducer(t, addr, 3)
	ctx := testCtx(t, 30*time.Second)
	tx, err := p.Begin(ctx, producer.TxOptions{Topic: "pipe"})
	require.NoError(t, err)
	col := newCollector()
	for i := 0; i < 50; i++ {
		tx.SendAsync(ctx, producer.Message{Topic: "pipe", Payload: []byte(fmt.Sprint(i))}, col.cb(i))
	}
	require.NoError(t, tx.Commit(ctx), "Commit waits for the sends in flight")
	col.wait(t, 10*time.Second)
	require.Empty(t, col.errs)
	require.Len(t, allPayloads(t, addr, "pipe", 3), 50)
}

func TestTxPinnedToOneBrokerWrongTopicIsAnError(t *testing.T) {
	zc := newZKCluster(t)
	b0 := zc.start(t, 0, 2, "only0")
	b1 := zc.start(t, 1, 2, "only1", "both")
	zc.start(t, 2, 2, "both")
	p := zc.producer(t)
	ctx := testCtx(t, 60*time.Second)

	tx, err := p.Begin(ctx, producer.TxOptions{Topic: "only0"})
	require.NoError(t, err)
	require.Equal(t, b0.Addr(), tx.Broker())
	_, err = tx.Send(ctx, producer.Message{Topic: "only0", Payload: []byte("ok")})
	require.NoError(t, err)
	_, err = tx.Send(ctx, producer.Message{Topic: "only1", Payload: []byte("no")})
	require.ErrorIs(t, err, producer.ErrTxWrongBroker)
	require.NoError(t, tx.Commit(ctx), "a wrong-broker refusal sends nothing and leaves the transaction usable")
	require.Equal(t, []string{"ok"}, allPayloads(t, b0.Addr(), "only0", 2))

	// Pinned by the first message: every later message stays on that broker.
	tx, err = p.Begin(ctx, producer.TxOptions{})
	require.NoError(t, err)
	_, err = tx.Send(ctx, producer.Message{Topic: "only1", Payload: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, b1.Addr(), tx.Broker())
	for i := 0; i < 6; i++ {
		res, err := tx.Send(ctx, producer.Message{Topic: "both", Payload: []byte("y")})
		require.NoError(t, err)
		require.Equal(t, 1, res.Partition.BrokerID, "a topic on several brokers goes to the pinned one")
	}
	_, err = tx.Send(ctx, producer.Message{Topic: "only0", Payload: []byte("z")})
	require.ErrorIs(t, err, producer.ErrTxWrongBroker)
	require.NoError(t, tx.Commit(ctx))
	require.Len(t, allPayloads(t, b1.Addr(), "both", 2), 6)
}

func TestTxBrokerGoneAbortsTheTransaction(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	p := directProducer(t, b.Addr(), 1, producer.WithRetry(time.Millisecond, 0))
	ctx := testCtx(t, 30*time.Second)
	tx, err := p.Begin(ctx, producer.TxOptions{Topic: "gone"})
	require.NoError(t, err)
	_, err = tx.Send(ctx, producer.Message{Topic: "gone", Payload: []byte("x")})
	require.NoError(t, err)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.Shutdown(sctx))
	err = tx.Commit(ctx)
	require.Error(t, err)
	require.True(t, errors.Is(err, producer.ErrTxInDoubt) || errors.Is(err, producer.ErrTxAborted), "%v", err)
}

// restartable is a broker on a fixed data directory that a test can stop
// and start again. The restarted broker listens on a new port: the broker
// does not set SO_REUSEADDR, so its old port stays busy while connections
// to it linger in TIME_WAIT.
type restartable struct {
	t    *testing.T
	dir  string
	addr string
	b    *broker.Broker
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{t: t, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	b, err := brokertest.New(r.t, brokertest.Options{Partitions: 2, DataDir: r.dir})
	require.NoError(r.t, err)
	require.NoError(r.t, b.Start(context.Background()))
	r.b, r.addr = b, b.Addr()
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
