package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/protocol"
)

// TLS on the client port (docs/security-tls.md). gnet has no TLS, so with
// Options.TLS the broker owns the TCP listener on ListenAddr: a tlsFront
// goroutine accepts, runs the handshake (bounded by TLSHandshakeTimeout)
// and then relays the decrypted byte stream to the gnet engine over a unix
// socket in a private (0700) directory. The relay's first line, the
// preamble, carries a per-process secret, the client's address and the
// verified client certificate's CommonName; conn.relayHello checks it
// before any request is decoded, so every limit, log line and principal
// of the connection is the real client's. The connection limits that
// protect the handshake itself (maxConnections, maxConnectionsPerIp) are
// applied at accept, before it. The relay does no per-message work: two
// goroutines copy with 64 KiB buffers.

const (
	relayMagic      = "METAQ-RELAY"
	relayHelloMax   = 1024     // the preamble line's length limit
	relayBufSize    = 64 << 10 // copy buffer per direction
	relaySocket     = "relay.sock"
	relayCloseGrace = 5 * time.Second // see closeRelay
	defaultHSLimit  = 10 * time.Second
)

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// tlsFront accepts TLS connections and relays them to the gnet engine.
type tlsFront struct {
	b      *Broker
	s      *server // counts the client addresses (maxConnectionsPerIp)
	ln     net.Listener
	cfg    *tls.Config
	dir    string // private directory holding the unix socket
	sock   string
	secret string // hex; proves a unix connection comes from this front

	active atomic.Int64 // connections being handshaken or relayed

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // raw and unix sides of live relays
	raws   map[uint64]net.Conn   // client side of each relay by id (relayHello's id)
	nextID uint64
	closed bool
}

// newTLSFront binds ListenAddr and prepares the relay socket's directory;
// start begins accepting once gnet listens on the socket.
func newTLSFront(s *server) (*tlsFront, error) {
	b := s.b
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("broker: TLS relay secret: %w", err)
	}
	dir, err := os.MkdirTemp("", "metaq-relay-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("broker: TLS relay: create a private socket directory: %w (check TMPDIR)", err)
	}
	ln, err := net.Listen("tcp", b.opts.ListenAddr)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("broker: listen on %s: %w (is another broker using the port? change serverPort)", b.opts.ListenAddr, err)
	}
	return &tlsFront{b: b, s: s, ln: ln, cfg: b.opts.TLS.Config(), dir: dir, sock: filepath.Join(dir, relaySocket),
		secret: hex.EncodeToString(secret), conns: map[net.Conn]struct{}{}, raws: map[uint64]net.Conn{}}, nil
}

func (f *tlsFront) start() {
	if f == nil {
		return
	}
	f.wg.Add(1)
	go f.acceptLoop()
}

// stop closes the listener and every relay and waits for their goroutines.
func (f *tlsFront) stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	_ = f.ln.Close()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	_ = os.RemoveAll(f.dir)
}

// track registers c for stop; false when the front is stopping.
func (f *tlsFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *tlsFront) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	_ = c.Close()
}

func (f *tlsFront) acceptLoop() {
	defer f.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.b.log.Warn("TLS listener: accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-f.b.stopCh:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		// The engine applies maxConnections after the handshake; this
		// bounds the handshakes and relays themselves.
		if limit := f.b.opts.MaxConnections; limit > 0 && f.active.Load() >= int64(limit) {
			f.b.log.Warn("TLS connection refused: too many connections", "remote", c.RemoteAddr().String(), "limit", limit)
			_ = c.Close()
			continue
		}
		// maxConnectionsPerIp too, counted until serve ends (with the
		// client's connection); the engine does not count relays again.
		ip := remoteIP(c.RemoteAddr())
		if !f.countIP(ip, c.RemoteAddr().String()) {
			_ = c.Close()
			continue
		}
		if !f.track(c) {
			f.uncountIP(ip)
			_ = c.Close()
			return
		}
		f.active.Add(1)
		f.wg.Add(1)
		go f.serve(c, ip)
	}
}

// countIP counts a client connection from ip against maxConnectionsPerIp
// (server.countIPLocked); false, logged, when the limit is reached.
func (f *tlsFront) countIP(ip, remote string) bool {
	f.s.connsMu.Lock()
	defer f.s.connsMu.Unlock()
	return f.s.countIPLocked(ip, remote)
}

func (f *tlsFront) uncountIP(ip string) {
	f.s.connsMu.Lock()
	f.s.uncountIPLocked(ip)
	f.s.connsMu.Unlock()
}

// serve runs one connection counted against ip by acceptLoop: handshake,
// preamble, relay.
func (f *tlsFront) serve(raw net.Conn, ip string) {
	defer f.wg.Done()
	defer f.active.Add(-1) // added by acceptLoop
	defer f.uncountIP(ip)  // before active: TLSRelays() == 0 means released
	defer f.untrack(raw)
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	timeout := f.b.opts.TLSHandshakeTimeout
	tc := tls.Server(raw, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		f.handshakeFailed(raw, err, timeout)
		return
	}
	principal := tlsconf.PeerCommonName(tc.ConnectionState())
	uc, err := net.Dial("unix", f.sock)
	if err != nil {
		f.b.log.Warn("TLS relay: cannot reach the broker's event loop; closing the connection", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	if !f.track(uc) {
		_ = uc.Close()
		return
	}
	defer f.untrack(uc)
	id := f.register(raw)
	defer f.unregister(id)
	if _, err := uc.Write(relayHello(f.secret, id, raw.RemoteAddr().String(), principal)); err != nil {
		return
	}
	done := make(chan struct{})
	go func() { // broker → client
		defer close(done)
		relayCopy(tc, uc)
		_ = raw.Close() // the broker closed: end the client's side too
	}()
	relayCopy(uc, tc) // client → broker
	_ = uc.Close()
	<-done
}

// register numbers a relay's client connection so that the engine can
// close it (closeRelay) when it closes the relayed connection.
func (f *tlsFront) register(raw net.Conn) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.raws[f.nextID] = raw
	return f.nextID
}

func (f *tlsFront) unregister(id uint64) {
	f.mu.Lock()
	delete(f.raws, id)
	f.mu.Unlock()
}

// closeRelay bounds the life of relay id once the engine closed its side
// (from OnClose): the relay still forwards what the engine wrote last (a
// refusal, a final reply), then ends on its own; a relay blocked writing to
// a client that does not read, or reading from one that sends nothing,
// ends at the deadline instead of living as long as the client.
func (f *tlsFront) closeRelay(id uint64) {
	f.mu.Lock()
	raw := f.raws[id]
	f.mu.Unlock()
	if raw != nil {
		_ = raw.SetDeadline(time.Now().Add(relayCloseGrace))
	}
}

// handshakeFailed closes a connection whose handshake failed. A client
// speaking the plain protocol gets one line saying why first.
func (f *tlsFront) handshakeFailed(raw net.Conn, err error, timeout time.Duration) {
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh) && rh.Conn != nil:
		f.b.log.Info("plaintext client on the TLS port: closing", "remote", raw.RemoteAddr().String())
		_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = rh.Conn.Write(protocol.AppendResultString(nil, protocol.CodeUnavailable, 0,
			"this port requires TLS: connect with TLS (e.g. metaq --tls-ca), or use the broker's plaintextPort if it has one"))
	case errors.Is(err, context.DeadlineExceeded):
		f.b.log.Info("TLS handshake timed out: closing", "remote", raw.RemoteAddr().String(), "timeout", timeout)
	default:
		f.b.log.Info("TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
	}
}

// relayCopy copies src to dst until either fails.
func relayCopy(dst, src net.Conn) {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// relayHello is the preamble: magic, secret, relay id, client address,
// principal (base64url, "-" for none).
func relayHello(secret string, id uint64, remote, principal string) []byte {
	p := "-"
	if principal != "" {
		p = base64.RawURLEncoding.EncodeToString([]byte(principal))
	}
	return fmt.Appendf(nil, "%s %s %d %s %s\r\n", relayMagic, secret, id, remote, p)
}

// relayHello reads the TLS front's preamble of a relayed connection (loop
// only). done is false while the connection must not go on: the preamble
// is incomplete (action None) or invalid (action Close).
func (cn *conn) relayHello() (action gnet.Action, done bool) {
	buf, _ := cn.gc.Peek(-1)
	end := bytes.IndexByte(buf, '\n')
	if end < 0 {
		if len(buf) >= relayHelloMax {
			cn.b.log.Warn("relay connection without a valid preamble: closing")
			return gnet.Close, false
		}
		return gnet.None, false
	}
	f := cn.s.front
	fields := strings.Fields(string(buf[:end]))
	if f == nil || len(fields) != 5 || fields[0] != relayMagic ||
		subtle.ConstantTimeCompare([]byte(fields[1]), []byte(f.secret)) != 1 {
		cn.b.log.Warn("relay connection without a valid preamble: closing")
		return gnet.Close, false
	}
	id, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil {
		return gnet.Close, false
	}
	cn.relayID = id // read by OnClose, on the loop
	fields = fields[1:]
	remote, ip, principal := fields[2], fields[2], ""
	if host, _, err := net.SplitHostPort(remote); err == nil {
		ip = host
	}
	if fields[3] != "-" {
		p, err := base64.RawURLEncoding.DecodeString(fields[3])
		if err != nil {
			return gnet.Close, false
		}
		principal = string(p)
	}
	cn.s.connsMu.Lock() // other goroutines read them under it (tests, the reaper's scan)
	cn.remote, cn.ip, cn.tlsPrincipal = remote, ip, principal
	cn.s.connsMu.Unlock()
	cn.b.log.Debug("TLS client connected", "remote", remote, "principal", principal)
	_, _ = cn.gc.Discard(end + 1)
	cn.relayPending = false // the front counted the client's address (maxConnectionsPerIp) at accept
	return gnet.None, true
}

// ReloadTLS reads the TLS certificate, key and client CA files again
// (SIGHUP in `metaq broker`): new handshakes use them, established
// connections are untouched. On error the previous material stays in use.
func (b *Broker) ReloadTLS() error {
	if b.opts.TLS == nil {
		return errors.New("broker: TLS is not configured (set [security] tls.certFile and tls.keyFile)")
	}
	if err := b.opts.TLS.Reload(); err != nil {
		return fmt.Errorf("broker: reload TLS: %w", err)
	}
	b.log.Info("TLS certificates reloaded", "subject", b.opts.TLS.Certificate().Subject.String(),
		"not_after", b.opts.TLS.Certificate().NotAfter)
	return nil
}

// PlaintextAddr is the bound address of the extra plaintext port (with TLS
// and Options.PlaintextAddr), else "".
func (b *Broker) PlaintextAddr() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.plaintextAddr
}

// TLSEnabled reports whether the client port speaks TLS.
func (b *Broker) TLSEnabled() bool { return b.opts.TLS != nil }
