package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func topicsFixture() []coordinator.TopicRegistration {
	return []coordinator.TopicRegistration{
		{Topic: "orders", NumPartitions: 4, AcceptPublish: true, AcceptSubscribe: true},
		{Topic: "audit", NumPartitions: 2, AcceptPublish: false, AcceptSubscribe: true},
	}
}

// checkLayout reads every node of PROTOCOL.md §10 with a plain go-zookeeper
// client and compares it with what the broker must have written.
func checkLayout(t *testing.T, raw *zktest.Client, root string, sessionID int64) {
	t.Helper()
	get := func(p string) ([]byte, *zk.Stat) {
		data, st, err := raw.Get(p)
		require.NoError(t, err, p)
		return data, st
	}
	data, st := get(root + "/brokers/ids/7")
	require.Equal(t, "meta://127.0.0.1:8123", string(data))
	require.Zero(t, st.EphemeralOwner, "ids/<id> is persistent")
	data, st = get(root + "/brokers/ids/7/master")
	require.Equal(t, "meta://127.0.0.1:8123", string(data))
	require.Equal(t, sessionID, st.EphemeralOwner)
	data, st = get(root + "/brokers/ids/7/master_config_checksum")
	require.Equal(t, "3735928559", string(data))
	require.Equal(t, sessionID, st.EphemeralOwner)

	data, st = get(root + "/brokers/topics/orders/7-m")
	require.Equal(t, "4", string(data))
	require.Equal(t, sessionID, st.EphemeralOwner)
	ok, _, err := raw.Exists(root + "/brokers/topics/audit/7-m")
	require.NoError(t, err)
	require.False(t, ok, "the legacy node is read by producers too: only for topics accepting both")

	var pi coordinator.PartitionInfo
	data, st = get(root + "/brokers/topics-pub/orders/7-m")
	require.NoError(t, json.Unmarshal(data, &pi))
	require.Equal(t, coordinator.PartitionInfo{NumParts: 4, Broker: "7-m"}, pi)
	require.Equal(t, sessionID, st.EphemeralOwner)
	data, _ = get(root + "/brokers/topics-sub/orders/7-m")
	require.NoError(t, json.Unmarshal(data, &pi))
	require.Equal(t, coordinator.PartitionInfo{NumParts: 4, Broker: "7-m"}, pi)

	ok, _, err = raw.Exists(root + "/brokers/topics-pub/audit/7-m")
	require.NoError(t, err)
	require.False(t, ok, "acceptPublish=false must not register topics-pub")
	data, _ = get(root + "/brokers/topics-sub/audit/7-m")
	require.NoError(t, json.Unmarshal(data, &pi))
	require.Equal(t, 2, pi.NumParts)
}

func newRegistrar(t *testing.T, s *zkrecipes.Session, root string, uri string) *coordinator.Registrar {
	t.Helper()
	return coordinator.NewRegistrar(s, coordinator.NewPaths(root), coordinator.BrokerInfo{ID: 7, URI: uri, ConfigChecksum: 0xdeadbeef}, nil)
}

func TestRegistrarWritesProtocolLayoutNodeByNode(t *testing.T) {
	srv := zktest.Shared(t)
	root := uniqueRoot(t)
	s := connect(t, srv.Addr)
	r := newRegistrar(t, s, root, "meta://127.0.0.1:8123")
	ctx := context.Background()
	require.NoError(t, r.Start(ctx, topicsFixture()))
	raw := zktest.Connect(t, []string{srv.Addr}, 4*time.Second)
	checkLayout(t, raw, root, s.ID())

	require.NoError(t, r.Close(ctx))
	for _, p := range []string{"/brokers/ids/7/master", "/brokers/ids/7/master_config_checksum",
		"/brokers/topics/orders/7-m", "/brokers/topics-pub/orders/7-m", "/brokers/topics-sub/orders/7-m"} {
		ok, _, err := raw.Exists(root + p)
		require.NoError(t, err)
		require.False(t, ok, "deregistered on Close: %s", p)
	}
	ok, _, err := raw.Exists(root + "/brokers/ids/7")
	require.NoError(t, err)
	require.False(t, ok, "the persistent compat node is removed too (BrokerZooKeeper.unregisterBrokerInZk)")
}

func TestRegistrarReRegistersAfterSessionExpiry(t *testing.T) {
	srv := zktest.Shared(t)
	root := uniqueRoot(t)
	s := connect(t, srv.Addr)
	r := newRegistrar(t, s, root, "meta://127.0.0.1:8123")
	require.NoError(t, r.Start(context.Background(), topicsFixture()))
	defer r.Close(context.Background())
	old := s.ID()
	sub := s.Subscribe()
	defer sub.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, zktest.ExpireSession(ctx, srv.Addr, zktest.Credentials{SessionID: old, Password: s.Password()}))

	// Wait for the new session, then the nodes must be back within 2 s.
	var connectedAt time.Time
	for connectedAt.IsZero() {
		select {
		case ev := <-sub.C:
			if ev.State == zkrecipes.StateConnected && ev.NewSession {
				connectedAt = ev.Time
			}
		case <-ctx.Done():
			t.Fatal("no new session after expiry")
		}
	}
	raw := zktest.Connect(t, []string{srv.Addr}, 4*time.Second)
	require.Eventually(t, func() bool {
		_, st, err := raw.Get(root + "/brokers/topics-sub/audit/7-m")
		return err == nil && st.EphemeralOwner == s.ID()
	}, 2*time.Second, 10*time.Millisecond, "re-registration within 2s of reconnecting")
	require.NotEqual(t, old, s.ID())
	checkLayout(t, raw, root, s.ID())
	t.Logf("re-registered %v after the new session", time.Since(connectedAt))
}

func TestRegistrarReplacesNodesOfAnEarlierSessionOfTheSameBroker(t *testing.T) {
	srv := zktest.Shared(t)
	root := uniqueRoot(t)
	// A crashed incarnation: its session is still alive on the server.
	crashed := connect(t, srv.Addr)
	require.NoError(t, newRegistrar(t, crashed, root, "meta://127.0.0.1:8123").Start(context.Background(), topicsFixture()))

	s := connect(t, srv.Addr)
	r := newRegistrar(t, s, root, "meta://127.0.0.1:8123")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.Start(ctx, topicsFixture()), "no node-exists loop")
	raw := zktest.Connect(t, []string{srv.Addr}, 4*time.Second)
	checkLayout(t, raw, root, s.ID())
}

func TestRegistrarRefusesABrokerIDHeldByAnotherLiveBroker(t *testing.T) {
	srv := zktest.Shared(t)
	root := uniqueRoot(t)
	other := connect(t, srv.Addr)
	require.NoError(t, newRegistrar(t, other, root, "meta://10.0.0.9:8123").Start(context.Background(), nil))
	s := connect(t, srv.Addr)
	err := newRegistrar(t, s, root, "meta://127.0.0.1:8123").Start(context.Background(), topicsFixture())
	require.Error(t, err)
	require.True(t, errors.Is(err, coordinator.ErrBrokerIDTaken), "%v", err)
	require.Contains(t, err.Error(), "meta://10.0.0.9:8123")
}
