package zkwire

import (
	"net"
	"time"
)

// TrackingDialer is a go-zookeeper Dialer (pass Dial to zk.WithDialer) that
// observes the connections it makes: OnRead is called after every successful
// read from the server (the client pings at a third of the session timeout, so
// this is "the time we last heard from the server"), OnConnect with each
// connect handshake's response (session id and password). Both must be cheap
// and must not block.
type TrackingDialer struct {
	OnRead    func()
	OnConnect func(ConnectResponse)
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
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.d.OnRead != nil {
			c.d.OnRead()
		}
		if !c.handshake {
			c.scan.Feed(p[:n], c.first)
		}
	}
	return n, err
}

func (c *trackedConn) first(body []byte) {
	if c.handshake {
		return
	}
	c.handshake = true
	if r, err := ParseConnectResponse(body); err == nil && c.d.OnConnect != nil {
		c.d.OnConnect(r)
	}
}
