package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestClusterShowsReplicaSetsAndPromoteChecksTheInSyncSet: a real broker is
// the registered master of broker id 9, member 0 of epoch 3 with slave 1 in
// sync and slave 2 not. `metaq cluster` shows every member with its role and
// in-sync flag (stats columns "-" when the master reports none); `cluster
// promote` refuses a member outside the in-sync set, answers "done" for the
// current master, and writes the request for an in-sync slave.
func TestClusterShowsReplicaSetsAndPromoteChecksTheInSyncSet(t *testing.T) {
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	b := opsStartBroker(t, 9, zkAddr, root, 1, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{zkAddr})
	require.NoError(t, err)
	defer s.Close()
	paths := coordinator.NewPaths(root)
	rs := coordinator.NewReplicaSet(s, paths, 9, nil)
	term, err := rs.Bootstrap(ctx, 0, b.URI())
	require.NoError(t, err)
	require.NoError(t, rs.WriteISR(ctx, term, []int{0, 1}))
	for m, uri := range map[int]string{1: "meta://127.0.0.1:1", 2: "meta://127.0.0.1:2"} {
		r := coordinator.NewSlaveRegistrar(s, paths, coordinator.BrokerInfo{ID: 9, URI: uri}, m, nil)
		require.NoError(t, r.Start(ctx, nil))
		defer r.Close(context.Background())
	}
	zk := []string{"--zk", zkAddr, "--zk-root", root}

	var rep clusterview.ClusterReport
	mustMetaqJSON(t, &rep, append([]string{"cluster"}, zk...)...)
	require.Len(t, rep.Replication, 1)
	set := rep.Replication[0]
	require.Equal(t, 9, set.BrokerID)
	require.Equal(t, int64(1), set.Epoch)
	require.Equal(t, []int{0, 1}, set.InSync)
	require.Equal(t, []clusterview.ReplicaMember{
		{Member: 0, URI: b.URI(), Role: "master", InSync: true},
		{Member: 1, URI: "meta://127.0.0.1:1", Role: "follower", InSync: true},
		{Member: 2, URI: "meta://127.0.0.1:2", Role: "follower"},
	}, set.Members)
	out := mustMetaq(t, append([]string{"cluster"}, zk...)...)
	require.Contains(t, out, "Replication:")
	require.Regexp(t, `9\s+1\s+follower\s+meta://127.0.0.1:1\s+1\s+-\s+yes\s+-\s+-\s+-`, out)

	r := runMetaq(t, append([]string{"cluster", "promote", "9", "2"}, zk...)...)
	require.Error(t, r.err)
	require.Contains(t, r.err.Error(), "not in the in-sync set")
	var res clusterview.PromoteResult
	mustMetaqJSON(t, &res, append([]string{"cluster", "promote", "9", "0"}, zk...)...)
	require.Equal(t, clusterview.PromoteResult{BrokerID: 9, Member: 0, Epoch: 1, Status: "done"}, res)
	out = mustMetaq(t, append([]string{"cluster", "promote", "9", "1", "--wait", "0"}, zk...)...)
	require.True(t, strings.Contains(out, "requested"), out)
	pr, ok, _, err := rs.PromotionW(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, coordinator.Promotion{Member: 1, State: coordinator.PromotionRequested, Version: pr.Version}, pr)
}

// TestClusterPromoteSwitchesARealReplicaSet: a master and a sync slave
// (real brokers running the failover driver); `metaq cluster` shows the
// slave in sync with its lag from the master's stats; `metaq cluster
// promote` makes the slave master with every acknowledged message, and the
// old master follows it.
func TestClusterPromoteSwitchesARealReplicaSet(t *testing.T) {
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	start := func(member int) *broker.Broker {
		return brokertest.Start(t, brokertest.Options{BrokerID: 5, ZK: zkAddr, ZKRoot: root, Partitions: 1,
			Modify: func(o *broker.Options) {
				o.Topics = []string{"orders"}
				o.Replication = broker.ReplicationOptions{MemberID: member, Failover: true, FollowerMaxWait: 100 * time.Millisecond}
			}})
	}
	b0 := start(0)
	zk := []string{"--zk", zkAddr, "--zk-root", root}
	readSet := func() clusterview.ReplicaSet {
		var rep clusterview.ClusterReport
		mustMetaqJSON(t, &rep, append([]string{"cluster"}, zk...)...)
		if len(rep.Replication) != 1 {
			return clusterview.ReplicaSet{}
		}
		return rep.Replication[0]
	}
	opsEventually(t, "member 0 leads", func() bool {
		s := readSet()
		return len(s.Members) == 1 && s.Members[0].Role == "master" && s.Members[0].Member == 0
	})
	b1 := start(1)
	opsEventually(t, "slave 1 is in sync and reported by the master", func() bool {
		s := readSet()
		return len(s.Members) == 2 && s.Members[1].Member == 1 && s.Members[1].InSync && s.Members[1].Mode == "sync" && s.Members[1].LagBytes != nil
	})
	opsPut(t, b0.Addr(), "orders", 0, 5, "acked")
	end := func(b *broker.Broker) int64 {
		p, err := b.Store().Partition("orders", 0, false)
		if err != nil {
			return -1
		}
		return p.End()
	}
	acked := end(b0)
	require.Positive(t, acked)

	var res clusterview.PromoteResult
	mustMetaqJSON(t, &res, append([]string{"cluster", "promote", "5", "1"}, zk...)...)
	require.Equal(t, clusterview.PromoteResult{BrokerID: 5, Member: 1, Epoch: 2, Status: "done"}, res)
	require.GreaterOrEqual(t, end(b1), acked, "the new master has every acknowledged message")
	opsEventually(t, "the old master follows the new one", func() bool {
		s := readSet()
		return s.Epoch == 2 && len(s.Members) == 2 && s.Members[0].Role == "master" && s.Members[0].Member == 1 &&
			s.Members[1].Member == 0 && s.Members[1].Role == "follower" && s.Members[1].InSync
	})
	opsPut(t, b1.Addr(), "orders", 0, 1, "after")
}
