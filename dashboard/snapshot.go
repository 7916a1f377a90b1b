package dashboard

import (
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
)

// Snapshot is everything the dashboard shows, as of one collection cycle.
// Pages render from the latest snapshot, so a slow or dead broker never
// delays a page; the JSON twins of the pages are parts of it.
type Snapshot struct {
	At       time.Time     `json:"at"`
	Interval time.Duration `json:"interval_ns"`
	// Stale is set when this cycle could not read ZooKeeper: the cluster
	// data is the last good cycle's (of StaleSince), ZooKeeper.Error says why.
	Stale      bool      `json:"stale"`
	StaleSince time.Time `json:"stale_since,omitzero"`
	// Problems are the sentences the banner shows: ZooKeeper or a broker down.
	Problems []string `json:"problems"`

	ZooKeeper   ZooKeeperView            `json:"zookeeper"`
	Brokers     []BrokerView             `json:"brokers"`
	Replication []clusterview.ReplicaSet `json:"replication"`
	Topics      []TopicView              `json:"topics"`
	Groups      []GroupView              `json:"groups"`
	Tx          []TxView                 `json:"transactions"`
	TxErrors    []string                 `json:"transaction_errors,omitempty"`
	Health      clusterview.HealthReport `json:"health"`
	offsets     map[int]map[string]map[int][2]int64
}

// ZooKeeperView is the ensemble as the dashboard's session sees it.
type ZooKeeperView struct {
	clusterview.ZKStatus
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// BrokerView is one broker id on the overview page.
type BrokerView struct {
	clusterview.BrokerRow
	Role       string    `json:"role"`       // master, or slave of a replica set
	DiskBytes  int64     `json:"disk_bytes"` // message bytes of every partition (stats topics)
	Partitions int       `json:"partitions"`
	Admin      string    `json:"admin,omitempty"` // admin endpoint host:port, when configured
	PutRate    float64   `json:"put_rate"`        // messages/s over the last interval
	Spark      []float64 `json:"put_rate_history"`
}

// TopicView is one topic on the topics page.
type TopicView struct {
	Topic         string      `json:"topic"`
	Brokers       []int       `json:"brokers"`
	PubPartitions int         `json:"pub_partitions"`
	SubPartitions int         `json:"sub_partitions"`
	PerBroker     map[int]int `json:"partitions_per_broker"`
	Messages      int64       `json:"messages"`
	Bytes         int64       `json:"bytes"`
	PutRate       float64     `json:"put_rate"`       // messages/s
	PutBytesRate  float64     `json:"put_bytes_rate"` // bytes/s
	ConsumeRate   float64     `json:"consume_rate"`   // committed bytes/s over every group
	PutHistory    []float64   `json:"put_rate_history"`
	ConsumeHist   []float64   `json:"consume_rate_history"`
	// Retention is the deletePolicy (and retentionBytes) of the brokers'
	// configuration files, "; "-joined when they differ.
	Retention string `json:"retention,omitempty"`
	Error     string `json:"error,omitempty"` // a serving broker did not answer
}

// GroupView is one consumer group on the groups page.
type GroupView struct {
	clusterview.GroupState
	Partitions []PartitionLagView `json:"partitions"`
	TotalLag   int64              `json:"total_lag"` // over partitions with a known lag
	LagKnown   bool               `json:"lag_known"` // every partition's lag is known
	Stalled    int                `json:"stalled"`   // partitions with a stalled consumer
	LagHistory []float64          `json:"lag_history"`
	Error      string             `json:"error,omitempty"`
}

// PartitionLagView is one partition of a group: the row of `metaq groups
// describe`, its lag trend and whether it is stalled (lag > 0 and the
// committed offset not moving for the stall time).
type PartitionLagView struct {
	clusterview.GroupPartition
	Stalled    bool      `json:"stalled"`
	LagHistory []float64 `json:"lag_history"`
}

// TxView is one prepared XA transaction with how long the dashboard has seen
// it (brokers do not report the prepare time: the age is a lower bound).
type TxView struct {
	clusterview.TxRow
	FirstSeen time.Time     `json:"first_seen"`
	Age       time.Duration `json:"age_ns"`
}

// Broker returns the broker view of id, if any.
func (s *Snapshot) Broker(id int) (BrokerView, bool) {
	for _, b := range s.Brokers {
		if b.ID == id {
			return b, true
		}
	}
	return BrokerView{}, false
}

// Group returns the view of a group, if any.
func (s *Snapshot) Group(name string) (GroupView, bool) {
	for _, g := range s.Groups {
		if g.Group == name {
			return g, true
		}
	}
	return GroupView{}, false
}

// UptimeDuration is the broker's uptime.
func (b BrokerView) UptimeDuration() time.Duration { return time.Duration(b.Uptime) * time.Second }
