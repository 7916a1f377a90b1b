package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/metaq-go/metaq/protocol"
)

// server is the seam between gnet and the broker: only this file and conn.go
// know gnet. Callbacks run on gnet's event loops and must never block.
type server struct {
	gnet.BuiltinEventEngine
	b    *Broker
	eng  gnet.Engine
	addr string
	port int

	front         *tlsFront // TLS listener on ListenAddr relaying to gnet; nil without TLS
	plaintextAddr string    // the extra plaintext listener's address once bound (TLS only)

	booted chan struct{}
	runErr chan error

	connsMu sync.Mutex // guards conns and perIP
	conns   map[*conn]struct{}
	perIP   map[string]int // open connections per client IP

	// buffered is the unsent output over all connections: get replies
	// reserved or being read plus gnet's outbound buffers as last seen.
	buffered    atomic.Int64
	pausedConns armCounter   // connections not decoding until output drains
	outConns    armCounter   // connections whose outbound buffer was last seen non-empty
	peakConn    atomic.Int64 // highest one-connection buffered bytes seen

	// The reaper and the resumer sleep without a timer while they have
	// nothing to look at (no connection; nothing paused or buffered), so
	// an idle broker is not woken 100 times a second: resumeArm and
	// reapArm (one slot each) wake them again.
	resumeArm   chan struct{}
	reapArm     chan struct{}
	resumeTicks atomic.Int64 // the resumer's looks at the connections (tests count them)
	reapTicks   atomic.Int64 // the reaper's looks (tests count them)
	resumerIdle atomic.Bool  // the resumer sleeps until armed
	reaperIdle  atomic.Bool  // the reaper sleeps until armed

	stopTick chan struct{}
	tickWG   sync.WaitGroup
	stopOnce sync.Once
}

func startServer(b *Broker) (*server, error) {
	s := &server{b: b, booted: make(chan struct{}), runErr: make(chan error, 1), conns: map[*conn]struct{}{},
		perIP: map[string]int{}, stopTick: make(chan struct{}), resumeArm: make(chan struct{}, 1), reapArm: make(chan struct{}, 1)}
	s.pausedConns.arm, s.outConns.arm = s.resumeArm, s.resumeArm
	b.srv = s // before any callback can read it
	addrs := []string{"tcp://" + b.opts.ListenAddr}
	if b.opts.TLS != nil {
		front, err := newTLSFront(s)
		if err != nil {
			b.srv = nil
			return nil, err
		}
		s.front = front
		addrs = []string{"unix://" + front.sock}
		if b.opts.PlaintextAddr != "" {
			addrs = append(addrs, "tcp://"+b.opts.PlaintextAddr)
		}
	}
	go func() {
		s.runErr <- gnet.Rotate(s, addrs,
			gnet.WithMulticore(b.opts.Multicore),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReuseAddr(true), // a restarted broker rebinds its port while old connections are in TIME_WAIT
			gnet.WithReadBufferCap(256<<10),
			gnet.WithWriteBufferCap(256<<10),
			gnet.WithLogger(gnetLogger{b.log}))
	}()
	select {
	case <-s.booted:
	case err := <-s.runErr:
		b.srv = nil
		s.front.stop()
		return nil, fmt.Errorf("broker: listen on %s: %w (is another broker using the port? change serverPort or plaintextPort)", strings.Join(addrs, ", "), err)
	case <-time.After(30 * time.Second):
		b.srv = nil
		s.front.stop()
		return nil, fmt.Errorf("broker: gnet engine on %s did not start within 30s", strings.Join(addrs, ", "))
	}
	s.front.start()
	s.tickWG.Add(2)
	go s.reaper()
	go s.resumer()
	return s, nil
}

// OnBoot learns the real listening address (port 0 picks one): gnet's TCP
// listener, or with TLS the front's listener (gnet then listens on the
// relay's unix socket and, optionally, the plaintext port).
func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	if s.front == nil {
		fd, err := eng.Dup()
		s.addr, s.port = boundAddr(s.b.opts.ListenAddr, fd, err)
	} else {
		host, _, _ := net.SplitHostPort(s.b.opts.ListenAddr)
		s.addr, s.port = boundAddr(net.JoinHostPort(host, strconv.Itoa(s.front.ln.Addr().(*net.TCPAddr).Port)), -1, nil)
		if pa := s.b.opts.PlaintextAddr; pa != "" {
			fd, err := eng.DupListener("tcp", pa)
			s.plaintextAddr, _ = boundAddr(pa, fd, err)
		}
	}
	s.b.listenAddr.Store(s.addr)
	s.b.listenPort.Store(int32(s.port))
	close(s.booted)
	return gnet.None
}

// boundAddr is the address a listener on addr got: the port of the
// duplicated listener fd when there is one (which it closes), else
// addr's port; an empty host means every interface.
func boundAddr(addr string, fd int, dupErr error) (string, int) {
	host, port, _ := net.SplitHostPort(addr)
	if dupErr == nil && fd >= 0 {
		if sa, err := unix.Getsockname(fd); err == nil {
			switch a := sa.(type) {
			case *unix.SockaddrInet4:
				port = strconv.Itoa(a.Port)
			case *unix.SockaddrInet6:
				port = strconv.Itoa(a.Port)
			}
		}
		unix.Close(fd)
	}
	p, _ := strconv.Atoi(port)
	if host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port), p
}

// OnOpen admits a connection unless the broker is stopping or full.
func (s *server) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	st := &s.b.stats.c
	if s.b.stopping.Load() {
		return protocol.AppendResultString(nil, protocol.CodeUnavailable, 0, "broker is shutting down; use another broker"), gnet.Close
	}
	if n := st.currConns.Add(1); s.b.opts.MaxConnections > 0 && n > int64(s.b.opts.MaxConnections) {
		st.currConns.Add(-1)
		s.b.log.Warn("connection refused: too many connections", "remote", gc.RemoteAddr().String(), "limit", s.b.opts.MaxConnections)
		return protocol.AppendResultString(nil, protocol.CodeUnavailable, 0,
			fmt.Sprintf("too many connections (limit %d): retry later or raise maxConnections", s.b.opts.MaxConnections)), gnet.Close
	}
	if _, relayed := gc.LocalAddr().(*net.UnixAddr); relayed {
		// From the TLS front: the client's address arrives in the
		// preamble, and the per-IP limit is checked then (relayHello).
		cn := newConn(s, gc, "")
		cn.relayPending = true
		s.connsMu.Lock()
		s.addConnLocked(cn)
		s.connsMu.Unlock()
		st.totalConns.Add(1)
		gc.SetContext(cn)
		return nil, gnet.None
	}
	cn := newConn(s, gc, remoteIP(gc.RemoteAddr()))
	if refusal := s.admitIP(cn); refusal != nil {
		st.currConns.Add(-1)
		return refusal, gnet.Close
	}
	st.totalConns.Add(1)
	gc.SetContext(cn)
	return nil, gnet.None
}

// admitIP counts cn against maxConnectionsPerIp and tracks it, or returns
// the refusal to send before closing it.
func (s *server) admitIP(cn *conn) []byte {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if !s.countIPLocked(cn.ip, cn.remote) {
		return protocol.AppendResultString(nil, protocol.CodeUnavailable, 0,
			fmt.Sprintf("too many connections from %s (limit %d): close idle ones, or raise maxConnectionsPerIp", cn.ip, s.b.opts.MaxConnectionsPerIP))
	}
	cn.ipCounted = true
	s.addConnLocked(cn)
	return nil
}

// countIPLocked counts one more connection from ip against
// maxConnectionsPerIp (> 0; otherwise unlimited), or logs the refusal and
// returns false. Plaintext connections are counted by admitIP, TLS ones
// by the TLS front at accept, before the handshake (their relayed engine
// connections are not counted again). uncountIPLocked undoes it. Caller
// holds connsMu.
func (s *server) countIPLocked(ip, remote string) bool {
	if limit := s.b.opts.MaxConnectionsPerIP; limit > 0 && s.perIP[ip] >= limit {
		s.b.log.Warn("connection refused: too many connections from one address", "remote", remote, "limit", limit)
		return false
	}
	s.perIP[ip]++
	return true
}

// uncountIPLocked releases a connection counted by countIPLocked. Caller
// holds connsMu.
func (s *server) uncountIPLocked(ip string) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// addConnLocked tracks cn; the first connection arms the reaper. Caller
// holds connsMu.
func (s *server) addConnLocked(cn *conn) {
	s.conns[cn] = struct{}{}
	if len(s.conns) == 1 {
		signal(s.reapArm)
	}
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// OnClose forgets the connection and rolls back its local transactions.
func (s *server) OnClose(gc gnet.Conn, _ error) gnet.Action {
	cn, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	cn.closed.Store(true)
	if cn.relayID != 0 {
		s.front.closeRelay(cn.relayID) // the client's TCP connection closes with this one
	}
	if cn.replica != nil {
		cn.replica.detach()
	}
	cn.dropReady()
	cn.setPaused(false)
	if out := cn.lastOut.Swap(0); out != 0 {
		s.buffered.Add(-out)
		s.outConns.Add(-1)
	}
	s.b.stats.c.currConns.Add(-1)
	s.connsMu.Lock()
	delete(s.conns, cn)
	if cn.ipCounted {
		s.uncountIPLocked(cn.ip)
	}
	s.connsMu.Unlock()
	if s.b.tx != nil {
		s.b.tx.connClosed(cn) // ours: roll back the connection's local transactions
	}
	return gnet.None
}

// OnTraffic decodes and handles every complete request buffered.
func (s *server) OnTraffic(gc gnet.Conn) gnet.Action {
	cn, ok := gc.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	return cn.onTraffic()
}

// reaper closes idle connections and connections stuck in a half-sent
// request. It ticks while there are connections and sleeps without a timer
// while there are none (OnOpen arms it).
func (s *server) reaper() {
	defer s.tickWG.Done()
	idle := s.b.opts.IdleTimeout
	period := min(time.Second, max(stallTimeout(idle, s.b.opts.PartialRequestTimeout)/4, 10*time.Millisecond))
	if idle > 0 && idle/4 < period {
		period = max(idle/4, 10*time.Millisecond)
	}
	sleepyTicker(s.stopTick, period, s.reapArm, &s.reaperIdle, func(now time.Time) bool {
		s.reapTicks.Add(1)
		return s.reap(now.UnixNano(), idle)
	})
}

// stallTimeout is how long a request may stay half-sent: the partial
// request timeout, or the idle timeout when that is shorter. (Without an
// idle timeout it must not shrink to nothing: min(partial, 0) closed every
// connection whose request straddled two reads at the next tick.)
func stallTimeout(idle, partial time.Duration) time.Duration {
	if idle <= 0 {
		return partial
	}
	return min(partial, max(idle, 10*time.Millisecond))
}

// resumeTick is how often paused connections are looked at again: gnet
// reports no event when its outbound buffer drains to a slow reader.
const resumeTick = 10 * time.Millisecond

// resumer wakes paused connections, and those whose outbound buffer was
// last seen non-empty so that the accounting does not stay stale (gnet
// reports no event when it drains), until the server stops. While no
// connection is paused or buffered it sleeps: the counters arm it when
// they rise from zero.
func (s *server) resumer() {
	defer s.tickWG.Done()
	var wake []*conn
	sleepyTicker(s.stopTick, resumeTick, s.resumeArm, &s.resumerIdle, func(time.Time) bool {
		s.resumeTicks.Add(1)
		if s.pausedConns.Load() == 0 && s.outConns.Load() == 0 {
			return false
		}
		s.connsMu.Lock()
		for cn := range s.conns {
			if cn.paused.Load() || cn.lastOut.Load() > 0 {
				wake = append(wake, cn)
			}
		}
		s.connsMu.Unlock()
		for i, cn := range wake {
			cn.wake()
			wake[i] = nil
		}
		wake = wake[:0]
		return true
	})
}

// notePeak records the highest one-connection unsent output seen.
func (s *server) notePeak(v int64) {
	for {
		p := s.peakConn.Load()
		if v <= p || s.peakConn.CompareAndSwap(p, v) {
			return
		}
	}
}

// handlerPanic reports a request handler that panicked: the broker keeps
// serving, the connection that sent the request is closed.
func (s *server) handlerPanic(cn *conn, v any, stack []byte) {
	s.b.stats.c.handlerPanics.Add(1)
	s.b.log.Error("request handler panicked; closing the connection", "remote", cn.remote, "panic", fmt.Sprint(v), "stack", string(stack))
	_ = cn.gc.Close()
}

// reap closes the idle and stalled connections; more reports whether
// there were connections to look at.
func (s *server) reap(now int64, idle time.Duration) (more bool) {
	stall := int64(stallTimeout(idle, s.b.opts.PartialRequestTimeout))
	s.connsMu.Lock()
	more = len(s.conns) > 0
	var victims []*conn
	for cn := range s.conns {
		last, partial := cn.lastActive.Load(), cn.partialSince.Load()
		switch {
		case idle > 0 && now-last > int64(idle) && cn.inflight.Load() == 0:
			victims = append(victims, cn)
		case partial != 0 && now-partial > stall:
			victims = append(victims, cn)
		}
	}
	s.connsMu.Unlock()
	for _, cn := range victims {
		s.b.log.Info("closing idle or stalled connection", "remote", cn.remote)
		_ = cn.gc.Close()
	}
	return more
}

// stop closes every connection and stops the engine.
func (s *server) stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.front.stop() // no new TLS connections; the relays end as gnet closes their side
		close(s.stopTick)
		s.tickWG.Wait()
		s.connsMu.Lock()
		for cn := range s.conns {
			_ = cn.gc.Close()
		}
		s.connsMu.Unlock()
		err = s.eng.Stop(ctx)
		select {
		case rerr := <-s.runErr:
			if rerr != nil && !errors.Is(rerr, context.Canceled) {
				err = errors.Join(err, rerr)
			}
		case <-ctx.Done():
		}
	})
	return err
}

// gnetLogger sends gnet's own log lines to slog at debug level (errors at error level).
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
