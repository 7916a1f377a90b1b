package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// events records rebalance callbacks in order.
type events struct {
	mu  sync.Mutex // guards log, errs
	log []string
	err []error
}

func (ev *events) add(s string) {
	ev.mu.Lock()
	ev.log = append(ev.log, s)
	ev.mu.Unlock()
}

func (ev *events) snapshot() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.log)
}

// Scenario: c1 (manual commit, commits in Revoked) consumes alone, c2 joins
// and they split the partitions (never both at once on one partition), then
// c1 closes in the middle of a backlog and c2 continues from c1's commits:
// nothing lost, nothing delivered twice (clean hand-overs), callbacks in
// order, offsets committed to the end.
func TestTwoConsumersSplitAndHandOver(t *testing.T) {
	e := newEnv(t, testBrokers, testParts, "orders")
	rec := newRecorder(t)
	work := func(who string) consumer.Handler {
		return func(ctx context.Context, m *consumer.Message) error {
			rec.enter(who, m)
			time.Sleep(time.Millisecond) // simulated work, so hand-overs happen mid-stream
			rec.exit(who, m)
			return nil
		}
	}
	ev := &events{}
	var c1 *consumer.Consumer
	c1 = newConsumer(t, "g2", e.opts(consumer.WithManualCommit(), consumer.WithRebalanceListener(consumer.RebalanceListener{
		Assigned: func(ctx context.Context, tps []consumer.TopicPartition) { ev.add(fmt.Sprint("assigned ", tps)) },
		Revoked: func(ctx context.Context, tps []consumer.TopicPartition) {
			ev.add(fmt.Sprint("revoked ", tps))
			if err := c1.Commit(ctx); err != nil {
				ev.mu.Lock()
				ev.err = append(ev.err, err)
				ev.mu.Unlock()
			}
		},
		Lost: func(tps []consumer.TopicPartition) { ev.add(fmt.Sprint("lost ", tps)) },
	}))...)
	require.NoError(t, c1.Subscribe("orders", work("c1")))
	start(t, c1)
	want := e.produceAll("orders", testParts, 100, 32, "a")
	eventually(t, 30*time.Second, "c1 consumed phase A", func() bool { return rec.distinct() >= len(want) })

	c2 := newConsumer(t, "g2", e.opts()...)
	require.NoError(t, c2.Subscribe("orders", work("c2")))
	start(t, c2)
	eventually(t, 30*time.Second, "partitions split", func() bool {
		a, b := c1.Assigned(), c2.Assigned()
		return len(a) == testBrokers*testParts/2 && len(b) == testBrokers*testParts/2
	})
	for k, v := range e.produceAll("orders", testParts, 300, 32, "b") {
		want[k] = v
	}
	// Close c1 while the phase-B backlog is being worked on.
	eventually(t, 30*time.Second, "phase B under way", func() bool { return rec.distinct() >= len(want)-2000 })
	closeC(t, c1)
	t.Logf("c1 closed with %d of %d messages delivered", rec.distinct(), len(want))
	eventually(t, 30*time.Second, "c2 owns everything", func() bool { return len(c2.Assigned()) == testBrokers*testParts })
	for k, v := range e.produceAll("orders", testParts, 50, 32, "c") {
		want[k] = v
	}
	eventually(t, 60*time.Second, "everything delivered", func() bool { return rec.distinct() >= len(want) })
	closeC(t, c2)

	got := rec.snapshot()
	require.Empty(t, rec.errs, "a partition was processed by two consumers at once")
	checkExactlyInOrder(t, want, got) // also: no duplicates after clean hand-overs
	// Per partition, deliveries by time: once c2 took a partition c1 never
	// delivers it again.
	byTP := map[consumer.TopicPartition][]delivery{}
	for _, d := range got {
		byTP[d.tp] = append(byTP[d.tp], d)
	}
	for tp, ds := range byTP {
		slices.SortFunc(ds, func(a, b delivery) int { return a.at.Compare(b.at) })
		seenC2 := false
		for _, d := range ds {
			if d.who == "c2" {
				seenC2 = true
			} else if seenC2 {
				t.Fatalf("%s: c1 delivered offset %d after c2 had taken over", tp, d.offset)
			}
		}
	}
	for tp, end := range logEnds(want) {
		require.Equal(t, end, e.committed("g2", tp), "committed offset of %s", tp)
	}
	// Callbacks: assigned all, revoked half (c2 joined), revoked the rest (Close).
	log := ev.snapshot()
	require.GreaterOrEqual(t, len(log), 3, "%v", log)
	require.Contains(t, log[0], "assigned")
	require.Contains(t, log[len(log)-1], "revoked")
	require.Empty(t, ev.err, "Commit inside Revoked")
	t.Logf("c1 callbacks: %v", log)
	t.Logf("deliveries: %d for %d messages", len(got), len(want))
}

// Scenario: the zombie's ZooKeeper link freezes (brokers stay reachable): it
// suspends itself and hands out nothing more; the other member takes over
// after the session expires and continues from the committed offsets;
// after the link comes back the zombie learns it lost its partitions
// (Lost) and rejoins. Never two at once on one partition; nothing lost.
func TestSuspendedConsumerStopsDelivering(t *testing.T) {
	e := newEnv(t, 1, testParts, "orders")
	proxy := zktest.NewProxyT(t, e.zk)
	rec := newRecorder(t)
	var lost atomic.Int64
	zopts := e.opts(consumer.WithRebalanceListener(consumer.RebalanceListener{
		Lost: func(tps []consumer.TopicPartition) { lost.Add(int64(len(tps))) },
	}))
	zopts[0] = consumer.WithZooKeeper([]string{proxy.Addr()}, e.root)
	z := newConsumer(t, "gz", zopts...)
	require.NoError(t, z.Subscribe("orders", rec.handler("zombie")))
	start(t, z)
	want := map[string]produced{}
	for k, v := range e.produceAll("orders", testParts, 20, 16, "a") {
		want[k] = v
	}
	eventually(t, 20*time.Second, "zombie consumed phase A", func() bool { return rec.distinct() >= len(want) })
	eventually(t, 10*time.Second, "zombie committed phase A", func() bool {
		for _, p := range z.Stats().Partitions {
			if p.Committed != p.Processed {
				return false
			}
		}
		return true
	})
	b := newConsumer(t, "gz", e.opts()...)
	require.NoError(t, b.Subscribe("orders", rec.handler("b")))
	start(t, b)
	eventually(t, 20*time.Second, "split", func() bool { return len(b.Assigned()) == testParts/2 })

	proxy.Freeze()
	eventually(t, 10*time.Second, "zombie suspended", func() bool { return z.Stats().Suspended })
	suspendedAt := time.Now()
	for k, v := range e.produceAll("orders", testParts, 20, 16, "b") {
		want[k] = v
	}
	eventually(t, 30*time.Second, "b took over everything and consumed it", func() bool {
		return len(b.Assigned()) == testParts && rec.distinct() >= len(want)
	})
	thawAt := time.Now()
	proxy.Unfreeze()
	eventually(t, 30*time.Second, "zombie saw Lost", func() bool { return lost.Load() > 0 })
	for _, d := range rec.snapshot() {
		if d.who == "zombie" && d.at.After(suspendedAt) && d.at.Before(thawAt) {
			t.Fatalf("suspended zombie delivered %s at offset %d", d.tp, d.offset)
		}
	}
	require.Empty(t, rec.errs)
	got := map[string]int{}
	for _, d := range rec.snapshot() {
		got[d.key]++
	}
	for k := range want {
		require.GreaterOrEqual(t, got[k], 1, "lost message %s", k)
	}
	eventually(t, 30*time.Second, "zombie rejoined and got partitions back", func() bool {
		return len(z.Assigned()) == testParts/2 && len(b.Assigned()) == testParts/2
	})
}
