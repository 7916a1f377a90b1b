package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// lostLog records Lost callbacks with their time.
type lostLog struct {
	mu  sync.Mutex // guards at
	at  map[consumer.TopicPartition]time.Time
	all [][]consumer.TopicPartition
}

func (l *lostLog) add(tps []consumer.TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, tp := range tps {
		if _, ok := l.at[tp]; !ok {
			l.at[tp] = now
		}
	}
	l.all = append(l.all, tps)
}

func (l *lostLog) when(tp consumer.TopicPartition) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[tp]
	return t, ok
}

// Scenario: the consumer's own owner node of one partition is taken from
// under it while its session lives — deleted (with an intruder queued
// right behind, who so becomes the owner) or overwritten with another
// member's id. The consumer must notice through its watch on its own node,
// stop delivering that partition, report it Lost (callback, Stats,
// ErrNotOwner on commit) and deliver nothing of it while the intruder owns
// it; the other partitions go on. When the intruder leaves it gets the
// partition back. Before the fix nobody watched the own node: the consumer
// kept delivering a partition another owner held, and learnt nothing but a
// Debug line from a refused auto-commit.
func TestOwnerNodeTakenStopsDeliveryAndReportsLost(t *testing.T) {
	for _, how := range []string{"deleted", "overwritten"} {
		t.Run(how, func(t *testing.T) { testOwnerNodeTaken(t, how) })
	}
}

func testOwnerNodeTaken(t *testing.T, how string) {
	e := newEnv(t, 1, 2, "orders")
	rec := newRecorder(t)
	lost := &lostLog{at: map[consumer.TopicPartition]time.Time{}}
	var assignedMu sync.Mutex
	assigned := map[consumer.TopicPartition]time.Time{}
	c := newConsumer(t, "go", e.opts(consumer.WithRebalanceListener(consumer.RebalanceListener{
		Assigned: func(_ context.Context, tps []consumer.TopicPartition) {
			assignedMu.Lock()
			defer assignedMu.Unlock()
			for _, tp := range tps {
				assigned[tp] = time.Now()
			}
		},
		Lost: lost.add,
	}))...)
	slow := rec.handler("c")
	require.NoError(t, c.Subscribe("orders", func(ctx context.Context, m *consumer.Message) error {
		if err := slow(ctx, m); err != nil {
			return err
		}
		tm := time.NewTimer(2 * time.Millisecond) // keeps a backlog: delivery is in progress when the node goes
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
		}
		return nil
	}))
	start(t, c)
	eventually(t, 20*time.Second, "both partitions assigned", func() bool { return len(c.Assigned()) == 2 })
	e.produceAll("orders", 2, 3000, 16, "a")
	victim := consumer.TopicPartition{Topic: "orders", BrokerID: 1, Partition: 0}
	other := consumer.TopicPartition{Topic: "orders", BrokerID: 1, Partition: 1}
	eventually(t, 20*time.Second, "delivering the victim partition", func() bool { return countOf(rec, victim) >= 50 })

	s := e.session()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	own := coordinator.NewPaths(e.root).GroupOwner("go", victim.Topic, victim.BrokerID, victim.Partition)
	_, stat, err := s.Get(ctx, own)
	require.NoError(t, err)
	require.NotZero(t, stat.EphemeralOwner, "the owner node is MetaQ's ephemeral node")

	var intruder string
	takenAt := time.Now()
	switch how {
	case "deleted":
		// Delete the consumer's node and take it: the intruder is the owner.
		takenAt = time.Now()
		require.NoError(t, s.Delete(ctx, own, -1))
		intruder, err = s.Create(ctx, own, []byte("intruder"), zkrecipes.Ephemeral)
		require.NoError(t, err)
	case "overwritten":
		_, err = s.Set(ctx, own, []byte("intruder"), -1)
		require.NoError(t, err)
	}
	eventually(t, 20*time.Second, "Lost callback for the partition", func() bool { _, ok := lost.when(victim); return ok })
	lostAt, _ := lost.when(victim)
	t.Logf("%s the owner node; Lost reported %v later", how, lostAt.Sub(takenAt))
	require.GreaterOrEqual(t, c.Stats().PartitionsLost, int64(1), "Stats.PartitionsLost")
	for _, tps := range lost.all {
		require.NotContains(t, tps, other, "only the partition whose node was taken is lost")
	}

	// The other partition keeps going; the victim is not delivered while the intruder holds it.
	base := countOf(rec, other)
	eventually(t, 20*time.Second, "the other partition still delivered", func() bool { return countOf(rec, other) > base+20 })
	if how == "deleted" {
		for _, d := range rec.snapshot() {
			if d.tp == victim && d.at.After(lostAt) {
				t.Fatalf("delivered %s offset %d at +%v after it was reported lost, while the intruder owns it",
					victim, d.offset, d.at.Sub(lostAt))
			}
		}
		var probe *consumer.Message
		for _, d := range rec.snapshot() {
			if d.tp == victim {
				probe = &consumer.Message{Topic: victim.Topic, BrokerID: victim.BrokerID, Partition: victim.Partition,
					Offset: d.offset, NextOffset: d.offset + 1}
			}
		}
		require.NotNil(t, probe)
		require.ErrorIs(t, c.Commit(ctx, probe), consumer.ErrNotOwner, "a commit of the lost partition is fenced")
		require.NoError(t, s.Delete(ctx, intruder, -1)) // the intruder leaves
	}
	// The consumer queued for the partition again: it owns it anew and goes on.
	eventually(t, 20*time.Second, "the partition assigned again", func() bool {
		assignedMu.Lock()
		defer assignedMu.Unlock()
		return assigned[victim].After(lostAt)
	})
	base = countOf(rec, victim)
	eventually(t, 20*time.Second, "the partition delivered again", func() bool { return countOf(rec, victim) > base+20 })
	require.Empty(t, rec.errs)
}

func countOf(r *recorder, tp consumer.TopicPartition) int {
	n := 0
	for _, d := range r.snapshot() {
		if d.tp == tp {
			n++
		}
	}
	return n
}
