package compattest_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// topicAccess is a topic's acceptPublish / acceptSubscribe.
type topicAccess struct{ pub, sub bool }

var accessTopics = map[string]topicAccess{
	"both": {true, true}, "pubonly": {true, false}, "subonly": {false, true}, "neither": {false, false},
}

// startZKBroker starts broker id on a fresh ZooKeeper root serving
// accessTopics (2 partitions each), all configured at start.
func startZKBroker(t *testing.T, id int, root string) *broker.Broker {
	t.Helper()
	zks := zktest.Shared(t)
	return brokertest.Start(t, brokertest.Options{BrokerID: id, ZK: zks.Addr, ZKRoot: root, Modify: func(o *broker.Options) {
		o.Topic = func(topic string) (broker.TopicConfig, bool) {
			a, ok := accessTopics[topic]
			return broker.TopicConfig{NumPartitions: 2, AcceptPublish: a.pub, AcceptSubscribe: a.sub}, ok
		}
		o.Topics = []string{"both", "pubonly", "subonly", "neither"}
	}})
}

// children lists a node's children, none when it does not exist.
func children(t *testing.T, c *zk.Conn, p string) []string {
	t.Helper()
	kids, _, err := c.Children(p)
	if err == zk.ErrNoNode {
		return nil
	}
	require.NoError(t, err, p)
	return kids
}

// masterAddr reads ids/<id>/master as MetaQ's clients do and returns host:port.
func masterAddr(t *testing.T, c *zk.Conn, root string, id int) string {
	t.Helper()
	data, _, err := c.Get(fmt.Sprintf("%s/brokers/ids/%d/master", root, id))
	require.NoError(t, err)
	u, err := url.Parse(string(data))
	require.NoError(t, err, "%q", data)
	require.Equal(t, "meta", u.Scheme)
	return u.Host
}

// TestAcceptPublishSubscribeRegistrationMatchesEnforcement mirrors
// BrokerZooKeeper.registerTopicInZkInternal against every reader of its
// nodes: ProducerZooKeeper (topics-pub), ConsumerZooKeeper (topics-sub), and
// MetaQ's Python and Ruby producers (the legacy topics/<topic>/<id>-m, also
// read by Java clients before 1.4.3 for both roles). A broker listed in a
// node must accept what that node's readers do; a broker that refuses must
// not be listed.
func TestAcceptPublishSubscribeRegistrationMatchesEnforcement(t *testing.T) {
	root := zkRoot(t)
	const id = 3
	b := startZKBroker(t, id, root)
	zc := zktest.Connect(t, []string{zktest.Shared(t).Addr}, 10*time.Second)
	c := dialMetaQ(t, b.Addr())
	me := strconv.Itoa(id) + "-m"
	for topic, a := range accessTopics {
		listed := func(dir string) bool {
			return slices.Contains(children(t, zc.Conn, root+"/brokers/"+dir+"/"+topic), me)
		}
		pubListed, subListed, legacyListed := listed("topics-pub"), listed("topics-sub"), listed("topics")
		putOK := c.legacyPut(topic, 1, []byte("x")).Code == protocol.CodeOK
		offReply := c.call(&protocol.OffsetRequest{Topic: topic, Group: "g", Partition: 1, Offset: 0, OpaqueID: c.nextOpaque()})
		subOK := offReply.Code == protocol.CodeOK
		require.Equal(t, a.pub, putOK, "%s: put accepted", topic)
		require.Equal(t, a.sub, subOK, "%s: offset accepted (%q)", topic, offReply.Body)
		require.Equal(t, putOK, pubListed, "%s: topics-pub lists the broker iff it accepts puts", topic)
		require.Equal(t, subOK, subListed, "%s: topics-sub lists the broker iff it accepts gets", topic)
		require.Equal(t, putOK && subOK, legacyListed, "%s: the legacy node lists the broker iff it accepts both", topic)
	}

	// The Python producer's path, end to end: legacy children, the master
	// URI, a legacy put on that connection.
	kids := children(t, zc.Conn, root+"/brokers/topics/both")
	require.Equal(t, []string{me}, kids)
	data, _, err := zc.Get(root + "/brokers/topics/both/" + me)
	require.NoError(t, err)
	require.Equal(t, "2", string(data), "partition count")
	py := dialMetaQ(t, masterAddr(t, zc.Conn, root, id))
	requireCode(t, protocol.CodeOK, py.legacyPut("both", 1, []byte("from python")))
}

// TestCleanShutdownRemovesTheBrokersNodes mirrors BrokerZooKeeper.close(true)
// (unregisterBrokerInZk + unregisterTopics): after a graceful stop no node
// names the broker — not ids/<id>/master, not the persistent ids/<id> that
// old clients read, not a topic node — so ProducerZooKeeper,
// ConsumerZooKeeper, the Python/Ruby producers and tools never see a dead
// broker. While it runs, the nodes are ephemeral exactly where MetaQ's are.
func TestCleanShutdownRemovesTheBrokersNodes(t *testing.T) {
	root := zkRoot(t)
	const id = 4
	b := startZKBroker(t, id, root)
	zc := zktest.Connect(t, []string{zktest.Shared(t).Addr}, 10*time.Second)
	session := b.ZKSession().ID()
	ids := root + "/brokers/ids"
	me := strconv.Itoa(id) + "-m"
	stat := func(p string) *zk.Stat {
		ok, st, err := zc.Exists(p)
		require.NoError(t, err, p)
		require.True(t, ok, p)
		return st
	}
	require.Zero(t, stat(fmt.Sprintf("%s/%d", ids, id)).EphemeralOwner, "ids/<id> is persistent, as MetaQ's (created as a parent)")
	require.Equal(t, session, stat(fmt.Sprintf("%s/%d/master", ids, id)).EphemeralOwner)
	require.Equal(t, session, stat(fmt.Sprintf("%s/%d/master_config_checksum", ids, id)).EphemeralOwner)
	var topicNodes []string
	for _, dir := range []string{"topics", "topics-pub", "topics-sub"} {
		for topic := range accessTopics {
			if p := root + "/brokers/" + dir + "/" + topic; slices.Contains(children(t, zc.Conn, p), me) {
				topicNodes = append(topicNodes, p+"/"+me)
				require.Equal(t, session, stat(p+"/"+me).EphemeralOwner, p)
			}
		}
	}
	require.Len(t, topicNodes, 5, "both: 3 nodes, pubonly: pub, subonly: sub")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Shutdown(ctx))
	require.NotContains(t, children(t, zc.Conn, ids), strconv.Itoa(id), "ids/<id> removed on clean shutdown")
	for _, p := range topicNodes {
		ok, _, err := zc.Exists(p)
		require.NoError(t, err)
		require.False(t, ok, "%s removed on clean shutdown", p)
	}
}
