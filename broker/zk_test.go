package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// zkRoot returns a ZooKeeper root of its own for a test.
func zkRoot(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/brokertest/%s-%d", name, time.Now().UnixNano())
}

// zkNode is one expected node of PROTOCOL.md §10.
type zkNode struct {
	path      string
	data      string // exact data, or JSON when json is set
	json      bool
	ephemeral bool
}

// layout is the registration of broker id with the given topics (name →
// partitions; a negative count means acceptSubscribe=false).
func layout(root string, id int, uri string, checksum uint32, topics map[string]int) (present []zkNode, absent []string) {
	ids := fmt.Sprintf("%s/brokers/ids/%d", root, id)
	present = []zkNode{
		{path: ids, data: uri},
		{path: ids + "/master", data: uri, ephemeral: true},
		{path: ids + "/master_config_checksum", data: strconv.FormatUint(uint64(checksum), 10), ephemeral: true},
	}
	for t, n := range topics {
		sub := n > 0
		n = max(n, -n)
		js := fmt.Sprintf(`{"numParts":%d,"broker":"%d-m"}`, n, id)
		present = append(present,
			zkNode{path: fmt.Sprintf("%s/brokers/topics-pub/%s/%d-m", root, t, id), data: js, json: true, ephemeral: true})
		subPath := fmt.Sprintf("%s/brokers/topics-sub/%s/%d-m", root, t, id)
		legacy := fmt.Sprintf("%s/brokers/topics/%s/%d-m", root, t, id)
		if sub { // the legacy node only for topics accepting publish and subscribe
			present = append(present, zkNode{path: subPath, data: js, json: true, ephemeral: true},
				zkNode{path: legacy, data: strconv.Itoa(n), ephemeral: true})
		} else {
			absent = append(absent, subPath, legacy)
		}
	}
	return present, absent
}

// checkLayout returns nil when every node is as expected and owned by session.
func checkLayout(zc *zk.Conn, session int64, present []zkNode, absent []string) error {
	for _, n := range present {
		data, st, err := zc.Get(n.path)
		if err != nil {
			return fmt.Errorf("%s: %w", n.path, err)
		}
		if n.json {
			var got, want map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				return fmt.Errorf("%s: data %q is not JSON: %w", n.path, data, err)
			}
			_ = json.Unmarshal([]byte(n.data), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("%s: data %s, want %s", n.path, data, n.data)
			}
		} else if string(data) != n.data {
			return fmt.Errorf("%s: data %q, want %q", n.path, data, n.data)
		}
		switch {
		case n.ephemeral && st.EphemeralOwner != session:
			return fmt.Errorf("%s: ephemeral owner 0x%x, want the broker's session 0x%x", n.path, st.EphemeralOwner, session)
		case !n.ephemeral && st.EphemeralOwner != 0:
			return fmt.Errorf("%s: must be persistent, is ephemeral of 0x%x", n.path, st.EphemeralOwner)
		}
	}
	for _, p := range absent {
		if ok, _, err := zc.Exists(p); err != nil || ok {
			return fmt.Errorf("%s: must not exist (exists %v, err %v)", p, ok, err)
		}
	}
	return nil
}

func TestZooKeeperRegistrationLifecycle(t *testing.T) {
	zks := zktest.Shared(t)
	root := zkRoot(t)
	const id = 7
	cfgRaw := []byte("[system]\nbrokerId=7\nnumPartitions=3\n\n[zookeeper]\nzk.zkConnect=" + zks.Addr + "\n")
	topics := map[string]int{"alpha": 3, "beta": -2, "gamma": 1} // beta: no subscribe; gamma: auto-created
	b := brokertest.Start(t, brokertest.Options{BrokerID: id, ZK: zks.Addr, ZKRoot: root, Modify: func(o *broker.Options) {
		o.Topic = func(topic string) (broker.TopicConfig, bool) {
			n, ok := topics[topic]
			return broker.TopicConfig{NumPartitions: max(n, -n), AcceptPublish: true, AcceptSubscribe: n > 0}, ok
		}
		o.Topics = []string{"alpha", "beta"}
		o.ConfigRaw = cfgRaw
	}})
	uri := fmt.Sprintf("meta://127.0.0.1:%d", b.Port())
	require.Equal(t, uri, b.URI())
	zc := zktest.Connect(t, []string{zks.Addr}, 10*time.Second)
	sum := crc32.ChecksumIEEE(cfgRaw)

	// Configured topics are registered by the time Start returns.
	present, absent := layout(root, id, uri, sum, map[string]int{"alpha": 3, "beta": -2})
	absent = append(absent, root+"/brokers/topics/gamma/7-m")
	require.NoError(t, checkLayout(zc.Conn, b.ZKSession().ID(), present, absent))

	// The first put to an accepted topic creates and registers it.
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("gamma", 0, "new topic", 1))
	expectReply(t, c, 200, 1)
	present, absent = layout(root, id, uri, sum, topics)
	require.Eventually(t, func() bool { return checkLayout(zc.Conn, b.ZKSession().ID(), present, absent) == nil },
		5*time.Second, 10*time.Millisecond, "auto-created topic registered")

	// Session expiry: everything is back, owned by the new session, within 2 s of it.
	sub := b.ZKSession().Subscribe()
	defer sub.Close()
	old := b.ZKSession().ID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, zktest.ExpireSession(ctx, zks.Addr, zktest.Credentials{SessionID: old, Password: b.ZKSession().Password()}))
	var newSession time.Time
	for newSession.IsZero() {
		select {
		case ev := <-sub.C:
			if ev.State == zkrecipes.StateConnected && ev.NewSession {
				newSession = ev.Time
			}
		case <-ctx.Done():
			t.Fatal("no new ZooKeeper session within 20s of the expiry")
		}
	}
	var lastErr error
	require.Eventually(t, func() bool {
		id := b.ZKSession().ID()
		lastErr = checkLayout(zc.Conn, id, present, absent)
		return id != old && lastErr == nil
	}, 2*time.Second, 10*time.Millisecond, "re-registered within 2s of the new session: %v", lastErr)
	t.Logf("re-registered %v after the new session", time.Since(newSession).Round(time.Millisecond))
	// The broker still serves.
	c.Send(t, putLine("alpha", 2, "after expiry", 2))
	expectReply(t, c, 200, 2)

	// Shutdown deletes the broker's nodes at once, the persistent id node too.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	require.NoError(t, b.Shutdown(sctx))
	for _, n := range present {
		ok, _, err := zc.Exists(n.path)
		require.NoError(t, err)
		require.False(t, ok, "%s must be gone right after Shutdown", n.path)
	}
}

// A second live broker with the same id (another URI) is refused with a
// clear error rather than taking over the first one's nodes.
func TestZooKeeperDuplicateBrokerIDIsRefused(t *testing.T) {
	zks := zktest.Shared(t)
	root := zkRoot(t)
	opts := brokertest.Options{BrokerID: 3, ZK: zks.Addr, ZKRoot: root}
	first := brokertest.Start(t, opts)
	second, err := brokertest.New(t, opts)
	require.NoError(t, err)
	err = second.Start(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "brokerId")
	_ = second.Shutdown(context.Background())

	zc := zktest.Connect(t, []string{zks.Addr}, 10*time.Second)
	data, st, err := zc.Get(root + "/brokers/ids/3/master")
	require.NoError(t, err)
	require.Equal(t, first.URI(), string(data), "the first broker keeps its registration")
	require.Equal(t, first.ZKSession().ID(), st.EphemeralOwner)
}

func TestZooKeeperUnreachableFailsStartNamingTheAddress(t *testing.T) {
	port, err := zktest.FreePort()
	require.NoError(t, err)
	dead := fmt.Sprintf("127.0.0.1:%d", port)
	b, err := brokertest.New(t, brokertest.Options{ZK: dead, ZKRoot: "/dead", Modify: func(o *broker.Options) {
		o.ZK.ConnectTimeout = 1500 * time.Millisecond
	}})
	require.NoError(t, err)
	start := time.Now()
	err = b.Start(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), dead)
	require.Less(t, time.Since(start), 10*time.Second)
	t.Logf("start error: %v", err)
	require.NoError(t, errors.Join(b.Shutdown(context.Background())))
}
