package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/zkwire"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestGroupJoinLeaveBalancesAndCleansUp(t *testing.T) {
	f := newGroupFixture(t, "orders")
	registerTopic(t, f.admin, f.paths, "orders", 6, 1, 2)
	all := allPartitions("orders", 6, 1, 2)
	m1 := f.join("m1")
	m2 := f.join("m2")
	m3 := f.join("m3")
	owners := f.waitOwned(10*time.Second, all, m1, m2, m3)
	require.Equal(t, map[string]int{"m1": 4, "m2": 4, "m3": 4}, countBy(owners))
	require.True(t, m1.g.IsLeader())
	require.False(t, m2.g.IsLeader())

	m4 := f.join("m4")
	require.Eventually(t, func() bool { return len(m4.g.Owned()) == 3 }, 10*time.Second, 10*time.Millisecond)
	owners = f.waitOwned(10*time.Second, all, m1, m2, m3, m4)
	require.Equal(t, map[string]int{"m1": 3, "m2": 3, "m3": 3, "m4": 3}, countBy(owners))
	for _, m := range []*member{m1, m2, m3} {
		require.EqualValues(t, 1, m.g.Stats().Revoked, "%s: only its excess moves", m.id)
	}

	// The leader leaves: m2 takes over and m1's partitions are spread.
	require.NoError(t, m1.g.Close(gctx(t, 10*time.Second)))
	require.Eventually(t, func() bool { return m2.g.IsLeader() }, 10*time.Second, 10*time.Millisecond)
	owners = f.waitOwned(10*time.Second, all, m2, m3, m4)
	require.Equal(t, map[string]int{"m2": 4, "m3": 4, "m4": 4}, countBy(owners))

	for _, m := range []*member{m2, m3, m4} {
		require.NoError(t, m.g.Close(gctx(t, 10*time.Second)))
	}
	f.a.check()
	// Invariant 5: nothing of the members is left: no member, owner or assign/<member> node.
	for _, n := range tree(t, f.admin, f.paths.Group("g")) {
		require.False(t, strings.HasPrefix(n, "members/_c_"), "left behind: %s", n)
		require.False(t, strings.HasPrefix(n, "assign/"), "left behind: %s", n)
		require.False(t, strings.Count(n, "/") >= 2 && strings.HasPrefix(n, "owners/"), "left behind: %s", n)
		require.False(t, strings.Count(n, "/") >= 3 && strings.HasPrefix(n, "metaq/fence/"), "left behind: %s", n)
	}
	// Offsets committed on revoke stay (persistent, MetaQ format).
	lag, err := coordinator.GroupLag(gctx(t, 10*time.Second), f.admin, f.paths, "g", nil)
	require.NoError(t, err)
	require.NotEmpty(t, lag)
	for _, r := range lag {
		require.Empty(t, r.Owner, "%s still owned", r.TopicPartition)
	}
}

func TestGroupRefusesToMixWithMetaQConsumers(t *testing.T) {
	f := newGroupFixture(t, "orders")
	_, err := f.admin.CreateParents(gctx(t, 10*time.Second), f.paths.GroupMetaQIDs("g")+"/g_java-1", []byte("orders"), zkrecipes.Persistent)
	require.NoError(t, err)
	s := connect(t, f.addr)
	_, err = coordinator.JoinGroup(gctx(t, 10*time.Second), s, f.paths, coordinator.GroupOptions{Group: "g", Topics: []string{"orders"}})
	require.ErrorIs(t, err, coordinator.ErrMetaQConsumersPresent)
	require.Contains(t, err.Error(), "g_java-1")
	_, _, err = f.admin.Children(gctx(t, 10*time.Second), f.paths.GroupMembers("g"))
	require.ErrorIs(t, err, zkrecipes.ErrNoNode, "nothing registered")
}

func TestGroupProtectedMemberCreateAfterLostReply(t *testing.T) {
	f := newGroupFixture(t, "orders")
	require.NoError(t, f.admin.EnsurePath(gctx(t, 10*time.Second), f.paths.GroupMembers("g")))
	proxy := zktest.NewProxyT(t, f.addr)
	s := connect(t, proxy.Addr())
	cut := proxy.CutAfterRequest(func(op int32) bool { return op == zkwire.OpCreate || op == zkwire.OpCreate2 })
	m := f.joinOn(s, "m1")
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the create's reply was never cut")
	}
	kids, _, err := f.admin.Children(gctx(t, 10*time.Second), f.paths.GroupMembers("g"))
	require.NoError(t, err)
	require.Len(t, kids, 1, "exactly one member node after a lost create reply: %v", kids)
	registerTopic(t, f.admin, f.paths, "orders", 2, 1)
	f.waitOwned(10*time.Second, allPartitions("orders", 2, 1), m)
}

// Invariant 3: a zombie (session expired behind a frozen network) cannot
// commit; it suspended itself before the new owner started.
func TestGroupZombieCannotCommit(t *testing.T) {
	f := newGroupFixture(t, "orders")
	registerTopic(t, f.admin, f.paths, "orders", 4, 1)
	all := allPartitions("orders", 4, 1)
	proxy := zktest.NewProxyT(t, f.addr)
	za := f.joinVia(proxy.Addr(), "zombie")
	owners := f.waitOwned(10*time.Second, all, za)
	require.Len(t, owners, 4)
	tp := all[0]
	ctx := gctx(t, 30*time.Second)
	require.NoError(t, za.g.CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition, 7, 100))
	require.ErrorIs(t, za.g.CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition, 6, 90), coordinator.ErrOffsetBackwards)

	b := f.join("b")
	proxy.Freeze()
	require.Eventually(t, func() bool { return za.g.Suspended() }, 5*time.Second, 10*time.Millisecond, "no self-fencing")
	f.waitOwned(10*time.Second, all, b)
	require.NoError(t, b.g.CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition, 8, 200))
	f.a.check()

	proxy.Unfreeze()
	var err error
	require.Eventually(t, func() bool {
		err = za.g.CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition, 9, 150)
		return err != nil && !zkrecipes.IsRetriable(err)
	}, 15*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, err, coordinator.ErrNotOwner)
	o, found, err := coordinator.FetchOffset(ctx, f.admin, f.paths, "g", tp)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, coordinator.Offset{MsgID: 8, Offset: 200}, o, "the zombie must not touch the offset")
	// The zombie rejoins under a new session and gets its share back.
	f.waitOwned(15*time.Second, all, za, b)
	f.a.check()
}

// Invariants 1, 2 and 3 under churn: members join, leave cleanly, crash
// (session closed) and expire (real expiry); no partition is ever processed
// by two members; all are owned again within session timeout + debounce + 2s;
// offsets committed on revoke only go up.
func TestGroupInvariantsUnderChurn(t *testing.T) {
	f := newGroupFixture(t, "orders")
	registerTopic(t, f.admin, f.paths, "orders", 8, 1, 2)
	all := allPartitions("orders", 8, 1, 2)
	var commitMu sync.Mutex
	var commitErrs []error
	f.onCommit = func(tp coordinator.TopicPartition, err error) {
		if err != nil {
			commitMu.Lock()
			commitErrs = append(commitErrs, fmt.Errorf("%s: %w", tp, err))
			commitMu.Unlock()
		}
	}
	last := map[coordinator.TopicPartition]int64{}
	checkOffsets := func() {
		lag, err := coordinator.GroupLag(gctx(t, 10*time.Second), f.admin, f.paths, "g", nil)
		require.NoError(t, err)
		for _, r := range lag {
			if r.HasOffset {
				require.GreaterOrEqual(t, r.Committed.Offset, last[r.TopicPartition], "%s went backwards", r.TopicPartition)
				last[r.TopicPartition] = r.Committed.Offset
			}
		}
	}
	live := []*member{f.join("c0"), f.join("c1")}
	f.waitOwned(10*time.Second, all, live...)
	bound := 2*time.Second + f.opts.Debounce + 2*time.Second
	next := 2
	for round := 0; round < 8; round++ {
		start := time.Now()
		switch round % 4 {
		case 0: // join
			live = append(live, f.join(fmtID(next)))
			next++
		case 1: // clean leave
			require.NoError(t, live[0].g.Close(gctx(t, 10*time.Second)))
			live = live[1:]
		case 2: // crash: the process stops, its session closes
			v := live[len(live)-1]
			f.a.kill(v.id)
			v.s.Close()
			_ = v.g.Close(gctx(t, 10*time.Second))
			live = live[:len(live)-1]
			live = append(live, f.join(fmtID(next)))
			next++
		case 3: // real expiry of a member's session; it rejoins on a new session
			expire(t, f.addr, live[0].s)
		}
		f.waitOwned(bound, all, live...)
		t.Logf("round %d: all partitions owned again after %v", round, time.Since(start))
		checkOffsets()
	}
	commitMu.Lock()
	require.Empty(t, commitErrs, "a revoking owner must be able to commit")
	commitMu.Unlock()
	f.a.check()
}

func fmtID(n int) string { return "c" + string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// Invariant 4: watchers. At most one watcher per member, owner and assign
// node; a join that changes no assignment wakes only the leader.
func TestGroupWatchesAreHerdFree(t *testing.T) {
	f := newGroupFixture(t, "orders")
	srv := zktest.Shared(t)
	registerTopic(t, f.admin, f.paths, "orders", 3, 1)
	all := allPartitions("orders", 3, 1)
	var ms []*member
	for i := 0; i < 4; i++ {
		ms = append(ms, f.join(fmtID(i)))
	}
	f.waitOwned(10*time.Second, all, ms...)
	leader := ms[0]
	require.True(t, leader.g.IsLeader())
	require.Eventually(t, func() bool { // the fourth member's join settled
		return leader.g.Stats().LeaderSeen == 4
	}, 10*time.Second, 10*time.Millisecond)

	for p, n := range watchersPerPath(t, srv, f.root) {
		require.LessOrEqual(t, n, 1, "%s has %d watchers", p, n)
	}
	before := make([]int64, len(ms))
	for i, m := range ms {
		before[i] = m.s.WatchEvents()
	}
	rounds := leader.g.Stats().LeaderRounds
	writes := leader.g.Stats().LeaderWrites
	// N > P: a fifth member changes nothing.
	m5 := f.join("extra")
	require.Eventually(t, func() bool { st := leader.g.Stats(); return st.LeaderRounds > rounds && st.LeaderSeen == 5 },
		10*time.Second, 5*time.Millisecond)
	require.Equal(t, writes, leader.g.Stats().LeaderWrites, "nothing to write")
	require.EqualValues(t, 1, leader.s.WatchEvents()-before[0], "the leader wakes once (members child watch)")
	for i, m := range ms[1:] {
		require.Zero(t, m.s.WatchEvents()-before[i+1], "%s was woken by a join that changed nothing", m.id)
	}
	require.Zero(t, m5.s.WatchEvents())
	require.Empty(t, m5.g.Owned())
	for p, n := range watchersPerPath(t, srv, f.root) {
		require.LessOrEqual(t, n, 1, "%s has %d watchers", p, n)
	}
	f.a.check()
}

func TestGroupStaticMemberRejoinsWithoutMovement(t *testing.T) {
	f := newGroupFixture(t, "orders")
	registerTopic(t, f.admin, f.paths, "orders", 6, 1)
	all := allPartitions("orders", 6, 1)
	static := func(inst string) func(*coordinator.GroupOptions) {
		return func(o *coordinator.GroupOptions) { o.InstanceID, o.StaticGrace = inst, 20*time.Second }
	}
	a := f.join("a", static("ia"))
	b := f.join("b-1", static("ib"))
	owners := f.waitOwned(10*time.Second, all, a, b)
	var bParts []coordinator.TopicPartition
	for tp, m := range owners {
		if m == "b-1" {
			bParts = append(bParts, tp)
		}
	}
	require.NoError(t, b.g.Close(gctx(t, 10*time.Second)))
	b2 := f.join("b-2", static("ib"))
	require.Eventually(t, func() bool { return len(b2.g.Owned()) == len(bParts) }, 10*time.Second, 10*time.Millisecond)
	require.ElementsMatch(t, bParts, b2.g.Owned())
	require.Zero(t, a.g.Stats().Revoked, "a was not disturbed")
	require.EqualValues(t, 3, a.g.Stats().Assigned, "a got nothing of b's while b was away")
	f.a.check()
}

func TestGroupLeaderFollowsTopicRegistrations(t *testing.T) {
	f := newGroupFixture(t, "orders", "audit")
	registerTopic(t, f.admin, f.paths, "orders", 2, 1)
	a, b := f.join("a"), f.join("b")
	f.waitOwned(10*time.Second, allPartitions("orders", 2, 1), a, b)
	registerTopic(t, f.admin, f.paths, "audit", 2, 1)  // a topic appears
	registerTopic(t, f.admin, f.paths, "orders", 4, 1) // partitions added (data change)
	registerTopic(t, f.admin, f.paths, "orders", 4, 2) // a broker joins
	all := append(allPartitions("orders", 4, 1, 2), allPartitions("audit", 2, 1)...)
	owners := f.waitOwned(10*time.Second, all, a, b)
	require.Equal(t, map[string]int{"a": 5, "b": 5}, countBy(owners))
	require.NoError(t, f.admin.Delete(gctx(t, 5*time.Second), f.paths.TopicSub("orders", 2), -1)) // a broker leaves
	f.waitOwned(10*time.Second, append(allPartitions("orders", 4, 1), allPartitions("audit", 2, 1)...), a, b)
}

func TestGroupOptionsValidation(t *testing.T) {
	f := newGroupFixture(t)
	_, err := coordinator.JoinGroup(context.Background(), f.admin, f.paths, coordinator.GroupOptions{Group: "a/b"})
	require.Error(t, err)
	require.False(t, errors.Is(err, coordinator.ErrMetaQConsumersPresent))
}
