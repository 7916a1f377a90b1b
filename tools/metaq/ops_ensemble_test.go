package main

import (
	"strings"
	"testing"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestComposeTopologyWithoutContainers runs what docker/compose.yaml
// describes — a 3-server ZooKeeper ensemble and 3 brokers connected to all of
// it — as processes, and checks that `metaq cluster` and the health check see
// every broker.
func TestComposeTopologyWithoutContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server ZooKeeper ensemble")
	}
	e := zktest.StartEnsembleT(t, 3, zktest.Options{})
	var brokers []*broker.Broker
	for id := 1; id <= 3; id++ {
		brokers = append(brokers, brokertest.Start(t, brokertest.Options{BrokerID: id, Partitions: 2,
			Modify: func(o *broker.Options) {
				o.Topics = []string{"orders"}
				o.ZK = broker.ZKOptions{Enable: true, Servers: e.Addrs(), Root: "/meta"}
			}}))
	}
	zk := []string{"--zk", e.ConnectString()}

	var rep clusterview.ClusterReport
	mustMetaqJSON(t, &rep, append([]string{"cluster"}, zk...)...)
	if len(rep.Brokers) != 3 || rep.Topics != 1 || rep.ZooKeeper.State != "connected" {
		t.Fatalf("cluster: %+v", rep)
	}
	for i, b := range brokers {
		if got := rep.Brokers[i]; got.ID != i+1 || got.URI != b.URI() || got.Status != "up" || got.Topics != 1 {
			t.Errorf("broker %d: %+v", i+1, got)
		}
	}
	out := mustMetaq(t, append([]string{"cluster"}, zk...)...)
	for _, b := range brokers {
		if !strings.Contains(out, b.URI()+"  up") {
			t.Errorf("cluster table does not list %s as up:\n%s", b.URI(), out)
		}
	}
	mustMetaq(t, append([]string{"healthcheck", "--expect", "3"}, zk...)...)
	var parts clusterview.TopicDescription
	mustMetaqJSON(t, &parts, append([]string{"topics", "describe", "orders"}, zk...)...)
	if len(parts.Partitions) != 6 {
		t.Errorf("orders: %d partitions over 3 brokers, want 6", len(parts.Partitions))
	}
}
