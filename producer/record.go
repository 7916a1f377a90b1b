package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// record is one message in flight. It is the connection's Request and
// Handler, so a send allocates nothing (records are recycled by slots).
// Exactly one goroutine owns a record at a time: the sender, then the
// connection (until HandleReply), then a retry wait, until finish gives it
// back.
type record struct {
	p        *Producer
	ctx      context.Context
	msg      Message
	cb       func(Result, error)
	w        *waiter
	data     []byte // put data
	flag     int32
	checksum int32
	size     int
	start    int64 // conn.Now() when it was accepted
	attempt  int
	part     Partition
	b        *broker
	c        *conn.Conn // the connection of the current attempt

	order   uint64      // first-send order, kept across retries
	due     time.Time   // when a queued retry may be sent
	heapIdx int         // position in the retry queue, -1 when not queued
	lastErr error       // why it is being retried
	stopCtx func() bool // stops the ctx watch while it waits in the retry queue
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
		r.finish(Result{}, r.errorf(fmt.Errorf("%w: %w", conn.ErrProtocol, perr)))
		return
	}
	r.finishAt(Result{MsgID: id, Partition: r.part, Offset: off}, nil, r.c.ReplyTime())
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
		r.finish(Result{}, errors.Join(ErrClosed, err))
		return
	default:
	}
	if !IsRetriable(err) || r.attempt >= p.opts.maxRetries {
		r.finish(Result{}, err)
		return
	}
	if cerr := r.ctx.Err(); cerr != nil {
		r.finish(Result{}, errors.Join(cerr, err))
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

// finish reports r's outcome exactly once and recycles r.
func (r *record) finish(res Result, err error) { r.finishAt(res, err, conn.Now()) }

// finishAt is finish with the time the outcome was known on conn.Now's
// clock (a reply's read time: one clock read per read batch instead of one
// per message).
func (r *record) finishAt(res Result, err error, now int64) {
	p := r.p
	lat := time.Duration(now - r.start)
	if err == nil {
		p.stats.sent.Add(1)
		p.stats.bytes.Add(uint64(len(r.msg.Payload)))
		p.stats.hist.Add(lat)
		if h := p.opts.hooks.OnAck; h != nil {
			h(&r.msg, res, lat)
		}
	} else {
		p.stats.failed.Add(1)
		if h := p.opts.hooks.OnError; h != nil {
			h(&r.msg, err)
		}
	}
	cb, w := r.cb, r.w
	*r = record{}
	p.slots.put(r)
	if w != nil {
		w.ch <- sendResult{res: res, err: err}
	} else {
		cb(res, err)
	}
	p.done()
}
