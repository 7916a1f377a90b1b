package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/producer"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "measure throughput, latency and client CPU against a running cluster",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchProduceCmd(g))
	cmd.AddCommand(newBenchConsumeCmd(g))
	cmd.AddCommand(newBenchE2ECmd(g))
	return cmd
}

type benchProduceFlags struct {
	topic       string
	broker      string
	partitions  int
	spread      int
	admin       string
	messages    int
	size        int
	connections int
	maxInFlight int
	linger      time.Duration
	json        bool
	cpuProfile  string
}

func newBenchProduceCmd(g *globals) *cobra.Command {
	var f benchProduceFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "send --messages messages of --size bytes as fast as the cluster acknowledges them",
		Example: `  metaq bench produce --zk 127.0.0.1:2181 --topic bench --messages 1000000 --size 100 --json
  metaq bench produce --broker 127.0.0.1:8123 --partitions 4 --topic bench --connections 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" || f.messages <= 0 || f.size < 0 || f.connections <= 0 {
				return usageError{errorf("bench produce: need --topic, --messages > 0, --size >= 0, --connections > 0")}
			}
			r, err := benchProduce(cmd.Context(), g, f)
			if err != nil {
				return err
			}
			return printBench(cmd.OutOrStdout(), r, f.json || g.output() == "json")
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to send to (required)")
	fl.StringVar(&f.broker, "broker", "", "broker host:port: direct mode, without ZooKeeper")
	fl.IntVar(&f.partitions, "partitions", 1, "partitions of the broker in direct mode")
	fl.IntVar(&f.spread, "partitions-spread", 0, "spread messages round-robin over this many partitions of the topic (direct mode: the broker serves them; the topic's numPartitions must allow them); 0 = every partition")
	fl.StringVar(&f.admin, "admin", "", "the broker's admin address (host:port of adminPort / --admin): report its CPU per message from /metrics")
	fl.IntVar(&f.messages, "messages", 100000, "messages to send")
	fl.IntVar(&f.size, "size", 100, "payload bytes per message")
	fl.IntVar(&f.connections, "connections", 1, "independent producers (one connection per broker each), sending in parallel")
	fl.IntVar(&f.maxInFlight, "max-in-flight", producer.DefaultMaxInFlight, "messages in flight per producer")
	fl.DurationVar(&f.linger, "linger", producer.DefaultLinger, "producer linger")
	fl.BoolVar(&f.json, "json", false, "print one JSON object (same as -o json)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
	return cmd
}

func benchProduce(ctx context.Context, g *globals, f benchProduceFlags) (benchResult, error) {
	var hist latencyHist
	var failed atomic.Int64
	opts := []producer.Option{producer.WithMaxInFlight(f.maxInFlight), producer.WithLinger(f.linger),
		producer.WithHooks(producer.Hooks{OnAck: func(_ *producer.Message, _ producer.Result, d time.Duration) { hist.add(d) }})}
	if f.broker != "" {
		opts = append(opts, producer.WithBroker(f.broker, f.partitions))
	} else {
		if len(g.zkServers()) == 0 {
			return benchResult{}, usageError{errorf("bench produce: need --zk (or --broker)")}
		}
		opts = append(opts, g.producerZK()...)
	}
	opts = append(opts, spreadOptions(f)...)
	ps := make([]*producer.Producer, f.connections)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, p := range ps {
			if p != nil {
				_ = p.Close(cctx)
			}
		}
	}()
	payload := make([]byte, f.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for i := range ps {
		p, err := newProducer(ctx, g, opts...)
		if err != nil {
			return benchResult{}, err
		}
		ps[i] = p
		// Warm up: discovery and connections are not part of the measure.
		wctx, cancel := context.WithTimeout(ctx, g.timeout())
		_, err = p.Send(wctx, producer.Message{Topic: f.topic, Payload: payload})
		cancel()
		if err != nil {
			return benchResult{}, fmt.Errorf("bench produce: warm-up send: %w", err)
		}
	}
	var firstErr atomic.Value
	cb := func(_ producer.Result, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	}
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return benchResult{}, err
	}
	server, err := startServerCPU(ctx, f.admin)
	if err != nil {
		return benchResult{}, err
	}
	clock, err := startBenchClock()
	if err != nil {
		return benchResult{}, err
	}
	var wg sync.WaitGroup
	for i, p := range ps {
		n := f.messages / f.connections
		if i < f.messages%f.connections {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < n; k++ {
				p.SendAsync(ctx, producer.Message{Topic: f.topic, Payload: payload}, cb)
			}
			_ = p.Flush(ctx)
		}()
	}
	wg.Wait()
	stopProfile()
	r := benchResult{Workload: "produce", Size: f.size, Connections: f.connections, Failed: failed.Load()}
	r.Messages = int64(f.messages) - r.Failed
	r.Bytes = r.Messages * int64(f.size)
	if err := clock.finish(&r); err != nil {
		return r, err
	}
	if err := server.finish(ctx, &r); err != nil {
		return r, err
	}
	hist.fill(&r)
	if e, ok := firstErr.Load().(error); ok {
		g.logger().Warn("bench produce: some messages failed", "failed", r.Failed, "first", e)
	}
	return r, ctx.Err()
}
