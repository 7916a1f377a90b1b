package broker_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// dialSlowReader connects with a tiny receive buffer: a client that does
// not read makes the broker's replies pile up on the broker's side at once.
func dialSlowReader(t testing.TB, addr string) *brokertest.Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &brokertest.Client{Conn: c, R: bufio.NewReaderSize(c, 1<<20)}
}

// statsInt is statsValue as a number.
func statsInt(t testing.TB, addr, key string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(statsValue(t, addr, key), 10, 64)
	require.NoError(t, err)
	return v
}

// pipelineGets sends n gets of the whole of topic's partition 0, opaques 0..n-1, in one write.
func pipelineGets(t testing.TB, c *brokertest.Client, topic string, n, maxSize int) {
	t.Helper()
	var req strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&req, "get %s g 0 0 %d %d\r\n", topic, maxSize, i)
	}
	c.Send(t, req.String())
}

// readAllGets reads n get replies and checks each carries exactly want.
// Replies are matched by opaque (the protocol does not order them).
func readAllGets(t testing.TB, c *brokertest.Client, n int, want []byte) {
	t.Helper()
	seen := make([]bool, n)
	for i := 0; i < n; i++ {
		r, closed, err := readOne(c, 30*time.Second)
		require.NoError(t, err, "reply %d of %d", i, n)
		require.False(t, closed, "connection closed after %d of %d replies", i, n)
		require.True(t, r.value, "reply %d: %q %q", i, r.line, r.body)
		require.True(t, r.opaque >= 0 && int(r.opaque) < n && !seen[r.opaque], "unexpected or repeated opaque %d", r.opaque)
		seen[r.opaque] = true
		it := protocol.NewMessageIterator(r.body)
		require.True(t, it.Next(), "reply %d has no whole message", r.opaque)
		require.True(t, bytes.Equal(want, it.Message().Data), "reply %d carries other data", r.opaque)
		require.False(t, it.Next())
		require.NoError(t, it.Err())
	}
}

// A client pipelines 2,000 gets of 256 KiB and reads nothing: the broker
// buffers at most the connection's limit plus one reply, keeps serving
// others, and delivers everything once the client reads. (1 MiB replies
// behave the same; 2 GB through the race detector take too long.)
func TestPipelinedGetsStayWithinTheOutputLimit(t *testing.T) {
	const (
		limit   = 1 << 20
		n       = 2000
		maxSize = 256 << 10
		reply   = maxSize + 32 // what one get reserves: maxSize plus the value line
	)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxConnOutputBytes = limit
		o.MaxMessageSize = maxSize
	}})
	data := bytes.Repeat([]byte("0123456789abcdef"), (maxSize-protocolHeader)/16)
	other := brokertest.Dial(t, b.Addr())
	other.Send(t, putLine("pipe", 0, string(data), 1))
	expectReply(t, other, 200, 1)

	c := dialSlowReader(t, b.Addr())
	pipelineGets(t, c, "pipe", n, maxSize)
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "paused_connections") == "1" },
		30*time.Second, 20*time.Millisecond, "the connection that does not read is paused")

	// Another client is served while the first one is paused.
	other.Send(t, putLine("side", 0, "still served", 2))
	expectReply(t, other, 200, 2)
	other.Send(t, "get side g 0 0 4096 3\r\n")
	r := expectReply(t, other, 200, 3)
	require.Equal(t, "still served", string(messages(t, r.body)[0].Data))

	peak := statsInt(t, b.Addr(), "max_connection_buffered_bytes")
	t.Logf("highest unsent output of one connection: %d bytes (limit %d)", peak, limit)
	require.LessOrEqual(t, peak, int64(limit+reply), "unsent output stays within the limit plus one reply")
	require.Less(t, statsInt(t, b.Addr(), "cmd_get"), int64(n), "requests past the limit wait undecoded")

	readAllGets(t, c, n, data)
	require.Eventually(t, func() bool {
		return statsValue(t, b.Addr(), "paused_connections") == "0" && statsValue(t, b.Addr(), "buffered_bytes") == "0"
	}, 10*time.Second, 20*time.Millisecond, "nothing stays accounted once everything is read")
	require.LessOrEqual(t, statsInt(t, b.Addr(), "max_connection_buffered_bytes"), int64(limit+reply))
}

// protocolHeader is the on-disk/wire message header (PROTOCOL.md §4).
const protocolHeader = 20

// The broker-wide limit pauses connections that are each under their own.
func TestPipelinedGetsStayWithinTheTotalOutputLimit(t *testing.T) {
	const (
		total   = 3 << 20
		n       = 60
		maxSize = 256 << 10
		reply   = maxSize + 32
	)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxTotalOutputBytes = total
	}})
	data := bytes.Repeat([]byte("x"), maxSize-protocolHeader)
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("total", 0, string(data), 1))
	expectReply(t, p, 200, 1)

	c1, c2 := dialSlowReader(t, b.Addr()), dialSlowReader(t, b.Addr())
	pipelineGets(t, c1, "total", n, maxSize)
	pipelineGets(t, c2, "total", n, maxSize)
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "paused_connections") == "2" },
		30*time.Second, 20*time.Millisecond, "both connections are paused by the broker-wide limit")
	buffered := statsInt(t, b.Addr(), "buffered_bytes")
	t.Logf("unsent output over all connections: %d bytes (limit %d)", buffered, total)
	require.LessOrEqual(t, buffered, int64(total+2*reply))

	readAllGets(t, c1, n, data)
	readAllGets(t, c2, n, data)
}

// Not an assertion: how much heap 300 pipelined gets of 1 MiB cost when the
// client does not read (the issue measured ~590 MiB before the limit).
func TestPipelinedGetsHeapGrowth(t *testing.T) {
	const n, maxSize = 300, 1 << 20
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.MaxMessageSize = maxSize }})
	data := bytes.Repeat([]byte("y"), maxSize-protocolHeader)
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("heap", 0, string(data), 1))
	expectReply(t, p, 200, 1)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := dialSlowReader(t, b.Addr())
	pipelineGets(t, c, "heap", n, maxSize)
	require.Eventually(t, func() bool {
		return statsValue(t, b.Addr(), "paused_connections") == "1" || statsValue(t, b.Addr(), "cmd_get") == strconv.Itoa(n)
	}, 30*time.Second, 20*time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap growth with %d unread gets of 1 MiB: %d MiB (broker buffered %s bytes, default limit 64 MiB)",
		n, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>20, statsValue(t, b.Addr(), "buffered_bytes"))
}

// A paused connection whose client keeps sending requests (gnet keeps
// reading them) is closed once its undecoded input passes a bound.
func TestPausedConnectionThatKeepsSendingIsClosed(t *testing.T) {
	const limit, maxSize = 256 << 10, 64 << 10
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxConnOutputBytes = limit
		o.MaxMessageSize = maxSize
	}})
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("flood", 0, strings.Repeat("z", maxSize-protocolHeader), 1))
	expectReply(t, p, 200, 1)
	p.Close()

	c := dialSlowReader(t, b.Addr())
	pipelineGets(t, c, "flood", 64, maxSize)
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "paused_connections") == "1" },
		30*time.Second, 20*time.Millisecond)
	flood := strings.Repeat("version 1\r\n", (6<<20)/11) // more than the 4 MiB bound
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, _ = c.Write([]byte(flood)) // may fail once the broker closes
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "curr_connections") == "1" },
		30*time.Second, 20*time.Millisecond, "the flooding connection is closed; only the stats one is open")
	p = brokertest.Dial(t, b.Addr())
	p.Send(t, "version 2\r\n")
	expectReply(t, p, 200, 2)
}

// Long-poll gets parked on idle partitions hold no output budget: a
// consumer polling more partitions than its budget covers is still served.
func TestParkedLongPollsDoNotHoldTheOutputBudget(t *testing.T) {
	const parts, maxSize = 12, 256 << 10
	b := brokertest.Start(t, brokertest.Options{Partitions: parts, Modify: func(o *broker.Options) {
		o.MaxConnOutputBytes = 4 * maxSize // fewer than the gets parked below
		o.MaxMessageSize = maxSize
	}})
	c := brokertest.Dial(t, b.Addr())
	var req strings.Builder
	for p := 0; p < parts; p++ {
		fmt.Fprintf(&req, "get idle g %d 0 %d 20000 %d\r\n", p, maxSize, p)
	}
	c.Send(t, req.String())
	c.Send(t, putLine("idle", parts-1, "wake the last one", 100))
	// The put is decoded although 12 gets of 256 KiB wait; its reply and
	// the woken get's may come in either order (PROTOCOL.md: by opaque).
	got := map[int32]reply{}
	for range 2 {
		r, closed, err := readOne(c, 5*time.Second)
		require.NoError(t, err)
		require.False(t, closed)
		require.Equal(t, int32(200), r.code, "reply %q", r.line)
		got[r.opaque] = r
	}
	require.Contains(t, got, int32(100), "the put's reply")
	require.Contains(t, got, int32(parts-1), "the woken get's reply")
	require.Equal(t, "wake the last one", string(messages(t, got[parts-1].body)[0].Data))
	require.Equal(t, "0", statsValue(t, b.Addr(), "paused_connections"))
}
