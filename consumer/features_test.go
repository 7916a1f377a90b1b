package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
)

// Scenario: two broadcast instances of one group both get every message;
// offsets live in files; a restarted instance resumes after what it
// processed.
func TestBroadcastEveryInstanceGetsEverything(t *testing.T) {
	e := newEnv(t, testBrokers, 2, "news")
	want := e.produceAll("news", 2, 20, 16, "a")
	dirA, dirB := t.TempDir(), t.TempDir()
	run := func(dir string) (*consumer.Consumer, *collect) {
		cl := &collect{}
		c := newConsumer(t, "bc", e.opts(consumer.WithBroadcast(dir))...)
		require.NoError(t, c.Subscribe("news", cl.handler))
		start(t, c)
		return c, cl
	}
	a, clA := run(dirA)
	b, clB := run(dirB)
	eventually(t, 20*time.Second, "both got everything", func() bool { return clA.len() >= len(want) && clB.len() >= len(want) })
	require.Equal(t, keysOf(want), clA.sorted())
	require.Equal(t, keysOf(want), clB.sorted())
	closeC(t, a)
	// Offset files: "<msgId>-<offset>" per partition.
	data, err := os.ReadFile(filepath.Join(dirA, "news", "1-0"))
	require.NoError(t, err)
	require.Contains(t, string(data), fmt.Sprint("-", logEnds(want)[consumer.TopicPartition{Topic: "news", BrokerID: 1, Partition: 0}]))
	more := e.produceAll("news", 2, 5, 16, "b")
	eventually(t, 20*time.Second, "b got the new ones", func() bool { return clB.len() >= len(want)+len(more) })
	a2, clA2 := run(dirA)
	eventually(t, 20*time.Second, "restarted a resumed", func() bool { return clA2.len() >= len(more) })
	closeC(t, a2)
	require.Equal(t, keysOf(more), clA2.sorted(), "only what a had not processed")
	closeC(t, b)
}

// Scenario: a failing handler is retried, then dead-lettered; the message
// after it is delivered; a filter skips messages but they are committed.
func TestRetryDeadLetterAndFilter(t *testing.T) {
	e := newEnv(t, 1, 1, "jobs")
	want := e.produce(e.brokers[0], 1, "jobs", 0, 10, 16, "j")
	var attempts atomic.Int64
	var mu sync.Mutex
	var handled, dead []string
	c := newConsumer(t, "gj", e.opts(
		consumer.WithRetry(3, time.Millisecond),
		consumer.WithDeadLetter(func(ctx context.Context, m *consumer.Message, err error) error {
			mu.Lock()
			defer mu.Unlock()
			dead = append(dead, keyOf(m.Payload)+": "+err.Error())
			return nil
		}),
		consumer.WithFilter(func(m *consumer.Message) bool { return !strings.HasSuffix(keyOf(m.Payload), "5") }),
	)...)
	require.NoError(t, c.Subscribe("jobs", func(ctx context.Context, m *consumer.Message) error {
		k := keyOf(m.Payload)
		if strings.HasSuffix(k, "3") {
			attempts.Add(1)
			return errors.New("boom")
		}
		mu.Lock()
		handled = append(handled, k)
		mu.Unlock()
		return nil
	}))
	start(t, c)
	eventually(t, 20*time.Second, "all processed", func() bool {
		return c.Stats().Partitions != nil && c.Stats().Partitions[0].Processed == logEnds(want)[consumer.TopicPartition{Topic: "jobs", BrokerID: 1, Partition: 0}]
	})
	closeC(t, c)
	st := c.Stats()
	require.EqualValues(t, 3, attempts.Load())
	require.EqualValues(t, 2, st.Retries)
	require.EqualValues(t, 1, st.DeadLettered)
	require.EqualValues(t, 1, st.Filtered)
	mu.Lock()
	require.Len(t, handled, 8)
	require.Equal(t, []string{"j/1-0/000003: boom"}, dead)
	mu.Unlock()
	for tp, end := range logEnds(want) {
		require.Equal(t, end, e.committed("gj", tp))
	}
}

// Scenario: an idle consumer on 8 partitions uses little CPU; a message
// produced into an idle partition arrives within milliseconds (long poll).
func TestIdleCPUAndIdlePartitionLatency(t *testing.T) {
	e := newEnv(t, testBrokers, testParts, "idle")
	e.produceAll("idle", testParts, 1, 16, "warm") // so every partition has data (long polls)
	got := make(chan time.Time, 16)
	c := newConsumer(t, "gidle", e.opts()...)
	require.NoError(t, c.Subscribe("idle", func(ctx context.Context, m *consumer.Message) error {
		got <- time.Now()
		return nil
	}))
	start(t, c)
	for range testBrokers * testParts {
		select {
		case <-got:
		case <-time.After(20 * time.Second):
			t.Fatal("warm-up messages not delivered")
		}
	}
	eventually(t, 10*time.Second, "fetchers caught up", func() bool {
		st := c.Stats()
		return len(st.Partitions) == 8
	})
	const window = 2 * time.Second
	cpu0, wall0 := cpuTime(t), time.Now()
	gets0 := c.Stats()
	timer := time.NewTimer(window)
	<-timer.C // the measurement window itself (the thing measured is idleness)
	cpu, wall := cpuTime(t)-cpu0, time.Since(wall0)
	frac := float64(cpu) / float64(wall)
	t.Logf("idle: process CPU %v over %v = %.2f%% of one core (consumer + 2 in-process brokers + ZK clients); commits %d",
		cpu, wall.Round(time.Millisecond), 100*frac, c.Stats().Commits-gets0.Commits)
	require.Less(t, frac, 0.10, "idle CPU")
	// Latency into an idle partition.
	var lats []time.Duration
	for i := range 5 {
		t0 := time.Now()
		e.produce(e.brokers[i%2], i%2+1, "idle", i%testParts, 1, 16, fmt.Sprint("lat", i))
		select {
		case at := <-got:
			lats = append(lats, at.Sub(t0))
		case <-time.After(10 * time.Second):
			t.Fatal("message into an idle partition not delivered")
		}
	}
	t.Logf("idle-partition latency (put sent → handler, includes the put's fsync): %v", lats)
}

func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
