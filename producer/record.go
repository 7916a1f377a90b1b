package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/latencyhist"
	"github.com/metaq-go/metaq/protocol"
)

// record is one message in flight. It is the connection's Request and
// Handler, so a send allocates nothing (records are recycled by slots).
// Exactly one goroutine owns a record at a time: the sender, then the
// connection (until HandleReply), then a retry wait, until acked or fail
// gives it back.
//
// send sets every field; release clears only the references into the
// caller's memory — the first two cache lines of a record (records are
// 64-byte aligned: see recordPad) — since clearing on the reader's core
// lines the sender then rewrites costs a cache line transfer each (the
// record moves from the reader's core back to a sender's for every
// message). The rest keeps, until reuse, a waiter (pooled), the last retry
// error and the connection of the last attempt. The third line holds the
// rest of what an acknowledgement reads, so that it touches three lines:
// with many partitions acknowledgements come in another order than the
// sends and each finds its record cold.
type record struct {
	data []byte // put data
	msg  Message
	ctx  context.Context
	cb   func(Result, error)
	// Not cleared by release. An acknowledgement reads these:
	w     *waiter
	c     *conn.Conn // the connection of the current attempt
	b     *broker    // the broker of the current attempt (its p is the producer)
	start int64      // conn.Now() when it was accepted; 0 when not timed (Producer.timed)
	part  Partition
	// The rest:
	p        *Producer
	lastErr  error // why it is being retried
	flag     int32
	checksum int32
	attempt  int
	order    uint64      // first-send order, kept across retries
	due      time.Time   // when a queued retry may be sent
	heapIdx  int         // position in the retry queue, -1 when not queued
	stopCtx  func() bool // stops the ctx watch while it waits in the retry queue
	_        [recordPad]byte
}

// recordPad makes a record 320 bytes on 64-bit platforms: a size class
// whose objects start 64-byte aligned (TestRecordLayout).
const recordPad = 40

// release clears r's references into the caller's memory (see record) and
// gives it back to the slots. The caller must not touch r afterwards.
func (r *record) release(p *Producer) {
	r.data, r.msg, r.ctx, r.cb = nil, Message{}, nil, nil
	p.slots.put(r)
}

// AppendRequest implements conn.Request.
func (r *record) AppendRequest(dst []byte, opaque int32) []byte {
	req := protocol.PutRequest{Topic: r.msg.Topic, Partition: int32(r.part.Partition), Flag: r.flag,
		Checksum: r.checksum, OpaqueID: opaque, Data: r.data}
	return req.AppendTo(dst)
}

// HandleReply implements conn.Handler.
func (r *record) HandleReply(rep *protocol.Reply, err error) {
	if err != nil {
		r.b.connFailed(err)
		r.retryOrFail(r.errorf(err))
		return
	}
	if rep.Code != protocol.CodeOK {
		se := &ServerError{Code: rep.Code, Msg: string(rep.Body)}
		if se.Retriable() {
			r.b.markDown()
		}
		r.retryOrFail(r.errorf(se))
		return
	}
	id, _, off, perr := protocol.ParsePutResult(rep.Body)
	if perr != nil {
		r.fail(r.errorf(fmt.Errorf("%w: %w", conn.ErrProtocol, perr)))
		return
	}
	r.acked(Result{MsgID: id, Partition: r.part, Offset: off})
}

// ackBatch holds, on a connection's reader goroutine (conn.ReaderLocal),
// the counters of the acknowledgements of one batch of replies until
// afterReplies publishes them: one atomic add per batch for each counter
// instead of one per message.
type ackBatch struct {
	sent, bytes, finished uint64
	lat                   latencyhist.Run
}

// acked reports r's acknowledgement exactly once and recycles r. It runs
// on the reader goroutine of r.c, so the counters wait in the connection's
// ackBatch until the end of the batch.
func (r *record) acked(res Result) {
	b, c := r.b, r.c
	p := b.p
	if b.failures.Load() != 0 {
		b.failures.Store(0) // the backoff counts consecutive failures
	}
	local := c.ReaderLocal()
	ab, _ := (*local).(*ackBatch)
	if ab == nil {
		ab = new(ackBatch)
		*local = ab
	}
	ab.sent++
	ab.bytes += uint64(len(r.msg.Payload))
	var lat time.Duration
	if r.start != 0 {
		lat = time.Duration(c.ReplyTime() - r.start)
		ab.lat.Add(&p.stats.hist, lat)
	}
	if h := p.opts.hooks.OnAck; h != nil { // every message is timed then
		h(&r.msg, res, lat)
	}
	cb, w := r.cb, r.w
	r.release(p) // before the callback: a SendAsync there finds it
	if w != nil {
		ab.publish(p) // Send returns with Stats counting its message
		w.ch <- sendResult{res: res}
		p.done(1)
		return
	}
	cb(res, nil)
	ab.finished++
}

// publish adds the batch's counters to p's: the stats first, so a Flush
// woken by the finished count sees them.
func (ab *ackBatch) publish(p *Producer) {
	if ab.sent > 0 {
		p.stats.sent.Add(ab.sent)
		p.stats.bytes.Add(ab.bytes)
		ab.sent, ab.bytes = 0, 0
	}
	ab.lat.Flush()
	if n := ab.finished; n > 0 {
		ab.finished = 0
		p.done(n)
	}
}

// afterReplies is the connections' conn.Options.AfterReplies: it publishes
// the counters of the batch of acknowledgements just handled.
func (p *Producer) afterReplies(c *conn.Conn) {
	if ab, _ := (*c.ReaderLocal()).(*ackBatch); ab != nil {
		ab.publish(p)
	}
}

// errorf says which message and partition an error is about.
func (r *record) errorf(err error) error {
	return fmt.Errorf("producer: send to %s partition %s: %w", r.msg.Topic, r.part, err)
}

// dispatch routes r and queues it on its broker's connection.
func (p *Producer) dispatch(r *record) {
	part, b, err := p.choose(r)
	if err != nil {
		r.retryOrFail(err)
		return
	}
	r.part, r.b = part, b
	c, err := b.get(r.ctx)
	if err != nil {
		r.retryOrFail(r.errorf(err))
		return
	}
	r.c = c
	if err := c.Start(r, r); err != nil {
		b.connFailed(err)
		r.retryOrFail(r.errorf(err))
	}
}

// retryOrFail retries r after a backoff when err is retriable, attempts are
// left and r's ctx allows; otherwise it reports err.
func (r *record) retryOrFail(err error) {
	p := r.p
	select {
	case <-p.abort:
		r.fail(errors.Join(ErrClosed, err))
		return
	default:
	}
	if !IsRetriable(err) || r.attempt >= p.opts.maxRetries {
		r.fail(err)
		return
	}
	if cerr := r.ctx.Err(); cerr != nil {
		r.fail(errors.Join(cerr, err))
		return
	}
	r.attempt++
	p.stats.retried.Add(1)
	if h := p.opts.hooks.OnRetry; h != nil {
		h(&r.msg, r.attempt, err)
	}
	d := min(p.opts.retryBackoff<<min(r.attempt-1, 16), maxBackoff)
	r.due, r.lastErr = time.Now().Add(d), err
	p.retries.push(r)
}

// fail reports r's failure exactly once and recycles r (acknowledgements
// go through acked).
func (r *record) fail(err error) {
	p := r.p
	p.stats.failed.Add(1)
	if h := p.opts.hooks.OnError; h != nil {
		h(&r.msg, err)
	}
	cb, w := r.cb, r.w
	r.release(p)
	if w != nil {
		w.ch <- sendResult{err: err}
	} else {
		cb(Result{}, err)
	}
	p.done(1)
}
