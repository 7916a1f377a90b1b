package broker

import (
	"context"
	"sync"
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
	if !known && b.reg.Load() != nil {
		if cfg, ok := b.opts.Topic(topic); ok {
			reg := coordinator.TopicRegistration{Topic: topic, NumPartitions: cfg.NumPartitions,
				AcceptPublish: cfg.AcceptPublish, AcceptSubscribe: cfg.AcceptSubscribe}
			b.bg.run(func(ctx context.Context) { b.registerTopic(ctx, reg) })
		}
	}
	return p, nil
}

// registerTopic announces an auto-created topic in ZooKeeper. It runs in
// the background and gives up when the broker shuts down.
func (b *Broker) registerTopic(ctx context.Context, reg coordinator.TopicRegistration) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if h := registerTopicHook; h != nil {
		h(ctx)
	}
	r := b.reg.Load()
	if r == nil {
		return // not master (any more): the next Lead registers every topic
	}
	if err := r.AddTopic(ctx, reg); err != nil {
		b.log.Warn("registering auto-created topic in ZooKeeper failed; it is retried after the next session change", "topic", reg.Topic, "err", err)
	} else {
		b.log.Info("auto-created topic registered", "topic", reg.Topic, "partitions", reg.NumPartitions)
	}
}

// registerTopicHook, when set (only by tests), runs in registerTopic
// before ZooKeeper is asked.
var registerTopicHook func(ctx context.Context)

// background owns goroutines that outlive the request that started them:
// they get a context cancelled when Shutdown begins, and Shutdown waits for
// them.
type background struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex // guards stopped, so no run starts after stop's Wait
	stopped bool
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// run starts f unless the group stopped.
func (g *background) run(f func(ctx context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.ctx)
	}()
}

// stop cancels the goroutines' context and waits for them. Idempotent.
func (g *background) stop() {
	g.cancel()
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.wg.Wait()
}
