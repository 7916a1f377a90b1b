package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

const benchParts = 4

// benchEnv is one in-process broker with pre-declared topics (each
// benchmark run reads a fresh one).
type benchEnv struct {
	e    *env
	b    *broker.Broker
	next int
}

func newBenchEnv(b *testing.B) *benchEnv {
	topics := make([]string, 32)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench%d", i)
	}
	e := &env{t: b, zk: zktest.Shared(b).Addr, root: uniqueRoot(), topics: topics}
	br := e.startBroker(1, benchParts, nil)
	return &benchEnv{e: e, b: br}
}

// backlog appends n messages of size bytes spread over the partitions of a
// fresh topic directly into the broker's store, and returns the topic.
func (be *benchEnv) backlog(b *testing.B, n, size int) string {
	topic := be.e.topics[be.next]
	be.next++
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	const chunk = 2000
	batch := make([]store.Message, chunk)
	for p := 0; p < benchParts; p++ {
		part, err := be.b.Store().Partition(topic, p, true)
		require.NoError(b, err)
		left := n / benchParts
		if p < n%benchParts {
			left++
		}
		for left > 0 {
			k := min(chunk, left)
			for i := range k {
				batch[i] = store.Message{Data: payload}
			}
			_, err := part.AppendBatchSync(context.Background(), batch[:k])
			require.NoError(b, err)
			left -= k
		}
	}
	return topic
}

func benchConsume(b *testing.B, size int, poll bool) {
	b.StopTimer()
	be := newBenchEnv(b)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	{
		b.StopTimer()
		topic := be.backlog(b, b.N, size)
		dir := b.TempDir()
		opts := be.e.opts(consumer.WithBroadcast(dir), consumer.WithAutoCommit(time.Second))
		if poll {
			opts = append(opts, consumer.WithTopics(topic))
		}
		c, err := consumer.New("bench", opts...)
		require.NoError(b, err)
		var n atomic.Int64
		done := make(chan struct{})
		if !poll {
			require.NoError(b, c.Subscribe(topic, func(ctx context.Context, m *consumer.Message) error {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			}))
		}
		b.StartTimer()
		t0, cpu0 := time.Now(), cpuTime(b)
		require.NoError(b, c.Start(context.Background()))
		if poll {
			ctx := context.Background()
			for n.Load() < int64(b.N) {
				ms, err := c.Poll(ctx, 4096)
				require.NoError(b, err)
				n.Add(int64(len(ms)))
			}
		} else {
			<-done
		}
		el, cpu := time.Since(t0), cpuTime(b)-cpu0
		b.StopTimer()
		b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
		require.NoError(b, c.Close(context.Background()))
	}
}

// BenchmarkConsumeBacklog: one consumer (broadcast mode: no group join
// in the measurement) reads a backlog of b.N messages from one in-process
// broker with 4 partitions over loopback; the time includes Start.
// cpu-ns/msg is the whole process's CPU (the broker serving the gets
// included); one op is one message, so allocs/op is allocations per message.
func BenchmarkConsumeBacklog(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("handler/%dB", size), func(b *testing.B) { benchConsume(b, size, false) })
		b.Run(fmt.Sprintf("poll/%dB", size), func(b *testing.B) { benchConsume(b, size, true) })
	}
}
