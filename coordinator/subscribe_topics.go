package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// partitionsFromBroker parses one topics-sub/<topic>/<brokerId>-m node (JSON
// {"numParts":N,"broker":"<id>-m"}); slaves ("-s<n>") contribute nothing.
func partitionsFromBroker(name string, data []byte) ([]Partition, error) {
	id, master, err := ParseBrokerNodeName(name)
	if err != nil || !master {
		return nil, err
	}
	var pi PartitionInfo
	if err := json.Unmarshal(data, &pi); err != nil {
		return nil, fmt.Errorf("coordinator: topics-sub node %s: %w", name, err)
	}
	out := make([]Partition, 0, pi.NumParts)
	for p := 0; p < pi.NumParts; p++ {
		out = append(out, Partition{BrokerID: id, Partition: p})
	}
	return out, nil
}

// SubscribablePartitions lists the partitions of topic that brokers accept
// subscriptions for (brokers/topics-sub/<topic>), sorted by broker id then
// partition. A topic nobody registered has none.
func SubscribablePartitions(ctx context.Context, s *zkrecipes.Session, paths Paths, topic string) ([]Partition, error) {
	if err := protocol.ValidTopic(topic); err != nil {
		return nil, fmt.Errorf("coordinator: subscribable partitions: %w", err)
	}
	dir := paths.TopicSubDir(topic)
	kids, _, err := s.Children(ctx, dir)
	if err != nil {
		return nil, ignoreNoNode(err)
	}
	var out []Partition
	for _, k := range kids {
		data, _, err := s.Get(ctx, dir+"/"+k)
		if err != nil {
			if ignoreNoNode(err) == nil {
				continue
			}
			return nil, err
		}
		ps, err := partitionsFromBroker(k, data)
		if err != nil {
			continue // a malformed registration must not stop the group
		}
		out = append(out, ps...)
	}
	slices.SortFunc(out, Partition.Compare)
	return out, nil
}
