// Package brokertest starts real brokers for tests: on 127.0.0.1 port 0, with
// a temp data directory, optionally registered in a test ZooKeeper.
package brokertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
)

// Options tune a test broker; zero values give a sensible broker accepting
// every topic with Partitions partitions.
type Options struct {
	BrokerID   int
	Partitions int    // per topic; default 4
	ZK         string // ZooKeeper address; "" = no ZooKeeper
	ZKRoot     string
	DataDir    string // "" = t.TempDir()
	// Modify edits the options before New.
	Modify func(*broker.Options)
}

// Start starts a broker and shuts it down at cleanup.
func Start(tb testing.TB, o Options) *broker.Broker {
	tb.Helper()
	b, err := New(tb, o)
	if err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		tb.Fatalf("brokertest: start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	return b
}

// New builds (but does not start) a test broker.
func New(tb testing.TB, o Options) (*broker.Broker, error) {
	tb.Helper()
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.DataDir == "" {
		o.DataDir = tb.TempDir()
	}
	opts := broker.Options{
		BrokerID:   o.BrokerID,
		ListenAddr: "127.0.0.1:0",
		HostName:   "127.0.0.1",
		DataDir:    o.DataDir,
		Topic: func(topic string) (broker.TopicConfig, bool) {
			return broker.TopicConfig{NumPartitions: o.Partitions, AcceptPublish: true, AcceptSubscribe: true}, true
		},
		ConfigRaw: []byte(fmt.Sprintf("[system]\nbrokerId=%d\n", o.BrokerID)),
	}
	if o.ZK != "" {
		opts.ZK = broker.ZKOptions{Enable: true, Servers: []string{o.ZK}, Root: o.ZKRoot, SessionTimeout: 4 * time.Second}
	}
	if o.Modify != nil {
		o.Modify(&opts)
	}
	return broker.New(opts)
}

// Client is a raw text-protocol connection for conversation tests.
type Client struct {
	net.Conn
	R *bufio.Reader
}

// Dial connects to a broker.
func Dial(tb testing.TB, addr string) *Client {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("brokertest: dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	return &Client{Conn: c, R: bufio.NewReader(c)}
}

// Send writes raw bytes.
func (c *Client) Send(tb testing.TB, s string) {
	tb.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		tb.Fatalf("brokertest: write: %v", err)
	}
}

// ReadReply reads one reply line and its body: (line without CRLF, body).
func (c *Client) ReadReply(tb testing.TB) (string, []byte) {
	tb.Helper()
	line, body, err := c.TryReadReply(5 * time.Second)
	if err != nil {
		tb.Fatalf("brokertest: read reply: %v", err)
	}
	return line, body
}

// TryReadReply reads one reply or returns the error (io.EOF when the broker closed).
func (c *Client) TryReadReply(timeout time.Duration) (string, []byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.R.ReadString('\n')
	if err != nil {
		return line, nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	f := strings.Fields(line)
	var n int
	switch {
	case len(f) == 4 && f[0] == "result":
		fmt.Sscan(f[2], &n)
	case len(f) == 3 && f[0] == "value":
		fmt.Sscan(f[1], &n)
	default:
		return line, nil, fmt.Errorf("unexpected reply line %q", line)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.R, body); err != nil {
		return line, nil, err
	}
	return line, body, nil
}
