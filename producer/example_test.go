package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/producer"
)

// A producer in direct mode, against a broker started in the same process.
func Example_direct() {
	dir, _ := os.MkdirTemp("", "metaq-example")
	defer os.RemoveAll(dir)
	b, err := broker.New(broker.Options{ListenAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer b.Shutdown(ctx)

	p, err := producer.New(producer.WithBroker(b.Addr(), 1))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	for _, s := range []string{"hello", "world"} {
		res, err := p.Send(ctx, producer.Message{Topic: "greetings", Payload: []byte(s)})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("partition %s offset %d\n", res.Partition, res.Offset)
	}
	// Output:
	// partition 0-0 offset 0
	// partition 0-0 offset 25
}

// Sending asynchronously to a cluster found in ZooKeeper.
func ExampleProducer_SendAsync() {
	p, err := producer.New(
		producer.WithZooKeeper([]string{"127.0.0.1:2181"}, "/meta"),
		producer.WithPartitioner(producer.ByKey()),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		msg := producer.Message{Topic: "orders", Key: []byte(fmt.Sprint("customer-", i%7)), Payload: []byte("...")}
		p.SendAsync(ctx, msg, func(res producer.Result, err error) {
			if err != nil {
				log.Printf("not sent (retriable: %v): %v", producer.IsRetriable(err), err)
			}
		})
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil { // flushes first
		log.Print(err)
	}
}
