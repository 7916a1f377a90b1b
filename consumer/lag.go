package consumer

import (
	"context"
	"math"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
)

// logEnd asks the partition's broker for its end offset (`offset` with
// MaxInt64).
func (c *Consumer) logEnd(ctx context.Context, tp TopicPartition) (int64, error) {
	bc, err := c.brokers.get(ctx, tp.BrokerID)
	if err != nil {
		return -1, err
	}
	return bc.c.Offset(ctx, &protocol.OffsetRequest{Topic: tp.Topic, Group: c.group,
		Partition: int32(tp.Partition), Offset: math.MaxInt64})
}

func (c *Consumer) lag(ctx context.Context) ([]PartitionLag, error) {
	if c.offsets != nil {
		return c.broadcastLag(ctx)
	}
	rows, err := coordinator.GroupLag(ctx, c.sess, c.paths, c.group, func(ctx context.Context, tp coordinator.TopicPartition) (int64, error) {
		return c.logEnd(ctx, TopicPartition{Topic: tp.Topic, BrokerID: tp.BrokerID, Partition: tp.Partition.Partition})
	})
	if err != nil {
		return nil, err
	}
	out := make([]PartitionLag, 0, len(rows))
	for _, r := range rows {
		l := PartitionLag{Topic: r.Topic, BrokerID: r.BrokerID, Partition: r.Partition.Partition,
			Committed: -1, LogEnd: r.LogEnd, Lag: r.Lag, Owner: r.Owner}
		if r.HasOffset {
			l.Committed = r.Committed.Offset
		}
		out = append(out, l)
	}
	return out, nil
}

func (c *Consumer) broadcastLag(ctx context.Context) ([]PartitionLag, error) {
	var out []PartitionLag
	for _, tp := range c.Assigned() {
		l := PartitionLag{Topic: tp.Topic, BrokerID: tp.BrokerID, Partition: tp.Partition, Committed: -1, LogEnd: -1, Lag: -1}
		o, found, err := c.offsets.load(tp)
		if err != nil {
			return nil, err
		}
		if found {
			l.Committed = o.Offset
		}
		if end, err := c.logEnd(ctx, tp); err == nil {
			l.LogEnd = end
			l.Lag = max(0, end-max(l.Committed, 0))
		}
		out = append(out, l)
	}
	return out, nil
}
