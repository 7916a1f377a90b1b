package compattest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
)

// configuredBroker starts a broker whose topics come from a server.ini text
// (through broker.OptionsFromConfig), on the env's ZooKeeper.
func (e *env) configuredBroker(id int, ini string) *broker.Broker {
	cfg, err := config.Parse([]byte(ini), "ini")
	require.NoError(e.t, err)
	fromCfg := broker.OptionsFromConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return e.startBroker(id, 1, func(o *broker.Options) {
		o.Topic, o.Topics, o.AcceptedTopics, o.ConfigRaw = fromCfg.Topic, fromCfg.Topics, fromCfg.AcceptedTopics, fromCfg.ConfigRaw
	})
}

// TestTopicCreatedByFirstSend mirrors MetaQ's producer defaultTopic
// (ProducerZooKeeper.selectDefaultPartition: a topic without partitions is
// sent to the brokers of the default topic) for brokers that accept a topic
// only through a wildcard section, or any topic with autoCreateTopics=true:
// with the topic registered nowhere, our producer (discovering through
// ZooKeeper) sends to it, the broker creates and registers it in MetaQ's
// layout, and a consumer subscribed before the first send gets the message by
// watch. (ZooKeeper is enabled by the test harness, not the config text.)
func TestTopicCreatedByFirstSend(t *testing.T) {
	for _, tc := range []struct {
		name, ini, topic, refused string
		accepts                   []coordinator.TopicPattern
		parts                     int
	}{
		{name: "wildcard section", topic: "orders-eu", refused: "invoices", parts: 2,
			ini:     "[system]\nbrokerId=1\nnumPartitions=1\n[zookeeper]\nzk.zkEnable=false\n[topic=orders*]\nnumPartitions=2\n",
			accepts: []coordinator.TopicPattern{{Pattern: "orders*", NumPartitions: 2, AcceptPublish: true}}},
		{name: "autoCreateTopics", topic: "invoices", parts: 3,
			ini: "[system]\nbrokerId=1\nnumPartitions=3\nautoCreateTopics=true\n[zookeeper]\nzk.zkEnable=false\n" +
				"[topic=audit]\nacceptPublish=false\n",
			accepts: []coordinator.TopicPattern{{Pattern: "audit", NumPartitions: 3}, {Pattern: "*", NumPartitions: 3, AcceptPublish: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testTopicCreatedByFirstSend(t, tc.ini, tc.topic, tc.refused, tc.parts, tc.accepts) })
	}
}

func testTopicCreatedByFirstSend(t *testing.T, ini, topic, refused string, parts int, wantAccepts []coordinator.TopicPattern) {
	e := newEnv(t)
	e.configuredBroker(1, ini)
	zc := e.rawZK()

	// What the broker publishes for producers, in our own subtree.
	data, _, err := zc.Get(e.paths.BrokerAccepts(1))
	require.NoError(t, err)
	var accepts struct {
		Topics []coordinator.TopicPattern `json:"topics"`
	}
	require.NoError(t, json.Unmarshal(data, &accepts))
	require.Equal(t, wantAccepts, accepts.Topics)
	ok, _, err := zc.Exists(e.paths.TopicPubDir(topic))
	require.NoError(t, err)
	require.False(t, ok, "%s is registered nowhere before the first send", topic)

	_, got := e.runConsumer("readers", topic)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := producer.New(ctx, producer.WithZooKeeper([]string{e.zk}, e.root))
	require.NoError(t, err)
	defer func() { _ = p.Close(context.Background()) }()
	res, err := p.Send(ctx, producer.Message{Topic: topic, Payload: []byte("first order")})
	require.NoError(t, err, "send to a topic registered nowhere yet")
	require.Equal(t, 1, res.Partition.BrokerID)

	// Registered by the broker in MetaQ's layout: a MetaQ client finds it now.
	for _, dir := range []string{e.paths.TopicPubDir(topic), e.paths.TopicSubDir(topic), e.paths.TopicLegacyDir(topic)} {
		eventually(t, 20*time.Second, dir+" registered", func() bool { return len(children(t, zc, dir)) == 1 })
	}
	data, _, err = zc.Get(e.paths.TopicPub(topic, 1))
	require.NoError(t, err)
	var info coordinator.PartitionInfo
	require.NoError(t, json.Unmarshal(data, &info))
	require.Equal(t, coordinator.PartitionInfo{NumParts: parts, Broker: "1-m"}, info)

	tp := consumer.TopicPartition{Topic: topic, BrokerID: res.Partition.BrokerID, Partition: res.Partition.Partition}
	eventually(t, 30*time.Second, "the subscribed consumer receives the first message", func() bool { return len(got.of(tp)) == 1 })
	require.Equal(t, "first order", got.of(tp)[0].payload)

	// A topic no section accepts still fails clearly, without a broker round trip.
	if refused != "" {
		_, err = p.Send(ctx, producer.Message{Topic: refused, Payload: []byte("x")})
		require.ErrorIs(t, err, producer.ErrNoPartitions, "topic %s", refused)
	}
}
