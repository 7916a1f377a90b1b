package broker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// putBatch collects the puts to one partition decoded in one OnTraffic. They
// are appended with one store.AppendBatch — one copy into an arena, one
// callback, one asynchronous write of all their replies — so the cost per
// message stays small however deeply a client pipelines.
type putBatch struct {
	cn      *conn
	p       *store.Partition
	topic   string
	part    int32
	arena   []byte
	ends    []int // end of each message's data in arena
	flags   []int32
	sums    []int32 // each message's checksum (verified or computed on the loop)
	opaques []int32
	msgs    []store.Message
	reply   []byte

	// Bound once per pooled batch (a method value passed on allocates):
	// the store's callback and the sync gate's.
	doneFn  func(store.AppendResult, error)
	gatedFn func(error)
	res     store.AppendResult // for gatedFn
}

// queuedPut is a batch handed to a partition's queue under key; while the
// partition's writer has not taken it, the connection's next puts to that
// partition are added to it (store.ExtendQueued) instead of queued anew.
// pb may be finished and reused by then: it is touched only when the store
// confirms that the request queued under key is still waiting.
type queuedPut struct {
	pb  *putBatch
	key uint64
	gen uint64 // the partition's QueueGen before the batch was queued
}

// batchKeys hands each connection a range of 2^40 batch keys.
var batchKeys atomic.Uint64

var batchPool = sync.Pool{New: func() any { return &putBatch{} }}

func (pb *putBatch) reset() {
	pb.cn, pb.p = nil, nil
	pb.arena, pb.ends, pb.flags, pb.sums, pb.opaques = pb.arena[:0], pb.ends[:0], pb.flags[:0], pb.sums[:0], pb.opaques[:0]
	for i := range pb.msgs {
		pb.msgs[i] = store.Message{}
	}
	pb.msgs, pb.reply = pb.msgs[:0], pb.reply[:0]
	if cap(pb.arena) > 4<<20 {
		pb.arena = nil
	}
	if cap(pb.reply) > 1<<20 {
		pb.reply = nil
	}
}

func (cn *conn) handlePut(r *protocol.PutRequest) {
	b := cn.b
	fail := func(code int32, format string, args ...any) {
		b.stats.putFail(r.Topic)
		cn.reply(code, r.OpaqueID, fmt.Sprintf(format, args...))
	}
	if b.stopping.Load() {
		fail(protocol.CodeUnavailable, "broker is shutting down: send to another broker")
		return
	}
	if b.repl.follower.Load() {
		fail(protocol.CodeForbidden, "%s", b.slaveRefusal())
		return
	}
	if msg := b.sessionRefusal(); msg != "" {
		fail(protocol.CodeUnavailable, "%s", msg)
		return
	}
	if t := b.repl.tracker.Load(); t != nil {
		if err := t.Admit(); err != nil {
			fail(protocol.CodeUnavailable, "%s", err.Error())
			return
		}
	}
	cfg, ok := cn.topicConfig(r.Topic)
	if r.Topic == txStreamTopic {
		fail(protocol.CodeForbidden, "topic %q is the broker's internal transaction stream: publish to another topic", r.Topic)
		return
	}
	if !ok || !cfg.AcceptPublish {
		fail(protocol.CodeInternal, "topic %q is not accepted for publishing by this broker: add a [topic=%s] section to its config (or set autoCreateTopics=true)", r.Topic, r.Topic)
		return
	}
	part := int(r.Partition)
	if part == -1 {
		part = b.pickPartition(cfg.NumPartitions)
	}
	if part < 0 || part >= cfg.NumPartitions {
		fail(protocol.CodeInternal, "partition %d out of range for topic %q: this broker serves partitions 0..%d", r.Partition, r.Topic, cfg.NumPartitions-1)
		return
	}
	if b.isClosed(r.Topic, part) {
		fail(protocol.CodeForbidden, "partition %s-%d is closed by an operator: send to another partition", r.Topic, part)
		return
	}
	sum := protocol.Checksum(r.Data) // checked here, then handed to the store: one CRC per message
	if r.Checksum != -1 && sum != r.Checksum {
		fail(protocol.CodeInternal, "checksum mismatch: put data has CRC %d, request says %d; nothing stored", sum, r.Checksum)
		return
	}
	if cn.inflightPut.Load() > int64(b.opts.MaxInflightBytes) {
		fail(protocol.CodeUnavailable, "too many unacknowledged puts on this connection (over %d bytes): wait for replies, then retry", b.opts.MaxInflightBytes)
		return
	}
	p, err := cn.partition(r.Topic, part)
	if err != nil { // new: created off the loop (mkdir + fsync)
		cn.holdForPartition(r, part)
		return
	}
	if r.TxKey != "" && r.TxKey != "null" { // "null" = MetaQ's NullTransactionId: a plain put
		cn.handleTxPut(r, r.TxKey, int32(part))
		return
	}
	pb := cn.batchFor(p, r.Topic, int32(part))
	pb.arena = append(pb.arena, r.Data...)
	pb.ends = append(pb.ends, len(pb.arena))
	pb.flags = append(pb.flags, r.Flag)
	pb.sums = append(pb.sums, sum)
	pb.opaques = append(pb.opaques, r.OpaqueID)
}

// topicConfig is b.opts.Topic with the last answer kept on the connection:
// a producer sends run after run to one topic, and the lookup validates the
// name again and copies the topic's whole config (6% of the broker's CPU at
// 100 partitions). Topic configs do not change while the broker runs.
func (cn *conn) topicConfig(topic string) (TopicConfig, bool) {
	if cn.lastTopicOK && topic == cn.lastTopic {
		return cn.lastTopicCfg, true
	}
	cfg, ok := cn.b.opts.Topic(topic)
	if ok {
		cn.lastTopic, cn.lastTopicCfg, cn.lastTopicOK = topic, cfg, true
	}
	return cfg, ok
}

// partition returns the store's open partition topic-part through the
// connection's cache of the last topic's partitions (loop only): a put pays
// a slice index instead of the store's lock and map, shared by every event
// loop. A Store never replaces or drops an open partition, so a cached one
// stays right.
func (cn *conn) partition(topic string, part int) (*store.Partition, error) {
	if topic == cn.partsTopic && part < len(cn.parts) {
		if p := cn.parts[part]; p != nil {
			return p, nil
		}
	}
	p, err := cn.b.store.Partition(topic, part, false)
	if err != nil || part >= maxCachedParts {
		return p, err
	}
	if topic != cn.partsTopic {
		clear(cn.parts)
		cn.partsTopic, cn.parts = topic, cn.parts[:0]
	}
	if part >= len(cn.parts) {
		cn.parts = append(cn.parts, make([]*store.Partition, part+1-len(cn.parts))...)
	}
	cn.parts[part] = p
	return p, nil
}

// maxCachedParts bounds a connection's partition cache (32 KiB).
const maxCachedParts = 4096

// heldPut is a put to a partition that does not exist yet. The connection
// stops decoding while a read worker creates the partition, then the put is
// handled as if it had just arrived, so a connection's puts keep their order.
type heldPut struct {
	req  protocol.PutRequest // Data copied: the inbound buffer moves on
	done atomic.Bool         // the creation finished; err is set
	err  error
}

var errCreatePending = errors.New("partition creation did not finish")

func (cn *conn) holdForPartition(r *protocol.PutRequest, part int) {
	b := cn.b
	h := &heldPut{req: *r, err: errCreatePending}
	h.req.Partition = int32(part)
	h.req.Data = append([]byte(nil), r.Data...)
	if !b.admit() {
		b.stats.putFail(r.Topic)
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "broker is shutting down: send to another broker")
		return
	}
	cn.inflight.Add(1)
	ok := cn.submit(func() {
		defer func() {
			h.done.Store(true)
			cn.inflight.Add(-1)
			b.inflight.Done()
			cn.wake()
		}()
		_, h.err = b.partition(h.req.Topic, part)
	})
	if !ok {
		cn.inflight.Add(-1)
		b.inflight.Done()
		b.stats.putFail(r.Topic)
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "broker busy: too many requests queued; retry shortly")
		return
	}
	cn.held = h
}

// finishHeld handles a held put once its partition was created (or not).
func (cn *conn) finishHeld(h *heldPut) {
	if h.err != nil {
		cn.b.stats.putFail(h.req.Topic)
		cn.reply(protocol.CodeInternal, h.req.OpaqueID, fmt.Sprintf("cannot open partition %s-%d: %v", h.req.Topic, h.req.Partition, h.err))
		return
	}
	cn.handlePut(&h.req)
}

// batchFor returns the batch of this OnTraffic for partition p, starting
// one if needed: O(1) however many partitions one read spans (the last
// batch is checked first: the common run of puts to one partition).
func (cn *conn) batchFor(p *store.Partition, topic string, part int32) *putBatch {
	if n := len(cn.puts); n > 0 && cn.puts[n-1].p == p {
		return cn.puts[n-1]
	}
	if len(cn.puts) > 0 {
		if cn.putIdx == nil {
			cn.putIdx = make(map[*store.Partition]*putBatch)
		}
		if len(cn.putIdx) == 0 { // the index is built from the second partition on
			cn.putIdx[cn.puts[0].p] = cn.puts[0]
		}
		if pb, ok := cn.putIdx[p]; ok {
			return pb
		}
	}
	pb := batchPool.Get().(*putBatch)
	if pb.doneFn == nil {
		pb.doneFn, pb.gatedFn = pb.done, pb.gated
	}
	pb.cn, pb.p, pb.topic, pb.part = cn, p, topic, part
	cn.puts = append(cn.puts, pb)
	if len(cn.puts) > 1 {
		cn.putIdx[p] = pb
	}
	return pb
}

// takePut removes cn.puts[i] from the connection (and from its index)
// and returns it.
func (cn *conn) takePut(i int) *putBatch {
	pb := cn.puts[i]
	cn.puts[i] = nil
	if len(cn.puts) > 1 {
		delete(cn.putIdx, pb.p) // entry by entry: clear would cost the map's peak size every time
	}
	return pb
}

// flushPuts hands every batch collected in this OnTraffic to the store:
// added to the batch this connection queued on the partition before, if the
// partition's writer has not taken that one yet, or queued as a new one.
func (cn *conn) flushPuts() {
	for i := range cn.puts {
		pb := cn.takePut(i)
		if cn.extendQueued(pb) {
			continue
		}
		if !cn.b.admit() {
			pb.refuse()
			continue
		}
		start := 0
		for j, end := range pb.ends {
			pb.msgs = append(pb.msgs, store.Message{Data: pb.arena[start:end:end], Flag: pb.flags[j], Checksum: pb.sums[j], HasChecksum: true})
			start = end
		}
		size := pb.size()
		cn.inflightPut.Add(size)
		cn.inflight.Add(1)
		cn.lastKey++
		key := cn.lastKey
		cn.b.putBatches.Add(1)
		p := pb.p // pb belongs to the partition's writer once queued: it may be answered and reused at once
		gen := p.QueueGen()
		if err := p.AppendMessagesKeyed(key, pb.msgs, pb.doneFn); err != nil {
			pb.done(store.AppendResult{}, err)
			continue
		}
		if cn.queued == nil {
			cn.queued = make(map[*store.Partition]queuedPut)
		}
		cn.queued[p] = queuedPut{pb: pb, key: key, gen: gen}
	}
	cn.puts = cn.puts[:0]
}

// extendQueued adds pb's puts to the batch this connection queued on the
// same partition before, if that one still waits for the writer (then pb is
// recycled and its puts are answered with that batch).
func (cn *conn) extendQueued(pb *putBatch) bool {
	q, ok := cn.queued[pb.p]
	if !ok || !cn.b.inflight.admitting() {
		return false
	}
	size, largest := pb.size(), 0
	start := 0
	for _, end := range pb.ends {
		largest = max(largest, end-start)
		start = end
	}
	cn.inflightPut.Add(size) // before: the writer may answer the grown batch at once
	if !pb.p.ExtendQueued(q.key, q.gen, size, largest, func() []store.Message { return q.pb.absorb(pb) }) {
		cn.inflightPut.Add(-size)
		delete(cn.queued, pb.p)
		return false
	}
	cn.b.putsExtended.Add(int64(len(pb.ends)))
	pb.reset()
	batchPool.Put(pb)
	return true
}

// absorb appends o's puts to pb (which waits in a partition's queue: the
// store calls this under the queue's lock) and returns pb's messages.
func (pb *putBatch) absorb(o *putBatch) []store.Message {
	start := 0
	for j, end := range o.ends {
		n := len(pb.arena)
		pb.arena = append(pb.arena, o.arena[start:end]...)
		m := len(pb.arena)
		pb.ends = append(pb.ends, m)
		pb.flags = append(pb.flags, o.flags[j])
		pb.sums = append(pb.sums, o.sums[j])
		pb.opaques = append(pb.opaques, o.opaques[j])
		// Earlier messages keep pointing into the arena's old array if the
		// append moved it: that array stays alive and unchanged.
		pb.msgs = append(pb.msgs, store.Message{Data: pb.arena[n:m:m], Flag: o.flags[j], Checksum: o.sums[j], HasChecksum: true})
		start = end
	}
	return pb.msgs
}

// size is the bytes the batch's messages take in the log.
func (pb *putBatch) size() int64 { return int64(len(pb.arena) + store.HeaderSize*len(pb.ends)) }

// done runs on the store's answer goroutine once the batch is durable
// (group commit) or written (threshold mode), or failed. A durable batch is
// answered once the in-sync followers have it too (the sync gate, rule 1).
func (pb *putBatch) done(res store.AppendResult, err error) {
	if err != nil {
		pb.finish(res, err)
		return
	}
	end := res.Offset + pb.size()
	pb.res = res
	pb.cn.b.gate(pb.topic, int(pb.part), end, pb.gatedFn)
}

// gated answers the batch once the sync gate let it through.
func (pb *putBatch) gated(err error) { pb.finish(pb.res, err) }

// finish answers the batch's puts.
func (pb *putBatch) finish(res store.AppendResult, err error) {
	cn, b := pb.cn, pb.cn.b
	size := pb.size()
	out := pb.reply[:0]
	if err != nil {
		code, msg := putErrorReply(err)
		for _, op := range pb.opaques {
			out = protocol.AppendResultString(out, code, op, msg)
			b.stats.putFail(pb.topic)
		}
	} else {
		off := res.Offset
		for i, m := range pb.msgs {
			out = protocol.AppendPutResult(out, pb.opaques[i], m.ID, pb.part, off)
			off += int64(store.HeaderSize + len(m.Data))
		}
		b.stats.putOK(pb.topic, len(pb.msgs), int64(len(pb.arena)))
		if !b.waiters.idle() && pb.p.End() >= off {
			// Durable and visible (group commit, or threshold mode when
			// this write was fsynced). Otherwise onSync wakes the waiters
			// once it is: a consumer never sees what a crash can take back.
			// With no get parked anywhere this costs one atomic load (no
			// key, no lock): a get that parks after the check finds the
			// new end by itself (it re-reads End after registering).
			b.waiters.notify(partKey(pb.topic, int(pb.part)))
		}
	}
	cn.inflightPut.Add(-size)
	cn.inflight.Add(-1)
	cn.replyDurable(out) // copied: the batch keeps its reply buffer
	pb.reply = out
	pb.reset()
	batchPool.Put(pb)
	b.inflight.Done()
}

// refuse answers every put of a batch that the draining broker no longer
// admits (on the loop) and recycles the batch.
func (pb *putBatch) refuse() {
	cn := pb.cn
	code, msg := putErrorReply(store.ErrClosed)
	for _, op := range pb.opaques {
		cn.b.stats.putFail(pb.topic)
		cn.reply(code, op, msg)
	}
	pb.reset()
	batchPool.Put(pb)
}

func putErrorReply(err error) (int32, string) {
	if code, msg, ok := replicaPutError(err); ok {
		return code, msg
	}
	switch {
	case errors.Is(err, store.ErrQueueFull):
		return protocol.CodeUnavailable, "broker busy: the partition's write queue is full; retry shortly"
	case errors.Is(err, store.ErrClosed):
		return protocol.CodeUnavailable, "broker is shutting down: send to another broker"
	case errors.Is(err, store.ErrNoSpace):
		return protocol.CodeInternal, "no space left on the broker's data volume: nothing stored; free space (the broker resumes by itself) or send elsewhere"
	case errors.Is(err, store.ErrFailed):
		return protocol.CodeInternal, "partition failed after an I/O error and refuses writes until the broker restarts: send to another partition"
	case errors.Is(err, store.ErrMessageTooLarge):
		return protocol.CodeInternal, "message too large: " + err.Error()
	}
	return protocol.CodeInternal, "put failed: " + err.Error()
}
