package clusterview

import (
	"context"
	"fmt"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// PartitionRow is one partition in `metaq topics describe`.
type PartitionRow struct {
	Partition string `json:"partition"` // <brokerId>-<n>, MetaQ's name
	BrokerID  int    `json:"broker_id"`
	Index     int    `json:"index"`
	Broker    string `json:"broker"` // master URI
	Pub       bool   `json:"pub"`
	Sub       bool   `json:"sub"`
	MinOffset *int64 `json:"min_offset"` // nil when the broker did not answer
	MaxOffset *int64 `json:"max_offset"`
	Error     string `json:"error,omitempty"`
}

// TopicDescription is the output of `metaq topics describe`.
type TopicDescription struct {
	Topic      string         `json:"topic"`
	Partitions []PartitionRow `json:"partitions"`
}

// DescribeTopic reads a topic's partitions from ZooKeeper and their min/max
// offsets from each serving broker's `stats offsets`.
func DescribeTopic(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, topic string) (TopicDescription, error) {
	pub, err := ReadTopicRegs(ctx, s, p.TopicsPub()+"/"+topic)
	if err != nil {
		return TopicDescription{}, err
	}
	sub, err := ReadTopicRegs(ctx, s, p.TopicSubDir(topic))
	if err != nil {
		return TopicDescription{}, err
	}
	if len(pub) == 0 && len(sub) == 0 {
		return TopicDescription{}, fmt.Errorf("topic %q is not registered by any broker under %s or %s: check the name with `metaq topics list`",
			topic, p.TopicsPub(), p.TopicsSub())
	}
	t := TopicReg{Topic: topic, Pub: pub, Sub: sub}
	brokers, err := ListBrokers(ctx, s, p)
	if err != nil {
		return TopicDescription{}, err
	}
	var serving []Broker
	uri := map[int]string{}
	for _, br := range brokers {
		if _, ok := pub[br.ID]; ok {
			serving = append(serving, br)
		} else if _, ok := sub[br.ID]; ok {
			serving = append(serving, br)
		}
		uri[br.ID] = br.URI
	}
	offsets := collectOffsets(ctx, serving, topic)
	d := TopicDescription{Topic: topic}
	for _, id := range t.BrokerIDs() {
		n := max(pub[id], sub[id])
		for i := 0; i < n; i++ {
			r := PartitionRow{Partition: coordinator.PartitionName(id, i), BrokerID: id, Index: i, Broker: uri[id],
				Pub: i < pub[id], Sub: i < sub[id]}
			o := offsets[id]
			switch {
			case o.err != nil:
				r.Error = o.err.Error()
			case o.parts[i] != nil:
				r.MinOffset, r.MaxOffset = &o.parts[i][0], &o.parts[i][1]
			default:
				r.Error = "not in the broker's stats offsets"
			}
			d.Partitions = append(d.Partitions, r)
		}
	}
	return d, nil
}

type brokerOffsets struct {
	parts map[int]*[2]int64 // partition → min, max
	err   error
}

// collectOffsets asks each broker for `stats offsets` and keeps topic's lines.
func collectOffsets(ctx context.Context, brokers []Broker, topic string) map[int]brokerOffsets {
	raw := CollectLines(ctx, brokers, "offsets")
	out := map[int]brokerOffsets{}
	for id, r := range raw {
		bo := brokerOffsets{parts: map[int]*[2]int64{}, err: r.Err}
		for part, r := range ParseOffsets(r.Lines)[topic] {
			bo.parts[part] = &r
		}
		out[id] = bo
	}
	for _, br := range brokers {
		if _, ok := out[br.ID]; !ok {
			out[br.ID] = brokerOffsets{err: fmt.Errorf("broker %d is not registered (no master node): offsets unknown", br.ID)}
		}
	}
	return out
}

// ParseOffsets reads the lines of a broker's `stats offsets`: topic →
// partition → {min offset, max offset}.
func ParseOffsets(lines []protocol.StatsLine) map[string]map[int][2]int64 {
	out := map[string]map[int][2]int64{}
	for _, l := range lines {
		obj, ok := StatsValue(l.Value).(map[string]any)
		if !ok {
			continue
		}
		part, ok1 := obj["part"].(int64)
		lo, ok2 := obj["min_offset"].(int64)
		hi, ok3 := obj["max_offset"].(int64)
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		if out[l.Key] == nil {
			out[l.Key] = map[int][2]int64{}
		}
		out[l.Key][int(part)] = [2]int64{lo, hi}
	}
	return out
}
