package broker

import (
	"context"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/coordinator"
)

// partition returns an open partition, creating it (and, for a topic this
// broker has not announced yet, registering the topic in ZooKeeper in the
// background) when it is new.
func (b *Broker) partition(topic string, part int) (*store.Partition, error) {
	if p, err := b.store.Partition(topic, part, false); err == nil {
		return p, nil
	}
	known := len(b.partitionsOf(topic)) > 0
	p, err := b.store.Partition(topic, part, true)
	if err != nil {
		return nil, err
	}
	b.stats.addTopic(topic)
	if !known && b.reg != nil {
		if cfg, ok := b.opts.Topic(topic); ok {
			reg := coordinator.TopicRegistration{Topic: topic, NumPartitions: cfg.NumPartitions,
				AcceptPublish: cfg.AcceptPublish, AcceptSubscribe: cfg.AcceptSubscribe}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := b.reg.AddTopic(ctx, reg); err != nil {
					b.log.Warn("registering auto-created topic in ZooKeeper failed; it is retried after the next session change", "topic", topic, "err", err)
				} else {
					b.log.Info("auto-created topic registered", "topic", topic, "partitions", cfg.NumPartitions)
				}
			}()
		}
	}
	return p, nil
}
