package conn

import (
	"io"
	"syscall"
	"time"
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
	c.rawOnce.Do(func() { c.raw = rawConnOf(c.nc) })
	return c.raw
}

// writeInline writes the queue from the calling goroutine. c.mu is held on
// entry and released.
func (c *Conn) writeInline() {
	buf := c.takeLocked()
	raw := c.raw
	c.mu.Unlock()
	n, _ := writeRaw(raw, buf, false)
	if n > 0 {
		c.lastWrite.Store(time.Now().UnixNano())
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
	raw := c.rawConn()
	if raw == nil {
		_, err := c.nc.Write(buf)
		return err
	}
	_, err := writeRaw(raw, buf, true)
	return err
}

// writeRaw writes buf with rawWrite. With wait it waits for room in the
// socket buffer until everything is written; without, it stops at the first
// write the socket does not take whole.
func writeRaw(raw syscall.RawConn, buf []byte, wait bool) (int, error) {
	n := 0
	var errno syscall.Errno
	err := raw.Write(func(fd uintptr) bool {
		for n < len(buf) {
			k, e := rawWrite(fd, buf[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return !wait // false: wait until the socket is writable, then again
			case e != 0:
				errno = e
				return true
			}
			n += k
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	return n, err
}

// readSocket reads into p like net.Conn.Read (io.EOF at the end of the
// stream), waiting for data.
func (c *Conn) readSocket(p []byte) (int, error) {
	raw := c.rawConn()
	if raw == nil {
		return c.nc.Read(p)
	}
	var n int
	var errno syscall.Errno
	err := raw.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(fd, p)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN // false: wait until readable, then again
			}
		}
	})
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
