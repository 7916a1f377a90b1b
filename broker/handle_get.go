package broker

import (
	"errors"
	"math"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// getJob is a get request copied off the decoder for a read worker.
type getJob struct {
	cn      *conn
	topic   string
	part    int
	offset  int64
	maxSize int
	opaque  int32
	wait    time.Duration // long-poll: hold a caught-up get this long
	raw     bool          // a follower's replication get: reads up to the durable end, not the high watermark

	// Handed between the loop, a worker and the park goroutine, one at a
	// time (each handoff is a channel operation or a mutex).
	deadline time.Time // long-poll: when the wait ends; zero until first parked
	res      int64     // output bytes reserved for this get now

	finished atomic.Bool // accounting ended (finish)
}

// checkRead validates a get/offset target on the loop; it replies and
// returns false when the request cannot be served.
func (cn *conn) checkRead(topic string, part int32, opaque int32) bool {
	b := cn.b
	cfg, ok := b.opts.Topic(topic)
	if !ok || !cfg.AcceptSubscribe || topic == txStreamTopic { // the transaction stream is for followers only
		cn.reply(protocol.CodeNotFound, opaque, "topic "+strconv.Quote(topic)+" is not served for subscribing by this broker")
		return false
	}
	if part < 0 || int(part) >= cfg.NumPartitions {
		cn.reply(protocol.CodeNotFound, opaque, "partition "+strconv.Itoa(int(part))+" out of range for topic "+strconv.Quote(topic))
		return false
	}
	if b.isClosed(topic, int(part)) {
		cn.reply(protocol.CodeForbidden, opaque, "partition "+topic+"-"+strconv.Itoa(int(part))+" is closed by an operator")
		return false
	}
	return true
}

// replyHeaderSize bounds the `value <len> <opaque>\r\n` line of a get reply.
const replyHeaderSize = 32

func (cn *conn) handleGet(r *protocol.GetRequest) {
	if r.MaxSize <= 0 {
		cn.b.stats.get(r.Topic, 0, true)
		cn.reply(protocol.CodeBadRequest, r.OpaqueID, "maxSize must be positive, got "+strconv.Itoa(int(r.MaxSize)))
		return
	}
	if cn.replica != nil {
		// A follower copies every partition of the store, whatever the
		// topic's subscribe settings or an operator's close.
		if cn.replicaGet(r) {
			return
		}
	} else if !cn.checkRead(r.Topic, r.Partition, r.OpaqueID) {
		cn.b.stats.get(r.Topic, 0, true)
		return
	} else if cn.b.repl.follower.Load() && !cn.b.opts.Replication.ServeReads {
		cn.b.stats.get(r.Topic, 0, true)
		cn.reply(protocol.CodeForbidden, r.OpaqueID, cn.b.readRefusal())
		return
	}
	job := &getJob{cn: cn, topic: r.Topic, part: int(r.Partition), offset: r.Offset, maxSize: min(int(r.MaxSize), cn.b.opts.MaxTransferSize), opaque: r.OpaqueID,
		wait: time.Duration(r.MaxWaitMs) * time.Millisecond, raw: cn.replica != nil}
	job.res = job.full()
	if !cn.dispatch(r.OpaqueID, job.res, job.serve) {
		cn.b.stats.get(r.Topic, 0, true)
	}
}

// dispatch hands work for the read workers to the pool with reserve bytes
// of output reserved and the request counted in flight; on refusal it
// answers 503 on the loop and returns false. The job must call
// cn.finishRead(reserve) (directly or once its reply is handed to gnet).
func (cn *conn) dispatch(opaque int32, reserve int64, job func()) bool {
	if !cn.b.admit() {
		cn.reply(protocol.CodeUnavailable, opaque, "broker is shutting down")
		return false
	}
	cn.inflight.Add(1)
	cn.reserve(reserve)
	if !cn.submit(job) {
		cn.finishRead(reserve)
		cn.reply(protocol.CodeUnavailable, opaque, "broker busy: too many reads queued; retry shortly")
		return false
	}
	return true
}

// finishRead ends a dispatched request: it releases its output reservation
// and in-flight counts.
func (cn *conn) finishRead(reserved int64) {
	cn.release(reserved)
	cn.inflight.Add(-1)
	cn.b.inflight.Done()
}

// serve runs on a read worker: the read may fault pages in from disk. A
// long-poll get that is caught up parks on a goroutine of its own, holding
// no output reservation, so waiting occupies neither a worker nor the
// connection's output budget; when data arrives it is queued for the loop,
// which dispatches it again within the connection's limits.
func (j *getJob) serve() {
	defer j.recoverPanic()
	runHook(&protocol.GetRequest{Topic: j.topic, Partition: int32(j.part), Offset: j.offset, OpaqueID: j.opaque}, false)
	b := j.cn.b
	sl, err := b.read(j.topic, j.part, j.offset, j.maxSize, j.raw)
	if j.wait > 0 && (errors.Is(err, store.ErrCaughtUp) || errors.Is(err, store.ErrNoPartition)) && !b.stopping.Load() {
		if j.deadline.IsZero() {
			j.deadline = time.Now().Add(min(j.wait, maxLongPoll))
		}
		if time.Now().Before(j.deadline) {
			j.cn.release(j.res)
			j.res = 0
			b.longPolls.Add(1)
			go j.park()
			return
		}
	}
	j.reply(sl, err)
}

// park waits for data, the deadline or the broker's stop (Shutdown waits
// for the in-flight count this get holds, and for longPolls).
func (j *getJob) park() {
	defer j.cn.b.longPolls.Done()
	defer j.recoverPanic()
	t := time.NewTimer(time.Until(j.deadline))
	defer t.Stop()
	if j.cn.b.awaitData(j.topic, j.part, j.offset, j.raw, t.C) {
		if !j.serveWoken() {
			j.cn.b.waiters.requeued.Add(1)
			j.cn.requeue(j)
		}
		return
	}
	j.reply(store.Slice{}, store.ErrCaughtUp)
}

// serveWoken serves a get whose data just arrived on its park goroutine,
// without the hops through the event loop and a read worker (a loop wake-up
// and two goroutine hand-offs on the path of every long-polled message), when
// that changes nothing the limits guard: the connection is not blocked and has
// no requeued gets waiting, the broker's output is under its limit, no read
// waits for a worker (so this one jumps no queue) and fewer gets are served
// this way at once than there are read workers. The data was just made
// durable, so it is in the page cache. False: the caller requeues it to the
// loop as before.
func (j *getJob) serveWoken() bool {
	cn, b := j.cn, j.cn.b
	if cn.closed.Load() || b.stopping.Load() || cn.blocked() || cn.getMustWait() || len(b.workers.jobs) > 0 || cn.hasReady() {
		return false
	}
	if !b.waiters.startServing(b.opts.ReadWorkers) {
		return false
	}
	defer b.waiters.doneServing()
	j.res = j.full()
	cn.reserve(j.res)
	j.serve()
	return true
}

// hasReady reports whether requeued gets wait for the loop.
func (cn *conn) hasReady() bool {
	cn.readyMu.Lock()
	defer cn.readyMu.Unlock()
	return len(cn.ready) > 0
}

// full is what the get reserves while it is read and sent: maxSize plus
// the value line.
func (j *getJob) full() int64 { return int64(j.maxSize + replyHeaderSize) }

// finish ends the get's accounting, once.
func (j *getJob) finish() {
	if j.finished.CompareAndSwap(false, true) {
		j.cn.finishRead(j.res)
	}
}

// recoverPanic reports a panic while serving the get and ends its accounting.
func (j *getJob) recoverPanic() {
	if v := recover(); v != nil {
		j.cn.s.handlerPanic(j.cn, v, debug.Stack())
		j.finish()
	}
}

// reply answers the get with the slice read (or the read's error).
func (j *getJob) reply(sl store.Slice, err error) {
	cn, b := j.cn, j.cn.b
	if err != nil {
		code, body := readErrorReply(err, j.offset, b.opts.UpdateConsumerOffsets)
		b.stats.get(j.topic, 0, true)
		cn.replyAsync(protocol.AppendResultString(nil, code, j.opaque, body))
		j.finish()
		return
	}
	data, err := sl.ValidBytes() // store.ValidPrefix, guarded against a file shrunk under the mapping
	if err != nil {
		sl.Release()
		code, body := readErrorReply(err, j.offset, b.opts.UpdateConsumerOffsets)
		if code != protocol.CodeMoved {
			b.log.Error("get: refusing to serve data", "topic", j.topic, "partition", j.part, "offset", j.offset, "err", err)
		}
		b.stats.get(j.topic, 0, true)
		cn.replyAsync(protocol.AppendResultString(nil, code, j.opaque, body))
		j.finish()
		return
	}
	b.stats.get(j.topic, int64(len(data)), false)
	hdr := protocol.AppendValueHeader(make([]byte, 0, replyHeaderSize), len(data), j.opaque)
	cn.sendv([][]byte{hdr, data}, func() {
		sl.Release()
		j.finish()
	})
}

// readErrorReply maps a store read error to the reply of PROTOCOL.md §5.
func readErrorReply(err error, offset int64, updateOffsets bool) (int32, string) {
	// The store returns ErrCaughtUp bare (every expired long poll ends
	// here): answered without the reflection of the errors.As below.
	if err == store.ErrCaughtUp {
		return protocol.CodeNotFound, ""
	}
	var small *store.OffsetTooSmallError
	var large *store.OffsetTooLargeError
	var mis *store.MisalignedOffsetError
	switch {
	case errors.As(err, &small):
		return protocol.CodeMoved, strconv.FormatInt(small.Earliest, 10)
	case errors.As(err, &mis): // inside a message: continue at the next one, as MetaQ does
		return protocol.CodeMoved, strconv.FormatInt(mis.Next, 10)
	case errors.Is(err, store.ErrFailed):
		// The cause (paths, addresses) stays in the broker's log and /healthz.
		return protocol.CodeUnavailable, "partition unavailable after a storage failure; the operator must fix it and restart the broker"
	case errors.Is(err, store.ErrCorrupt):
		return protocol.CodeInternal, "corrupt data at offset " + strconv.FormatInt(offset, 10) +
			": not delivered; the operator should run `metaq segments verify`"
	case errors.Is(err, store.ErrCaughtUp):
		return protocol.CodeNotFound, ""
	case errors.Is(err, store.ErrNoPartition):
		// Never written. Reads never create partitions, so clients naming
		// arbitrary topics cannot fill the disk or ZooKeeper.
		return protocol.CodeNotFound, "no messages yet in this partition"
	case errors.As(err, &large):
		if updateOffsets || offset == math.MaxInt64 {
			return protocol.CodeMoved, strconv.FormatInt(large.End, 10)
		}
		return protocol.CodeNotFound, "offset " + strconv.FormatInt(offset, 10) + " is beyond the end " + strconv.FormatInt(large.End, 10)
	case errors.Is(err, store.ErrClosed):
		return protocol.CodeUnavailable, "broker is shutting down"
	}
	return protocol.CodeInternal, "read failed: " + err.Error()
}

func (cn *conn) handleOffset(r *protocol.OffsetRequest) {
	ok := cn.checkRead(r.Topic, r.Partition, r.OpaqueID)
	cn.b.stats.offset(r.Topic)
	if !ok {
		return
	}
	p, err := cn.b.store.Partition(r.Topic, int(r.Partition), false)
	if err != nil { // never written: 0 is the only valid offset
		cn.reply(protocol.CodeOK, r.OpaqueID, "0")
		return
	}
	offset, opaque := r.Offset, r.OpaqueID
	cn.dispatch(opaque, replyHeaderSize, func() {
		defer cn.finishRead(replyHeaderSize)
		off, err := p.OffsetAtOrBefore(offset)
		if err != nil {
			cn.replyAsync(protocol.AppendResultString(nil, protocol.CodeInternal, opaque, "offset lookup failed: "+err.Error()))
			return
		}
		off = min(off, cn.b.readableEnd(p)) // never an offset a consumer cannot read yet (a message boundary)
		cn.replyAsync(protocol.AppendResultString(nil, protocol.CodeOK, opaque, strconv.FormatInt(off, 10)))
	})
}

// requeue hands a parked get whose data arrived back to the loop (any
// goroutine). On a closed connection it just ends.
func (cn *conn) requeue(j *getJob) {
	cn.readyMu.Lock()
	if cn.closed.Load() {
		cn.readyMu.Unlock()
		j.finish()
		return
	}
	cn.ready = append(cn.ready, j)
	cn.readyMu.Unlock()
	cn.wake()
}

// dispatchReady dispatches requeued gets while the limits allow (loop
// only); false when some must wait.
func (cn *conn) dispatchReady() bool {
	cn.readyMu.Lock()
	defer cn.readyMu.Unlock()
	for len(cn.ready) > 0 {
		j := cn.ready[0]
		if cn.b.stopping.Load() { // answer like a long poll that ran out; do not hold up the drain
			cn.ready[0] = nil
			cn.ready = cn.ready[1:]
			j.reply(store.Slice{}, store.ErrCaughtUp)
			continue
		}
		if cn.blocked() || cn.getMustWait() {
			return false
		}
		j.res = j.full()
		cn.reserve(j.res)
		if !cn.submit(j.serve) {
			cn.release(j.res)
			j.res = 0
			return false
		}
		cn.ready[0] = nil
		cn.ready = cn.ready[1:]
	}
	return true
}

// dropReady ends the requeued gets of a closed connection (loop only).
func (cn *conn) dropReady() {
	cn.readyMu.Lock()
	ready := cn.ready
	cn.ready = nil
	cn.readyMu.Unlock()
	for _, j := range ready {
		j.finish()
	}
}
