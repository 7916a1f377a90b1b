package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/internal/latencyhist"
	"github.com/metaq-go/metaq/producer"
)

// e2eHeader is the start of every e2e payload: the run id (messages of other
// runs are ignored) and the send time in Unix nanoseconds.
const e2eHeader = latencyhist.StampSize

type benchE2EFlags struct {
	topic      string
	group      string
	rate       int
	duration   time.Duration
	size       int
	drain      time.Duration
	json       bool
	histogram  bool
	linger     time.Duration
	cpuProfile string
}

func newBenchE2ECmd(g *globals) *cobra.Command {
	var f benchE2EFlags
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "end-to-end latency: a producer at a fixed --rate and a consumer in this process",
		Long: `bench e2e sends --rate messages per second of --size bytes to --topic for --duration, and
consumes them in the same process as a member of a group (default ` + benchE2EGroup + `, whose offsets are
first set to the log end so only this run's messages are read). Each payload carries its send time;
latency = receive time - send time (produce, broker fsync, fetch, delivery). Messages not received
within --drain after the last send count as failed. CPU µs/msg is the whole process's CPU time
(producer and consumer) per message received.`,
		Example: `  metaq bench e2e --zk 127.0.0.1:2181 --topic bench --rate 10000 --duration 30s --size 100
  metaq bench e2e --zk 127.0.0.1:2181 --topic bench --rate 1000 --duration 10s --json
  metaq bench e2e --zk 127.0.0.1:2181 --topic bench --rate 10000 --duration 30s --histogram`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" || f.rate <= 0 || f.rate > 10_000_000 || f.duration <= 0 || f.drain <= 0 {
				return usageError{errors.New("bench e2e: need --topic, --rate 1..10000000, --duration > 0, --drain > 0")}
			}
			if f.size < e2eHeader {
				return usageError{fmt.Errorf("bench e2e: --size %d: at least %d (the payload carries a run id and the send time)", f.size, e2eHeader)}
			}
			if len(g.zkServers()) == 0 {
				return usageError{errors.New("bench e2e: need --zk host:port")}
			}
			asJSON := f.json || g.output() == "json"
			var hist latencyHist
			r, err := benchE2E(cmd.Context(), g, f, &hist, cmd.ErrOrStderr(), asJSON)
			if err != nil {
				return err
			}
			const title = "End-to-end latency (receive - send):"
			if !f.histogram {
				return printBenchWithHistogram(cmd.OutOrStdout(), r, &hist, asJSON, title)
			}
			d := hist.Distribution(latencyhist.FineBounds)
			r.Histogram = &d
			if err := printBench(cmd.OutOrStdout(), r, asJSON); err != nil || asJSON {
				return err
			}
			return printDistribution(cmd.OutOrStdout(), title, &d)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic (required)")
	fl.StringVar(&f.group, "group", benchE2EGroup, "consumer group (its offsets of --topic are set to the end first)")
	fl.IntVar(&f.rate, "rate", 1000, "messages per second")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to send")
	fl.IntVar(&f.size, "size", 100, fmt.Sprintf("payload bytes per message (at least %d)", e2eHeader))
	fl.DurationVar(&f.drain, "drain", 10*time.Second, "after the last send, wait this long for the rest")
	fl.BoolVar(&f.json, "json", false, "print one JSON object (same as -o json)")
	fl.BoolVar(&f.histogram, "histogram", false, "print the full latency distribution: percentiles 50..99.99 and the maximum, and buckets 4 per power of two (in --json: \"histogram\")")
	fl.DurationVar(&f.linger, "linger", producer.DefaultLinger, "producer linger (0: every message written at once)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
	return cmd
}

// e2eReceiver counts and times the run's messages.
type e2eReceiver struct {
	run      uint64
	hist     *latencyHist
	received atomic.Int64
	bytes    atomic.Int64
	last     atomic.Int64 // Unix nanos of the last receipt
}

func (rc *e2eReceiver) take(msgs []*consumer.Message) {
	now := time.Now().UnixNano()
	for _, m := range msgs {
		sent, ok := latencyhist.ReadStamp(m.Payload, rc.run)
		if !ok {
			continue // another run's (or anybody's) message
		}
		if sent == 0 {
			continue // the warm-up message
		}
		rc.hist.add(time.Duration(now - sent))
		rc.bytes.Add(int64(len(m.Payload)))
		rc.received.Add(1)
	}
	rc.last.Store(now)
}

func benchE2E(ctx context.Context, g *globals, f benchE2EFlags, hist *latencyHist, errOut io.Writer, quiet bool) (benchResult, error) {
	r := benchResult{Workload: "e2e", Size: f.size, Connections: 1}
	nparts, err := prepareBenchGroup(ctx, g, f.group, f.topic, benchToLatest)
	if err != nil {
		return r, fmt.Errorf("bench e2e: set group %s to the end of %s: %w", f.group, f.topic, err)
	}
	var runID [8]byte
	_, _ = rand.Read(runID[:])
	rc := &e2eReceiver{run: binary.BigEndian.Uint64(runID[:]), hist: hist}

	c, err := startBenchConsumer(ctx, g, f.group, f.topic, nparts, errOut, consumer.WithStart(consumer.StartLatest))
	if err != nil {
		return r, fmt.Errorf("bench e2e: %w", err)
	}
	defer closeWithin(g, c.Close)
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	var recvWG sync.WaitGroup
	recvWG.Add(1)
	go func() {
		defer recvWG.Done()
		for {
			msgs, err := c.Poll(recvCtx, 4096)
			if err != nil {
				return // stopped, or closed
			}
			rc.take(msgs)
		}
	}()
	defer func() { stopRecv(); recvWG.Wait() }()

	p, err := newProducer(ctx, g, append(g.producerZK(), producer.WithLogger(clientLogger(g, errOut)), producer.WithLinger(f.linger))...)
	if err != nil {
		return r, err
	}
	defer closeWithin(g, p.Close)
	wctx, cancel := context.WithTimeout(ctx, g.timeout())
	_, err = p.Send(wctx, producer.Message{Topic: f.topic, Payload: latencyhist.Stamped(rc.run, 0, f.size)})
	cancel()
	if err != nil {
		return r, fmt.Errorf("bench e2e: warm-up send: %w", err)
	}

	total := int64(f.rate) * int64(f.duration) / int64(time.Second)
	prog := startBenchProgress(errOut, "e2e", total, quiet, func() (int64, string) {
		return rc.received.Load(), ""
	})
	defer prog.stop()
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return r, err
	}
	clock, err := startBenchClock()
	if err != nil {
		return r, err
	}
	start := time.Unix(0, time.Now().UnixNano()) // wall clock, like the payload's send time
	sent, failed := e2eSend(ctx, p, f, rc.run, total)
	waitReceived(ctx, rc, sent-failed, f.drain)
	stopProfile()
	prog.stop()
	r.Messages = rc.received.Load()
	r.Failed = sent - r.Messages
	r.Bytes = rc.bytes.Load()
	if err := clock.finish(&r); err != nil {
		return r, err
	}
	// Throughput over the time the messages took to arrive (not the drain wait).
	if last := time.Unix(0, rc.last.Load()); r.Messages > 0 && last.After(start) {
		r.Seconds = last.Sub(start).Seconds()
		r.MsgsPerS = float64(r.Messages) / r.Seconds
		r.MBPerS = float64(r.Bytes) / 1e6 / r.Seconds
	}
	hist.fill(&r)
	if r.Failed > 0 {
		g.logger().Warn("bench e2e: some messages were not received", "sent", sent, "send_failed", failed, "lost_or_late", r.Failed-failed)
	}
	return r, ctx.Err()
}

// startBenchConsumer creates a consumer of topic in group (auto-commit, with
// opts), starts it and waits until it fetches all nparts partitions, so no
// message waits for the group to form. The caller closes it.
func startBenchConsumer(ctx context.Context, g *globals, group, topic string, nparts int, errOut io.Writer,
	opts ...consumer.Option) (*consumer.Consumer, error) {
	opts = append(append(g.consumerZK(), consumer.WithTopics(topic),
		consumer.WithAutoCommit(consumer.DefaultAutoCommitInterval), consumer.WithLogger(clientLogger(g, errOut))), opts...)
	c, err := newConsumer(g, group, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		closeWithin(g, c.Close)
		return nil, fmt.Errorf("join group: %w", err)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for len(c.Assigned()) < nparts {
		select {
		case <-ctx.Done():
			closeWithin(g, c.Close)
			return nil, fmt.Errorf("the consumer got %d of %d partitions within --timeout %s (other members in the group?)",
				len(c.Assigned()), nparts, g.timeout())
		case <-t.C:
		}
	}
	return c, nil
}

// e2eSend sends total messages at f.rate, paced against the start time (a
// late tick sends what is due at once, so the average rate holds), then
// flushes. It returns how many were sent and how many failed.
func e2eSend(ctx context.Context, p *producer.Producer, f benchE2EFlags, run uint64, total int64) (sent, failed int64) {
	var nFailed atomic.Int64
	cb := func(_ producer.Result, err error) {
		if err != nil {
			nFailed.Add(1)
		}
	}
	start := time.Now()
	interval := time.Second / time.Duration(f.rate)
	tick := max(interval, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for sent < total && ctx.Err() == nil {
		due := min(total, int64(time.Since(start)/interval)+1)
		for ; sent < due; sent++ {
			p.SendAsync(ctx, producer.Message{Topic: f.topic, Payload: latencyhist.Stamped(run, time.Now().UnixNano(), f.size)}, cb)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	_ = p.Flush(fctx)
	return sent, nFailed.Load()
}

// waitReceived waits until want messages arrived, or drain passed without one.
func waitReceived(ctx context.Context, rc *e2eReceiver, want int64, drain time.Duration) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(drain)
	for rc.received.Load() < want && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
