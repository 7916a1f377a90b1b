package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// A producer in direct mode, against a broker started in the same process.
func Example_direct() {
	b, stopBroker := startExampleBroker(nil, "")
	defer stopBroker()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := producer.New(ctx, producer.WithBroker(b.Addr(), 1))
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

// Sending asynchronously to a cluster found in ZooKeeper. The example
// starts its own broker, registered in the tests' ZooKeeper; a program
// passes its cluster's servers and root instead.
func ExampleProducer_SendAsync() {
	zkServers, root := []string{zktest.SharedAddr()}, fmt.Sprintf("/example-%d", time.Now().UnixNano())
	_, stopBroker := startExampleBroker(zkServers, root, "orders")
	defer stopBroker()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := producer.New(ctx, // ctx bounds connecting to ZooKeeper
		producer.WithZooKeeper(zkServers, root),
		producer.WithPartitioner(producer.ByKey()),
	)
	if err != nil {
		log.Fatal(err)
	}
	var acked atomic.Int64
	for i := 0; i < 100; i++ {
		msg := producer.Message{Topic: "orders", Key: []byte(fmt.Sprint("customer-", i%7)), Payload: []byte("...")}
		p.SendAsync(ctx, msg, func(res producer.Result, err error) {
			if err != nil {
				log.Printf("not sent (retriable: %v): %v", producer.IsRetriable(err), err)
				return
			}
			acked.Add(1)
		})
	}
	if err := p.Close(ctx); err != nil { // flushes first
		log.Print(err)
	}
	fmt.Println("acknowledged:", acked.Load())
	// Output: acknowledged: 100
}

// startExampleBroker starts a broker on 127.0.0.1 serving every topic
// (registering topics in ZooKeeper under root, with zkServers) and returns it
// with how to stop it.
func startExampleBroker(zkServers []string, root string, topics ...string) (b *broker.Broker, stop func()) {
	dir, err := os.MkdirTemp("", "metaq-example")
	if err != nil {
		log.Fatal(err)
	}
	b, err = broker.New(broker.Options{ListenAddr: "127.0.0.1:0", DataDir: dir, Topics: topics,
		ZK: broker.ZKOptions{Enable: len(zkServers) > 0, Servers: zkServers, Root: root}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		log.Fatal(err)
	}
	return b, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
		_ = os.RemoveAll(dir)
	}
}
