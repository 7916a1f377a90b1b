// Command consumer is a small example of the metaq Go consumer: it joins a
// consumer group, prints every message of a topic and, on Ctrl-C, closes
// cleanly (finishes in-flight handlers, commits, leaves the group).
//
//	go run ./examples/consumer --zk 127.0.0.1:2181 --topic demo --group demo-group
//	go run ./examples/consumer --zk 127.0.0.1:2181 --topic demo --poll          # poll style
//	go run ./examples/consumer --zk 127.0.0.1:2181 --topic demo --broadcast /tmp/offsets
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/metaq-go/metaq/consumer"
)

func main() {
	zk := flag.String("zk", "127.0.0.1:2181", "ZooKeeper servers, host:port[,host:port]")
	root := flag.String("root", "/meta", "ZooKeeper root")
	topic := flag.String("topic", "demo", "topic")
	group := flag.String("group", "demo-group", "consumer group")
	latest := flag.Bool("latest", false, "without a committed offset, start at the end instead of the beginning")
	poll := flag.Bool("poll", false, "use the poll style (range over Messages) instead of a handler")
	broadcast := flag.String("broadcast", "", "broadcast mode: consume every partition, offsets in this directory")
	flag.Parse()

	opts := []consumer.Option{
		consumer.WithZooKeeper(strings.Split(*zk, ","), *root),
		consumer.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))),
		consumer.WithRebalanceListener(consumer.RebalanceListener{
			Assigned: func(_ context.Context, tps []consumer.TopicPartition) { log.Printf("assigned %v", tps) },
			Revoked:  func(_ context.Context, tps []consumer.TopicPartition) { log.Printf("revoked %v", tps) },
		}),
	}
	if *latest {
		opts = append(opts, consumer.WithStart(consumer.StartLatest))
	}
	if *broadcast != "" {
		opts = append(opts, consumer.WithBroadcast(*broadcast))
	}
	if *poll {
		opts = append(opts, consumer.WithTopics(*topic))
	}
	c, err := consumer.New(*group, opts...)
	if err != nil {
		log.Fatal(err)
	}
	print := func(m *consumer.Message) {
		fmt.Printf("%s/%d-%d@%d id=%d %q\n", m.Topic, m.BrokerID, m.Partition, m.Offset, m.ID, m.Payload)
	}
	if !*poll {
		if err := c.Subscribe(*topic, func(_ context.Context, m *consumer.Message) error {
			print(m)
			return nil
		}); err != nil {
			log.Fatal(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if *poll {
		for m, err := range c.Messages(ctx) {
			if err != nil {
				log.Print(err)
				continue
			}
			print(m)
		}
	} else {
		<-ctx.Done()
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	st := c.Stats()
	log.Printf("delivered %d messages, %d commits, %d errors", st.Delivered, st.Commits, st.Errors)
}
