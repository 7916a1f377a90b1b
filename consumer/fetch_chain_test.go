package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
)

// Scenario: fetches of about three messages into a buffer of one batch, with
// messages arriving while the consumer runs. Replies that find room are
// handed on by the connection's reader goroutine, which sends the next get
// itself (fetch_chain.go); the others, with the buffer full, go to the
// partition's fetcher. Either way every message is delivered once, in order
// per partition, and the committed offsets reach the log ends.
func TestSmallFetchesIntoAFullBufferKeepOrder(t *testing.T) {
	for _, style := range []string{"poll", "handler"} {
		t.Run(style, func(t *testing.T) {
			e := newEnv(t, 1, testParts, "orders")
			want := e.produceAll("orders", testParts, 240, 64, "a")
			leak := goroutines(t)
			opts := e.opts(consumer.WithBufferBatches(1), consumer.WithMaxFetchBytes(300), consumer.WithConcurrency(1))
			var got func() []delivery
			var c *consumer.Consumer
			if style == "poll" {
				c = newConsumer(t, "gsmall-"+style, append(opts, consumer.WithTopics("orders"))...)
				start(t, c)
				var polled []delivery
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				for i := 0; len(polled) < len(want); i++ {
					if i == 100 { // more while it runs: caught-up partitions long-poll
						for k, v := range e.produceAll("orders", testParts, 40, 64, "b") {
							want[k] = v
						}
					}
					ms, err := c.Poll(ctx, 1) // slowly: the buffer stays full
					require.NoError(t, err)
					for _, m := range ms {
						polled = append(polled, delivery{key: keyOf(m.Payload), tp: m.TopicPartition(), offset: m.Offset})
					}
				}
				got = func() []delivery { return polled }
			} else {
				rec := newRecorder(t)
				c = newConsumer(t, "gsmall-"+style, opts...)
				require.NoError(t, c.Subscribe("orders", rec.handler("c1")))
				start(t, c)
				eventually(t, 60*time.Second, "backlog delivered", func() bool { return rec.count() >= len(want) })
				for k, v := range e.produceAll("orders", testParts, 40, 64, "b") {
					want[k] = v
				}
				eventually(t, 60*time.Second, "new messages delivered", func() bool { return rec.count() >= len(want) })
				got = rec.snapshot
			}
			closeC(t, c)
			leak()
			checkExactlyInOrder(t, want, got())
			for tp, end := range logEnds(want) {
				require.Equal(t, end, e.committed("gsmall-"+style, tp), "committed offset of %s", tp)
			}
			st := c.Stats()
			require.EqualValues(t, len(want), st.Delivered)
			require.Greater(t, st.Fetches, int64(len(want)/4), "fetches of a few messages each")
		})
	}
}
