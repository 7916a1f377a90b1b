package broker

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// getJob is a get or offset request copied off the decoder for the worker goroutine.
type getJob struct {
	cn      *conn
	topic   string
	part    int
	offset  int64
	maxSize int
	opaque  int32
	wait    time.Duration // long-poll: hold a caught-up get this long
}

// checkRead validates a get/offset target on the loop; it replies and
// returns false when the request cannot be served.
func (cn *conn) checkRead(topic string, part int32, opaque int32) bool {
	b := cn.b
	cfg, ok := b.opts.Topic(topic)
	if !ok || !cfg.AcceptSubscribe {
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

func (cn *conn) handleGet(r *protocol.GetRequest) {
	if r.MaxSize <= 0 {
		cn.b.stats.get(r.Topic, 0, true)
		cn.reply(protocol.CodeBadRequest, r.OpaqueID, "maxSize must be positive, got "+strconv.Itoa(int(r.MaxSize)))
		return
	}
	if !cn.checkRead(r.Topic, r.Partition, r.OpaqueID) {
		cn.b.stats.get(r.Topic, 0, true)
		return
	}
	job := getJob{cn: cn, topic: r.Topic, part: int(r.Partition), offset: r.Offset, maxSize: min(int(r.MaxSize), cn.b.opts.MaxTransferSize), opaque: r.OpaqueID,
		wait: time.Duration(r.MaxWaitMs) * time.Millisecond}
	if !cn.b.admit() {
		cn.b.stats.get(r.Topic, 0, true)
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "broker is shutting down")
		return
	}
	cn.inflight.Add(1)
	go job.serveGet()
}

// serveGet runs off the loop: the read may fault pages in from disk.
func (j getJob) serveGet() {
	cn, b := j.cn, j.cn.b
	finish := func() { cn.inflight.Add(-1); b.inflight.Done() }
	sl, err := b.readWaiting(j.topic, j.part, j.offset, j.maxSize, j.wait)
	if err != nil {
		code, body := readErrorReply(err, j.offset, b.opts.UpdateConsumerOffsets)
		b.stats.get(j.topic, 0, true)
		cn.replyAsync(protocol.AppendResultString(nil, code, j.opaque, body))
		finish()
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
		finish()
		return
	}
	b.stats.get(j.topic, int64(len(data)), false)
	hdr := protocol.AppendValueHeader(make([]byte, 0, 32), len(data), j.opaque)
	release := func(gnet.Conn, error) error { sl.Release(); finish(); return nil }
	if cn.closed.Load() || cn.gc.AsyncWritev([][]byte{hdr, data}, release) != nil {
		sl.Release()
		finish()
	}
}

// readErrorReply maps a store read error to the reply of PROTOCOL.md §5.
func readErrorReply(err error, offset int64, updateOffsets bool) (int32, string) {
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
	if !cn.b.admit() {
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "broker is shutting down")
		return
	}
	cn.inflight.Add(1)
	go func(offset int64, opaque int32) {
		defer func() { cn.inflight.Add(-1); cn.b.inflight.Done() }()
		off, err := p.OffsetAtOrBefore(offset)
		if err != nil {
			cn.replyAsync(protocol.AppendResultString(nil, protocol.CodeInternal, opaque, "offset lookup failed: "+err.Error()))
			return
		}
		cn.replyAsync(protocol.AppendResultString(nil, protocol.CodeOK, opaque, strconv.FormatInt(off, 10)))
	}(r.Offset, r.OpaqueID)
}
