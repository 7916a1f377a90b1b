package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/config"
)

// TestMaxConnectionsZeroInServerINIMeansUnlimited: broker/config/doc.go
// promises maxConnections=0 = unlimited; it used to become the 10000
// default, and a negative limit refused every connection.
func TestMaxConnectionsZeroInServerINIMeansUnlimited(t *testing.T) {
	cfg, err := config.Parse([]byte("[system]\nbrokerId=1\nmaxConnections=0\n[zookeeper]\nzk.zkEnable=false\n"), "ini", config.WithoutEnv())
	require.NoError(t, err)
	opts := broker.OptionsFromConfig(cfg, nil)
	require.Negative(t, opts.MaxConnections, "maxConnections=0 must mean no limit")
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.MaxConnections = opts.MaxConnections }})
	for i := 0; i < 3; i++ {
		c := brokertest.Dial(t, b.Addr())
		c.Send(t, fmt.Sprintf("version %d\r\n", i))
		expectReply(t, c, 200, int32(i))
	}
}

func TestMaxConnectionsRefusesTheExcessWithA503(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.MaxConnections = 3 }})
	var ok []*brokertest.Client
	for i := 0; i < 3; i++ {
		c := brokertest.Dial(t, b.Addr())
		c.Send(t, fmt.Sprintf("version %d\r\n", i))
		expectReply(t, c, 200, int32(i))
		ok = append(ok, c)
	}
	for i := 0; i < 3; i++ { // the excess ones, again and again
		over := brokertest.Dial(t, b.Addr())
		r, closed, err := readOne(over, time.Second)
		require.NoError(t, err)
		require.False(t, closed, "an over-limit connection gets a reply before the close")
		require.Equal(t, int32(503), r.code, r.line)
		require.Contains(t, string(r.body), "too many connections")
		expectClosed(t, over, time.Second)
	}
	for i, c := range ok { // the others did not notice
		c.Send(t, putLine("conns", 0, "still here", 10+i))
		expectReply(t, c, 200, int32(10+i))
	}
	ok[0].Close()
	require.Eventually(t, func() bool { return admitted(t, b.Addr()) },
		5*time.Second, 20*time.Millisecond, "a freed slot is available again")
}

func TestIdleConnectionIsClosedActiveOneIsNot(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.IdleTimeout = idle }})
	quiet := brokertest.Dial(t, b.Addr())
	quiet.Send(t, "version 1\r\n")
	expectReply(t, quiet, 200, 1)
	start := time.Now()

	// The active client talks more often than the idle timeout, for several timeouts.
	active := brokertest.Dial(t, b.Addr())
	tick := time.NewTicker(idle / 5)
	defer tick.Stop()
	for i := 0; time.Since(start) < 4*idle; i++ {
		<-tick.C
		active.Send(t, fmt.Sprintf("version %d\r\n", i))
		expectReply(t, active, 200, int32(i))
	}
	expectClosed(t, quiet, 2*time.Second)
	require.GreaterOrEqual(t, time.Since(start), idle)
	active.Send(t, "version 1000\r\n")
	expectReply(t, active, 200, 1000)
}

func TestStalledRequestIsClosedAfterTheTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.IdleTimeout = idle }})
	for _, tc := range []struct{ name, in string }{
		{"half a put line", "put stall 0 5 0"},
		{"half a get line", "get stall g 0 0 1024"},
		{"put line without its body", "put stall 0 5 0 -1 1\r\n"},
		{"half a put body", "put stall 0 5 0 -1 1\r\nhel"},
		{"half of a large body", "put stall 0 100000 0 -1 1\r\n" + strings.Repeat("x", 50000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := brokertest.Dial(t, b.Addr())
			start := time.Now()
			c.Send(t, tc.in)
			expectClosed(t, c, 3*time.Second)
			require.GreaterOrEqual(t, time.Since(start), idle-50*time.Millisecond, "closed before the stall timeout")
		})
	}
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("stall", 0, "fine", 1))
	expectReply(t, c, 200, 1)
	require.Equal(t, "0", statsValue(t, b.Addr(), "put_failed"), "no half-sent put was stored or counted")
}

// A client pipelining steadily always has its next request half-sent; as long
// as requests keep completing it is not stalled.
func TestSteadyPipelineIsNotAStall(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.IdleTimeout = idle }})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "version 0\r\nver")
	expectReply(t, c, 200, 0)
	tick := time.NewTicker(idle / 6)
	defer tick.Stop()
	start := time.Now()
	for i := 1; time.Since(start) < 4*idle; i++ {
		<-tick.C
		c.Send(t, fmt.Sprintf("sion %d\r\nver", i)) // completes one request, starts the next
		expectReply(t, c, 200, int32(i))
	}
	c.Send(t, "sion 9999\r\n")
	expectReply(t, c, 200, 9999)
}

// Without an idle timeout a half-received request is given the full stall
// timeout (30 s), not closed at the reaper's next tick.
func TestHalfSentRequestSurvivesWithoutIdleTimeout(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("half", 0, "warm", 1))
	expectReply(t, c, 200, 1)
	c.Send(t, "version")
	_, _, err := c.TryReadReply(1500 * time.Millisecond) // the reaper ticks every second
	require.ErrorIs(t, err, errTimeout, "the connection must stay open and silent")
	c.Send(t, " 2\r\n")
	expectReply(t, c, 200, 2)
}

// TestPutDeclaringMoreThanMaxMessageSizeIsRefusedAtOnce: the 500 comes as
// soon as the line arrives; the body is then read and thrown away and the
// connection goes on (MetaQ's Python, Ruby and .NET producers never recover
// from a closed one), up to MaxDiscardSize.
func TestPutDeclaringMoreThanMaxMessageSizeIsRefusedAtOnce(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) {
		o.MaxMessageSize = 1024
		o.MaxDiscardSize = 64 << 10
	}})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("big", 0, strings.Repeat("x", 1024), 1))
	expectReply(t, c, 200, 1)

	for i, line := range []string{"put big 0 1025 0 -1 2\r\n", "put big 0 1025 0 2\r\n", "sync big 0 1025 0 9 -1 2\r\n"} {
		c := brokertest.Dial(t, b.Addr())
		c.Send(t, line) // the body is not sent yet: the broker answers without waiting for it
		r := expectReply(t, c, 500, 2)
		require.Contains(t, string(r.body), "maximum message size")
		// The body follows in pieces and is thrown away; the connection stays.
		c.Send(t, strings.Repeat("y", 1000))
		c.Send(t, strings.Repeat("y", 25)+fmt.Sprintf("version %d\r\n", 3+i))
		expectReply(t, c, 200, int32(3+i))
		c.Send(t, putLine("big", 0, "after", 9))
		expectReply(t, c, 200, 9)
	}

	// A declaration over MaxDiscardSize is not read: reply, then close.
	c2 := brokertest.Dial(t, b.Addr())
	c2.Send(t, fmt.Sprintf("put big 0 %d 0 -1 5\r\n", 64<<10+1))
	r := expectReply(t, c2, 500, 5)
	require.Contains(t, string(r.body), "closed")
	expectClosed(t, c2, 10*time.Second)

	c.Send(t, "version 3\r\n")
	expectReply(t, c, 200, 3)
}

func TestOperatorClosesAndOpensAPartition(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("maint", 0, "before", 1))
	expectReply(t, c, 200, 1)

	b.ClosePartition("maint", 0)
	c.Send(t, putLine("maint", 0, "during", 2))
	r := expectReply(t, c, 403, 2)
	require.Contains(t, string(r.body), "closed")
	c.Send(t, "put maint 0 6 0 3\r\nlegacy")
	expectReply(t, c, 403, 3)
	c.Send(t, "get maint g 0 0 1024 4\r\n")
	expectReply(t, c, 403, 4)
	c.Send(t, "offset maint g 0 0 5\r\n")
	expectReply(t, c, 403, 5)
	c.Send(t, putLine("maint", 1, "other partition", 6)) // only partition 0 is closed
	expectReply(t, c, 200, 6)
	c.Send(t, "get maint g 1 0 1024 7\r\n")
	r = expectReply(t, c, 200, 7)
	require.True(t, r.value)

	b.OpenPartition("maint", 0)
	c.Send(t, putLine("maint", 0, "after", 8))
	expectReply(t, c, 200, 8)
	c.Send(t, "get maint g 0 0 1024 9\r\n")
	r = expectReply(t, c, 200, 9)
	var got []string
	for _, m := range messages(t, r.body) {
		got = append(got, string(m.Data))
	}
	require.Equal(t, []string{"before", "after"}, got, "nothing was stored while closed")
}

// With a tiny in-flight budget, a client that pipelines puts faster than they
// become durable gets 503 (retriable) for some; every 200 is stored.
func TestInflightBytesBackPressure(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) { o.MaxInflightBytes = 1 }})
	c := brokertest.Dial(t, b.Addr())
	const n = 300
	for i := 0; i < n; i++ { // one write each: many OnTraffic calls while fsyncs run
		c.Send(t, putLine("busy", 0, fmt.Sprintf("m%03d", i), i))
	}
	codes := map[int32]int{}
	for i := 0; i < n; i++ {
		r, closed, err := readOne(c, 5*time.Second)
		require.NoError(t, err)
		require.False(t, closed)
		codes[r.code]++
		if r.code == 503 {
			require.Contains(t, string(r.body), "unacknowledged")
		}
	}
	t.Logf("reply codes: %v", codes)
	require.Equal(t, n, codes[200]+codes[503])
	require.Positive(t, codes[200])
	c.Send(t, "get busy g 0 0 1048576 -1\r\n")
	r := expectReply(t, c, 200, -1)
	require.Len(t, messages(t, r.body), codes[200], "exactly the acknowledged puts are stored")
}
