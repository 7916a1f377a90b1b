// Package conn is the client connection layer shared by the producer and the
// consumer: one TCP connection to one broker carrying many requests in flight,
// correlated by opaque (PROTOCOL.md §1).
//
// Requests are appended to a write buffer under a mutex; one writer goroutine
// swaps the buffer out and writes everything queued with a single write call,
// so under load many frames share one syscall (optionally waiting Linger for
// more). A request on an idle connection is written by the goroutine that
// queues it, without waking the writer, and requests queued by Handlers
// leave together after the reader's pass over one read (write.go). One
// reader goroutine decodes replies with protocol.ReplyDecoder and hands each
// to the Handler registered for its opaque. An idle connection
// sends `version` as a heartbeat; a connection with requests outstanding that
// hears nothing for HeartbeatTimeout is declared lost.
//
// Dial runs the TLS handshake (Options.TLS) and the SASL exchange
// (Options.Auth: SCRAM-SHA-256 or PLAIN, auth.go) before the connection's
// goroutines start, so no request ever precedes them; a Pool dials, and so
// authenticates, again on every reconnect. Refused credentials are ErrAuth.
//
// A Conn does not reconnect: when it fails, every outstanding request's
// Handler gets the error and Done is closed; the owner dials a new one, or
// uses a Pool, which keeps one live connection per broker address.
//
// Errors wrap sentinels for errors.Is: ErrClosed (closed by its owner),
// ErrConnLost and ErrDial (retriable), ErrAuth and ErrProtocol, and *ServerError for a
// reply code other than 200 (ErrUnavailable, ErrTimeout, ... match by code;
// 503 and 504 are retriable). IsRetriable says whether to send again.
//
// Besides puts, the consumer sends get and offset requests the same way, and
// the metaq CLI its admin requests: Put, Get, Offset, Version, Stats,
// StatsBody and Do are synchronous wrappers over Start.
package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/protocol"
)

// Request writes one request frame with the given opaque.
type Request interface {
	AppendRequest(dst []byte, opaque int32) []byte
}

// Handler receives the reply to one request, or the error that ended the
// connection, exactly once. It runs on the connection's reader goroutine (or,
// for errors, on whichever goroutine failed the connection): it must not
// block, and must not call Close. rep and rep.Body are valid only during the
// call.
type Handler interface {
	HandleReply(rep *protocol.Reply, err error)
}

// Options tune a connection. Zero values take the defaults.
type Options struct {
	// HeartbeatInterval: an idle connection sends `version` this often.
	// Default 10 s (the Java client's); negative disables heartbeats and the
	// stall check.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: a connection with requests outstanding that reads
	// nothing for this long is closed with ErrConnLost. Default 30 s.
	HeartbeatTimeout time.Duration
	// Linger: when fewer than FlushBytes are queued and the previous write
	// was less than Linger ago (the connection is busy), the writer waits up
	// to this long for more frames before writing. A request on an idle
	// connection is written at once. Default 0.
	Linger time.Duration
	// FlushBytes ends a linger early. Default 256 KiB.
	FlushBytes int
	// MaxReplyBody bounds one reply body. Default protocol.DefaultMaxReplyBody.
	MaxReplyBody int
	// DialTimeout bounds Dial (connect, TLS handshake and authentication) in
	// addition to its ctx. Default 10 s.
	DialTimeout time.Duration
	// TLS, when set, makes Dial run a TLS handshake before anything else
	// (internal/tlsconf.Client builds one). An empty ServerName is taken
	// from the host of the address dialled. Nil: plaintext.
	TLS *tls.Config
	// Auth, when set, makes Dial authenticate with these credentials before
	// it returns (and so on every reconnect of a Pool); a refusal is an
	// error matching ErrAuth. Nil: no authentication (anonymous).
	Auth *Auth
	// AfterReplies, when set, runs on the reader goroutine after the
	// Handlers of each batch of replies (up to 64 from one read) have run,
	// with the connection: Handlers may keep per-reply work in
	// Conn.ReaderLocal and finish it there once per batch (the producer
	// publishes its counters so).
	AfterReplies func(c *Conn)
	Logger       *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 10 * time.Second
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 30 * time.Second
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = 256 << 10
	}
	if o.MaxReplyBody <= 0 {
		o.MaxReplyBody = protocol.DefaultMaxReplyBody
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// Conn is one pipelined connection to a broker. Its methods are safe for
// concurrent use.
type Conn struct {
	addr string
	nc   net.Conn
	opts Options
	pre  []byte // read past the auth exchange; the reader's first bytes

	mu         sync.Mutex   // guards the fields below
	wbuf       []byte       // frames queued for the writer
	spare      []byte       // the writer's other buffer
	pending    pendingTable // handlers of the requests awaiting a reply, by opaque
	err        error        // why the connection ended; nil while alive
	lastWord   string       // a refusal the broker sent with opaque 0 (e.g. "this port requires TLS") before closing
	stallSince int64        // Now() when pending last became non-empty
	writing    bool         // a write is in progress (writer goroutine or an inline write, write.go)
	corked     bool         // the reader is dispatching replies: it writes what they queue after (write.go)

	rawOnce sync.Once
	raw     syscall.RawConn // nc's raw conn for rawio; nil when it has none (set by rawConn)
	rop     *rawOp          // the reader's raw read (set by rawConn)
	wop     *rawOp          // the raw write of whoever writes (set by rawConn)

	_         [64]byte     // keep the reader's and writer's clocks off mu's cache line
	lastRead  atomic.Int64 // Now() of the last read
	lastWrite atomic.Int64 // Now() of the last write
	readTime  int64        // Now() of the read being dispatched; reader goroutine only
	_         [64]byte

	reps  []protocol.Reply // the reader's batch of decoded replies (dispatch)
	hs    []Handler        // their handlers
	local any              // ReaderLocal; reader goroutine only

	wake chan struct{} // cap 1: frames queued while the writer idled
	full chan struct{} // cap 1: FlushBytes reached during a linger
	done chan struct{} // closed when the connection ends
	wg   sync.WaitGroup
}

// Dial connects to addr (host:port), runs the TLS handshake and the
// authentication exchange when opts ask for them, and starts the
// connection's goroutines. A TLS failure (e.g. a certificate signed by an
// authority the client does not trust) wraps ErrDial; refused credentials
// wrap ErrAuth.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	o := opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, wrap(ErrDial, err)
	}
	nc, pre, err := handshake(ctx, nc, addr, o)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	now := Now()
	c := &Conn{addr: addr, nc: nc, opts: o, pending: newPendingTable(), pre: pre, hs: make([]Handler, dispatchBatch),
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1), done: make(chan struct{})}
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// Addr returns the broker address.
func (c *Conn) Addr() string { return c.addr }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ReplyTime returns when the reply being handled was read, on the clock of
// Now. Call it only from a Handler (it is one clock read per read batch, not
// per reply).
func (c *Conn) ReplyTime() int64 { return c.readTime }

// ReaderLocal returns a value owned by the connection's reader goroutine:
// a Handler called with a reply (err == nil) and Options.AfterReplies may
// keep per-connection state in it without synchronisation. Call it only
// from those.
func (c *Conn) ReaderLocal() *any { return &c.local }

// ReplyUnixNano returns when the reply being handled was read, in Unix
// nanoseconds (derived from ReplyTime without reading the clock). Call it
// only from a Handler.
func (c *Conn) ReplyUnixNano() int64 { return clockBaseUnix + c.readTime }

// clockBase is the origin of Now; clockBaseUnix is it in Unix nanoseconds.
var (
	clockBase     = time.Now()
	clockBaseUnix = clockBase.UnixNano()
)

// Now returns monotonic nanoseconds since the process loaded this package:
// the connection's clock (reads, writes, stalls, ReplyTime). It reads only
// the monotonic clock, about half the cost of time.Now (which reads the wall
// clock too), and it never jumps with the wall clock.
func Now() int64 { return int64(time.Since(clockBase)) }

// Pending returns the number of requests awaiting a reply.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending.len()
}

// Start queues req and registers h for its reply. It never blocks. When the
// connection has already ended it returns the error and h is not called;
// otherwise h is called exactly once, later.
func (c *Conn) Start(req Request, h Handler) error { return c.enqueue(req, h) }

// Send queues req without registering for a reply: for requests the broker
// never answers (a transaction END, as MetaQ's TransactionContext sends it).
// It never blocks; it returns the error of a connection that has already
// ended. A reply that comes anyway is logged and dropped.
func (c *Conn) Send(req Request) error { return c.enqueue(req, nil) }

// enqueue appends req to the write buffer under a fresh opaque and, with a
// handler, registers h for the reply.
func (c *Conn) enqueue(req Request, h Handler) error {
	if b, ok := req.(badReq); ok {
		return b.err
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if h != nil && c.pending.len() == 0 {
		c.stallSince = Now()
	}
	op := c.pending.alloc(h)
	was := len(c.wbuf)
	c.wbuf = req.AppendRequest(c.wbuf, op)
	n := len(c.wbuf)
	if was == 0 && c.corked {
		c.mu.Unlock() // the reader writes it when its dispatch pass ends (uncork)
		return nil
	}
	if was == 0 && c.mayWriteInlineLocked() {
		c.writeInline() // unlocks c.mu
		return nil
	}
	c.mu.Unlock()
	c.queued(was, n)
	return nil
}

// queued wakes the write loop after the write buffer grew from was to n bytes.
func (c *Conn) queued(was, n int) {
	if was == 0 {
		c.kick()
	} else if was < c.opts.FlushBytes && n >= c.opts.FlushBytes && c.opts.Linger > 0 {
		c.FlushSoon()
	}
}

// FlushSoon ends the linger in progress, or else the next one: the writer
// writes what is queued without waiting for more. For an owner that knows
// no more requests are coming soon (a producer whose in-flight window is
// full waits for replies, so lingering would only delay them). It never
// blocks.
func (c *Conn) FlushSoon() {
	select {
	case c.full <- struct{}{}:
	default:
	}
}

// Close ends the connection: requests in flight fail with ErrClosed. It waits
// for the connection's goroutines, so it must not be called from a Handler.
// Idempotent.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// fail ends the connection once with err and fails every pending request.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.lastWord != "" && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w (the broker said: %s)", err, c.lastWord)
	}
	c.err = err
	pending := c.pending.drain()
	c.wbuf = nil
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
	if !errors.Is(err, ErrClosed) {
		c.opts.Logger.Debug("conn: connection ended", "addr", c.addr, "err", err, "pending", len(pending))
	}
	for _, h := range pending {
		h.HandleReply(nil, err)
	}
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if c.opts.HeartbeatInterval > 0 {
		t := time.NewTicker(max(c.opts.HeartbeatInterval/2, time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	var linger *time.Timer
	if c.opts.Linger > 0 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	for {
		select {
		case <-c.wake:
		case <-tick:
			c.heartbeat()
			continue
		case <-c.done:
			return
		}
		if linger != nil && !c.lingerWait(linger) {
			return
		}
		if !c.flush() {
			return
		}
	}
}

// lingerWait waits up to Linger for more frames unless FlushBytes are
// queued already or the connection was idle (the last write is older than
// Linger: a lone request leaves at once). False when the connection ended.
func (c *Conn) lingerWait(t *time.Timer) bool {
	if time.Duration(Now()-c.lastWrite.Load()) > c.opts.Linger {
		return true
	}
	c.mu.Lock()
	n := len(c.wbuf)
	c.mu.Unlock()
	if n >= c.opts.FlushBytes {
		return true
	}
	t.Reset(c.opts.Linger)
	select {
	case <-t.C:
	case <-c.full:
		t.Stop()
	case <-c.done:
		t.Stop()
		return false
	}
	return true
}

// flush writes everything queued in one write call. False when the
// connection ended.
func (c *Conn) flush() bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	if c.writing || len(c.wbuf) == 0 {
		// An inline write is in progress: it wakes us for what it leaves.
		c.mu.Unlock()
		return true
	}
	buf := c.takeLocked()
	c.mu.Unlock()
	if err := c.writeSocket(buf); err != nil {
		c.fail(wrap(ErrConnLost, err))
		return false
	}
	c.lastWrite.Store(Now())
	c.wrote(buf)
	return true
}

// heartbeat sends `version` on an idle connection and declares the
// connection lost when requests have waited too long without any reply.
func (c *Conn) heartbeat() {
	now := Now()
	c.mu.Lock()
	n := c.pending.len()
	since := max(c.stallSince, c.lastRead.Load())
	c.mu.Unlock()
	if n > 0 {
		if time.Duration(now-since) > c.opts.HeartbeatTimeout {
			c.fail(wrap(ErrConnLost, fmt.Errorf("no reply from %s for %v", c.addr, time.Duration(now-since).Round(time.Millisecond))))
		}
		return
	}
	idle := now - max(c.lastRead.Load(), c.lastWrite.Load())
	if time.Duration(idle) >= c.opts.HeartbeatInterval {
		_ = c.Start(versionReq{}, heartbeatHandler{c})
	}
}

type versionReq struct{}

func (versionReq) AppendRequest(dst []byte, opaque int32) []byte {
	return protocol.AppendVersion(dst, opaque)
}

type heartbeatHandler struct{ c *Conn }

func (h heartbeatHandler) HandleReply(rep *protocol.Reply, err error) {
	if err == nil && rep.Code != protocol.CodeOK {
		h.c.opts.Logger.Warn("conn: heartbeat refused", "addr", h.c.addr, "code", rep.Code)
	}
}

const readBufSize = 64 << 10

func (c *Conn) readLoop() {
	defer c.wg.Done()
	dec := protocol.NewReplyDecoder(protocol.Config{MaxBodySize: c.opts.MaxReplyBody})
	buf := make([]byte, max(readBufSize, 2*len(c.pre)))
	start, end := 0, copy(buf, c.pre)
	c.pre = nil
	if end > 0 { // replies read along with the last auth reply
		c.readTime = Now()
		var ok bool
		if start, ok = c.dispatch(dec, buf, start, end); !ok {
			return
		}
	}
	for {
		if end == len(buf) {
			buf, start, end = makeRoom(buf, start, end, 0)
		}
		n, err := c.readSocket(buf[end:])
		if n > 0 {
			end += n
			c.readTime = Now()
			c.lastRead.Store(c.readTime)
			var ok bool
			if start, ok = c.dispatch(dec, buf, start, end); !ok {
				return
			}
			if start == end {
				start, end = 0, 0
			} else if need := dec.Pending(); need > len(buf)-start {
				buf, start, end = makeRoom(buf, start, end, need)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.fail(wrap(ErrConnLost, err))
			return
		}
	}
}

// dispatchBatch is how many replies' handlers the reader takes under one
// lock of c.mu: one lock per reply contended with every Start of a busy
// producer.
const dispatchBatch = 64

// dispatch decodes every complete reply in buf[start:end], hands each to its
// handler and returns the new start; false when the stream is malformed
// (after the replies before the bad frame were handled).
func (c *Conn) dispatch(dec *protocol.ReplyDecoder, buf []byte, start, end int) (int, bool) {
	defer c.uncork()
	for start < end {
		reps := c.reps[:0]
		var derr error
		for start < end && len(reps) < dispatchBatch {
			rep, used, err := dec.Decode(buf[start:end])
			if err != nil || used == 0 {
				derr = err
				break
			}
			start += used
			reps = append(reps, *rep) // Body aliases buf, which stays until we return
		}
		c.reps = reps
		c.handle(reps)
		if derr != nil {
			c.fail(wrap(ErrProtocol, derr))
			return start, false
		}
		if len(reps) < dispatchBatch {
			return start, true // the rest, if any, is an incomplete frame
		}
	}
	return start, true
}

// handle takes the handlers of reps under one lock and calls them in order.
func (c *Conn) handle(reps []protocol.Reply) {
	if len(reps) == 0 {
		return
	}
	hs := c.hs[:len(reps)]
	c.mu.Lock()
	c.corked = true
	for i := range reps {
		hs[i], _ = c.pending.take(reps[i].Opaque)
	}
	c.mu.Unlock()
	for i := range reps {
		h := hs[i]
		hs[i] = nil
		if h != nil {
			h.HandleReply(&reps[i], nil)
			continue
		}
		rep := &reps[i]
		if rep.Opaque == 0 && rep.Code != protocol.CodeOK && len(rep.Body) > 0 {
			// A refusal of the whole connection (a full broker, a TLS port):
			// kept for the error the connection ends with.
			c.mu.Lock()
			c.lastWord = protocol.CodeName(rep.Code) + ": " + string(rep.Body[:min(len(rep.Body), 512)])
			c.mu.Unlock()
		}
		c.opts.Logger.Warn("conn: reply with unknown opaque", "addr", c.addr, "opaque", rep.Opaque)
	}
	if f := c.opts.AfterReplies; f != nil {
		f(c)
	}
	clear(reps) // drop the bodies' references to the read buffer
}

// makeRoom moves the unread bytes to the front, growing buf when need (a
// whole frame's size) or the unread bytes do not fit.
func makeRoom(buf []byte, start, end, need int) ([]byte, int, int) {
	unread := end - start
	size := len(buf)
	for need > size || unread == size {
		size *= 2
	}
	if size != len(buf) {
		nb := make([]byte, size)
		copy(nb, buf[start:end])
		return nb, 0, unread
	}
	copy(buf, buf[start:end])
	return buf, 0, unread
}
