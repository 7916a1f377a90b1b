package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/producer"
)

type produceFlags struct {
	topic      string
	broker     string
	partitions int
	file       string
	key        string
	attribute  string
}

func newProduceCmd(g *globals) *cobra.Command {
	var f produceFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "send each line of stdin (or --file) as a message and print where it was stored",
		Example: `  printf 'a\nb\n' | metaq produce --zk 127.0.0.1:2181 --topic demo
  metaq produce --broker 127.0.0.1:8123 --partitions 4 --topic demo --file messages.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" {
				return usageError{errorf("produce: --topic is required")}
			}
			in := cmd.InOrStdin()
			if f.file != "" {
				fh, err := os.Open(f.file)
				if err != nil {
					return err
				}
				defer fh.Close()
				in = fh
			}
			return produceLines(cmd.Context(), g, f, in, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic (required)")
	fl.StringVar(&f.broker, "broker", "", "broker host:port: direct mode, without ZooKeeper")
	fl.IntVar(&f.partitions, "partitions", 1, "partitions of the broker in direct mode")
	fl.StringVarP(&f.file, "file", "f", "", "read messages from this file instead of stdin, one per line")
	fl.StringVar(&f.key, "key", "", "send every message with this key (by-key partitioning: one partition, in order)")
	fl.StringVar(&f.attribute, "attribute", "", "attribute string to store with every message")
	return cmd
}

// produceLine is one line's outcome, printed in input order.
type produceLine struct {
	Line      int    `json:"line"`
	Partition string `json:"partition,omitempty"`
	Offset    int64  `json:"offset"`
	MsgID     int64  `json:"msg_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

func produceLines(ctx context.Context, g *globals, f produceFlags, in io.Reader, out, errOut io.Writer) error {
	opts := []producer.Option{producer.WithLogger(clientLogger(g, errOut))}
	if f.broker != "" {
		opts = append(opts, producer.WithBroker(f.broker, f.partitions))
	} else {
		if len(g.zkServers()) == 0 {
			return usageError{errorf("produce: need --zk (or --broker)")}
		}
		opts = append(opts, g.producerZK()...)
	}
	if f.key != "" {
		opts = append(opts, producer.WithPartitioner(producer.ByKey()))
	}
	p, err := newProducer(ctx, g, opts...)
	if err != nil {
		return err
	}
	// Lines are sent asynchronously (pipelined) and printed in order.
	queue := make(chan chan produceLine, 1024)
	printed := make(chan int, 1)
	enc := json.NewEncoder(out)
	go func() {
		failures := 0
		for ch := range queue {
			r := <-ch
			switch {
			case r.Error != "":
				failures++
				fmt.Fprintf(errOut, "line %d: %s\n", r.Line, r.Error)
			case g.output() == "json":
				_ = enc.Encode(r) // one compact object per line
			default:
				fmt.Fprintf(out, "partition %s offset %d\n", r.Partition, r.Offset)
			}
		}
		printed <- failures
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), producer.DefaultMaxMessageSize+1)
	n := 0
	for sc.Scan() && ctx.Err() == nil {
		n++
		line := n
		ch := make(chan produceLine, 1)
		queue <- ch
		msg := producer.Message{Topic: f.topic, Payload: append([]byte(nil), sc.Bytes()...), Attribute: f.attribute}
		if f.key != "" {
			msg.Key = []byte(f.key)
		}
		p.SendAsync(ctx, msg, func(res producer.Result, err error) {
			r := produceLine{Line: line, Partition: res.Partition.String(), Offset: res.Offset, MsgID: res.MsgID}
			if err != nil {
				r = produceLine{Line: line, Error: err.Error()}
			}
			ch <- r
		})
	}
	close(queue)
	closeErr := closeWithin(g, p.Close)
	failures := <-printed
	switch {
	case sc.Err() != nil:
		return fmt.Errorf("produce: reading input: %w", sc.Err())
	case failures > 0:
		return fmt.Errorf("produce: %d of %d messages failed", failures, n)
	}
	if closeErr != nil {
		return closeErr
	}
	return ctx.Err()
}

// newProducer creates the producer of a command; finding the cluster in
// ZooKeeper is one operation bounded by --timeout.
func newProducer(ctx context.Context, g *globals, opts ...producer.Option) (*producer.Producer, error) {
	sec, err := g.producerSecurity()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	return producer.New(ctx, append(opts, sec...)...)
}
