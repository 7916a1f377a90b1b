package broker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// TestWokenLongPollServedWithoutTheLoop: a long-poll get whose data arrives
// is served on its park goroutine (no event-loop wake-up and worker
// hand-off on the path of the message), and its reply is the data.
func TestWokenLongPollServedWithoutTheLoop(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "get wake g 0 0 1024 20000 7\r\n")
	require.Eventually(t, func() bool { return b.LongPollParked("wake", 0) }, 10*time.Second, time.Millisecond)
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("wake", 0, "now", 1))
	expectReply(t, p, 200, 1)
	r := expectReply(t, c, 200, 7)
	require.Equal(t, "now", string(messages(t, r.body)[0].Data))
	require.Equal(t, uint64(1), b.ServedOnWake())
	require.Equal(t, uint64(0), b.RequeuedOnWake())
	// The waiter left with its data and registered nothing more: the
	// partition's next commit finds nobody to wake.
	require.False(t, b.LongPollParked("wake", 0))
}

// TestWokenLongPollWaitsBehindQueuedReads: while reads wait for the read
// workers, a woken long-poll get does not jump the queue: it goes back
// through the event loop and the workers as before, and is still answered.
func TestWokenLongPollWaitsBehindQueuedReads(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 4)
	restore := broker.SetHandlerHook(func(req protocol.Request, onLoop bool) {
		if g, ok := req.(*protocol.GetRequest); ok && !onLoop && g.Topic == "busy" {
			blocked <- struct{}{}
			<-release
		}
	})
	t.Cleanup(restore) // after the broker's shutdown (cleanups run last first)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.ReadWorkers = 1 }})
	t.Cleanup(func() { close(release) }) // before it
	w := brokertest.Dial(t, b.Addr())
	w.Send(t, putLine("wake", 0, "first", 1)) // creating a partition needs a worker too
	expectReply(t, w, 200, 1)
	w.Send(t, "get wake g 0 25 1024 20000 7\r\n") // at the end: after "first" (20 bytes of header)
	require.Eventually(t, func() bool { return b.LongPollParked("wake", 0) }, 10*time.Second, time.Millisecond)

	// The only worker blocks on one get of another topic, a second waits in its queue.
	o := brokertest.Dial(t, b.Addr())
	o.Send(t, putLine("busy", 0, "x", 1))
	expectReply(t, o, 200, 1)
	o.Send(t, "get busy g 0 0 1024 2\r\nget busy g 0 0 1024 3\r\n")
	<-blocked

	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("wake", 0, "later", 1))
	expectReply(t, p, 200, 1)
	require.Eventually(t, func() bool { return b.RequeuedOnWake() == 1 }, 10*time.Second, time.Millisecond)
	release <- struct{}{} // the first busy get
	<-blocked             // the second
	release <- struct{}{}
	expectReply(t, o, 200, 2)
	expectReply(t, o, 200, 3)
	r := expectReply(t, w, 200, 7)
	require.Equal(t, "later", string(messages(t, r.body)[0].Data))
	require.Equal(t, uint64(0), b.ServedOnWake())
}
