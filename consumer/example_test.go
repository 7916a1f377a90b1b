package consumer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/consumer"
)

// The handler style: one handler per topic; messages of a partition in
// order, partitions in parallel; offsets committed every second and when
// partitions move or the consumer closes.
//
// A snippet, not run by go test (it has no Output comment): it needs
// ZooKeeper at 127.0.0.1:2181 and a broker serving the topic, as
// `scripts/cluster.sh start` provides. consumer_test.go runs the same calls
// against real servers.
func Example() {
	c, err := consumer.New("billing",
		consumer.WithZooKeeper([]string{"127.0.0.1:2181"}, "/meta"),
		consumer.WithConcurrency(8),
		consumer.WithRetry(5, 100*time.Millisecond),
		consumer.WithDeadLetter(func(ctx context.Context, m *consumer.Message, err error) error {
			fmt.Println("giving up on", m.Topic, m.Offset, err) // e.g. forward with a producer
			return nil
		}))
	if err != nil {
		panic(err)
	}
	_ = c.Subscribe("orders", func(ctx context.Context, m *consumer.Message) error {
		fmt.Printf("%s %d: %s\n", m.Topic, m.Offset, m.Payload)
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	<-ctx.Done()
	_ = c.Close(context.Background())
}

// The poll style with the range iterator and manual commits.
//
// A snippet, not run by go test (it has no Output comment): it needs
// ZooKeeper at 127.0.0.1:2181 and a broker serving the topic, as
// `scripts/cluster.sh start` provides. consumer_test.go runs the same calls
// against real servers.
func ExampleConsumer_Messages() {
	c, _ := consumer.New("audit",
		consumer.WithZooKeeper([]string{"127.0.0.1:2181"}, ""),
		consumer.WithTopics("orders"),
		consumer.WithManualCommit())
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		panic(err)
	}
	defer c.Close(ctx)
	n := 0
	for m, err := range c.Messages(ctx) {
		if err != nil {
			continue
		}
		n++
		if n%1000 == 0 {
			_ = c.Commit(ctx, m) // stores m.NextOffset for m's partition
		}
	}
}

// Poll returns batches; the messages of one call count as processed at the
// next call.
//
// A snippet, not run by go test (it has no Output comment): it needs
// ZooKeeper at 127.0.0.1:2181 and a broker serving the topic, as
// `scripts/cluster.sh start` provides. consumer_test.go runs the same calls
// against real servers.
func ExampleConsumer_Poll() {
	c, _ := consumer.New("audit", consumer.WithZooKeeper([]string{"127.0.0.1:2181"}, ""), consumer.WithTopics("orders"))
	ctx := context.Background()
	_ = c.Start(ctx)
	defer c.Close(ctx)
	for {
		msgs, err := c.Poll(ctx, 500)
		if err != nil {
			return
		}
		for _, m := range msgs {
			_ = m.Payload
		}
	}
}
