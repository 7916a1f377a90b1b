package producer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

func TestSendToTwoBrokersAndReadBackInOrderPerPartition(t *testing.T) {
	zc := newZKCluster(t)
	b1 := zc.start(t, 1, 2, "orders")
	b2 := zc.start(t, 2, 2, "orders")
	check := goroutineBaseline(t)
	p := zc.producer(t)

	const n = 400
	col := newCollector()
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, producer.Message{Topic: "orders", Payload: []byte(fmt.Sprintf("m%04d", i))}, col.cb(i))
	}
	require.NoError(t, p.Flush(ctx))
	col.wait(t, 10*time.Second)
	require.Empty(t, col.errs)

	// Round robin over 1-0, 1-1, 2-0, 2-1: every partition got n/4.
	byPart := map[string][]int{}
	for i := 0; i < n; i++ {
		r := col.results[i]
		require.Equal(t, 1, col.calls[i])
		byPart[r.Partition.String()] = append(byPart[r.Partition.String()], i)
	}
	require.Len(t, byPart, 4)
	addrs := map[int]string{1: b1.Addr(), 2: b2.Addr()}
	for name, idx := range byPart {
		require.Len(t, idx, n/4, name)
		r0 := col.results[idx[0]]
		msgs := readBack(t, addrs[r0.Partition.BrokerID], "orders", r0.Partition.Partition)
		require.Len(t, msgs, len(idx), name)
		for k, m := range msgs {
			i := idx[k]
			require.Equal(t, fmt.Sprintf("m%04d", i), string(m.Data), "partition %s position %d", name, k)
			require.Equal(t, col.results[i].Offset, m.Offset)
			require.Equal(t, col.results[i].MsgID, m.ID)
		}
	}

	// A synchronous send with an attribute round-trips it.
	res, err := p.Send(ctx, producer.Message{Topic: "orders", Payload: []byte("with-attr"), Attribute: "k=v"})
	require.NoError(t, err)
	msgs := readBack(t, addrs[res.Partition.BrokerID], "orders", res.Partition.Partition)
	last := msgs[len(msgs)-1]
	attr, payload, err := last.Attribute()
	require.NoError(t, err)
	require.Equal(t, "k=v", string(attr))
	require.Equal(t, "with-attr", string(payload))
	require.Equal(t, protocol.FlagAttribute, last.Flag)

	st := p.Stats()
	require.EqualValues(t, n+1, st.Sent)
	require.Zero(t, st.Failed)
	require.Zero(t, st.InFlight)
	require.Positive(t, st.LatencyP50)
	require.GreaterOrEqual(t, st.LatencyP99, st.LatencyP50)

	require.NoError(t, p.Close(ctx))
	check()
}

func TestBrokerShutdownMidStreamNothingDropped(t *testing.T) {
	zc := newZKCluster(t)
	b1 := zc.start(t, 1, 2, "stream")
	b2 := zc.start(t, 2, 2, "stream")
	var retries atomic.Int64
	p := zc.producer(t, producer.WithRetry(10*time.Millisecond, 20), producer.WithMaxInFlight(256),
		producer.WithHooks(producer.Hooks{OnRetry: func(*producer.Message, int, error) { retries.Add(1) }}))

	col := newCollector()
	ctx := testCtx(t, 60*time.Second)
	var acked atomic.Int64
	n := 0
	send := func() {
		i := n
		n++
		cb := col.cb(i)
		p.SendAsync(ctx, producer.Message{Topic: "stream", Payload: []byte(fmt.Sprintf("s%05d", i))}, func(r producer.Result, err error) {
			if err == nil {
				acked.Add(1)
			}
			cb(r, err)
		})
	}
	for n < 1000 {
		send()
	}
	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		_ = b2.Shutdown(context.Background())
	}()
	during := 0
	for running := true; running; {
		select {
		case <-shutdownDone:
			running = false
		default:
			send()
			during++
		}
	}
	afterShutdown := n
	for k := 0; k < 2000; k++ {
		send()
	}
	require.NoError(t, p.Flush(ctx))
	col.wait(t, 30*time.Second)

	// Every message was reported exactly once: acknowledged or failed.
	require.Len(t, col.calls, n)
	for i := 0; i < n; i++ {
		require.Equal(t, 1, col.calls[i], "message %d", i)
	}
	require.Equal(t, n, len(col.results)+len(col.errs))
	for i, err := range col.errs {
		t.Logf("message %d failed: %v (retriable %v)", i, err, producer.IsRetriable(err))
	}
	// Messages sent after the broker was gone all went to broker 1.
	for i := afterShutdown; i < n; i++ {
		require.NoError(t, col.errs[i], "message %d", i)
		require.Equal(t, 1, col.results[i].Partition.BrokerID, "message %d", i)
	}
	// What broker 1 acknowledged is there, in order.
	for part := 0; part < 2; part++ {
		msgs := readBack(t, b1.Addr(), "stream", part)
		var want []int64
		for _, r := range col.results {
			if r.Partition.BrokerID == 1 && r.Partition.Partition == part {
				want = append(want, r.Offset)
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		require.Len(t, msgs, len(want))
		for k, m := range msgs {
			require.Equal(t, want[k], m.Offset)
		}
	}
	t.Logf("sent %d (%d while broker 2 shut down), acked %d, failed %d, retries %d", n, during, acked.Load(), len(col.errs), retries.Load())
	require.Greater(t, acked.Load(), int64(n/2))
}

func TestByKeyOrderingHoldsAndNeverMovesAKey(t *testing.T) {
	zc := newZKCluster(t)
	zc.start(t, 1, 2, "keyed")
	b2 := zc.start(t, 2, 3, "keyed")
	p := zc.producer(t, producer.WithPartitioner(producer.ByKey()), producer.WithRetry(5*time.Millisecond, 2))

	const keys, per = 12, 40
	col := newCollector()
	ctx := testCtx(t, 30*time.Second)
	for j := 0; j < per; j++ {
		for k := 0; k < keys; k++ {
			p.SendAsync(ctx, producer.Message{Topic: "keyed", Key: []byte(fmt.Sprintf("key-%d", k)), Payload: []byte("x")}, col.cb(j*keys+k))
		}
	}
	col.wait(t, 20*time.Second)
	require.Empty(t, col.errs)
	onB2 := map[int]bool{}
	for k := 0; k < keys; k++ {
		first := col.results[k]
		prev := int64(-1)
		for j := 0; j < per; j++ {
			r := col.results[j*keys+k]
			require.Equal(t, first.Partition, r.Partition, "key %d moved", k)
			require.Greater(t, r.Offset, prev, "key %d out of order", k)
			prev = r.Offset
		}
		onB2[k] = first.Partition.BrokerID == 2
	}

	// Broker 2 goes away: its keys fail (retriable) instead of moving, the
	// other keys keep their partitions.
	require.NoError(t, b2.Shutdown(ctx))
	waitFor(t, func() bool {
		tp, err := p.Topology().Partitions(ctx, "keyed")
		return err == nil && len(tp.Partitions) == 2
	})
	sawFailure := false
	for k := 0; k < keys; k++ {
		res, err := p.Send(ctx, producer.Message{Topic: "keyed", Key: []byte(fmt.Sprintf("key-%d", k)), Payload: []byte("y")})
		if onB2[k] {
			require.ErrorIs(t, err, producer.ErrPartitionUnavailable, "key %d", k)
			require.True(t, producer.IsRetriable(err))
			sawFailure = true
			continue
		}
		require.NoError(t, err)
		require.Equal(t, col.results[k].Partition, res.Partition, "key %d moved", k)
	}
	require.True(t, sawFailure, "some key should live on broker 2")
}

func TestContextCancelAndCloseReportInFlightPromptly(t *testing.T) {
	addr := silentBroker(t)
	check := goroutineBaseline(t)
	p, err := producer.New(context.Background(), producer.WithBroker(addr, 2))
	require.NoError(t, err)

	// Send returns when its ctx ends even though the broker never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	_, err = p.Send(ctx, producer.Message{Topic: "t", Payload: []byte("x")})
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, producer.IsRetriable(err))
	require.Less(t, time.Since(start), 5*time.Second)

	col := newCollector()
	const n = 100
	for i := 0; i < n; i++ {
		p.SendAsync(context.Background(), producer.Message{Topic: "t", Payload: []byte("x")}, col.cb(i))
	}
	require.EqualValues(t, n+1, p.Stats().InFlight)

	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	start = time.Now()
	err = p.Close(cctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	col.wait(t, 5*time.Second)
	require.Len(t, col.errs, n)
	for _, e := range col.errs {
		require.ErrorIs(t, e, producer.ErrClosed)
		require.False(t, producer.IsRetriable(e))
	}
	require.Zero(t, p.Stats().InFlight)

	// After Close every send fails at once with ErrClosed.
	_, err = p.Send(context.Background(), producer.Message{Topic: "t", Payload: []byte("x")})
	require.ErrorIs(t, err, producer.ErrClosed)
	require.Equal(t, err, errors.Unwrap(fmt.Errorf("%w", err)))
	check()
}

func TestFullBufferBlocksUntilContextEnds(t *testing.T) {
	addr := silentBroker(t)
	p, err := producer.New(context.Background(), producer.WithBroker(addr, 1), producer.WithMaxInFlight(3))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 100*time.Millisecond))
	col := newCollector()
	for i := 0; i < 3; i++ {
		p.SendAsync(context.Background(), producer.Message{Topic: "t", Payload: []byte("x")}, col.cb(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	p.SendAsync(ctx, producer.Message{Topic: "t", Payload: []byte("x")}, func(_ producer.Result, err error) { done <- err })
	require.ErrorIs(t, <-done, context.DeadlineExceeded)
}

func TestBrokerRegisteredLaterIsPickedUp(t *testing.T) {
	zc := newZKCluster(t)
	zc.start(t, 1, 1, "late")
	p := zc.producer(t)
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < 4; i++ {
		r, err := p.Send(ctx, producer.Message{Topic: "late", Payload: []byte("a")})
		require.NoError(t, err)
		require.Equal(t, 1, r.Partition.BrokerID)
	}
	zc.start(t, 2, 1, "late")
	waitFor(t, func() bool {
		tp, err := p.Topology().Partitions(ctx, "late")
		return err == nil && len(tp.Partitions) == 2
	})
	seen := map[int]bool{}
	for i := 0; i < 4; i++ {
		r, err := p.Send(ctx, producer.Message{Topic: "late", Payload: []byte("b")})
		require.NoError(t, err)
		seen[r.Partition.BrokerID] = true
	}
	require.Equal(t, map[int]bool{1: true, 2: true}, seen)
}

func TestMessageTooLargeFailsFast(t *testing.T) {
	addr := silentBroker(t) // nothing may even be sent
	p, err := producer.New(context.Background(), producer.WithBroker(addr, 1), producer.WithMaxMessageSize(1024))
	require.NoError(t, err)
	defer p.Close(testCtx(t, time.Second))
	_, err = p.Send(context.Background(), producer.Message{Topic: "t", Payload: make([]byte, 1025)})
	require.ErrorIs(t, err, producer.ErrMessageTooLarge)
	require.False(t, producer.IsRetriable(err))
	// The attribute counts: 4 bytes of length + its bytes.
	_, err = p.Send(context.Background(), producer.Message{Topic: "t", Payload: make([]byte, 1000), Attribute: strings.Repeat("a", 30)})
	require.ErrorIs(t, err, producer.ErrMessageTooLarge)

	pd, err := producer.New(context.Background(), producer.WithBroker(addr, 1))
	require.NoError(t, err)
	defer pd.Close(testCtx(t, time.Second))
	// The default is the broker's default maxMessageSize (2 MiB).
	require.Equal(t, protocol.MetaQClientMaxMessageSize, producer.DefaultMaxMessageSize)
	_, err = pd.Send(testCtx(t, 5*time.Second), producer.Message{Topic: "t", Payload: make([]byte, protocol.MetaQClientMaxMessageSize+1)})
	require.ErrorIs(t, err, producer.ErrMessageTooLarge)
	require.Zero(t, pd.Stats().Dials, "a too-large message must not reach the network")
}

func TestDirectModeAndInvalidMessages(t *testing.T) {
	b := startDirectBroker(t, 2)
	var acks atomic.Int64
	p, err := producer.New(context.Background(), producer.WithBroker(b, 2), producer.WithLinger(0),
		producer.WithHooks(producer.Hooks{OnAck: func(*producer.Message, producer.Result, time.Duration) { acks.Add(1) }}))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	ctx := testCtx(t, 10*time.Second)
	r0, err := p.Send(ctx, producer.Message{Topic: "direct", Payload: []byte("1")})
	require.NoError(t, err)
	r1, err := p.Send(ctx, producer.Message{Topic: "direct", Payload: []byte("2")})
	require.NoError(t, err)
	require.Equal(t, 0, r0.Partition.BrokerID)
	require.NotEqual(t, r0.Partition.Partition, r1.Partition.Partition)
	require.EqualValues(t, 2, acks.Load())

	_, err = p.Send(ctx, producer.Message{Topic: "../x", Payload: []byte("1")})
	require.ErrorIs(t, err, producer.ErrInvalidMessage)
	_, err = p.Send(ctx, producer.Message{Topic: "no-such-topic-accepted", Payload: []byte("1")})
	require.NoError(t, err, "brokertest accepts every topic")
}

// New's ctx is the only bound on finding the cluster: an unreachable
// ZooKeeper is waited for until ctx ends, and New then says why and leaves
// nothing running. (It used to wait 30 s of its own, whatever the caller's
// ctx; a canceled ctx could not end it.)
func TestNewGivesUpOnZooKeeperWhenCtxEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unreachable := ln.Addr().String()
	require.NoError(t, ln.Close())
	check := goroutineBaseline(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := producer.New(ctx, producer.WithZooKeeper([]string{unreachable}, ""))
	require.Nil(t, p)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "producer: connect to ZooKeeper")

	p, err = producer.New(testCtx(t, 200*time.Millisecond), producer.WithZooKeeper([]string{unreachable}, ""))
	require.Nil(t, p)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	check()
}

func TestOptionsAreValidated(t *testing.T) {
	_, err := producer.New(context.Background())
	require.Error(t, err)
	_, err = producer.New(context.Background(), producer.WithBroker("127.0.0.1:1", 1), producer.WithZooKeeper([]string{"x:1"}, ""))
	require.Error(t, err)
	for _, o := range []producer.Option{
		producer.WithLinger(5 * time.Second), producer.WithMaxInFlight(0), producer.WithRetry(-1, 1),
		producer.WithMaxMessageSize(0), producer.WithBroker("", 1), producer.WithBroker("a:1", 0),
		producer.WithPartitioner(producer.Partitioner{}), producer.WithLogger(nil),
	} {
		_, err := producer.New(context.Background(), producer.WithBroker("127.0.0.1:1", 1), o)
		require.Error(t, err)
	}
}

func TestCustomPartitioner(t *testing.T) {
	b := startDirectBroker(t, 4)
	p, err := producer.New(context.Background(), producer.WithBroker(b, 4),
		producer.WithPartitioner(producer.PartitionerFunc("last", false, func(_ *producer.Message, parts []producer.Partition) int {
			return len(parts) - 1
		})))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	r, err := p.Send(testCtx(t, 10*time.Second), producer.Message{Topic: "c", Payload: []byte("x")})
	require.NoError(t, err)
	require.Equal(t, 3, r.Partition.Partition)
}

// An unordered partitioner's index out of range is reduced modulo the
// number of partitions (negative ones too).
func TestCustomPartitionerIndexOutOfRange(t *testing.T) {
	b := startDirectBroker(t, 4)
	for idx, want := range map[int]int{-1: 3, -6: 2, 4: 0, 9: 1, 2: 2} {
		p, err := producer.New(context.Background(), producer.WithBroker(b, 4),
			producer.WithPartitioner(producer.PartitionerFunc("fixed", false, func(*producer.Message, []producer.Partition) int {
				return idx
			})))
		require.NoError(t, err)
		r, err := p.Send(testCtx(t, 10*time.Second), producer.Message{Topic: "c", Payload: []byte("x")})
		require.NoError(t, err)
		require.Equal(t, want, r.Partition.Partition, "index %d", idx)
		require.NoError(t, p.Close(testCtx(t, 5*time.Second)))
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
}

// blockingTopology never finishes a topic's first load.
type blockingTopology struct{ changed chan struct{} }

func (blockingTopology) Partitions(ctx context.Context, topic string) (coordinator.TopicPartitions, error) {
	<-ctx.Done()
	return coordinator.TopicPartitions{}, ctx.Err()
}
func (blockingTopology) Brokers() map[int]string    { return nil }
func (t blockingTopology) Changed() <-chan struct{} { return t.changed }
func (blockingTopology) Close() error               { return nil }

func TestCloseUnblocksASendWaitingForDiscovery(t *testing.T) {
	check := goroutineBaseline(t)
	p, err := producer.New(context.Background(), producer.WithTopology(blockingTopology{changed: make(chan struct{})}))
	require.NoError(t, err)
	got := make(chan error, 1)
	go p.SendAsync(context.Background(), producer.Message{Topic: "t", Payload: []byte("x")},
		func(_ producer.Result, err error) { got <- err })
	waitFor(t, func() bool { return p.Stats().InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, p.Close(ctx), context.DeadlineExceeded)
	require.ErrorIs(t, <-got, producer.ErrClosed)
	check()
}

// Flush returns only after every callback of the messages sent before it
// ran, with senders on several goroutines, and Stats then counts them all
// (the in-flight count is accepted - finished, kept on separate lines).
func TestFlushWaitsForEveryCallbackAndStatsAddUp(t *testing.T) {
	b := startDirectBroker(t, 4)
	p, err := producer.New(context.Background(), producer.WithBroker(b, 4), producer.WithMaxInFlight(64))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	const senders, each = 4, 500
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				p.SendAsync(testCtx(t, 30*time.Second), producer.Message{Topic: "f", Payload: []byte("x")}, func(_ producer.Result, err error) {
					if err != nil {
						failed.Add(1)
					}
					acked.Add(1)
				})
			}
		}()
	}
	wg.Wait()
	require.NoError(t, p.Flush(testCtx(t, 30*time.Second)))
	require.EqualValues(t, senders*each, acked.Load())
	require.Zero(t, failed.Load())
	st := p.Stats()
	require.EqualValues(t, senders*each, st.Sent)
	require.Zero(t, st.InFlight)
	require.Positive(t, st.LatencyMax)
	require.LessOrEqual(t, st.LatencyP99, st.LatencyMax)
}

// Messages alternating between topics on different brokers each go to
// their own topic's broker (the producer keeps the last topic's route at
// hand: it must never serve another topic).
func TestAlternatingTopicsKeepTheirOwnRoutes(t *testing.T) {
	zc := newZKCluster(t)
	zc.start(t, 1, 1, "onlyone")
	zc.start(t, 2, 2, "onlytwo")
	p := zc.producer(t)
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < 8; i++ {
		topic, want := "onlyone", 1
		if i%2 == 1 {
			topic, want = "onlytwo", 2
		}
		r, err := p.Send(ctx, producer.Message{Topic: topic, Payload: []byte("x")})
		require.NoError(t, err)
		require.Equal(t, want, r.Partition.BrokerID, "message %d to %s", i, topic)
	}
}

// A sender that finds the in-flight window full ends the connection's
// linger: what is queued leaves at once instead of after Linger. With a
// window of one and the longest linger, 25 sequential messages would take
// ~25 s of lingers otherwise.
func TestFullWindowEndsTheLinger(t *testing.T) {
	b := startDirectBroker(t, 1)
	p, err := producer.New(context.Background(), producer.WithBroker(b, 1), producer.WithMaxInFlight(1),
		producer.WithLinger(time.Second))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	sendAllAcked(t, p, "l", 25, 20*time.Second) // generous for a loaded machine; below 25 lingers
}

// Round-robin (the default) spreads sequential messages evenly over the
// partitions.
func TestRoundRobinSpreadsEvenly(t *testing.T) {
	b := startDirectBroker(t, 4)
	p, err := producer.New(context.Background(), producer.WithBroker(b, 4))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	count := map[int]int{}
	for i := 0; i < 12; i++ {
		r, err := p.Send(testCtx(t, 10*time.Second), producer.Message{Topic: "rr", Payload: []byte("x")})
		require.NoError(t, err)
		count[r.Partition.Partition]++
	}
	require.Equal(t, map[int]int{0: 3, 1: 3, 2: 3, 3: 3}, count)
}

// With an OnAck hook every acknowledgement carries its message's own
// latency, also in bulk (when Stats only samples one message in 8).
func TestOnAckGetsEveryLatencyInBulk(t *testing.T) {
	b := startDirectBroker(t, 1)
	var acks, zero atomic.Int64
	p, err := producer.New(context.Background(), producer.WithBroker(b, 1), producer.WithHooks(producer.Hooks{
		OnAck: func(_ *producer.Message, _ producer.Result, lat time.Duration) {
			acks.Add(1)
			if lat <= 0 {
				zero.Add(1)
			}
		}}))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	const n = 2000 // sent faster than acknowledged: far more than 64 in flight
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, producer.Message{Topic: "h", Payload: []byte("x")}, nil)
	}
	require.NoError(t, p.Flush(ctx))
	require.EqualValues(t, n, acks.Load())
	require.Zero(t, zero.Load(), "acknowledgements without a latency")
	st := p.Stats()
	require.Positive(t, st.LatencyP50)
	require.LessOrEqual(t, st.LatencyP999, st.LatencyMax)
}

// A broker that refuses a put now and then (503, busy) is avoided for one
// backoff step after each refusal, not for a step that doubles with every
// refusal of the producer's life: the backoff counts consecutive failures
// and an acknowledgement resets it. Before, the count was reset only by a
// new connection, so after a few isolated refusals the next one made a
// healthy broker unavailable for longer than the message's retries, which
// failed with "every broker is unreachable" (seen as BenchmarkSendAsync's
// occasional "1 sends failed").
func TestIsolatedRefusalsDoNotCompoundTheBrokerBackoff(t *testing.T) {
	var puts atomic.Int64
	addr := fakeBroker(t, func() int32 { // puts 1, 4, 7, ... are refused
		if puts.Add(1)%3 == 1 {
			return protocol.CodeUnavailable
		}
		return protocol.CodeOK
	})
	p, err := producer.New(context.Background(), producer.WithBroker(addr, 1), producer.WithRetry(10*time.Millisecond, 3))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	for i := 0; i < 10; i++ {
		_, err := p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "busy", Payload: []byte("x")})
		require.NoError(t, err, "message %d", i)
	}
	require.EqualValues(t, 5, p.Stats().Retried) // one retry per refusal
}

// A lost connection fails every request in flight on it at once; that is
// one failure of the broker, not one per request. Before, each counted as a
// consecutive failure, so a connection lost with hundreds in flight made
// the broker unavailable for the longest backoff (2 s), longer than the
// messages' retries, and they all failed with "every broker is
// unreachable" although the broker took the next connection at once.
func TestLostConnectionWithManyInFlightIsOneFailure(t *testing.T) {
	var puts atomic.Int64
	addr := fakeBroker(t, func() int32 {
		if puts.Add(1) == 300 {
			return hangUp // with the puts before it in the same read unanswered
		}
		return protocol.CodeOK
	})
	p, err := producer.New(context.Background(), producer.WithBroker(addr, 1), producer.WithRetry(10*time.Millisecond, 3))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	sendAllAcked(t, p, "lost", 1000, 20*time.Second)
	require.Positive(t, p.Stats().Retried)
}
