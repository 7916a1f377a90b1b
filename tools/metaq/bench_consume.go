package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Default groups of the benchmarks. Their offsets are set before every run
// (consume: to the earliest, e2e: to the end), so runs repeat.
const (
	benchConsumeGroup = "metaq-bench-consume"
	benchE2EGroup     = "metaq-bench-e2e"
)

type benchConsumeFlags struct {
	topic      string
	group      string
	messages   int
	idle       time.Duration
	fetchBytes int
	json       bool
	cpuProfile string
}

func newBenchConsumeCmd(g *globals) *cobra.Command {
	var f benchConsumeFlags
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "read a backlog of --messages messages as one group member, as fast as it goes",
		Long: `bench consume reads --messages messages of --topic (produce a backlog first with
` + "`metaq bench produce`" + `) with one consumer (poll style). Without --group it uses the group
` + benchConsumeGroup + ` and first sets its offsets to the earliest, so every run reads the same backlog;
with --group it starts where that group's offsets are (a new group: at the earliest). Measured from
the moment the consumer owns every partition (when it starts fetching; joining the group is not
measured) to the last message; when the backlog runs out (no message for --idle) it stops early. Latency = how long each Poll call waited for its
batch. CPU µs/msg is this process's user+system time per message.`,
		Example: `  metaq bench produce --zk 127.0.0.1:2181 --topic bench --messages 1000000 --size 100
  metaq bench consume --zk 127.0.0.1:2181 --topic bench --messages 1000000 --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" || f.messages <= 0 || f.idle <= 0 {
				return usageError{errors.New("bench consume: need --topic, --messages > 0, --idle > 0")}
			}
			if len(g.zkServers()) == 0 {
				return usageError{errors.New("bench consume: need --zk host:port")}
			}
			asJSON := f.json || g.output() == "json"
			var hist latencyHist
			r, err := benchConsume(cmd.Context(), g, f, &hist, cmd.ErrOrStderr(), asJSON)
			if err != nil {
				return err
			}
			return printBenchWithHistogram(cmd.OutOrStdout(), r, &hist, asJSON, "Poll wait (time to get a batch):")
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to read (required)")
	fl.StringVar(&f.group, "group", "", "consumer group (default "+benchConsumeGroup+", reset to the earliest first)")
	fl.IntVar(&f.messages, "messages", 100000, "messages to read")
	fl.DurationVar(&f.idle, "idle", 5*time.Second, "stop early when no message arrives for this long (the backlog is shorter)")
	fl.IntVar(&f.fetchBytes, "fetch-bytes", consumer.DefaultMaxFetchBytes, "maxSize of one get")
	fl.BoolVar(&f.json, "json", false, "print one JSON object (same as -o json)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
	return cmd
}

// printBenchWithHistogram prints r, and under a table a latency histogram.
func printBenchWithHistogram(w io.Writer, r benchResult, h *latencyHist, asJSON bool, title string) error {
	if err := printBench(w, r, asJSON); err != nil || asJSON {
		return err
	}
	return printLatencyHistogram(w, title, h)
}

// setGroupOffsets sets every partition of topic in group to the offset pick
// returns (the group must have no live member), before a benchmark run.
func setGroupOffsets(ctx context.Context, g *globals, s *zkrecipes.Session, p coordinator.Paths, group, topic string,
	pick func(*clusterview.Probe, context.Context, coordinator.TopicPartition) (int64, error)) (int, error) {
	if err := clusterview.CheckGroupInactive(ctx, s, p, group); err != nil {
		return 0, err
	}
	parts, err := coordinator.SubscribablePartitions(ctx, s, p, topic)
	if err != nil {
		return 0, err
	}
	if len(parts) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions registered for subscribing (no broker serves it; `metaq topics list`)", topic)
	}
	probe, err := clusterview.NewProbe(ctx, s, p, group, g.timeout())
	if err != nil {
		return 0, err
	}
	defer probe.Close()
	changes := make([]clusterview.OffsetChange, 0, len(parts))
	for _, pt := range parts {
		tp := coordinator.TopicPartition{Topic: topic, Partition: pt}
		c, err := clusterview.ReadCurrent(ctx, s, p, group, tp)
		if err != nil {
			return 0, err
		}
		if c.New, err = pick(probe, ctx, tp); err != nil {
			return 0, err
		}
		changes = append(changes, c)
	}
	return len(parts), clusterview.ApplyOffsetChanges(ctx, s, p, group, changes)
}

// Where prepareBenchGroup sets a group's offsets.
const (
	benchKeepOffsets = iota
	benchToEarliest
	benchToLatest
)

// prepareBenchGroup connects to ZooKeeper, sets the group's offsets of topic
// (unless benchKeepOffsets) and returns the topic's partition count.
func prepareBenchGroup(ctx context.Context, g *globals, group, topic string, to int) (int, error) {
	return withZK(ctx, g, 3, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (int, error) {
		switch to {
		case benchToEarliest:
			return setGroupOffsets(ctx, g, s, p, group, topic, (*clusterview.Probe).Earliest)
		case benchToLatest:
			return setGroupOffsets(ctx, g, s, p, group, topic, (*clusterview.Probe).End)
		}
		parts, err := coordinator.SubscribablePartitions(ctx, s, p, topic)
		if err == nil && len(parts) == 0 {
			err = fmt.Errorf("topic %q has no partitions registered for subscribing (no broker serves it; `metaq topics list`)", topic)
		}
		return len(parts), err
	})
}

func benchConsume(ctx context.Context, g *globals, f benchConsumeFlags, hist *latencyHist, errOut io.Writer, quiet bool) (benchResult, error) {
	r := benchResult{Workload: "consume", Connections: 1}
	to := benchKeepOffsets
	if f.group == "" {
		f.group, to = benchConsumeGroup, benchToEarliest
	}
	nparts, err := prepareBenchGroup(ctx, g, f.group, f.topic, to)
	if err != nil {
		return r, fmt.Errorf("bench consume: group %s: %w", f.group, err)
	}
	// Joining the group is not measured: the clock starts when the consumer
	// owns every partition, which is when it starts fetching.
	c, err := startBenchConsumer(ctx, g, f.group, f.topic, nparts, errOut,
		consumer.WithStart(consumer.StartEarliest), consumer.WithMaxFetchBytes(f.fetchBytes))
	if err != nil {
		return r, fmt.Errorf("bench consume: %w", err)
	}
	defer closeWithin(g, c.Close)
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return r, err
	}
	clock, err := startBenchClock()
	if err != nil {
		return r, err
	}
	var got atomic.Int64
	prog := startBenchProgress(errOut, "consume", int64(f.messages), quiet, func() (int64, string) { return got.Load(), "" })
	defer prog.stop()
	var bytes int64
	for got.Load() < int64(f.messages) {
		pctx, cancel := context.WithTimeout(ctx, f.idle)
		t0 := time.Now()
		msgs, err := c.Poll(pctx, min(f.messages-int(got.Load()), 4096))
		d := time.Since(t0)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if got.Load() == 0 {
					return r, fmt.Errorf("bench consume: no message of %s within --idle %s (empty topic? run `metaq bench produce` first)", f.topic, f.idle)
				}
				g.logger().Warn("bench consume: the backlog ran out before --messages", "read", got.Load(), "messages", f.messages)
				break
			}
			return r, err
		}
		hist.add(d)
		for _, m := range msgs {
			bytes += int64(len(m.Payload))
		}
		got.Add(int64(len(msgs)))
	}
	stopProfile()
	prog.stop()
	r.Messages, r.Bytes = got.Load(), bytes
	if r.Messages > 0 {
		r.Size = int(bytes / r.Messages)
	}
	if err := clock.finish(&r); err != nil {
		return r, err
	}
	hist.fill(&r)
	return r, nil
}
