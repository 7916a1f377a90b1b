package compattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
)

// metaqConsumer is a MetaQ 1.4 Java consumer reduced to its ZooKeeper steps
// (ConsumerZooKeeper.registerConsumer, ZKLoadRebalanceListener.ownPartition
// and releasePartitionOwnership, ZkOffsetStorage.load and commitOffset).
type metaqConsumer struct {
	t     *testing.T
	e     *env
	zk    *zk.Conn
	group string
	id    string // consumerIdString: <group>_<host>-<time>-<uuid>
	owned []string
}

func (e *env) metaqConsumer(group string) *metaqConsumer {
	return &metaqConsumer{t: e.t, e: e, zk: e.rawZK(), group: group,
		id: fmt.Sprintf("%s_127.0.0.1-%d-raw", group, time.Now().UnixMilli())}
}

// register creates consumers/<group>/ids/<consumerId> (ephemeral, data: the
// subscribed topics joined by ',').
func (m *metaqConsumer) register(topics ...string) {
	dir := m.e.paths.GroupMetaQIDs(m.group)
	require.NoError(m.t, ensurePersistent(m.zk, dir))
	_, err := m.zk.Create(dir+"/"+m.id, []byte(strings.Join(topics, ",")), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(m.t, err)
}

// own claims one partition as ownPartition does: create the ephemeral owner
// node with the consumer id as data; a node already there means "retry the
// rebalance later" (ZkNodeExistsException).
func (m *metaqConsumer) own(topic string, b, p int) error {
	node := m.e.paths.GroupOwner(m.group, topic, b, p)
	_, err := m.zk.Create(node, []byte(m.id), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) { // ZkUtils.createEphemeralPath creates the parents
		if err = ensurePersistent(m.zk, m.e.paths.GroupOwners(m.group, topic)); err == nil {
			_, err = m.zk.Create(node, []byte(m.id), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		}
	}
	if err == nil {
		m.owned = append(m.owned, node)
	}
	return err
}

// offset reads a partition's committed offset as ZkOffsetStorage.load does.
func (m *metaqConsumer) offset(topic string, b, p int) (msgID, offset int64, found bool) {
	data, _, err := m.zk.Get(m.e.paths.GroupOffset(m.group, topic, b, p))
	if errors.Is(err, zk.ErrNoNode) {
		return 0, 0, false
	}
	require.NoError(m.t, err)
	msgID, offset = parseMetaQOffset(m.t, string(data))
	return msgID, offset, true
}

// commit writes "<msgId>-<offset>" as ZkOffsetStorage.commitOffset does
// (ZkUtils.updatePersistentPath).
func (m *metaqConsumer) commit(topic string, b, p int, msgID, offset int64) {
	node := m.e.paths.GroupOffset(m.group, topic, b, p)
	data := []byte(fmt.Sprintf("%d-%d", msgID, offset))
	_, err := m.zk.Set(node, data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		require.NoError(m.t, ensurePersistent(m.zk, m.e.paths.GroupOffsets(m.group, topic)))
		_, err = m.zk.Create(node, data, 0, zk.WorldACL(zk.PermAll))
	}
	require.NoError(m.t, err)
}

// close releases every owned partition (deletePath) and ends the session,
// which removes the ids node.
func (m *metaqConsumer) close() {
	for _, n := range m.owned {
		require.NoError(m.t, m.zk.Delete(n, -1))
	}
	m.owned = nil
	m.zk.Close()
}

// sink records what our consumer delivers, per partition in order.
type sink struct {
	mu  sync.Mutex
	got map[consumer.TopicPartition][]fetched
}

func (s *sink) handler(ctx context.Context, m *consumer.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := m.TopicPartition()
	s.got[tp] = append(s.got[tp], fetched{id: m.ID, offset: m.Offset, payload: string(m.Payload)})
	return nil
}

func (s *sink) of(tp consumer.TopicPartition) []fetched {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got[tp])
}

func (e *env) runConsumer(group, topic string) (*consumer.Consumer, *sink) {
	out := &sink{got: map[consumer.TopicPartition][]fetched{}}
	c, err := consumer.New(group, consumer.WithZooKeeper([]string{e.zk}, e.root),
		consumer.WithSessionTimeout(4*time.Second), consumer.WithAutoCommit(50*time.Millisecond))
	require.NoError(e.t, err)
	require.NoError(e.t, c.Subscribe(topic, out.handler))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(e.t, c.Start(ctx))
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c, out
}

// TestGroupMovesBetweenOursAndMetaQ mirrors ConsumerZooKeeper (registerConsumer,
// ZKLoadRebalanceListener.ownPartition / releasePartitionOwnership) and
// ZkOffsetStorage: a group of our consumers leaves, a MetaQ consumer of the
// same group takes over every partition the MetaQ way at the committed
// offsets with no manual cleanup, and after it leaves ours take over again
// at the MetaQ consumer's offsets. Owner nodes are MetaQ's ephemeral
// owners/<topic>/<brokerId>-<partition> with the owner's id as data, and
// nothing is left under owners/<topic>/ once everyone has left.
func TestGroupMovesBetweenOursAndMetaQ(t *testing.T) {
	const topic, group, parts = "orders", "billing", 3
	e := newEnv(t)
	b := e.startBroker(1, parts, nil)
	w := dialWire(t, b.Addr())
	ids := map[int][]int64{} // partition → message ids, in order
	put := func(tag string, n int) {
		for p := 0; p < parts; p++ {
			for i := 0; i < n; i++ {
				id, _ := w.put(topic, int32(p), fmt.Sprintf("%s-%d-%d", tag, p, i))
				ids[p] = append(ids[p], id)
			}
		}
	}
	tpOf := func(p int) consumer.TopicPartition {
		return consumer.TopicPartition{Topic: topic, BrokerID: 1, Partition: p}
	}
	owners := func() map[string]string {
		out := map[string]string{}
		for _, n := range children(t, e.rawZK(), e.paths.GroupOwners(group, topic)) {
			data, _, err := e.rawZK().Get(e.paths.GroupOwners(group, topic) + "/" + n)
			if err == nil {
				out[n] = string(data)
			}
		}
		return out
	}
	check := e.rawZK()

	// 1. Ours consume a first batch and leave.
	put("a", 4)
	c1, got1 := e.runConsumer(group, topic)
	for p := 0; p < parts; p++ {
		eventually(t, 30*time.Second, "first batch delivered", func() bool { return len(got1.of(tpOf(p))) == 4 })
	}
	eventually(t, 20*time.Second, "owner nodes are MetaQ's, holding our member id", func() bool {
		o := owners()
		if len(o) != parts {
			return false
		}
		for p := 0; p < parts; p++ {
			_, stat, err := check.Get(e.paths.GroupOwner(group, topic, 1, p))
			if err != nil || stat.EphemeralOwner == 0 || stat.NumChildren != 0 || o[coordinator.PartitionName(1, p)] == "" {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c1.Close(ctx))
	require.Empty(t, owners(), "our consumer left no owner node")

	// 2. A MetaQ consumer of the same group takes every partition over at
	//    the committed offsets, reads on and commits.
	put("b", 3)
	mq := e.metaqConsumer(group)
	mq.register(topic)
	for p := 0; p < parts; p++ {
		require.NoError(t, mq.own(topic, 1, p), "MetaQ claims %d-%d", 1, p)
		msgID, off, found := mq.offset(topic, 1, p)
		require.True(t, found, "offset of 1-%d committed by ours", p)
		last := got1.of(tpOf(p))[3]
		require.Equal(t, last.id, msgID, "msgId of the last message ours processed")
		next := messages(t, w.get(topic, group, int32(p), off, 64<<10), off)
		require.Len(t, next, 3, "exactly the second batch follows the committed offset")
		for i, m := range next {
			require.Equal(t, fmt.Sprintf("b-%d-%d", p, i), m.payload)
		}
		// MetaQ commits the next offset with the last message's id; read one
		// of the three only, so ours must resume in the middle.
		mq.commit(topic, 1, p, next[0].id, next[1].offset)
	}
	for p := 0; p < parts; p++ {
		require.Equal(t, mq.id, owners()[coordinator.PartitionName(1, p)])
	}
	// While MetaQ holds the group, ours are refused.
	refused, err := consumer.New(group, consumer.WithZooKeeper([]string{e.zk}, e.root), consumer.WithSessionTimeout(4*time.Second))
	require.NoError(t, err)
	require.NoError(t, refused.Subscribe(topic, (&sink{got: map[consumer.TopicPartition][]fetched{}}).handler))
	err = refused.Start(ctx)
	require.ErrorIs(t, err, coordinator.ErrMetaQConsumersPresent)
	_ = refused.Close(ctx)
	mq.close()

	// 3. Ours take over again at the MetaQ consumer's offsets.
	c2, got2 := e.runConsumer(group, topic)
	for p := 0; p < parts; p++ {
		eventually(t, 30*time.Second, "the rest delivered", func() bool { return len(got2.of(tpOf(p))) >= 2 })
		first := got2.of(tpOf(p))[0]
		require.Equal(t, fmt.Sprintf("b-%d-1", p), first.payload, "resumed at the MetaQ consumer's offset")
	}
	require.NoError(t, c2.Close(ctx))
	require.Empty(t, owners(), "no owner node after everyone left")
	for _, n := range children(t, check, e.paths.GroupOwners(group, topic)) {
		t.Errorf("left behind under owners/%s: %s", topic, n)
	}
}
