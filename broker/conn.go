package broker

import (
	"errors"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

// conn is the broker's state for one client connection. Fields without a
// note are touched only on the connection's event loop.
type conn struct {
	s         *server
	b         *Broker
	gc        gnet.Conn
	remote    string
	ip        string // client IP, for maxConnectionsPerIp
	ipCounted bool   // counted in server.perIP (under connsMu)
	// relayPending: a connection from the TLS front whose preamble
	// (relayHello) has not been read yet; nothing else is decoded before.
	relayPending bool
	relayID      uint64 // the TLS front's id of the relay, 0 if none (closeRelay)
	dec          *protocol.Decoder
	out          []byte                         // replies built during one OnTraffic, written once at its end
	puts         []*putBatch                    // puts decoded during one OnTraffic, appended at its end
	putIdx       map[*store.Partition]*putBatch // puts by partition (entries removed as puts are flushed)
	queued       map[*store.Partition]queuedPut // the last batch handed to each partition's queue (may be stale: see extendQueued)
	lastKey      uint64                         // the key of the last batch handed to the store (unique per connection range)
	lastTopic    string                         // topicConfig's cache (loop only)
	lastTopicCfg TopicConfig
	lastTopicOK  bool
	partsTopic   string             // partition's cache (loop only): the topic of parts
	parts        []*store.Partition // partsTopic's partitions by number, nil = not looked up yet
	held         *heldPut           // a put waiting for its partition to be created off the loop
	replica      *replicaStream     // set by `replicate`: a follower's stream (loop only)
	isReplica    atomic.Bool        // replica != nil, for closing streams from other goroutines
	seenIn       int                // inbound bytes left after the last OnTraffic (new traffic vs a wake)
	closed       atomic.Bool        // set by OnClose; read by asynchronous replies

	lastActive   atomic.Int64 // unix nanos of the last traffic (read by the reaper)
	partialSince atomic.Int64 // unix nanos since a request is half-received, 0 if none
	inflight     atomic.Int64 // requests being served off the loop
	inflightPut  atomic.Int64 // put bytes awaiting durability

	// Output accounting (see server.buffered): reserved is what get
	// replies being read may add (reserved at dispatch, released once gnet
	// has written or buffered the reply); lastOut is gnet's outbound buffer
	// as last seen on the loop. While their sum is over
	// MaxConnOutputBytes the connection is paused: its requests wait
	// undecoded in the inbound buffer.
	reserved atomic.Int64
	lastOut  atomic.Int64
	paused   atomic.Bool

	// Durable replies (replyDurable): written off the loop by the store's
	// writers as their batches become durable, taken by the loop in its
	// next turn, so the replies of one commit cycle leave in one write
	// however many partitions they cover. replyWake: a Wake that will take
	// them is queued.
	replyMu   sync.Mutex
	replies   []byte
	replyWake bool

	readyMu sync.Mutex // guards ready
	ready   []*getJob  // parked long-poll gets whose data arrived, to dispatch again

	// Security (auth.go). tlsPrincipal is the Subject CommonName of the
	// client's verified TLS certificate (mutual TLS), set from the relay's
	// preamble before the first request; "" otherwise. principal and
	// scram are written off the loop only while authBusy holds the
	// connection's decoding (handle_auth.go).
	tlsPrincipal string
	principal    string // user of the last successful auth
	scram        *security.SCRAMConversation
	authBusy     atomic.Bool
	// refusalLogged: an ACL refusal was logged at Info (later ones at Debug).
	refusalLogged bool
}

// pausedInboundFloor is the least inbound data a paused connection may
// accumulate before it is closed (gnet keeps reading the socket).
const pausedInboundFloor = 4 << 20

func newConn(s *server, gc gnet.Conn, ip string) *conn {
	cn := &conn{s: s, b: s.b, gc: gc, lastKey: batchKeys.Add(1 << 40), remote: gc.RemoteAddr().String(), ip: ip,
		dec: protocol.NewDecoder(protocol.Config{MaxLineLength: s.b.opts.MaxLineLength,
			MaxBodySize: s.b.opts.MaxMessageSize, MaxDiscardSize: s.b.opts.MaxDiscardSize})}
	cn.lastActive.Store(time.Now().UnixNano())
	return cn
}

func (cn *conn) onTraffic() (action gnet.Action) {
	defer func() {
		if v := recover(); v != nil {
			cn.s.handlerPanic(cn, v, debug.Stack())
			action = gnet.Close
		}
	}()
	if cn.relayPending {
		if action, done := cn.relayHello(); !done {
			return action
		}
	}
	now := time.Now().UnixNano()
	gc := cn.gc
	in := gc.InboundBuffered()
	if in != cn.seenIn { // new bytes, not a wake-up
		cn.lastActive.Store(now)
	}
	cn.noteOutbound()
	if h := cn.held; h != nil && h.done.Load() {
		cn.held = nil
		cn.finishHeld(h)
	}
	consumed := 0
	switch {
	case cn.held != nil || cn.blocked() || !cn.dispatchReady():
		action = cn.waitPaused(in)
	case cn.dec.Pending() > in: // a large body is still arriving
		cn.setPaused(false)
	default:
		cn.setPaused(false)
		consumed, action = cn.decodeAll()
	}
	cn.flushPuts()
	if consumed > 0 {
		_, _ = gc.Discard(consumed)
	}
	cn.seenIn = gc.InboundBuffered()
	cn.notePartial(now, consumed)
	cn.takeReplies()
	cn.flushOut()
	return action
}

// decodeAll handles every complete request buffered until the connection
// must wait; it returns the bytes consumed.
func (cn *conn) decodeAll() (consumed int, action gnet.Action) {
	buf, _ := cn.gc.Peek(-1)
	for consumed < len(buf) && action == gnet.None {
		if cn.held != nil || cn.blocked() {
			cn.setPaused(true)
			break
		}
		req, n, err := cn.dec.Decode(buf[consumed:])
		if err != nil {
			action = cn.protocolError(err)
			consumed += n
			continue
		}
		if n == 0 {
			break
		}
		if req == nil { // body of an oversized put already refused: thrown away as it arrives
			consumed += n
			continue
		}
		if cn.mustWait(req) {
			cn.setPaused(true) // leave it undecoded: a complete request decodes again the same
			break
		}
		action = cn.handle(req)
		consumed += n
	}
	return consumed, action
}

// waitPaused leaves the connection's requests undecoded until it is woken
// (by a completed write, the server's resume tick, a finished partition
// creation or new traffic). gnet keeps reading the socket, so a client that
// keeps sending while paused is closed past a bound.
//
// The bound depends on whose the wait is. A client that does not read its
// replies (its unsent output is over the limit) may leave at most about two
// requests unread. A wait of the broker's own — a partition being created,
// busy read workers — is no fault of the client's: a producer pipelining its
// window goes on sending meanwhile, so it may leave as much unread input as
// it may have unsent output (MaxConnOutputBytes). Before, such a producer
// with a few MiB in flight was closed while its first put's partition was
// created (TestPipelinedPutsWhileThePartitionIsCreatedKeepTheConnection).
func (cn *conn) waitPaused(in int) gnet.Action {
	cn.setPaused(true)
	limit := max(pausedInboundFloor, 2*(cn.b.opts.MaxMessageSize+cn.b.opts.MaxLineLength))
	clients := cn.blocked()
	if !clients {
		limit = max(limit, int(min(cn.b.opts.MaxConnOutputBytes, math.MaxInt32)))
	}
	if in <= limit {
		return gnet.None
	}
	if clients {
		cn.b.log.Warn("closing a connection that keeps sending requests while it does not read its replies",
			"remote", cn.remote, "inbound_bytes", in, "unsent_bytes", cn.reserved.Load()+cn.lastOut.Load())
	} else {
		cn.b.log.Warn("closing a connection that sent more than maxConnectionOutputBytes while the broker could not take its requests (a partition being created, or busy read workers)",
			"remote", cn.remote, "inbound_bytes", in)
	}
	return gnet.Close
}

// notePartial runs the stall clock while a request is half-received. It
// restarts whenever a request completed: a client pipelining steadily always
// has the next request in flight and is not stalled.
func (cn *conn) notePartial(now int64, consumed int) {
	switch {
	case cn.seenIn == 0 || cn.paused.Load():
		cn.partialSince.Store(0)
	case consumed > 0 || cn.partialSince.Load() == 0:
		cn.partialSince.Store(now)
	}
}

// flushOut writes the replies built on the loop.
func (cn *conn) flushOut() {
	if len(cn.out) == 0 {
		return
	}
	_, _ = cn.gc.Write(cn.out)
	if cap(cn.out) > 64<<10 {
		cn.out = nil
	} else {
		cn.out = cn.out[:0]
	}
	cn.noteOutbound()
}

// blocked reports whether the connection must wait before decoding another
// request: its unsent output is over its limit, or an auth exchange is
// being checked.
func (cn *conn) blocked() bool {
	return cn.reserved.Load()+cn.lastOut.Load() >= cn.b.opts.MaxConnOutputBytes || cn.authBusy.Load()
}

// mustWait reports whether a decoded request must wait for the read
// workers: a get while the broker's unsent output is over its limit, or
// any request for the workers while their queue is full. Puts and cheap
// requests go on.
func (cn *conn) mustWait(req protocol.Request) bool {
	switch req.(type) {
	case *protocol.GetRequest:
		return cn.getMustWait()
	case *protocol.OffsetRequest, *protocol.StatsRequest:
		return cn.b.workers.busy()
	}
	return false
}

func (cn *conn) getMustWait() bool {
	return cn.s.buffered.Load() >= cn.b.opts.MaxTotalOutputBytes || cn.b.workers.busy()
}

func (cn *conn) setPaused(p bool) {
	if cn.paused.Swap(p) != p {
		if p {
			cn.s.pausedConns.Add(1)
		} else {
			cn.s.pausedConns.Add(-1)
		}
	}
}

// noteOutbound records gnet's outbound buffer (loop only).
func (cn *conn) noteOutbound() {
	out := int64(cn.gc.OutboundBuffered())
	if old := cn.lastOut.Swap(out); out != old {
		cn.s.buffered.Add(out - old)
		if old == 0 {
			cn.s.outConns.Add(1)
		} else if out == 0 {
			cn.s.outConns.Add(-1)
		}
	}
	cn.s.notePeak(cn.reserved.Load() + out)
}

// reserve accounts n bytes of a get reply about to be built.
func (cn *conn) reserve(n int64) {
	r := cn.reserved.Add(n)
	cn.s.buffered.Add(n)
	cn.s.notePeak(r + cn.lastOut.Load())
}

func (cn *conn) release(n int64) {
	cn.reserved.Add(-n)
	cn.s.buffered.Add(-n)
}

// sendv hands a reply of several buffers to gnet from off the loop. Once
// gnet has written or buffered it (or failed), done runs (on the loop,
// releasing the reply's reservation); a paused connection then resumes if
// it may.
func (cn *conn) sendv(bufs [][]byte, done func()) {
	cb := func(c gnet.Conn, _ error) error {
		done()
		if !cn.closed.Load() {
			cn.noteOutbound()
			if cn.paused.Load() && !cn.blocked() {
				_ = c.Wake(nil)
			}
		}
		return nil
	}
	if cn.closed.Load() || cn.gc.AsyncWritev(bufs, cb) != nil {
		done()
	}
}

// wake makes the loop look at a paused connection again.
func (cn *conn) wake() {
	if !cn.closed.Load() {
		_ = cn.gc.Wake(nil)
	}
}

// submit runs job on a read worker; a panic in it is reported and closes
// this connection. False when the workers cannot take it.
func (cn *conn) submit(job func()) bool {
	return cn.b.workers.submit(func() {
		defer func() {
			if v := recover(); v != nil {
				cn.s.handlerPanic(cn, v, debug.Stack())
			}
		}()
		job()
	})
}

// protocolError answers a request the decoder refused; a fatal one closes the connection.
func (cn *conn) protocolError(err error) gnet.Action {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		cn.b.log.Error("decoder returned a non-protocol error", "err", err)
		return gnet.Close
	}
	if pe.Verb == protocol.VerbPut {
		cn.b.stats.putFail("")
	}
	if !pe.NoReply {
		cn.out = pe.AppendReply(cn.out)
	}
	if pe.Fatal {
		cn.b.log.Debug("closing connection after a fatal protocol error", "remote", cn.remote, "err", pe.Msg)
		return gnet.Close
	}
	return gnet.None
}

func (cn *conn) handle(req protocol.Request) gnet.Action {
	switch req.(type) {
	case *protocol.GetRequest, *protocol.StatsRequest: // their work runs on a read worker, so does the hook
	default:
		runHook(req, true)
	}
	if !cn.permit(req) {
		return gnet.None
	}
	switch r := req.(type) {
	case *protocol.AuthRequest:
		cn.handleAuth(r)
	case *protocol.PutRequest:
		cn.handlePut(r)
	case *protocol.GetRequest:
		cn.handleGet(r)
	case *protocol.OffsetRequest:
		cn.handleOffset(r)
	case *protocol.VersionRequest:
		cn.out = protocol.AppendResultString(cn.out, protocol.CodeOK, r.OpaqueID, versionReply)
	case *protocol.StatsRequest:
		cn.handleStats(r)
	case *protocol.QuitRequest:
		return gnet.Close
	case *protocol.TransactionRequest:
		cn.handleTransaction(r)
	case *protocol.ReplicateRequest:
		cn.handleReplicate(r)
	case *protocol.SyncRequest:
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "sync (replication from a master) is not supported: this broker has no slave role")
	}
	return gnet.None
}

// reply appends a result reply with a text body.
func (cn *conn) reply(code, opaque int32, body string) {
	cn.out = protocol.AppendResultString(cn.out, code, opaque, body)
}

// replyDurable queues a reply built off the loop (put and transaction
// results, once durable) for the loop's next turn, which writes it together
// with every other reply queued meanwhile and with its own: one write(2) per
// connection per commit cycle instead of one per partition batch. Only the
// first reply queued since the loop last took them wakes the loop; the
// reply leaves as soon as the loop runs, never later than an AsyncWrite
// queued at the same moment would.
func (cn *conn) replyDurable(buf []byte) {
	if cn.closed.Load() {
		return
	}
	cn.replyMu.Lock()
	cn.replies = append(cn.replies, buf...)
	wake := !cn.replyWake
	cn.replyWake = true
	cn.replyMu.Unlock()
	if wake {
		_ = cn.gc.Wake(nil) // fails only once the connection or the server is closed
	}
}

// takeReplies moves the replies queued by replyDurable into cn.out (loop only).
func (cn *conn) takeReplies() {
	cn.replyMu.Lock()
	if len(cn.replies) > 0 {
		if len(cn.out) == 0 {
			cn.out, cn.replies = cn.replies, cn.out[:0]
		} else {
			cn.out = append(cn.out, cn.replies...)
			cn.replies = cn.replies[:0]
		}
		if cap(cn.replies) > 64<<10 {
			cn.replies = nil
		}
	}
	cn.replyWake = false
	cn.replyMu.Unlock()
}

// replyAsync sends a reply from off the loop.
func (cn *conn) replyAsync(buf []byte) {
	if cn.closed.Load() {
		return
	}
	_ = cn.gc.AsyncWrite(buf, nil)
}

// handlerHook, when set (only by tests, before the broker starts), runs
// where each request's work runs: on the loop (onLoop), or on a read worker
// for gets and stats.
var handlerHook func(req protocol.Request, onLoop bool)

func runHook(req protocol.Request, onLoop bool) {
	if h := handlerHook; h != nil {
		h(req, onLoop)
	}
}
