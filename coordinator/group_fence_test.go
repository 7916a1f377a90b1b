package coordinator_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// MayDeliver, the per-message self-fencing check: true only for owned
// partitions; false at once for a partition whose owner node was taken
// (deleted with an intruder queued behind it: Lost is reported for that
// partition alone, GroupStats.OwnerLost counts it, the other partition goes
// on); true again when the member owns it anew; and, with the member's
// ZooKeeper link frozen, false before the server could expire the session
// (the send time of the newest answered request plus the session timeout).
func TestMayDeliverFollowsOwnNodeAndProof(t *testing.T) {
	f := newGroupFixture(t, "orders")
	registerTopic(t, f.admin, f.paths, "orders", 2, 1)
	all := allPartitions("orders", 2, 1)
	proxy := zktest.NewProxyT(t, f.addr)
	m := f.joinVia(proxy.Addr(), "m")
	f.waitOwned(10*time.Second, all, m)
	may := func(tp coordinator.TopicPartition) func() bool { return func() bool { return m.g.MayDeliver(tp) } }
	require.Eventually(t, may(all[0]), 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, may(all[1]), 5*time.Second, 5*time.Millisecond)
	require.False(t, m.g.MayDeliver(coordinator.TopicPartition{Topic: "orders", Partition: coordinator.Partition{BrokerID: 9}}),
		"a partition the member does not own")

	// Take all[0]'s owner node: it is deleted and an intruder creates it.
	ctx := gctx(t, 30*time.Second)
	node := f.paths.GroupOwner("g", "orders", all[0].BrokerID, all[0].Partition.Partition)
	data, _, err := f.admin.Get(ctx, node)
	require.NoError(t, err)
	require.Equal(t, "m", string(data), "MetaQ's owner node: the owner's id")
	require.NoError(t, f.admin.Delete(ctx, node, -1))
	intruder, err := f.admin.Create(ctx, node, []byte("intruder"), zkrecipes.Ephemeral)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return m.g.Stats().OwnerLost == 1 }, 10*time.Second, 5*time.Millisecond, "the loss is noticed")
	require.False(t, m.g.MayDeliver(all[0]), "the intruder owns it now")
	require.True(t, m.g.MayDeliver(all[1]), "the other partition is untouched")
	require.NotContains(t, m.g.Owned(), all[0])
	require.ErrorIs(t, m.g.CommitOffset(ctx, "orders", all[0].BrokerID, all[0].Partition.Partition, 1, 10), coordinator.ErrNotOwner)
	require.NoError(t, f.admin.Delete(ctx, intruder, -1))
	require.Eventually(t, may(all[0]), 10*time.Second, 5*time.Millisecond, "owned again once the intruder left")

	// Cut off: delivery stops before the server can expire the session.
	id := m.s.ID()
	proxy.Freeze()
	defer proxy.Unfreeze()
	require.Eventually(t, func() bool { return !m.g.MayDeliver(all[1]) }, 10*time.Second, 2*time.Millisecond)
	now, l := time.Now(), m.s.Liveness()
	require.Equal(t, id, m.s.ID(), "still the same session")
	require.True(t, now.Before(l.Answered.Add(m.s.Timeout())),
		"delivery stopped at %s, after the server could have expired the session (proof sent at %s, timeout %s)",
		now.Format(time.StampMicro), l.Answered.Format(time.StampMicro), m.s.Timeout())
	require.False(t, m.g.MayDeliver(all[0]))
	f.a.check()
}
