package broker_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// reply is one decoded broker reply.
type reply struct {
	line   string
	value  bool  // a `value` reply (get data)
	code   int32 // result code; 200 for a value reply
	opaque int32
	body   []byte
}

func parseReply(line string, body []byte) (reply, error) {
	f := strings.Fields(line)
	r := reply{line: line, body: body}
	switch {
	case len(f) == 4 && f[0] == "result":
		c, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return r, fmt.Errorf("bad result line %q", line)
		}
		r.code, r.opaque = int32(c), int32(o)
	case len(f) == 3 && f[0] == "value":
		o, err := strconv.ParseInt(f[2], 10, 32)
		if err != nil {
			return r, fmt.Errorf("bad value line %q", line)
		}
		r.value, r.code, r.opaque = true, 200, int32(o)
	default:
		return r, fmt.Errorf("unexpected reply line %q", line)
	}
	return r, nil
}

// readOne reads one reply; closed is true when the broker closed the
// connection (EOF or reset) instead of replying.
func readOne(c *brokertest.Client, timeout time.Duration) (r reply, closed bool, err error) {
	line, body, err := c.TryReadReply(timeout)
	if err != nil {
		if isClosed(err) && line == "" {
			return r, true, nil
		}
		return r, false, err
	}
	r, err = parseReply(line, body)
	return r, false, err
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// expectReply reads one reply and checks its code (and opaque unless anyOpaque).
func expectReply(t testing.TB, c *brokertest.Client, code int32, opaque int32) reply {
	t.Helper()
	r, closed, err := readOne(c, 5*time.Second)
	require.NoError(t, err)
	require.False(t, closed, "connection closed, want a %d reply", code)
	require.Equal(t, code, r.code, "reply %q body %q", r.line, r.body)
	require.Equal(t, opaque, r.opaque, "reply %q", r.line)
	return r
}

// expectClosed checks that the broker closes the connection within timeout
// without sending anything more.
func expectClosed(t testing.TB, c *brokertest.Client, timeout time.Duration) {
	t.Helper()
	r, closed, err := readOne(c, timeout)
	require.NoError(t, err, "want the connection closed within %v", timeout)
	require.True(t, closed, "want the connection closed, got reply %q %q", r.line, r.body)
}

// putResult parses the body of a successful put reply.
func putResult(t testing.TB, r reply) (id int64, part int32, offset int64) {
	t.Helper()
	_, err := fmt.Sscanf(string(r.body), "%d %d %d", &id, &part, &offset)
	require.NoError(t, err, "put reply body %q", r.body)
	return id, part, offset
}

// messages decodes the payloads of a get reply's message set.
func messages(t testing.TB, body []byte) []protocol.Message {
	t.Helper()
	var out []protocol.Message
	it := protocol.NewMessageIterator(body)
	for it.Next() {
		m := it.Message()
		m.Data = append([]byte(nil), m.Data...)
		out = append(out, m)
	}
	require.NoError(t, it.Err())
	return out
}

// topicsOnly returns a Topic function accepting exactly the given topics with
// the given partition counts.
func topicsOnly(parts map[string]int) func(string) (broker.TopicConfig, bool) {
	return func(topic string) (broker.TopicConfig, bool) {
		n, ok := parts[topic]
		return broker.TopicConfig{NumPartitions: n, AcceptPublish: true, AcceptSubscribe: true}, ok
	}
}

// canary is a well-behaved client doing put+get round trips on its own
// connection while a test abuses the broker on others. It never calls t
// methods from its goroutine; finish reports.
type canary struct {
	addr, topic string
	stop, done  chan struct{}

	mu     sync.Mutex // guards the fields below
	rounds int
	err    error
	maxLat time.Duration
}

func startCanary(t testing.TB, addr, topic string) *canary {
	t.Helper()
	c := &canary{addr: addr, topic: topic, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	go c.run(conn)
	t.Cleanup(func() { c.halt() })
	return c
}

func (c *canary) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *canary) run(conn net.Conn) {
	defer close(c.done)
	defer conn.Close()
	cl := &brokertest.Client{Conn: conn, R: bufio.NewReader(conn)}
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			return
		default:
		}
		start := time.Now()
		if err := c.round(cl, i); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("round %d: %w", i, err)
			c.mu.Unlock()
			return
		}
		lat := time.Since(start)
		c.mu.Lock()
		c.rounds++
		c.maxLat = max(c.maxLat, lat)
		c.mu.Unlock()
	}
}

func (c *canary) round(cl *brokertest.Client, i int) error {
	data := fmt.Sprintf("canary-%d", i)
	_ = cl.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.Write([]byte(putLine(c.topic, 0, data, i))); err != nil {
		return err
	}
	r, closed, err := readOne(cl, 2*time.Second)
	if err != nil || closed {
		return fmt.Errorf("put: closed=%v err=%v", closed, err)
	}
	if r.code != 200 || r.opaque != int32(i) {
		return fmt.Errorf("put: reply %q %q", r.line, r.body)
	}
	var id, off int64
	var part int32
	if _, err := fmt.Sscanf(string(r.body), "%d %d %d", &id, &part, &off); err != nil {
		return fmt.Errorf("put reply body %q: %w", r.body, err)
	}
	if _, err := cl.Write([]byte(fmt.Sprintf("get %s canary 0 %d 4096 %d\r\n", c.topic, off, -i-1))); err != nil {
		return err
	}
	r, closed, err = readOne(cl, 2*time.Second)
	if err != nil || closed {
		return fmt.Errorf("get: closed=%v err=%v", closed, err)
	}
	if !r.value || r.opaque != int32(-i-1) {
		return fmt.Errorf("get at %d: reply %q %q", off, r.line, r.body)
	}
	it := protocol.NewMessageIterator(r.body)
	if !it.Next() || string(it.Message().Data) != data || it.Message().ID != id {
		return fmt.Errorf("get at %d: first message is not %q (err %v)", off, data, it.Err())
	}
	return nil
}

// finish stops the canary and fails the test if any round failed.
func (c *canary) finish(t testing.TB) {
	t.Helper()
	c.halt()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NoError(t, c.err, "the well-behaved client must not notice the abuse")
	require.Positive(t, c.rounds, "the well-behaved client made no round trip")
	t.Logf("well-behaved client: %d put+get round trips, slowest %v", c.rounds, c.maxLat)
}

// statsValue returns one key of the broker-wide `stats` on a fresh connection.
func statsValue(t testing.TB, addr, key string) string {
	t.Helper()
	c := brokertest.Dial(t, addr)
	defer c.Close()
	c.Send(t, "stats  1\r\n")
	r := expectReply(t, c, 200, 1)
	lines, err := protocol.ParseStatsBody(r.body)
	require.NoError(t, err)
	for _, l := range lines {
		if l.Key == key {
			return l.Value
		}
	}
	t.Fatalf("stats has no %s", key)
	return ""
}

// admitted reports whether a new connection is admitted and answered.
func admitted(t testing.TB, addr string) bool {
	c := brokertest.Dial(t, addr)
	defer c.Close()
	c.Send(t, "version 99\r\n")
	r, closed, err := readOne(c, time.Second)
	return err == nil && !closed && r.code == 200 && r.opaque == 99
}

// errTimeout is what a read past its deadline returns.
var errTimeout = os.ErrDeadlineExceeded
