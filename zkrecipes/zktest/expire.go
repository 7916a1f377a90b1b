package zktest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/internal/zkwire"
)

// Credentials are what a second client must present to take over a session.
type Credentials struct {
	SessionID int64
	Password  []byte
}

// Recorder remembers the session id and password of the latest connect
// handshake a go-zookeeper client made through it. Pass Recorder.Dial to
// zk.WithDialer.
type Recorder struct {
	mu    sync.Mutex // guards creds
	creds Credentials
	d     *zkwire.TrackingDialer
	once  sync.Once
}

// Dial implements zk.Dialer.
func (r *Recorder) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	r.once.Do(func() {
		r.d = &zkwire.TrackingDialer{OnConnect: func(resp zkwire.ConnectResponse) {
			if resp.SessionID == 0 {
				return
			}
			r.mu.Lock()
			r.creds = Credentials{SessionID: resp.SessionID, Password: resp.Password}
			r.mu.Unlock()
		}}
	})
	return r.d.Dial(network, address, timeout)
}

// Credentials returns the latest session credentials seen.
func (r *Recorder) Credentials() Credentials {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Credentials{SessionID: r.creds.SessionID, Password: append([]byte(nil), r.creds.Password...)}
}

// ExpireSession expires a session for real, the way a network partition
// longer than the session timeout would: a second connection presents the
// session id and password to the server at addr and then closes the session.
// The owner of the session sees StateExpired when it next talks to the server.
func ExpireSession(ctx context.Context, addr string, creds Credentials) error {
	if creds.SessionID == 0 {
		return fmt.Errorf("zktest: no session to expire (credentials not recorded yet)")
	}
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("zktest: expire session: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if _, err := c.Write(zkwire.AppendConnectRequest(nil, creds.SessionID, creds.Password, 30000)); err != nil {
		return fmt.Errorf("zktest: expire session: %w", err)
	}
	frame, err := zkwire.ReadFrame(c)
	if err != nil {
		return fmt.Errorf("zktest: expire session: read connect response: %w", err)
	}
	resp, err := zkwire.ParseConnectResponse(frame[4:])
	if err != nil {
		return err
	}
	if resp.SessionID != creds.SessionID {
		return nil // already expired: nothing to do
	}
	if _, err := c.Write(zkwire.AppendRequestHeaderOnly(nil, 1, zkwire.OpCloseSession)); err != nil {
		return fmt.Errorf("zktest: expire session: send close: %w", err)
	}
	for {
		frame, err := zkwire.ReadFrame(c)
		if err != nil {
			return nil // the server closes the connection after closing the session
		}
		if xid, _, _, herr := zkwire.ReplyHeader(frame[4:]); herr == nil && xid == 1 {
			return nil
		}
	}
}

// Client is a raw go-zookeeper connection made for a test, with the session
// credentials it was given and a count of the events it received.
type Client struct {
	*zk.Conn
	Recorder *Recorder
	Events   *EventCounter
}

// Connect opens a go-zookeeper connection to servers, waits for its session
// and closes it at the end of the test.
func Connect(tb testing.TB, servers []string, sessionTimeout time.Duration) *Client {
	tb.Helper()
	rec := &Recorder{}
	ev := &EventCounter{}
	conn, _, err := zk.Connect(servers, sessionTimeout, zk.WithDialer(rec.Dial),
		zk.WithLogger(QuietLogger{}), zk.WithEventCallback(ev.Observe))
	if err != nil {
		tb.Fatalf("zktest: connect %v: %v", servers, err)
	}
	tb.Cleanup(conn.Close)
	deadline := time.Now().Add(20 * time.Second)
	for conn.State() != zk.StateHasSession {
		if time.Now().After(deadline) {
			tb.Fatalf("zktest: no session with %v after 20s (state %v)", servers, conn.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Client{Conn: conn, Recorder: rec, Events: ev}
}

// Expire expires this client's session through server addr.
func (c *Client) Expire(ctx context.Context, addr string) error {
	return ExpireSession(ctx, addr, c.Recorder.Credentials())
}

// EventCounter counts the events a client receives, by type.
type EventCounter struct {
	mu     sync.Mutex // guards counts
	counts map[zk.EventType]int
	paths  map[string]int
}

// Observe is a zk.EventCallback.
func (e *EventCounter) Observe(ev zk.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts, e.paths = map[zk.EventType]int{}, map[string]int{}
	}
	e.counts[ev.Type]++
	if ev.Type != zk.EventSession {
		e.paths[ev.Path]++
	}
}

// Watches returns how many watch notifications (non-session events) arrived.
func (e *EventCounter) Watches() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for t, c := range e.counts {
		if t != zk.EventSession && t != zk.EventNotWatching {
			n += c
		}
	}
	return n
}

// Count returns how many events of type t arrived.
func (e *EventCounter) Count(t zk.EventType) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[t]
}

// QuietLogger discards go-zookeeper's log lines.
type QuietLogger struct{}

// Printf implements zk.Logger.
func (QuietLogger) Printf(string, ...any) {}
