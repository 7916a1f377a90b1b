package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Message is one message of a batch append.
type Message struct {
	Data []byte // put data; must not be modified until the append completes
	Flag int32
	ID   int64 // message id; 0 = assign one (AppendBatch writes it back here)
	// Checksum is Checksum(Data), when HasChecksum says the caller knows it
	// (the broker verified the producer's or computed it already): the
	// store then writes it instead of computing it again. A wrong one is
	// caught by every later read's verification, never by this append.
	Checksum    int32
	HasChecksum bool
}

// AppendResult describes an appended message or batch.
type AppendResult struct {
	MsgID  int64 // id of the (first) message
	Offset int64 // offset of the (first) message's header
	Count  int   // number of messages
	Size   int64 // bytes written, headers included
}

// request is one queued append (or a Flush barrier).
type request struct {
	data    []byte
	flag    int32
	id      int64
	batch   []Message
	atomic  bool // the batch must survive a crash whole or not at all
	done    func(AppendResult, error)
	size    int64
	barrier bool
	// raw: batch holds replicated messages to be written at rawOffset
	// (AppendRaw); truncate: cut the log at rawOffset (Truncate).
	raw       bool
	truncate  bool
	rawOffset int64
	key       uint64 // ≠ 0: queued by AppendMessagesKeyed, ExtendQueued may add to it
	res       AppendResult
	err       error
}

const writeChunk = 1 << 20 // write out the buffer when it reaches this size

// reqChunk is a fixed-size block of the append queue; blocks are pooled so a
// busy queue neither reallocates nor copies. Blocks are small (32 requests,
// ~5 KiB): with many partitions each queue holds a block, and 256-request
// blocks (40 KiB each) made every enqueue a cache miss (1,000 partitions:
// broker CPU per message 6.3 → 5.7 µs with 32).
type reqChunk struct {
	n    int
	reqs [32]request
}

var chunkPool = sync.Pool{New: func() any { return new(reqChunk) }}

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// writer is the state of the partition's writer: its data root's commit loop
// (group commit; a write that fsyncs by itself runs on a goroutine of its
// own while the loop waits for it) or the partition's goroutine (threshold
// mode). Only the writer touches it (recovery initialises it first).
type writer struct {
	seg      *segment
	pos      int64 // bytes written to seg
	synced   int64 // bytes of seg fsynced and published
	interval int64

	bufp     *[]byte
	buf      []byte     // encoded, not yet written
	inBuf    []*request // requests encoded in buf
	bufIdx   []indexEntry
	bufCnt   int64
	bufMaxTS int64
	bufLast  int64 // rel of the last index entry, counting buf

	unsynced []*request // group commit: written, waiting for the fsync
	idx      []indexEntry
	cnt      int64
	maxTS    int64
	lastIdx  int64
	unsMsgs  int       // threshold mode: messages written since the last fsync
	unsSince time.Time // threshold mode: time of the first such write
	force    bool      // a Flush barrier asks for an fsync
	unmark   bool      // the clean marker is still there: remove it before the first write
	err      error     // sticky failure
	spare    []*reqChunk
	nextID   int64 // ids reserved for the current batch
	idsLeft  int

	guard            File  // the BATCH file
	bufBatchLo       int64 // rel range of multi-message batches in buf; lo < 0 = none
	bufBatchHi       int64
	guardLo, guardHi int64 // range the BATCH file protects since the last fsync; lo < 0 = none

	// The store's commit loop (cycler) keeps a group-commit partition's
	// cycle state here.
	cyc     uint64      // number of the last cycle that took the queue
	chunks  []*reqChunk // taken by the current cycle
	closing bool        // the current cycle's take was the last one
	syncing bool        // the current cycle commits this partition
	exited  bool        // closed: p.done is closed

	// Commit log (commitlog.go): logTo, while set, receives a record of
	// every write; logBytes counts their bytes; logged says data of the
	// active segment is durable only through the log (a roll fsyncs the
	// segment first).
	logTo    *[]byte
	logBytes int64
	logged   bool
}

func (w *writer) init(seg *segment, interval int64) {
	w.seg, w.interval = seg, interval
	w.bufBatchLo, w.guardLo = -1, -1
	w.pos, w.synced = seg.size, seg.size
	w.lastIdx = -interval
	if n := len(seg.index); n > 0 {
		w.lastIdx = seg.index[n-1].rel
	}
	w.bufLast = w.lastIdx
}

// Append queues one message. It never blocks on I/O: done runs later — on
// the Store's answer goroutine in group-commit mode, on the partition's
// writer goroutine in threshold mode; so it must not block, nor call
// AppendSync or Flush — with the result: in
// group-commit mode after the fsync that covers the message, in threshold
// mode after the write. data must not be modified until done runs. A non-nil
// error (ErrClosed, ErrFailed, ErrQueueFull, ErrMessageTooLarge) means the
// message was not queued and done will not run.
func (p *Partition) Append(data []byte, flag int32, done func(AppendResult, error)) error {
	if len(data) > p.opts.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrMessageTooLarge, len(data), p.opts.MaxMessageSize)
	}
	return p.enqueue(request{data: data, flag: flag, done: done, size: HeaderSize + int64(len(data))})
}

// AppendBatch queues several messages that are written contiguously and
// become visible together (all or nothing). Messages with ID 0 get an id
// assigned and written back into msgs[i].ID before done runs. done gets the
// first message's id and offset.
func (p *Partition) AppendBatch(msgs []Message, done func(AppendResult, error)) error {
	return p.appendMany(msgs, true, done)
}

// AppendMessages queues several messages written contiguously, with one
// callback, like AppendBatch but without the all-or-nothing guarantee after a
// crash: recovery may keep a prefix of them (only what done acknowledged is
// promised). It saves the BATCH guard's extra write and fsync, so it is the
// right call for independent messages that merely arrived together (the
// broker's pipelined puts); AppendBatch is for transactions.
func (p *Partition) AppendMessages(msgs []Message, done func(AppendResult, error)) error {
	return p.appendMany(msgs, false, done)
}

// AppendMessagesKeyed is AppendMessages with a key (≠ 0, unique per call)
// under which ExtendQueued can add more messages to this request while it
// still waits for the writer. A key's bits above the 40th name its source
// (the broker: one connection): ExtendQueued never moves messages past a
// later request of the same source.
func (p *Partition) AppendMessagesKeyed(key uint64, msgs []Message, done func(AppendResult, error)) error {
	size, err := p.batchSize(msgs)
	if err != nil {
		return err
	}
	return p.enqueue(request{batch: msgs, done: done, size: size, key: key})
}

// QueueGen is the generation of the partition's queue: it changes each
// time the writer takes the queue. Read before AppendMessagesKeyed, it lets
// ExtendQueued tell without a lock that the request was taken.
func (p *Partition) QueueGen() uint64 { return p.takes.Load() }

// extendScan bounds how far back ExtendQueued looks for the keyed request.
const extendScan = 64

// ExtendQueued adds messages to the request queued by AppendMessagesKeyed
// with key, if the writer has not taken it yet (gen, from QueueGen before
// that call, is still the queue's generation) and no request queued after
// it is unkeyed or of the same source (key>>40): the added messages then
// stay contiguous behind the request's own, and a source's messages keep
// their order relative to everything else it queued, while requests of
// other sources (independent connections, with no order between them) may
// follow. added is the bytes the messages take on disk (data plus
// HeaderSize each) and largest the length of the longest one's data. It
// reports whether it added them; if not, nothing changed and the caller
// queues the messages as a new request (which reports any error: a message
// too large, a full queue, a closed or failed partition). extend runs under
// the queue's lock, only when the answer is yes: it adds the messages to the
// caller's batch and returns the whole batch, which replaces the request's.
// The request's one done callback then answers every message, with the
// first message's offset and ids written back as for AppendMessages.
//
// This is how a connection's puts to one partition, arriving in several
// reads while the writer is busy, become one request: with many partitions
// a read carries about one message per partition, and each request costs a
// queue operation, a write, a callback and a reply.
func (p *Partition) ExtendQueued(key, gen uint64, added int64, largest int, extend func() []Message) bool {
	if key == 0 || p.takes.Load() != gen || largest > p.opts.MaxMessageSize || p.failed.Load() != nil {
		return false // (most calls, with many partitions: the writer took it)
	}
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if p.closed || p.takes.Load() != gen || p.qbytes+added > p.opts.MaxQueueBytes {
		return false
	}
	src := key >> 40
	scanned := 0
	for ci := len(p.queue) - 1; ci >= 0 && scanned < extendScan; ci-- {
		c := p.queue[ci]
		for i := c.n - 1; i >= 0 && scanned < extendScan; i-- {
			r := &c.reqs[i]
			if r.key == key {
				r.batch = extend()
				r.size += added
				p.qbytes += added
				return true
			}
			if r.key == 0 || r.key>>40 == src {
				return false
			}
			scanned++
		}
	}
	return false
}

// QueuedBytes is the bytes (headers included) of the appends waiting for
// the partition's writer.
func (p *Partition) QueuedBytes() int64 {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	return p.qbytes
}

// batchSize checks a batch and returns its size on disk.
func (p *Partition) batchSize(msgs []Message) (int64, error) {
	var size int64
	for _, m := range msgs {
		if len(m.Data) > p.opts.MaxMessageSize {
			return 0, fmt.Errorf("%w: %d bytes > %d", ErrMessageTooLarge, len(m.Data), p.opts.MaxMessageSize)
		}
		size += HeaderSize + int64(len(m.Data))
	}
	if len(msgs) == 0 {
		return 0, errors.New("store: empty batch")
	}
	return size, nil
}

func (p *Partition) appendMany(msgs []Message, atomic bool, done func(AppendResult, error)) error {
	size, err := p.batchSize(msgs)
	if err != nil {
		return err
	}
	return p.enqueue(request{batch: msgs, atomic: atomic, done: done, size: size})
}

type appendReply struct {
	res AppendResult
	err error
}

// AppendSync appends one message and waits for the result.
func (p *Partition) AppendSync(ctx context.Context, data []byte, flag int32) (AppendResult, error) {
	ch := make(chan appendReply, 1)
	if err := p.Append(data, flag, func(r AppendResult, err error) { ch <- appendReply{r, err} }); err != nil {
		return AppendResult{}, err
	}
	return waitReply(ctx, ch)
}

// AppendBatchSync appends a batch and waits for the result.
func (p *Partition) AppendBatchSync(ctx context.Context, msgs []Message) (AppendResult, error) {
	ch := make(chan appendReply, 1)
	if err := p.AppendBatch(msgs, func(r AppendResult, err error) { ch <- appendReply{r, err} }); err != nil {
		return AppendResult{}, err
	}
	return waitReply(ctx, ch)
}

// Flush waits until everything appended before the call is durable and
// visible (it forces an fsync in threshold mode).
func (p *Partition) Flush(ctx context.Context) error {
	ch := make(chan appendReply, 1)
	if err := p.enqueue(request{barrier: true, done: func(r AppendResult, err error) { ch <- appendReply{r, err} }}); err != nil {
		return err
	}
	_, err := waitReply(ctx, ch)
	return err
}

func waitReply(ctx context.Context, ch chan appendReply) (AppendResult, error) {
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	}
}

func (p *Partition) enqueue(r request) error {
	if f := p.failed.Load(); f != nil {
		return f.err
	}
	p.qmu.Lock()
	if p.closed {
		p.qmu.Unlock()
		return ErrClosed
	}
	if p.qbytes > 0 && p.qbytes+r.size > p.opts.MaxQueueBytes {
		p.qmu.Unlock()
		return ErrQueueFull
	}
	wasEmpty := len(p.queue) == 0
	if wasEmpty || p.queue[len(p.queue)-1].n == len(p.queue[0].reqs) {
		p.queue = append(p.queue, chunkPool.Get().(*reqChunk))
	}
	c := p.queue[len(p.queue)-1]
	c.reqs[c.n] = r
	c.n++
	p.qbytes += r.size
	p.qmu.Unlock()
	if wasEmpty {
		p.kick()
	}
	return nil
}

// kick tells the partition's writer that its queue became non-empty or
// that it is closing: the store's commit loop (group commit) or the
// partition's own goroutine (threshold mode).
func (p *Partition) kick() {
	if p.loop != nil {
		p.loop.schedule(p)
		return
	}
	p.signal()
}

func (p *Partition) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Partition) take() (reqs []*reqChunk, closing bool) {
	p.qmu.Lock()
	reqs, p.queue, p.w.spare = p.queue, p.w.spare[:0], nil
	p.qbytes = 0
	p.takes.Add(1)
	closing = p.closed
	p.qmu.Unlock()
	return reqs, closing
}

// run is the writer goroutine: it takes whatever queued up while the
// previous write+fsync ran and commits it as one batch. It arms a timer
// only in threshold mode while unsynced data exists.
func (p *Partition) run() {
	defer close(p.done)
	threshold := p.topt.Flush.Mode == Threshold
	var timer *time.Timer
	var timerC <-chan time.Time
	for {
		select {
		case <-p.wake:
		case <-timerC:
			timerC = nil
			if time.Since(p.w.unsSince) >= p.topt.Flush.UnflushInterval {
				p.syncOut()
			}
		}
		reqs, closing := p.take()
		if len(reqs) > 0 {
			p.process(reqs)
			p.recycle(reqs)
			// Let the appenders just woken by the callbacks queue their
			// next messages so the next fsync covers them too.
			runtime.Gosched()
		}
		if closing && len(reqs) == 0 {
			p.syncOut()
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if threshold && p.w.unsMsgs > 0 && timerC == nil {
			d := p.topt.Flush.UnflushInterval - time.Since(p.w.unsSince)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
		if closing {
			p.signal() // drain what is left, then exit
		}
	}
}

// recycle returns the chunks of a processed batch to the pool and keeps
// their slice for the next take.
func (p *Partition) recycle(reqs []*reqChunk) {
	freeChunks(reqs)
	p.w.spare = reqs[:0]
}

// freeChunks returns the chunks of a processed batch to the pool.
func freeChunks(reqs []*reqChunk) {
	for i, c := range reqs {
		clear(c.reqs[:c.n])
		c.n = 0
		chunkPool.Put(c)
		reqs[i] = nil
	}
}

// process commits one batch of requests and runs their callbacks.
func (p *Partition) process(chunks []*reqChunk) {
	p.write(chunks)
	if p.topt.Flush.Mode == GroupCommit || p.w.force || p.w.unsMsgs >= p.topt.Flush.UnflushThreshold {
		p.syncOut()
	}
	p.answer(chunks)
}

// write encodes a batch of requests and writes it to the active segment
// (rolling, truncating and protecting batches on the way); what it wrote
// waits for the commit in w.unsynced.
func (p *Partition) write(chunks []*reqChunk) {
	w := &p.w
	if w.unmark && w.err == nil {
		if err := p.unmark(); err != nil {
			p.fail(fmt.Errorf("%w: %w", ErrFailed, err))
		}
	}
	w.bufp = writeBufPool.Get().(*[]byte)
	w.buf = (*w.bufp)[:0]
	p.reserveIDs(chunks)
	for _, c := range chunks {
		for i := range c.reqs[:c.n] {
			r := &c.reqs[i]
			switch {
			case w.err != nil:
				r.err = w.err
			case r.truncate:
				p.writeBuf()
				p.syncOut()
				r.err = p.truncate(r.rawOffset)
			case r.barrier:
				w.force = true
			default:
				p.add(r)
			}
		}
	}
	p.writeBuf()
	*w.bufp = w.buf[:0]
	writeBufPool.Put(w.bufp)
	w.buf, w.bufp = nil, nil
}

// answer runs the callbacks of a batch whose commit is over (or that was
// only written, in threshold mode).
func (p *Partition) answer(chunks []*reqChunk) {
	p.settle(chunks)
	callBack(chunks)
}

// settle gives a batch's Flush barriers the commit's outcome.
func (p *Partition) settle(chunks []*reqChunk) {
	w := &p.w
	w.force = false
	for _, c := range chunks {
		for i := range c.reqs[:c.n] {
			if r := &c.reqs[i]; r.barrier && r.err == nil {
				r.err = w.err
			}
		}
	}
}

// callBack runs a settled batch's callbacks; it touches no writer state.
func callBack(chunks []*reqChunk) {
	for _, c := range chunks {
		for i := range c.reqs[:c.n] {
			if r := &c.reqs[i]; r.done != nil {
				r.done(r.res, r.err)
			}
		}
	}
}

// reserveIDs reserves, with one clock read, the ids the batch needs.
func (p *Partition) reserveIDs(chunks []*reqChunk) {
	n := 0
	for _, c := range chunks {
		for i := range c.reqs[:c.n] {
			r := &c.reqs[i]
			if r.batch == nil && !r.barrier && r.id == 0 {
				n++
			}
			for _, m := range r.batch {
				if m.ID == 0 {
					n++
				}
			}
		}
	}
	if n > 0 {
		p.w.nextID, p.w.idsLeft = p.ids.reserve(n), n
	}
}

// takeID hands out the next reserved id.
func (p *Partition) takeID() int64 {
	w := &p.w
	if w.idsLeft == 0 { // cannot happen: reserveIDs counted every need
		return p.ids.reserve(1)
	}
	id := w.nextID
	w.idsLeft--
	w.nextID = p.ids.succ(id)
	return id
}

// add encodes a request into the buffer, rolling the segment first when it
// would not fit.
func (p *Partition) add(r *request) {
	w := &p.w
	if r.raw && !p.addRaw(r) {
		return
	}
	if used := w.pos + int64(len(w.buf)); used > 0 && used+r.size > p.opts.MaxSegmentSize {
		if err := p.roll(); err != nil {
			r.err = err
			return
		}
	}
	if r.batch == nil {
		id := r.id
		if id == 0 {
			id = p.takeID()
		}
		r.res = AppendResult{MsgID: id, Offset: w.seg.base + w.pos + int64(len(w.buf)), Count: 1, Size: r.size}
		p.encode(id, r.flag, r.data, Checksum(r.data))
	} else {
		p.encodeBatch(r)
	}
	w.inBuf = append(w.inBuf, r)
	if len(w.buf) >= writeChunk {
		p.writeBuf()
	}
}

func (p *Partition) encodeBatch(r *request) {
	w := &p.w
	start := w.pos + int64(len(w.buf))
	r.res = AppendResult{Offset: w.seg.base + start, Count: len(r.batch), Size: r.size}
	if len(r.batch) > 1 && r.atomic {
		if w.bufBatchLo < 0 {
			w.bufBatchLo = start
		}
		w.bufBatchHi = start + r.size
	}
	for i := range r.batch {
		m := &r.batch[i]
		if m.ID == 0 {
			m.ID = p.takeID()
		}
		sum := m.Checksum
		if !m.HasChecksum {
			sum = Checksum(m.Data)
		}
		p.encode(m.ID, m.Flag, m.Data, sum)
	}
	r.res.MsgID = r.batch[0].ID
}

var zeroHeader [HeaderSize]byte

func (p *Partition) encode(id int64, flag int32, data []byte, sum int32) {
	w := &p.w
	rel := w.pos + int64(len(w.buf))
	n := len(w.buf)
	w.buf = append(w.buf, zeroHeader[:]...)
	PutHeader(w.buf[n:], Header{Len: int32(len(data)), Checksum: sum, ID: id, Flag: flag})
	w.buf = append(w.buf, data...)
	ts := id>>idTimeShift + IDEpoch
	if rel-w.bufLast >= w.interval {
		w.bufIdx = append(w.bufIdx, indexEntry{rel: rel, ts: ts})
		w.bufLast = rel
	}
	w.bufCnt++
	w.bufMaxTS = max(w.bufMaxTS, ts)
}

// writeBuf writes the buffer at the end of the active segment. ENOSPC is
// not sticky: the partial write is truncated away and only the buffered
// requests fail. Any other error fails the partition.
func (p *Partition) writeBuf() {
	w := &p.w
	if len(w.buf) == 0 {
		return
	}
	if w.bufBatchLo >= 0 && !p.protectBatches() {
		return
	}
	var err error
	if !benchNoWrite {
		_, err = w.seg.file.WriteAt(w.buf, w.pos)
	}
	if err != nil && errors.Is(err, syscall.ENOSPC) {
		if terr := w.seg.file.Truncate(w.pos); terr == nil {
			p.log.Warn("store: disk full, append rejected", "segment", w.seg.path)
			p.failBuf(fmt.Errorf("%w: write %s: %w", ErrNoSpace, w.seg.path, err))
			p.settleGuard()
			return
		} else {
			err = fmt.Errorf("%w (truncating after it: %w)", err, terr)
		}
	}
	if err != nil {
		p.fail(fmt.Errorf("%w: write %s: %w", ErrFailed, w.seg.path, err))
		return
	}
	if w.logTo != nil {
		*w.logTo = appendCommitRecord(*w.logTo, p.name, w.seg.base, w.pos, w.buf)
		w.logBytes += int64(len(w.buf))
	}
	w.pos += int64(len(w.buf))
	w.idx = append(w.idx, w.bufIdx...)
	w.cnt += w.bufCnt
	w.maxTS = max(w.maxTS, w.bufMaxTS)
	w.lastIdx = w.bufLast
	if p.topt.Flush.Mode == GroupCommit {
		w.unsynced = append(w.unsynced, w.inBuf...)
	} else {
		if w.unsMsgs == 0 {
			w.unsSince = time.Now()
		}
		w.unsMsgs += int(w.bufCnt)
	}
	p.resetBuf()
}

func (p *Partition) resetBuf() {
	w := &p.w
	clear(w.inBuf)
	w.buf, w.inBuf, w.bufIdx = w.buf[:0], w.inBuf[:0], w.bufIdx[:0]
	w.bufCnt, w.bufMaxTS, w.bufLast = 0, 0, w.lastIdx
	w.bufBatchLo = -1
}

func (p *Partition) failBuf(err error) {
	for _, r := range p.w.inBuf {
		r.err = err
	}
	p.resetBuf()
}

// fail makes the partition's failure sticky and fails everything pending.
func (p *Partition) fail(err error) {
	w := &p.w
	p.log.Error("store: partition failed; appends refused until restart", "err", err)
	w.err = err
	p.failed.Store(&failure{err: err, since: p.opts.Now()})
	p.failBuf(err)
	for _, r := range w.unsynced {
		r.err = err
	}
	clear(w.unsynced)
	w.unsynced = w.unsynced[:0]
	if w.unsMsgs > 0 {
		p.log.Error("store: acknowledged messages were not fsynced and may be lost", "count", w.unsMsgs)
	}
}

// syncOut fsyncs the active segment and publishes what was written: the
// visible end moves and group-commit requests are acknowledged.
func (p *Partition) syncOut() {
	if !p.needsSync() {
		return
	}
	start := time.Now()
	p.sreq.file = p.w.seg.file
	err := p.commit.sync(&p.sreq)
	p.synced(err, time.Since(start))
}

// needsSync reports whether the active segment has written data that no
// commit covers yet.
func (p *Partition) needsSync() bool { return p.w.err == nil && p.w.pos != p.w.synced }

// synced ends a commit of the active segment that took took: on success
// the written data becomes visible and its requests are acknowledged (their
// callbacks run later, in answer); on failure the partition fails.
func (p *Partition) synced(err error, took time.Duration) {
	w := &p.w
	if err != nil {
		if h := p.opts.OnSync; h != nil {
			h(p.topic, p.part, took, err)
		}
		p.fail(fmt.Errorf("%w: fsync %s: %w", ErrFailed, w.seg.path, err))
		return
	}
	w.seg.publish(w.pos, w.cnt, w.maxTS, w.idx)
	p.count.Add(w.cnt)
	p.visibleEnd.Store(w.seg.base + w.pos)
	if h := p.opts.OnSync; h != nil {
		h(p.topic, p.part, took, nil) // the data is visible: the hook may wake readers
	}
	w.synced = w.pos
	w.guardLo = -1 // everything the guard covered is durable now
	w.idx, w.cnt, w.maxTS = w.idx[:0], 0, 0
	clear(w.unsynced)
	w.unsynced = w.unsynced[:0]
	w.unsMsgs = 0
}

// syncLogged fsyncs the active segment when data in it is durable only
// through the commit log, before a roll: a closed segment is synced once,
// as without the log, and its sidecar is written over durable data.
func (p *Partition) syncLogged() error {
	w := &p.w
	if !w.logged {
		return nil
	}
	if err := w.seg.file.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", w.seg.path, err)
	}
	w.logged = false
	return nil
}

// roll makes the active segment durable, writes its sidecar and starts a
// new segment. It returns the error that prevented the roll.
func (p *Partition) roll() error {
	w := &p.w
	p.writeBuf()
	if len(w.buf) == 0 {
		p.syncOut()
	}
	if w.err != nil {
		return w.err
	}
	if w.pos != w.synced { // the buffered write hit ENOSPC
		return fmt.Errorf("%w: cannot roll segment %s", ErrNoSpace, w.seg.path)
	}
	if err := p.syncLogged(); err != nil {
		p.fail(fmt.Errorf("%w: %w", ErrFailed, err))
		return w.err
	}
	p.writeSidecar(w.seg)
	old := w.seg
	base := w.seg.base + w.pos
	name := filepath.Join(p.dir, segmentName(base))
	f, err := p.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil && errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: create %s: %w", ErrNoSpace, name, err)
	}
	if err == nil {
		if err = p.fs.SyncDir(p.dir); err != nil {
			f.Close()
		}
	}
	if err != nil {
		p.fail(fmt.Errorf("%w: create segment: %w", ErrFailed, err))
		return w.err
	}
	seg := &segment{base: base, path: name, file: f}
	seg.refs.Store(1)
	p.mu.Lock()
	p.segs = append(p.segs, seg)
	p.mu.Unlock()
	p.files.retire(old) // its descriptor now counts against MaxOpenSegments
	w.init(seg, w.interval)
	return nil
}
