package conn

import (
	"io"
	"syscall"
)

// Socket I/O and inline writes. On Linux reads and writes use rawio (no
// runtime syscall bookkeeping); elsewhere, and on connections without a raw
// conn such as TLS, net.Conn's Read and Write.
//
// Inline writes. On a connection without Linger, a request queued while
// nothing is queued and no write is in progress is written by the
// goroutine that queues it, with one non-blocking write, instead of waking
// the writer goroutine: at low rates that hand-off (a futex wake-up of
// another thread and its way back to sleep) costs more CPU than the write
// itself. Whatever the socket does not take at once — and everything queued
// while a write is in progress — is left to the writer goroutine, so Start
// still never blocks and a write error still fails the connection there.
//
// One write at a time (Conn.writing): the bytes of the queue leave in order
// whichever goroutine writes them. While the reader goroutine dispatches the
// replies of one read (Conn.corked), requests queued on an empty queue wait
// for the end of that pass, when the reader writes them all at once.

// mayWriteInlineLocked reports whether the caller may write the queue
// itself now: only without Linger. With Linger (a producer), waking the
// writer lets the requests queued right after the first join it in one
// write without waiting for the linger (the writer sees an idle
// connection); an inline write of the first alone would make the rest wait
// for Linger. c.mu is held.
func (c *Conn) mayWriteInlineLocked() bool {
	return !c.writing && c.opts.Linger <= 0 && c.rawConn() != nil // no raw conn (e.g. TLS): the writer goroutine writes
}

// rawConn returns the raw connection for rawio, nil when there is none.
func (c *Conn) rawConn() syscall.RawConn {
	c.rawOnce.Do(func() {
		c.raw = rawConnOf(c.nc)
		c.rop, c.wop = newRawOp(), newRawOp()
	})
	return c.raw
}

// writeInline writes the queue from the calling goroutine. c.mu is held on
// entry and released.
func (c *Conn) writeInline() {
	buf := c.takeLocked()
	c.mu.Unlock()
	n, _ := c.writeRaw(buf, false)
	if n > 0 {
		c.lastWrite.Store(Now())
	}
	if n == len(buf) {
		c.wrote(buf)
		return
	}
	// Put the rest back in front of what was queued meanwhile and let the
	// writer goroutine write it (waiting for room) or fail the connection.
	c.mu.Lock()
	if c.err == nil {
		rest := make([]byte, 0, len(buf)-n+len(c.wbuf))
		rest = append(append(rest, buf[n:]...), c.wbuf...)
		c.wbuf = rest
	}
	c.writing = false
	c.mu.Unlock()
	c.kick()
}

// writeSocket writes buf whole, waiting for room in the socket buffer.
func (c *Conn) writeSocket(buf []byte) error {
	if c.rawConn() == nil {
		_, err := c.nc.Write(buf)
		return err
	}
	_, err := c.writeRaw(buf, true)
	return err
}

// rawOp is one read or write through syscall.RawConn. Each connection keeps
// one for its reader and one for whoever writes (one write at a time:
// Conn.writing), with the callback bound once, so that a call does not
// allocate a closure (at low rates one allocation per message otherwise).
type rawOp struct {
	buf   []byte
	n     int
	errno syscall.Errno
	wait  bool                  // writes: wait for room until everything is written
	read  func(fd uintptr) bool // bound to readOnce
	write func(fd uintptr) bool // bound to writeOnce
}

func newRawOp() *rawOp {
	op := &rawOp{}
	op.read, op.write = op.readOnce, op.writeOnce
	return op
}

// writeOnce writes op.buf[op.n:] with rawWrite; false asks RawConn to wait
// until the socket is writable and call again.
func (op *rawOp) writeOnce(fd uintptr) bool {
	for op.n < len(op.buf) {
		k, e := rawWrite(fd, op.buf[op.n:])
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return !op.wait
		case e != 0:
			op.errno = e
			return true
		}
		op.n += k
	}
	return true
}

// readOnce reads into op.buf; false asks RawConn to wait until readable.
func (op *rawOp) readOnce(fd uintptr) bool {
	for {
		op.n, op.errno = rawRead(fd, op.buf)
		if op.errno != syscall.EINTR {
			return op.errno != syscall.EAGAIN
		}
	}
}

// writeRaw writes buf with rawWrite. With wait it waits for room in the
// socket buffer until everything is written; without, it stops at the first
// write the socket does not take whole. Only the goroutine that set
// c.writing calls it.
func (c *Conn) writeRaw(buf []byte, wait bool) (int, error) {
	op := c.wop
	op.buf, op.n, op.errno, op.wait = buf, 0, 0, wait
	err := c.raw.Write(op.write)
	n, errno := op.n, op.errno
	op.buf = nil
	if err == nil && errno != 0 {
		err = errno
	}
	return n, err
}

// readSocket reads into p like net.Conn.Read (io.EOF at the end of the
// stream), waiting for data. Reader goroutine only.
//
// Each call reads before it waits, so after a reply the reader makes one
// read that finds nothing (EAGAIN) before it parks. That read cannot be
// skipped after a read that did not fill p: the socket's end (FIN) raises
// no readiness edge of its own when it arrives along with the data, and
// would go unnoticed (TestReplyAndCloseTogether).
func (c *Conn) readSocket(p []byte) (int, error) {
	if c.rawConn() == nil {
		return c.nc.Read(p)
	}
	op := c.rop
	op.buf, op.n, op.errno = p, 0, 0
	err := c.raw.Read(op.read)
	n, errno := op.n, op.errno
	op.buf = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// uncork ends a dispatch pass of the reader: requests the handlers queued
// (e.g. a consumer's next gets, a producer's sends from callbacks) leave
// together, in one write, instead of one write each.
func (c *Conn) uncork() {
	c.mu.Lock()
	if !c.corked {
		c.mu.Unlock()
		return
	}
	c.corked = false
	if len(c.wbuf) == 0 || c.writing || c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.mayWriteInlineLocked() {
		c.writeInline() // unlocks c.mu
		return
	}
	c.mu.Unlock()
	c.kick()
}

// takeLocked takes the queued frames for writing (swapping in the spare
// buffer) and marks a write in progress. c.mu is held.
func (c *Conn) takeLocked() []byte {
	buf := c.wbuf
	c.wbuf = c.spare[:0]
	c.spare = nil
	c.writing = true
	return buf
}

// wrote ends a write of buf: it keeps buf as the spare buffer (unless it grew
// very large) and wakes the writer goroutine for frames queued meanwhile.
func (c *Conn) wrote(buf []byte) {
	if cap(buf) > 8<<20 {
		buf = nil
	}
	c.mu.Lock()
	c.writing = false
	c.spare = buf[:0]
	more := len(c.wbuf) > 0 && c.err == nil
	c.mu.Unlock()
	if more {
		c.kick()
	}
}

// kick wakes the writer goroutine.
func (c *Conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
