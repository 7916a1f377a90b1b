package coordinator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMatchTopicPattern(t *testing.T) {
	for _, c := range []struct {
		pattern, topic string
		want           bool
	}{
		{"orders", "orders", true}, {"orders", "orders-eu", false},
		{"orders*", "orders", true}, {"orders*", "orders-eu", true}, {"orders*", "order", false},
		{"*", "", true}, {"*", "anything", true},
		{"*-eu", "orders-eu", true}, {"*-eu", "orders-us", false},
		{"a*b*c", "abc", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "acb", false}, {"a*b*c", "abcb", false},
		{"a*a", "a", false}, {"a*a", "aa", true}, {"**", "x", true}, {"x*y*", "xyyy", true},
	} {
		require.Equal(t, c.want, coordinator.MatchTopicPattern(c.pattern, c.topic), "%q ~ %q", c.pattern, c.topic)
	}
}

// A view WithAcceptedTopics gives a topic nobody registered the partitions of
// the live brokers whose accepted-topics node takes it (first match rules),
// switches to the registration once there is one, and drops a broker that
// leaves; a view without the option never does.
func TestClusterViewAcceptedTopics(t *testing.T) {
	addr := zktest.Shared(t).Addr
	paths := coordinator.NewPaths(uniqueRoot(t))
	ctx := cvCtx(t)
	reg := func(id int, accepts ...coordinator.TopicPattern) *coordinator.Registrar {
		r := coordinator.NewRegistrar(connect(t, addr), paths, coordinator.BrokerInfo{ID: id,
			URI: "meta://127.0.0.1:900" + string(rune('0'+id)), AcceptedTopics: accepts}, nil)
		require.NoError(t, r.Start(ctx, nil))
		return r
	}
	r1 := reg(1, coordinator.TopicPattern{Pattern: "orders-internal", NumPartitions: 1},
		coordinator.TopicPattern{Pattern: "orders*", NumPartitions: 2, AcceptPublish: true})
	r2 := reg(2, coordinator.TopicPattern{Pattern: "*", NumPartitions: 1, AcceptPublish: true})
	defer func() { _ = r2.Close(ctx) }()

	v := coordinator.NewClusterView(connect(t, addr), paths, coordinator.WithAcceptedTopics())
	defer v.Close()
	waitParts(t, v, "orders-eu", "1-0@127.0.0.1:9001", "1-1@127.0.0.1:9001", "2-0@127.0.0.1:9002")
	waitParts(t, v, "orders-internal", "2-0@127.0.0.1:9002") // broker 1 refuses it for publishing
	waitParts(t, v, "invoices", "2-0@127.0.0.1:9002")

	plain := coordinator.NewClusterView(connect(t, addr), paths)
	defer plain.Close()
	waitParts(t, plain, "orders-eu")

	// The first put registers the topic on broker 1: the registration rules.
	require.NoError(t, r1.AddTopic(ctx, coordinator.TopicRegistration{Topic: "orders-eu", NumPartitions: 2, AcceptPublish: true, AcceptSubscribe: true}))
	waitParts(t, v, "orders-eu", "1-0@127.0.0.1:9001", "1-1@127.0.0.1:9001")
	// Broker 2 leaves: nothing takes invoices any more.
	require.NoError(t, r2.Close(ctx))
	waitParts(t, v, "invoices")
	require.NoError(t, r1.Close(ctx))
}
