package coordinator_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func cvCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cvPut(t *testing.T, s *zkrecipes.Session, p, data string, mode zkrecipes.CreateMode) {
	t.Helper()
	_, err := s.CreateParents(cvCtx(t), p, []byte(data), mode)
	require.NoError(t, err, p)
}

// waitParts waits (on Changed, no sleeps) until the view's partitions of
// topic equal want.
func waitParts(t *testing.T, v coordinator.Topology, topic string, want ...string) []coordinator.BrokerPartition {
	t.Helper()
	ctx := cvCtx(t)
	for {
		ch := v.Changed()
		tp, err := v.Partitions(ctx, topic)
		require.NoError(t, err)
		var got []string
		for _, p := range tp.Partitions {
			got = append(got, p.String()+"@"+p.Addr)
		}
		if equalStrings(got, want) {
			return tp.Partitions
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("partitions of %s: got %v, want %v", topic, got, want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClusterViewLegacyFallbackThenTopicsPub(t *testing.T) {
	addr := zktest.Shared(t).Addr
	s := connect(t, addr)
	paths := coordinator.NewPaths(uniqueRoot(t))
	cvPut(t, s, paths.BrokerMaster(2), "meta://127.0.0.1:9002", zkrecipes.Ephemeral)
	cvPut(t, s, paths.BrokerMaster(1), "meta://127.0.0.1:9001", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicLegacy("orders", 2), "3", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicLegacy("orders", 1), "2", zkrecipes.Ephemeral)

	v := coordinator.NewClusterView(connect(t, addr), paths)
	defer v.Close()
	waitParts(t, v, "orders",
		"1-0@127.0.0.1:9001", "1-1@127.0.0.1:9001",
		"2-0@127.0.0.1:9002", "2-1@127.0.0.1:9002", "2-2@127.0.0.1:9002")

	// Once topics-pub/<topic> exists it is authoritative.
	cvPut(t, s, paths.TopicPub("orders", 1), `{"broker":"1-m","numParts":1}`, zkrecipes.Ephemeral)
	waitParts(t, v, "orders", "1-0@127.0.0.1:9001")
	require.Equal(t, map[int]string{1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}, v.Brokers())
}

func TestClusterViewSortsByNumericBrokerIDAndFollowsChanges(t *testing.T) {
	addr := zktest.Shared(t).Addr
	s := connect(t, addr)
	paths := coordinator.NewPaths(uniqueRoot(t))
	for _, id := range []int{10, 9} {
		cvPut(t, s, paths.BrokerMaster(id), "meta://h"+itoa(id)+":81"+itoa(id), zkrecipes.Ephemeral)
		cvPut(t, s, paths.TopicPub("t", id), `{"numParts":2,"broker":"`+itoa(id)+`-m"}`, zkrecipes.Ephemeral)
	}
	vs := connect(t, addr)
	v := coordinator.NewClusterView(vs, paths)
	waitParts(t, v, "t", "9-0@h9:819", "9-1@h9:819", "10-0@h10:8110", "10-1@h10:8110")

	// A broker registered later is picked up.
	cvPut(t, s, paths.BrokerMaster(2), "meta://h2", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicPub("t", 2), `{"numParts":1,"broker":"2-m"}`, zkrecipes.Ephemeral)
	waitParts(t, v, "t", "2-0@h2:8123", "9-0@h9:819", "9-1@h9:819", "10-0@h10:8110", "10-1@h10:8110")

	// A master that moves is followed (data watch).
	_, err := s.Set(cvCtx(t), paths.BrokerMaster(9), []byte("meta://moved:1"), -1)
	require.NoError(t, err)
	waitParts(t, v, "t", "2-0@h2:8123", "9-0@moved:1", "9-1@moved:1", "10-0@h10:8110", "10-1@h10:8110")

	// A master that disappears takes its partitions with it, even while its
	// topic registration lingers.
	require.NoError(t, s.Delete(cvCtx(t), paths.BrokerMaster(10), -1))
	waitParts(t, v, "t", "2-0@h2:8123", "9-0@moved:1", "9-1@moved:1")
	require.NoError(t, s.Delete(cvCtx(t), paths.TopicPub("t", 9), -1))
	waitParts(t, v, "t", "2-0@h2:8123")

	snap := v.Snapshot()
	require.Equal(t, map[int]string{2: "h2:8123", 9: "moved:1"}, snap.Brokers)
	require.Len(t, snap.Topics["t"], 1)

	require.NoError(t, v.Close())
	eventuallyNoViewGoroutines(t)
	_, err = v.Partitions(cvCtx(t), "t")
	require.ErrorIs(t, err, coordinator.ErrViewClosed)
}

func TestClusterViewUnknownTopicIsEmptyUntilRegistered(t *testing.T) {
	addr := zktest.Shared(t).Addr
	s := connect(t, addr)
	paths := coordinator.NewPaths(uniqueRoot(t))
	v := coordinator.NewClusterView(connect(t, addr), paths)
	defer v.Close()
	waitParts(t, v, "nothing")
	cvPut(t, s, paths.BrokerMaster(4), "meta://127.0.0.1:1", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicPub("nothing", 4), `{"numParts":1,"broker":"4-m"}`, zkrecipes.Ephemeral)
	waitParts(t, v, "nothing", "4-0@127.0.0.1:1")
}

func TestStaticView(t *testing.T) {
	v, err := coordinator.NewStaticView("meta://127.0.0.1:7000", 3, 2)
	require.NoError(t, err)
	waitParts(t, v, "any", "3-0@127.0.0.1:7000", "3-1@127.0.0.1:7000")
	require.Equal(t, map[int]string{3: "127.0.0.1:7000"}, v.Brokers())
	_, err = coordinator.NewStaticView("127.0.0.1:7000", 0, 0)
	require.Error(t, err)
}

func TestParseBrokerURI(t *testing.T) {
	for in, want := range map[string]string{
		"meta://a:1": "a:1", "a:2": "a:2", "meta://b": "b:8123", "meta://[::1]:5": "[::1]:5",
	} {
		got, err := coordinator.ParseBrokerURI(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := coordinator.ParseBrokerURI("meta://")
	require.Error(t, err)
}

func itoa(i int) string { return strconv.Itoa(i) }

// eventuallyNoViewGoroutines waits until no goroutine of a ClusterView is
// left. It looks at the view's own goroutines rather than counting all of
// them: other tests' ZooKeeper sessions may still be shutting down.
func eventuallyNoViewGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !strings.Contains(string(buf), "coordinator.(*ClusterView)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClusterView goroutines still running after Close:\n%s", buf)
		}
		time.Sleep(time.Millisecond) // polling interval of an eventually check
	}
}

func TestClusterViewRecoversAfterSessionExpiry(t *testing.T) {
	addr := zktest.Shared(t).Addr
	s := connect(t, addr)
	paths := coordinator.NewPaths(uniqueRoot(t))
	cvPut(t, s, paths.BrokerMaster(1), "meta://a:1", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicPub("t", 1), `{"numParts":1,"broker":"1-m"}`, zkrecipes.Ephemeral)
	vs := connect(t, addr)
	v := coordinator.NewClusterView(vs, paths)
	defer v.Close()
	waitParts(t, v, "t", "1-0@a:1")

	old := vs.ID()
	require.NoError(t, zktest.ExpireSession(cvCtx(t), addr, zktest.Credentials{SessionID: old, Password: vs.Password()}))
	// Changes made while the view's session is gone are seen after it
	// comes back with a new session (watches are set again).
	cvPut(t, s, paths.BrokerMaster(2), "meta://b:2", zkrecipes.Ephemeral)
	cvPut(t, s, paths.TopicPub("t", 2), `{"numParts":1,"broker":"2-m"}`, zkrecipes.Ephemeral)
	waitParts(t, v, "t", "1-0@a:1", "2-0@b:2")
	require.NotEqual(t, old, vs.ID())
}
