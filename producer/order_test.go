package producer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/producer"
)

// Messages sent before the topic's broker is registered are retried (the
// topic has no partitions yet) and must still be stored in the order they
// were sent, behind one another and ahead of later sends.
func TestRetriesKeepSendOrder(t *testing.T) {
	c := newZKCluster(t)
	p := c.producer(t, producer.WithRetry(20*time.Millisecond, 30))
	col := newCollector()
	const early, late = 20, 200
	ctx := testCtx(t, 30*time.Second)
	for i := 0; i < early; i++ {
		p.SendAsync(ctx, producer.Message{Topic: "ordered", Payload: []byte(fmt.Sprintf("m%04d", i))}, col.cb(i))
	}
	b := c.start(t, 0, 1, "ordered") // the topic appears while those are waiting
	for i := early; i < early+late; i++ {
		p.SendAsync(ctx, producer.Message{Topic: "ordered", Payload: []byte(fmt.Sprintf("m%04d", i))}, col.cb(i))
	}
	col.wait(t, 30*time.Second)
	require.Empty(t, col.errs)
	got := readBack(t, b.Addr(), "ordered", 0)
	require.Len(t, got, early+late)
	for i, m := range got {
		require.Equal(t, fmt.Sprintf("m%04d", i), string(m.Data), "message %d out of order", i)
	}
	require.NoError(t, p.Close(context.Background()))
}
