package broker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
)

// While a partition's writer is busy, a connection's puts to it that arrive
// in later reads join the batch it already queued there (one store request,
// one callback), also once another connection's batch queued behind it (no
// order holds between two connections' puts); that other connection's puts
// form a batch of their own. Every put is answered with its own offset and
// id, and the log holds each connection's messages in the order it sent
// them.
func TestPutsJoinTheQueuedBatchWhileTheWriterIsBusy(t *testing.T) {
	var once sync.Once
	entered, release := make(chan struct{}), make(chan struct{})
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.Store.OnSync = func(topic string, part int, _ time.Duration, _ error) {
			if topic == "t" {
				once.Do(func() { close(entered); <-release }) // hold the writer after its first commit
			}
		}
	}})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	a := brokertest.Dial(t, b.Addr())
	c := brokertest.Dial(t, b.Addr())

	a.Send(t, putLine("t", 0, "a-1", 1))
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the writer did not commit the first put")
	}
	queuedBytes := func() int64 {
		p, err := b.Store().Partition("t", 0, false)
		require.NoError(t, err)
		return p.QueuedBytes()
	}
	extended := func(n int64) {
		t.Helper()
		require.Eventually(t, func() bool { return b.PutsExtended() == n }, 20*time.Second, time.Millisecond,
			"puts extended: %d, want %d", b.PutsExtended(), n)
	}
	queued := func(cl *brokertest.Client, data string, opaque int) {
		t.Helper()
		before := b.PutsExtended()
		cl.Send(t, putLine("t", 0, data, opaque))
		// A put that starts a batch is not counted: wait until the next
		// put of this connection can only join (or start) after it.
		require.Eventually(t, func() bool { return queuedBytes() > 0 }, 20*time.Second, time.Millisecond)
		require.Equal(t, before, b.PutsExtended())
	}
	queued(a, "a-2", 2) // starts A's batch
	for i := 3; i <= 5; i++ {
		a.Send(t, putLine("t", 0, fmt.Sprintf("a-%d", i), i))
		extended(int64(i - 2)) // joined A's batch
	}
	before := queuedBytes()
	c.Send(t, putLine("t", 0, "c-1", 100)) // another connection: a batch of its own, queued behind A's
	require.Eventually(t, func() bool { return queuedBytes() > before }, 20*time.Second, time.Millisecond)
	require.Equal(t, int64(3), b.PutsExtended())
	a.Send(t, putLine("t", 0, "a-6", 6)) // A's batch still waits: C's behind it does not stop it growing
	extended(4)
	c.Send(t, putLine("t", 0, "c-2", 101))
	extended(5) // joined C's batch
	a.Send(t, putLine("t", 0, "a-7", 7))
	extended(6)
	close(release)

	offsets := map[int64]string{}
	want := map[int32]string{1: "a-1", 2: "a-2", 3: "a-3", 4: "a-4", 5: "a-5", 6: "a-6", 7: "a-7"}
	for range 7 {
		r, closed, err := readOne(a, 20*time.Second)
		require.NoError(t, err)
		require.False(t, closed)
		require.Equal(t, int32(200), r.code, "reply %q %q", r.line, r.body)
		id, part, off := putResult(t, r)
		require.NotZero(t, id)
		require.Zero(t, part)
		offsets[off] = want[r.opaque]
	}
	for _, op := range []int32{100, 101} {
		r := expectReply(t, c, 200, op)
		_, _, off := putResult(t, r)
		offsets[off] = map[int32]string{100: "c-1", 101: "c-2"}[op]
	}
	require.Len(t, offsets, 9, "every put has an offset of its own")

	a.Send(t, "get t g 0 0 65536 9\r\n")
	line, body := a.ReadReply(t)
	rr, err := parseReply(line, body)
	require.NoError(t, err)
	require.True(t, rr.value, "get reply %q", line)
	var got []string
	for _, m := range messages(t, body) {
		got = append(got, string(m.Data))
	}
	require.Equal(t, []string{"a-1", "a-2", "a-3", "a-4", "a-5", "a-6", "a-7", "c-1", "c-2"}, got)
	// Each reply's offset is where its message is.
	pos := int64(0)
	for _, data := range got {
		require.Equal(t, data, offsets[pos], "the message at offset %d", pos)
		pos += int64(20 + len(data))
	}
}

// The connection's cache of the last topic's config never answers for
// another topic: a put to an unconfigured topic between puts to a
// configured one is refused, and the partition range is the right topic's.
func TestPutTopicConfigPerTopicOnOneConnection(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) {
		o.Topic = topicsOnly(map[string]int{"one": 1, "four": 4})
	}})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("four", 3, "x", 1))
	expectReply(t, c, 200, 1)
	c.Send(t, putLine("nope", 0, "x", 2))
	r := expectReply(t, c, 500, 2)
	require.Contains(t, string(r.body), "not accepted for publishing")
	c.Send(t, putLine("one", 3, "x", 3))
	r = expectReply(t, c, 500, 3)
	require.Contains(t, string(r.body), "out of range", "topic one has one partition")
	c.Send(t, putLine("four", 3, "x", 4))
	expectReply(t, c, 200, 4)
}
