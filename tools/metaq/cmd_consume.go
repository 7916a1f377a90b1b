package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/consumer"
)

type consumeFlags struct {
	group  string
	topics []string
	from   string
	max    int
}

func newConsumeCmd(g *globals) *cobra.Command {
	var f consumeFlags
	cmd := &cobra.Command{
		Use:   "consume --group G --topic T [--from earliest|latest] [--max N]",
		Short: "consume a topic as a member of a consumer group and print each message with its partition and offset",
		Long: `consume joins consumer group G, prints every message of its share of the topic's partitions
("<topic> <brokerId>-<partition> offset <n>: <payload>", or with -o json one JSON object per line)
until interrupted (Ctrl-C / SIGTERM) or --max messages, then commits what it printed and leaves the
group. Partitions with a committed offset resume there; others start at --from (default earliest).
Run it in several terminals with the same --group to share the partitions.`,
		Example: `  metaq consume --zk 127.0.0.1:2181 --group g1 --topic test
  metaq consume --zk 127.0.0.1:2181 --group g1 --topic test --from latest -o json
  metaq consume --zk 127.0.0.1:2181 --group g1 --topic test --max 10`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.group == "" || len(f.topics) == 0 {
				return usageError{errors.New("consume: --group and --topic are required")}
			}
			if f.max < 0 {
				return usageError{fmt.Errorf("consume: --max %d: want >= 0 (0 = until interrupted)", f.max)}
			}
			start, err := parseFrom(f.from)
			if err != nil {
				return err
			}
			if len(g.zkServers()) == 0 {
				return usageError{errors.New("consume: need --zk host:port (or METAQ_ZK)")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return consumeMessages(ctx, g, f, start, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.group, "group", "", "consumer group (required)")
	fl.StringSliceVar(&f.topics, "topic", nil, "topic(s) to consume (required; repeat or comma-separate)")
	fl.StringVar(&f.from, "from", "earliest", "where partitions without a committed offset start: earliest or latest")
	fl.IntVar(&f.max, "max", 0, "stop after this many messages (0 = until interrupted)")
	return cmd
}

func parseFrom(s string) (consumer.StartPosition, error) {
	switch s {
	case "earliest":
		return consumer.StartEarliest, nil
	case "latest":
		return consumer.StartLatest, nil
	}
	return consumer.StartPosition{}, usageError{fmt.Errorf("--from %q: want earliest or latest", s)}
}

// consumedMessage is one line of `metaq consume -o json`.
type consumedMessage struct {
	Topic         string `json:"topic"`
	Partition     string `json:"partition"` // <brokerId>-<partition>
	Offset        int64  `json:"offset"`
	NextOffset    int64  `json:"next_offset"`
	MsgID         int64  `json:"msg_id"`
	Flag          int32  `json:"flag,omitempty"`
	Attribute     string `json:"attribute,omitempty"`
	Payload       string `json:"payload"`                  // the payload as text when it is valid UTF-8
	PayloadBase64 []byte `json:"payload_base64,omitempty"` // the payload when it is not valid UTF-8
}

func toConsumed(m *consumer.Message) consumedMessage {
	c := consumedMessage{Topic: m.Topic, Partition: strconv.Itoa(m.BrokerID) + "-" + strconv.Itoa(m.Partition),
		Offset: m.Offset, NextOffset: m.NextOffset, MsgID: m.ID, Flag: m.Flag, Attribute: m.Attribute}
	if utf8.Valid(m.Payload) {
		c.Payload = string(m.Payload)
	} else {
		c.PayloadBase64 = m.Payload
	}
	return c
}

// closeWithin calls close with a fresh context of --timeout: a deferred close
// runs when the command's context may have ended (Ctrl-C).
func closeWithin(g *globals, close func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout())
	defer cancel()
	return close(ctx)
}

// clientLogger is the logger handed to clients: warnings on errOut, all with -v.
func clientLogger(g *globals, errOut io.Writer) *slog.Logger {
	if g.v.GetBool("verbose") {
		return g.logger()
	}
	return slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newConsumer creates the consumer of a command, connecting to brokers with
// the security flags.
func newConsumer(g *globals, group string, opts ...consumer.Option) (*consumer.Consumer, error) {
	sec, err := g.consumerSecurity()
	if err != nil {
		return nil, err
	}
	c, err := consumer.New(group, append(opts, sec...)...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func consumeMessages(ctx context.Context, g *globals, f consumeFlags, start consumer.StartPosition, out, errOut io.Writer) (err error) {
	c, err := newConsumer(g, f.group, append(g.consumerZK(), consumer.WithTopics(f.topics...),
		consumer.WithStart(start), consumer.WithAutoCommit(consumer.DefaultAutoCommitInterval),
		consumer.WithLogger(clientLogger(g, errOut)))...)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, g.timeout())
	err = c.Start(sctx)
	cancel()
	if err != nil {
		_ = c.Close(context.Background())
		return fmt.Errorf("consume: join group %s: %w", f.group, err)
	}
	// Commit what was printed and leave the group, also after Ctrl-C.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), g.timeout())
		defer cancel()
		cerr := c.Commit(cctx)
		if cerr != nil && err == nil {
			err = fmt.Errorf("consume: commit: %w", cerr)
		}
		if cerr = c.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("consume: close (leave the group): %w", cerr)
		}
	}()
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	asJSON := g.output() == "json"
	n := 0
	for f.max == 0 || n < f.max {
		want := 1 << 10
		if f.max > 0 {
			want = f.max - n
		}
		msgs, err := c.Poll(ctx, want)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, consumer.ErrClosed) {
				return nil // interrupted: a clean stop
			}
			return err
		}
		for _, m := range msgs {
			if asJSON {
				if err := enc.Encode(toConsumed(m)); err != nil {
					return err
				}
				continue
			}
			attr := ""
			if m.Attribute != "" {
				attr = " [" + m.Attribute + "]"
			}
			fmt.Fprintf(w, "%s %d-%d offset %d%s: %s\n", m.Topic, m.BrokerID, m.Partition, m.Offset, attr, m.Payload)
		}
		n += len(msgs)
		if err := w.Flush(); err != nil {
			return err // stdout closed (e.g. | head): stop
		}
	}
	return nil
}
