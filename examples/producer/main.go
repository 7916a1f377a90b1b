// Command producer is a small example of the metaq Go producer: it sends n
// messages asynchronously, then prints what happened.
//
//	go run ./examples/producer --zk 127.0.0.1:2181 --topic demo -n 1000
//	go run ./examples/producer --broker 127.0.0.1:8123 --partitions 1 --topic demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/producer"
)

func main() {
	zk := flag.String("zk", "", "ZooKeeper servers, host:port[,host:port]")
	root := flag.String("root", "/meta", "ZooKeeper root")
	brokerAddr := flag.String("broker", "", "broker host:port (direct mode, instead of --zk)")
	parts := flag.Int("partitions", 1, "partitions of the broker in direct mode")
	topic := flag.String("topic", "demo", "topic")
	n := flag.Int("n", 1000, "messages to send")
	flag.Parse()

	opts := []producer.Option{producer.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))}
	if *brokerAddr != "" {
		opts = append(opts, producer.WithBroker(*brokerAddr, *parts))
	} else {
		opts = append(opts, producer.WithZooKeeper(strings.Split(*zk, ","), *root))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	newCtx, cancelNew := context.WithTimeout(ctx, 30*time.Second) // bounds finding the cluster
	p, err := producer.New(newCtx, opts...)
	cancelNew()
	if err != nil {
		log.Fatal(err)
	}

	var failed atomic.Int64
	start := time.Now()
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		msg := producer.Message{Topic: *topic, Payload: fmt.Appendf(nil, "message %d", i)}
		p.SendAsync(ctx, msg, func(res producer.Result, err error) {
			if err != nil {
				failed.Add(1)
				log.Printf("send failed (retriable %v): %v", producer.IsRetriable(err), err)
			}
		})
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		log.Print(err)
	}
	st := p.Stats()
	fmt.Printf("sent %d, failed %d in %v (p50 %v, p99 %v)\n", st.Sent, failed.Load(),
		time.Since(start).Round(time.Millisecond), st.LatencyP50, st.LatencyP99)
}
