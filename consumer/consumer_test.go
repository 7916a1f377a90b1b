package consumer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
)

const (
	testBrokers = 2
	testParts   = 4
)

// Scenario: a backlog on 2 brokers × 4 partitions, one handler-style
// consumer: every message once, in order per partition, offsets committed
// up to the log end, no goroutine left after Close.
func TestHandlerStyleDeliversEverythingOnceInOrder(t *testing.T) {
	e := newEnv(t, testBrokers, testParts, "orders")
	want := e.produceAll("orders", testParts, 150, 64, "a")
	leak := goroutines(t)
	rec := newRecorder(t)
	c := newConsumer(t, "g1", e.opts(consumer.WithConcurrency(3))...)
	require.NoError(t, c.Subscribe("orders", rec.handler("c1")))
	start(t, c)
	eventually(t, 30*time.Second, "all delivered", func() bool { return rec.count() >= len(want) })
	// More while it is running (caught up: long polls).
	more := e.produceAll("orders", testParts, 20, 64, "b")
	for k, v := range more {
		want[k] = v
	}
	eventually(t, 30*time.Second, "new messages delivered", func() bool { return rec.count() >= len(want) })
	ends := logEnds(want)
	eventually(t, 10*time.Second, "lag 0 everywhere", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		lag, err := c.Lag(ctx)
		require.NoError(t, err)
		if len(lag) != testBrokers*testParts {
			return false
		}
		for _, l := range lag {
			tp := consumer.TopicPartition{Topic: l.Topic, BrokerID: l.BrokerID, Partition: l.Partition}
			require.Equal(t, ends[tp], l.LogEnd, "log end of %s", tp)
			require.Equal(t, c.MemberID(), l.Owner)
			if l.Lag != 0 || l.Committed != ends[tp] {
				return false
			}
		}
		return true
	})
	st := c.Stats()
	require.Len(t, st.Partitions, testBrokers*testParts)
	for _, p := range st.Partitions {
		require.True(t, p.LongPoll, "%s: long poll", p.TopicPartition)
	}
	closeC(t, c)
	leak()
	checkExactlyInOrder(t, want, rec.snapshot())
	require.Empty(t, rec.errs)
	for tp, end := range logEnds(want) {
		require.Equal(t, end, e.committed("g1", tp), "committed offset of %s", tp)
	}
	st = c.Stats()
	require.EqualValues(t, len(want), st.Delivered)
	require.Zero(t, st.ChecksumErrors)
}

// Scenario: the same with Poll.
func TestPollStyleDeliversEverythingOnceInOrder(t *testing.T) {
	e := newEnv(t, testBrokers, testParts, "orders")
	want := e.produceAll("orders", testParts, 100, 64, "a")
	leak := goroutines(t)
	c := newConsumer(t, "gp", e.opts(consumer.WithTopics("orders"))...)
	start(t, c)
	var got []delivery
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < len(want) {
		ms, err := c.Poll(ctx, 37)
		require.NoError(t, err)
		require.NotEmpty(t, ms)
		require.LessOrEqual(t, len(ms), 37)
		for _, m := range ms {
			got = append(got, delivery{key: keyOf(m.Payload), tp: m.TopicPartition(), offset: m.Offset})
		}
	}
	closeC(t, c)
	leak()
	checkExactlyInOrder(t, want, got)
	for tp, end := range logEnds(want) {
		require.Equal(t, end, e.committed("gp", tp), "committed offset of %s", tp)
	}
}

// Scenario: the same with the range iterator; stopping the loop and
// resuming later loses and repeats nothing.
func TestIteratorStyleDeliversEverythingOnceInOrder(t *testing.T) {
	e := newEnv(t, testBrokers, testParts, "orders")
	want := e.produceAll("orders", testParts, 100, 64, "a")
	c := newConsumer(t, "gi", e.opts(consumer.WithTopics("orders"))...)
	start(t, c)
	var got []delivery
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for m, err := range c.Messages(ctx) {
		require.NoError(t, err)
		got = append(got, delivery{key: keyOf(m.Payload), tp: m.TopicPartition(), offset: m.Offset})
		if len(got) == len(want)/2 {
			break
		}
	}
	for m, err := range c.Messages(ctx) {
		require.NoError(t, err)
		got = append(got, delivery{key: keyOf(m.Payload), tp: m.TopicPartition(), offset: m.Offset})
		if len(got) == len(want) {
			break
		}
	}
	closeC(t, c)
	checkExactlyInOrder(t, want, got)
	for tp, end := range logEnds(want) {
		require.Equal(t, end, e.committed("gi", tp), "committed offset of %s", tp)
	}
}

func TestOptionValidationAndMisuse(t *testing.T) {
	_, err := consumer.New("g")
	require.Error(t, err, "no ZooKeeper")
	_, err = consumer.New("bad group", consumer.WithZooKeeper([]string{"127.0.0.1:1"}, ""))
	require.Error(t, err)
	_, err = consumer.New("g", consumer.WithZooKeeper([]string{"x:1"}, ""), consumer.WithConcurrency(0))
	require.Error(t, err)
	c, err := consumer.New("g", consumer.WithZooKeeper([]string{"x:1"}, ""), consumer.WithTopics("t"))
	require.NoError(t, err)
	require.Error(t, c.Subscribe("t", func(context.Context, *consumer.Message) error { return nil }))
	_, err = c.Poll(context.Background(), 1)
	require.ErrorIs(t, err, consumer.ErrNotStarted)
	c2, err := consumer.New("g", consumer.WithZooKeeper([]string{"x:1"}, ""))
	require.NoError(t, err)
	require.ErrorIs(t, c2.Start(context.Background()), consumer.ErrNoTopics)
	require.NoError(t, c2.Close(context.Background()))
	require.True(t, errors.Is(c2.Start(context.Background()), consumer.ErrClosed))
}
