package producer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
)

// switchTopology serves one partition on one broker and moves it to another
// broker on move, as a ClusterView does when a topic's publisher changes: a
// new version, and the Changed channel of the old one closed.
type switchTopology struct {
	mu      sync.Mutex
	part    coordinator.BrokerPartition
	version uint64
	changed chan struct{}
	reads   int
}

func (s *switchTopology) Partitions(_ context.Context, topic string) (coordinator.TopicPartitions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return coordinator.TopicPartitions{Topic: topic, Partitions: []coordinator.BrokerPartition{s.part}, Version: s.version}, nil
}

func (s *switchTopology) Brokers() map[int]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[int]string{s.part.BrokerID: s.part.Addr}
}

func (s *switchTopology) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *switchTopology) Close() error { return nil }

func (s *switchTopology) move(p coordinator.BrokerPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = p
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *switchTopology) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// A producer keeps its route to a topic without reading the topology for
// every message, yet the first message after a change goes where the new
// topology says.
func TestRouteFollowsATopologyChange(t *testing.T) {
	a, b := startDirectBroker(t, 1), startDirectBroker(t, 1)
	topo := &switchTopology{part: coordinator.BrokerPartition{BrokerID: 1, Addr: a}, version: 1, changed: make(chan struct{})}
	p, err := producer.New(context.Background(), producer.WithTopology(topo))
	require.NoError(t, err)
	defer p.Close(testCtx(t, 5*time.Second))
	send := func() producer.Result {
		t.Helper()
		r, err := p.Send(testCtx(t, 10*time.Second), producer.Message{Topic: "t", Payload: []byte("x")})
		require.NoError(t, err)
		return r
	}
	for range 10 {
		require.Equal(t, 1, send().Partition.BrokerID)
	}
	reads := topo.readCount()
	require.LessOrEqual(t, reads, 2, "the route is read once, not per message")

	topo.move(coordinator.BrokerPartition{BrokerID: 2, Addr: b})
	r := send()
	require.Equal(t, 2, r.Partition.BrokerID, "the first message after the change follows it")
	require.Equal(t, b, r.Partition.Addr)
	for range 10 {
		require.Equal(t, 2, send().Partition.BrokerID)
	}
	require.LessOrEqual(t, topo.readCount()-reads, 2)
}
