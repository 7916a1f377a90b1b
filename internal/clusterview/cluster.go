package clusterview

import (
	"context"
	"fmt"
	"strconv"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ClusterReport is the output of `metaq cluster`.
type ClusterReport struct {
	ZooKeeper ZKStatus        `json:"zookeeper"`
	Topics    int             `json:"topics"`
	Brokers   []ClusterBroker `json:"brokers"`
	// Replication lists the replica sets (broker ids with slaves or an epoch).
	Replication []ReplicaSet `json:"replication,omitempty"`
}

// ZKStatus is the ZooKeeper session a report was read with.
type ZKStatus struct {
	Servers   []string `json:"servers"`
	Root      string   `json:"root"`
	State     string   `json:"state"`
	SessionID string   `json:"session_id"`
	Timeout   string   `json:"session_timeout"`
}

// ClusterBroker is one broker id of a ClusterReport.
type ClusterBroker struct {
	Broker
	Status string `json:"status"` // up, unreachable, not registered
	Topics int    `json:"topics"` // from the broker's stats; -1 when unknown
	Error  string `json:"error,omitempty"`
}

// ZKStatusOf describes session s to the ensemble servers under root p.Root.
func ZKStatusOf(s *zkrecipes.Session, servers []string, p coordinator.Paths) ZKStatus {
	return ZKStatus{Servers: servers, Root: p.Root, State: s.State().String(),
		SessionID: fmt.Sprintf("0x%x", s.ID()), Timeout: s.Timeout().String()}
}

// ReadCluster reads the brokers (with a `stats` of each), the topic count and
// the replica sets: the data of `metaq cluster`. servers is the ensemble the
// session was opened to, reported as is.
func ReadCluster(ctx context.Context, servers []string, s *zkrecipes.Session, p coordinator.Paths) (ClusterReport, error) {
	brokers, err := ListBrokers(ctx, s, p)
	if err != nil {
		return ClusterReport{}, err
	}
	topics, err := ListTopics(ctx, s, p)
	if err != nil {
		return ClusterReport{}, err
	}
	rep := BuildCluster(ZKStatusOf(s, servers, p), brokers, len(topics), CollectStats(ctx, brokers, ""))
	if rep.Replication, err = ReadReplication(ctx, s, p, brokers); err != nil {
		return ClusterReport{}, err
	}
	return rep, nil
}

// BuildCluster makes the report of brokers from their stats (CollectStats
// with item ""); Replication is left for the caller.
func BuildCluster(zk ZKStatus, brokers []Broker, topics int, stats map[int]BrokerStats) ClusterReport {
	rep := ClusterReport{ZooKeeper: zk, Topics: topics, Brokers: []ClusterBroker{}}
	for _, br := range brokers {
		cb := ClusterBroker{Broker: br, Status: "not registered", Topics: -1}
		if br.Registered {
			st := stats[br.ID]
			if st.Err != nil {
				cb.Status, cb.Error = "unreachable", st.Err.Error()
			} else {
				cb.Status = "up"
				if n, err := strconv.Atoi(st.Stats["topics"]); err == nil {
					cb.Topics = n
				}
			}
		}
		rep.Brokers = append(rep.Brokers, cb)
	}
	return rep
}
