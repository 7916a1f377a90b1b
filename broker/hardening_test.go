package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// In threshold mode a put is answered before its fsync. A long-poll get
// must not be answered with that data (a crash could take it back), and
// must be answered as soon as it is fsynced, not when its wait runs out.
func TestThresholdModeLongPollSeesOnlyFsyncedData(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.Store.Flush = store.FlushPolicy{Mode: store.Threshold, UnflushThreshold: 1 << 30, UnflushInterval: time.Hour}
	}})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "get thr g 0 0 4096 20000 1\r\n")
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("thr", 0, "not yet durable", 2))
	expectReply(t, p, 200, 2) // threshold mode: answered after the write, before the fsync

	p.Send(t, "get thr g 0 0 4096 3\r\n")
	expectReply(t, p, 404, 3) // a plain get: caught up, nothing durable yet
	_, _, err := c.TryReadReply(500 * time.Millisecond)
	require.ErrorIs(t, err, errTimeout, "the long-poll get must not see data that is not fsynced")

	part, err := b.Store().Partition("thr", 0, false)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, part.Flush(ctx))
	r := expectReply(t, c, 200, 1) // long before the 20 s wait runs out
	require.Equal(t, "not yet durable", string(messages(t, r.body)[0].Data))
}

// gatedFS blocks the creation of partition directories whose name contains
// match until gate is closed.
type gatedFS struct {
	store.OSFS
	match   string
	entered chan struct{}
	gate    chan struct{}
}

func (f *gatedFS) MkdirAll(name string, perm os.FileMode) error {
	if strings.Contains(filepath.Base(name), f.match) {
		select {
		case f.entered <- struct{}{}:
		default:
		}
		<-f.gate
	}
	return f.OSFS.MkdirAll(name, perm)
}

// The first put to a partition creates it (mkdir + fsync) off the event
// loop: other connections on the loop are answered meanwhile, and the
// connection's puts keep their order.
func TestPartitionCreationRunsOffTheEventLoop(t *testing.T) {
	fs := &gatedFS{match: "fresh-0", entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.Store.FS = fs
		o.Multicore = false // one event loop: a blocked loop blocks every connection
	}})
	var once sync.Once
	release := func() { once.Do(func() { close(fs.gate) }) }
	t.Cleanup(release)

	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("fresh", 0, "first", 1)+putLine("fresh", 0, "second", 2))
	select {
	case <-fs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the partition was never created")
	}
	other := brokertest.Dial(t, b.Addr())
	other.Send(t, "version 7\r\n")
	expectReply(t, other, 200, 7) // the loop is free while the directory is created
	_, _, err := c.TryReadReply(200 * time.Millisecond)
	require.ErrorIs(t, err, errTimeout, "the puts wait for their partition")

	release()
	_, _, off1 := putResult(t, expectReply(t, c, 200, 1))
	_, _, off2 := putResult(t, expectReply(t, c, 200, 2))
	require.Less(t, off1, off2, "puts keep their order")
	c.Send(t, "get fresh g 0 0 4096 3\r\n")
	r := expectReply(t, c, 200, 3)
	got := messages(t, r.body)
	require.Len(t, got, 2)
	require.Equal(t, "first", string(got[0].Data))
	require.Equal(t, "second", string(got[1].Data))
}

// The stats body (which walks every partition and sorts the topics) is
// built off the event loop: while it is being built, the loop serves others.
func TestStatsAreBuiltOffTheEventLoop(t *testing.T) {
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(broker.SetHandlerHook(func(req protocol.Request, onLoop bool) {
		if r, ok := req.(*protocol.StatsRequest); ok && r.Item == "topics" {
			entered <- struct{}{}
			<-gate
		}
	}))
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.Multicore = false }})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(gate) }) })

	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "stats topics 1\r\n")
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("stats topics was never built")
	}
	other := brokertest.Dial(t, b.Addr())
	other.Send(t, "version 2\r\n")
	expectReply(t, other, 200, 2)
	once.Do(func() { close(gate) })
	expectReply(t, c, 200, 1)
}

// A handler that panics (on the loop or on a read worker) closes only its
// connection; the broker keeps serving and counts it.
func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	t.Cleanup(broker.SetHandlerHook(func(req protocol.Request, onLoop bool) {
		switch r := req.(type) {
		case *protocol.PutRequest:
			if r.Topic == "boom" {
				panic("injected panic in a put handler")
			}
		case *protocol.GetRequest:
			if r.Topic == "boom" {
				panic("injected panic in a get worker")
			}
		}
	}))
	b := brokertest.Start(t, brokertest.Options{})
	good := brokertest.Dial(t, b.Addr())
	good.Send(t, putLine("fine", 0, "before", 1))
	expectReply(t, good, 200, 1)

	bad := brokertest.Dial(t, b.Addr())
	bad.Send(t, putLine("boom", 0, "x", 1))
	expectClosed(t, bad, 5*time.Second)
	good.Send(t, putLine("fine", 0, "after a put panic", 2))
	expectReply(t, good, 200, 2)
	require.Equal(t, "1", statsValue(t, b.Addr(), "handler_panics"))

	bad = brokertest.Dial(t, b.Addr())
	bad.Send(t, "get boom g 0 0 4096 1\r\n")
	expectClosed(t, bad, 5*time.Second)
	good.Send(t, "get fine g 0 0 4096 3\r\n")
	r := expectReply(t, good, 200, 3)
	require.Len(t, messages(t, r.body), 2)
	require.Equal(t, "2", statsValue(t, b.Addr(), "handler_panics"))
	require.EqualValues(t, 2, b.Snapshot().HandlerPanics)
}

func TestMaxConnectionsPerIPRefusesTheExcessWithA503(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.MaxConnectionsPerIP = 2 }})
	first, second := brokertest.Dial(t, b.Addr()), brokertest.Dial(t, b.Addr())
	for _, c := range []*brokertest.Client{first, second} {
		c.Send(t, "version 1\r\n")
		expectReply(t, c, 200, 1)
	}
	over := brokertest.Dial(t, b.Addr())
	r, closed, err := readOne(over, 5*time.Second)
	require.NoError(t, err)
	require.False(t, closed, "an over-limit connection gets a reply before the close")
	require.Equal(t, int32(503), r.code, r.line)
	require.Contains(t, string(r.body), "too many connections from 127.0.0.1 (limit 2)")
	expectClosed(t, over, 5*time.Second)

	first.Close()
	require.Eventually(t, func() bool { return admitted(t, b.Addr()) },
		10*time.Second, 20*time.Millisecond, "a freed slot is available again")
	second.Send(t, "version 3\r\n")
	expectReply(t, second, 200, 3)
}

// sendSlowly writes s one byte per period; it stops at the first write error.
func sendSlowly(c *brokertest.Client, s string, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 0; i < len(s); i++ {
		if i > 0 {
			<-tick.C
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// partialRequestTimeout closes a client that dribbles a request slower
// than the deadline (slow-loris) and serves one that is slow but in time.
func TestPartialRequestTimeout(t *testing.T) {
	const deadline = time.Second
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.PartialRequestTimeout = deadline }})

	inTime := brokertest.Dial(t, b.Addr())
	sendSlowly(inTime, "version 1\r\n", 20*time.Millisecond) // ~0.2 s for the whole line
	expectReply(t, inTime, 200, 1)

	loris := brokertest.Dial(t, b.Addr())
	start := time.Now()
	sendSlowly(loris, "version 2\r\n", 300*time.Millisecond) // ~3 s for the whole line
	expectClosed(t, loris, 5*time.Second)
	require.GreaterOrEqual(t, time.Since(start), deadline-50*time.Millisecond, "closed before the deadline")

	inTime.Send(t, "version 3\r\n")
	expectReply(t, inTime, 200, 3)
}

// The registration of an auto-created topic in ZooKeeper is owned by the
// broker: Shutdown cancels it and waits for it.
func TestShutdownLeavesNoTopicRegistrationBehind(t *testing.T) {
	zks := zktest.Shared(t)
	entered := make(chan struct{}, 1)
	t.Cleanup(broker.SetRegisterTopicHook(func(ctx context.Context) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // a ZooKeeper that does not answer
	}))
	b := brokertest.Start(t, brokertest.Options{ZK: zks.Addr, ZKRoot: zkRoot(t)})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("autocreated", 0, "x", 1))
	expectReply(t, c, 200, 1)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the auto-created topic was never registered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.Shutdown(ctx))
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		require.NotContains(t, g, "broker.(*Broker).registerTopic", "a registration goroutine outlived Shutdown")
	}
}

// A producer that pipelines several MiB of puts while the broker creates
// the first put's partition is not closed as a client that does not read
// its replies: the wait is the broker's. Every put is answered once the
// partition exists, in order. (It was closed at 4 MiB of unread input.)
func TestPipelinedPutsWhileThePartitionIsCreatedKeepTheConnection(t *testing.T) {
	fs := &gatedFS{match: "piped-0", entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.Store.FS = fs
		o.MaxMessageSize = 64 << 10 // the bound for a client's own stall is then the 4 MiB floor
	}})
	var once sync.Once
	release := func() { once.Do(func() { close(fs.gate) }) }
	t.Cleanup(release)

	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("piped", 0, "first", 1))
	select {
	case <-fs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the partition was never created")
	}
	// 6,000 puts of 1 KiB: ~6 MiB the broker reads while it waits.
	const n = 6000
	payload := strings.Repeat("p", 1024)
	var flood strings.Builder
	for i := 2; i <= n+1; i++ {
		flood.WriteString(putLine("piped", 0, payload, i))
	}
	c.Send(t, flood.String())
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "paused_connections") == "1" },
		30*time.Second, 10*time.Millisecond)
	release()
	last := int64(-1)
	for i := 1; i <= n+1; i++ {
		_, _, off := putResult(t, expectReply(t, c, 200, int32(i)))
		require.Greater(t, off, last, "put %d out of order", i)
		last = off
	}
}
