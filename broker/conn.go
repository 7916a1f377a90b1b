package broker

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/metaq-go/metaq/protocol"
)

// conn is the broker's state for one client connection. Fields without a
// note are touched only on the connection's event loop.
type conn struct {
	s      *server
	b      *Broker
	gc     gnet.Conn
	remote string
	dec    *protocol.Decoder
	out    []byte      // replies built during one OnTraffic, written once at its end
	puts   []*putBatch // puts decoded during one OnTraffic, appended at its end
	closed atomic.Bool // set by OnClose; read by asynchronous replies

	lastActive   atomic.Int64 // unix nanos of the last traffic (read by the reaper)
	partialSince atomic.Int64 // unix nanos since a request is half-received, 0 if none
	inflight     atomic.Int64 // requests being served off the loop
	inflightPut  atomic.Int64 // put bytes awaiting durability
}

// maxOutbound bounds the replies buffered for a client that does not read
// them; past it the connection is closed (Redis calls this the client output
// buffer limit).
const maxOutbound = 64 << 20

func newConn(s *server, gc gnet.Conn) *conn {
	cn := &conn{s: s, b: s.b, gc: gc, remote: gc.RemoteAddr().String(),
		dec: protocol.NewDecoder(protocol.Config{MaxLineLength: s.b.opts.MaxLineLength, MaxBodySize: s.b.opts.MaxMessageSize})}
	cn.lastActive.Store(time.Now().UnixNano())
	return cn
}

func (cn *conn) onTraffic() gnet.Action {
	now := time.Now().UnixNano()
	cn.lastActive.Store(now)
	gc := cn.gc
	if out := gc.OutboundBuffered(); out > maxOutbound {
		// The client sends requests but does not read the replies.
		cn.b.log.Warn("closing a connection that does not read its replies", "remote", cn.remote, "buffered_bytes", out)
		return gnet.Close
	}
	if need := cn.dec.Pending(); need > 0 && gc.InboundBuffered() < need {
		return gnet.None // a large body is still arriving
	}
	buf, _ := gc.Peek(-1)
	consumed, action := 0, gnet.None
	for consumed < len(buf) && action == gnet.None {
		req, n, err := cn.dec.Decode(buf[consumed:])
		if err != nil {
			action = cn.protocolError(err)
			consumed += n
			continue
		}
		if n == 0 {
			break
		}
		action = cn.handle(req)
		consumed += n
	}
	cn.flushPuts()
	if consumed > 0 {
		_, _ = gc.Discard(consumed)
	}
	if gc.InboundBuffered() > 0 {
		// A request is half-received. The stall clock restarts whenever a
		// request completed: a client pipelining steadily always has the
		// next request in flight and is not stalled.
		if consumed > 0 || cn.partialSince.Load() == 0 {
			cn.partialSince.Store(now)
		}
	} else {
		cn.partialSince.Store(0)
	}
	if len(cn.out) > 0 {
		_, _ = gc.Write(cn.out)
		if cap(cn.out) > 64<<10 {
			cn.out = nil
		} else {
			cn.out = cn.out[:0]
		}
	}
	return action
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
	switch r := req.(type) {
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
	case *protocol.SyncRequest:
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "sync (replication from a master) is not supported: this broker has no slave role")
	}
	return gnet.None
}

// reply appends a result reply with a text body.
func (cn *conn) reply(code, opaque int32, body string) {
	cn.out = protocol.AppendResultString(cn.out, code, opaque, body)
}

// replyAsync sends a reply from off the loop.
func (cn *conn) replyAsync(buf []byte) {
	if cn.closed.Load() {
		return
	}
	_ = cn.gc.AsyncWrite(buf, nil)
}
