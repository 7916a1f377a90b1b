package consumer

import (
	"context"
	"time"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// A partition's gets and their replies (the fetch chain).
//
// The fetcher sends a get and waits for its outcome. In the common case — a
// reply with complete, valid messages, room in the buffer they go to, the
// partition still fetching and the member not suspended — the reply is
// handled on the connection's reader goroutine as it arrives: the batch is
// handed on without blocking and the next get is sent at once from there
// (one write, no thread wake-up of the fetcher in between). Anything else
// (an error, a 301 or 404, corrupt data, a message larger than the fetch
// size, a full buffer) is passed to the fetcher, which handles it as before.
//
// Ownership of the fetch position moves with the get: while a get is in
// flight its reply handler owns it; the fetcher owns it again once it has
// received the chain's result. At most one get per partition is in flight,
// and each ends the chain at most once, so the result channel (capacity 1)
// never blocks the reader goroutine. When the fetcher has to wait for room
// for a batch, it sends the next get first (prefetch). Batches leave in
// fetch order: a batch is handed on by the handler only when the fetcher
// holds none.
//
// Handing a batch on delivers nothing: every message is still fenced when
// it is handed out (deliverable). A reply handled after the partition
// stopped hands nothing and sends no further get.

// fetchResult ends a chain: the reply the fetcher has to handle.
type fetchResult struct {
	bc      *brokerConn // the connection the get was sent on
	rep     conn.Reply  // body copied out of the read buffer
	off     int64       // the offset the get asked for (later than the fetcher's after chained gets)
	sent    time.Time   // when that get was sent
	chained int         // batches handed on by the chain before this reply
	err     error       // the connection failed

	// decoded: the reply's messages were decoded (decodeSet) but could not
	// be handed on without waiting; the fetcher hands batch on.
	decoded  bool
	batch    *batch
	consumed int64
	decErr   error
}

// getChain is a partition's in-flight get: the conn.Request and
// conn.Handler of every get the fetcher and its chain send.
type getChain struct {
	ps      *partState
	bc      *brokerConn
	req     protocol.GetRequest
	size    int
	sent    time.Time
	chained int
	done    chan fetchResult // cap 1
}

// roundTrip sends req on bc (unless prefetch sent it already) and waits
// for the chain it starts to end; the result's off says which get's reply
// it carries.
func (ps *partState) roundTrip(bc *brokerConn, req *protocol.GetRequest, size int) (fetchResult, error) {
	g := ps.getChain()
	sent := time.Now()
	if ps.prefetched {
		ps.prefetched = false // in flight at req.Offset since prefetch
	} else {
		g.bc, g.req, g.size, g.chained, g.sent = bc, *req, size, 0, sent
		// From Start on, g belongs to the reply handler until it sends on done.
		if err := bc.c.Start(g, g); err != nil {
			return fetchResult{bc: bc, off: req.Offset, sent: sent}, err
		}
	}
	select {
	case r := <-g.done:
		return r, r.err
	case <-ps.ctx.Done():
		// The get stays in flight; its reply hands nothing on (ps stopped).
		return fetchResult{off: req.Offset, sent: sent}, ps.ctx.Err()
	}
}

func (ps *partState) getChain() *getChain {
	if ps.chain == nil {
		ps.chain = &getChain{ps: ps, done: make(chan fetchResult, 1)}
	}
	return ps.chain
}

// prefetch sends the next get (req at off) before the fetcher waits for
// room for the batch it holds, so the reply is on its way meanwhile (the
// fetch pipeline stays full while handlers are busy). Until the fetcher has
// handed its batch on (holding), the reply's batch is not handed on by the
// reader goroutine but passed to the fetcher: batches keep their order.
// The next roundTrip waits for this get instead of sending one.
func (ps *partState) prefetch(bc *brokerConn, req *protocol.GetRequest, off int64, size int) {
	if bc == nil || ps.ctx.Err() != nil || ps.c.gate.isSuspended() {
		return
	}
	g := ps.getChain()
	g.bc, g.req, g.size, g.chained, g.sent = bc, *req, size, 0, time.Now()
	g.req.Offset = off
	ps.holding.Store(true)
	if bc.c.Start(g, g) == nil {
		ps.prefetched = true
	}
}

// AppendRequest implements conn.Request.
func (g *getChain) AppendRequest(dst []byte, opaque int32) []byte {
	r := g.req
	r.OpaqueID = opaque
	return r.AppendTo(dst)
}

// HandleReply implements conn.Handler; it runs on the reader goroutine.
func (g *getChain) HandleReply(rep *protocol.Reply, err error) {
	res := fetchResult{bc: g.bc, off: g.req.Offset, sent: g.sent, chained: g.chained, err: err}
	if err == nil {
		res.rep = conn.Reply{Verb: rep.Verb, Code: rep.Code, Body: append([]byte(nil), rep.Body...)}
		if g.next(&res) {
			return
		}
	}
	select {
	case g.done <- res:
	default: // cannot happen (one result per chain); never block the reader
	}
}

// next handles a reply with messages on the reader goroutine: true when its
// batch was handed on and the next get sent (the chain goes on).
func (g *getChain) next(res *fetchResult) bool {
	ps, c := g.ps, g.ps.c
	if res.rep.Verb != protocol.VerbValue || len(res.rep.Body) == 0 ||
		ps.stopped.Load() || ps.ctx.Err() != nil || c.gate.isSuspended() {
		return false
	}
	b, consumed, derr := ps.decodeSet(g.req.Offset, res.rep.Body, g.size)
	if b == nil || derr != nil || ps.holding.Load() || !ps.tryHand(b) {
		res.decoded, res.batch, res.consumed, res.decErr = true, b, consumed, derr
		return false
	}
	off := g.req.Offset + consumed
	ps.mu.Lock()
	ps.fetchOffset = off
	ps.mu.Unlock()
	g.chained++
	g.req.Offset = off
	g.sent = time.Now()
	if ps.ctx.Err() != nil {
		*res = fetchResult{bc: g.bc, off: off, sent: g.sent, chained: g.chained, err: context.Canceled}
		return false
	}
	if err := g.bc.c.Start(g, g); err != nil {
		*res = fetchResult{bc: g.bc, off: off, sent: g.sent, chained: g.chained, err: err}
		return false
	}
	return true
}

// tryHand passes a batch on if that needs no wait.
func (ps *partState) tryHand(b *batch) bool {
	ch := ps.batches
	if ch == nil {
		ch = ps.c.pollCh
	}
	select {
	case ch <- b:
		return true
	default:
		return false
	}
}
