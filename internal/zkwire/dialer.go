package zkwire

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// TrackingDialer is a go-zookeeper Dialer (pass Dial to zk.WithDialer) that
// observes the connections it makes: OnRead is called after every successful
// read from the server (the client pings at a third of the session timeout, so
// this is "the time we last heard from the server"), OnConnect with each
// connect handshake's response (session id and password), and OnAnswered with
// the send time of each request the server answered on a live session. All
// must be cheap and must not block.
//
// OnAnswered is the proof of liveness a self-fencing client needs: the server
// renews a session whenever it receives a packet, so an answer to a request
// sent at t proves the session could not expire before t + timeout — whenever
// the answer is read. (The read time proves nothing of the kind: an answer
// that waited in a socket buffer while the process was stopped, or in a slow
// network, is read long after the session may have expired.) Requests are
// answered in order, so the k-th answer belongs to the k-th request sent;
// watch notifications answer nothing. The connect handshake counts only when
// it resumed the session it asked for; answers with a session error
// (expired, moved, auth failed) do not count.
type TrackingDialer struct {
	OnRead     func()
	OnConnect  func(ConnectResponse)
	OnAnswered func(sent time.Time)
}

// Dial implements the go-zookeeper Dialer signature.
func (d *TrackingDialer) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, d: d}, nil
}

type trackedConn struct {
	net.Conn
	d         *TrackingDialer
	scan      FrameScanner
	handshake bool // the connect response has been seen

	mu       sync.Mutex // guards the fields below (Write and Read run on different goroutines)
	out      FrameScanner
	sent     []time.Time // send times of the requests not answered yet, oldest first
	asked    int64       // session id the connect request asked to resume (0: a new session)
	wroteReq bool        // the connect request has been written
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.d.OnAnswered != nil {
		now := time.Now() // before the bytes can reach the server
		c.mu.Lock()
		c.out.Feed(p, func(body []byte) {
			if !c.wroteReq {
				c.wroteReq = true
				if len(body) >= 24 { // protocol version, last zxid, timeout, session id
					c.asked = int64(binary.BigEndian.Uint64(body[16:]))
				}
			}
			c.sent = append(c.sent, now)
		})
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.d.OnRead != nil {
			c.d.OnRead()
		}
		if !c.handshake || c.d.OnAnswered != nil {
			c.scan.Feed(p[:n], c.frame)
		}
	}
	return n, err
}

func (c *trackedConn) frame(body []byte) {
	if !c.handshake {
		c.handshake = true
		r, err := ParseConnectResponse(body)
		if err == nil && c.d.OnConnect != nil {
			c.d.OnConnect(r)
		}
		c.mu.Lock()
		ok := err == nil && r.SessionID != 0 && r.SessionID == c.asked && r.TimeoutMs > 0
		c.answered(ok)
		c.mu.Unlock()
		return
	}
	if c.d.OnAnswered == nil {
		return
	}
	xid, _, code, err := ReplyHeader(body)
	if err != nil || xid == XidWatchEvent {
		return
	}
	c.mu.Lock()
	c.answered(liveAnswer(code))
	c.mu.Unlock()
}

// answered pops the oldest outstanding send time and reports it if ok.
// Called with c.mu held.
func (c *trackedConn) answered(ok bool) {
	if len(c.sent) == 0 {
		return
	}
	at := c.sent[0]
	c.sent = c.sent[1:]
	if ok && c.d.OnAnswered != nil {
		c.d.OnAnswered(at)
	}
}

// liveAnswer reports whether a reply code proves the session was alive when
// the server processed the request: success, or an error of the operation
// itself (no node, node exists, bad version, not empty, no auth, ...), not
// one of the session or the server.
func liveAnswer(code int32) bool {
	switch code {
	case 0, -101, -102, -103, -108, -110, -111, -121: // ok, NoNode, NoAuth, BadVersion, NoChildrenForEphemerals, NodeExists, NotEmpty, NoWatcher
		return true
	}
	return false
}
