package consumer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// Back-off bounds.
const (
	idleMin     = 10 * time.Millisecond // caught up without long poll: first wait
	idleMax     = time.Second
	errorMin    = 100 * time.Millisecond
	errorMax    = 5 * time.Second
	corruptMin  = time.Second
	corruptMax  = 30 * time.Second
	maxRetryGap = 30 * time.Second
)

// batch is the messages of one fetch: one slab of Message structs whose
// payloads alias one reply body.
type batch struct {
	ps   *partState
	msgs []Message
}

// partState is one fetched partition: a fetcher goroutine and (handler
// style) a delivery goroutine, both owned by it and waited for by stop.
type partState struct {
	c     *Consumer
	tp    TopicPartition
	ctp   coordinator.TopicPartition // tp for the group member
	ctx   context.Context            // ends when the partition stops (revoked, lost, closed)
	stopF context.CancelFunc
	hctx  context.Context // given to handlers; ends only when lost or Close gives up
	hstop context.CancelFunc
	wg    sync.WaitGroup

	batches chan *batch // handler style: fetcher → delivery
	stopped atomic.Bool
	session int64 // the ZooKeeper session the partition was acquired under (0: broadcast)
	resolve bool  // fetcher only: ask the offset verb before the first get
	// fetch_chain.go: chain is the fetcher's (and, while a get is in flight,
	// its reply handler's); prefetched is the fetcher's.
	chain      *getChain
	prefetched bool        // a get is in flight since prefetch: the next fetch waits for it
	holding    atomic.Bool // the fetcher holds a batch it has not handed on yet
	checked    bool        // fetcher only: the position was checked against the log end at the first 404

	commitMu sync.Mutex // serialises commits of this partition

	mu          sync.Mutex // guards every field below
	fetchOffset int64
	processed   coordinator.Offset // NextOffset and id of the last processed message; Offset -1 = none
	committed   int64              // -1 unknown
	fetchSize   int
	longPoll    bool
	err         string
}

func newPartState(c *Consumer, tp TopicPartition) *partState {
	ps := &partState{c: c, tp: tp, ctp: tp.coord(), processed: coordinator.Offset{MsgID: -1, Offset: -1}, committed: -1,
		fetchSize: c.opts.maxFetchBytes, fetchOffset: -1}
	if c.opts.broadcastDir == "" { // group mode: ownership belongs to this session
		ps.session = c.sess.ID()
	}
	ps.ctx, ps.stopF = context.WithCancel(context.Background())
	ps.hctx, ps.hstop = context.WithCancel(context.Background())
	return ps
}

// start launches the partition's goroutines.
func (ps *partState) start(h Handler) {
	if h != nil {
		ps.batches = make(chan *batch, 1)
		ps.wg.Add(1)
		go ps.deliverLoop(h)
	}
	ps.wg.Add(1)
	go ps.fetchLoop()
}

// halt stops fetching and delivery (a handler call in progress finishes;
// with lost its ctx is cancelled first). Wait with ps.wg.
func (ps *partState) halt(lost bool) {
	ps.stopped.Store(true)
	ps.stopF()
	if lost {
		ps.hstop()
	}
}

func (ps *partState) setErr(err error) {
	ps.mu.Lock()
	if err == nil {
		ps.err = ""
	} else {
		ps.err = err.Error()
	}
	ps.mu.Unlock()
}

// markProcessed records that the message ending at next (id) was processed.
func (ps *partState) markProcessed(next, id int64) {
	ps.mu.Lock()
	if next > ps.processed.Offset {
		ps.processed = coordinator.Offset{MsgID: id, Offset: next}
	}
	ps.mu.Unlock()
}

func (ps *partState) snapshot() PartitionStats {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return PartitionStats{TopicPartition: ps.tp, FetchOffset: ps.fetchOffset, Processed: ps.processed.Offset,
		Committed: ps.committed, FetchSize: ps.fetchSize, LongPoll: ps.longPoll, Err: ps.err}
}

// sleep waits d or until the partition stops (false).
func (ps *partState) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ps.ctx.Done():
		return false
	}
}

// backoff is an exponential delay reset on success.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// initialOffset reads the committed offset (group: FetchOffset, which also
// sets the fencing floor; broadcast: the offset file) or falls back to the
// start position. It retries until it works or the partition stops.
func (ps *partState) initialOffset() (int64, bool) {
	// An explicit start offset may point into a message or beyond the end:
	// it is resolved with the broker's offset verb before the first get.
	c := ps.c
	bo := backoff{min: errorMin, max: errorMax}
	for {
		o, found, err := c.loadOffset(ps.ctx, ps.tp)
		if err == nil {
			ps.mu.Lock()
			if found {
				ps.processed = o
				ps.committed = o.Offset
			}
			ps.mu.Unlock()
			if found {
				return o.Offset, true
			}
			ps.resolve = c.opts.start.kind == startAt
			return c.opts.start.fetchOffset(), true
		}
		if ps.ctx.Err() != nil {
			return 0, false
		}
		c.log.Warn("consumer: reading committed offset", "partition", ps.tp, "err", err)
		ps.setErr(err)
		if !ps.sleep(bo.next()) {
			return 0, false
		}
	}
}

// fetchLoop fetches the partition until it stops.
func (ps *partState) fetchLoop() {
	defer ps.wg.Done()
	c := ps.c
	off, ok := ps.initialOffset()
	if !ok {
		return
	}
	ps.mu.Lock()
	ps.fetchOffset = off
	ps.mu.Unlock()
	idle := backoff{min: idleMin, max: idleMax}
	errs := backoff{min: errorMin, max: errorMax}
	corrupt := backoff{min: corruptMin, max: corruptMax}
	for {
		if !c.gate.wait(ps.ctx.Done(), nil) || ps.ctx.Err() != nil {
			return
		}
		wait, err := ps.fetchOnce(&off, &idle)
		switch {
		case ps.ctx.Err() != nil:
			return
		case errors.Is(err, ErrCorrupt):
			c.stats.errors.Add(1)
			ps.setErr(err)
			wait = corrupt.next()
		case err != nil:
			c.stats.errors.Add(1)
			ps.setErr(err)
			lvl := slog.LevelDebug
			if errors.Is(err, ErrAuth) { // a configuration error an operator must see
				lvl = slog.LevelWarn
			}
			c.log.Log(ps.ctx, lvl, "consumer: fetch failed", "partition", ps.tp, "offset", off, "err", err)
			wait = errs.next()
		default:
			errs.reset()
			corrupt.reset()
		}
		if wait > 0 && !ps.sleep(wait) {
			return
		}
	}
}

// fetchOnce sends one get at *off and handles the reply; it returns how
// long to wait before the next one.
func (ps *partState) fetchOnce(off *int64, idle *backoff) (time.Duration, error) {
	c := ps.c
	bc, err := c.brokers.get(ps.ctx, ps.tp.BrokerID)
	if err != nil {
		return 0, err
	}
	ps.mu.Lock()
	size := ps.fetchSize
	ps.longPoll = bc.longPoll
	ps.mu.Unlock()
	if ps.resolve {
		answered, err := ps.adoptValidOffset(bc, off, "start offset resolved by the broker")
		if err != nil {
			return 0, err
		}
		ps.resolve = !answered
	}
	req := &protocol.GetRequest{Topic: ps.tp.Topic, Group: c.group, Partition: int32(ps.tp.Partition),
		Offset: *off, MaxSize: int32(size)}
	if bc.longPoll && c.opts.longPoll > 0 && *off != math.MaxInt64 {
		req.MaxWaitMs = int32(max(1, c.opts.longPoll.Milliseconds()))
	}
	res, err := ps.roundTrip(bc, req, size)
	*off = res.off // later than sent when the chain handed batches on (fetch_chain.go)
	if res.chained > 0 {
		idle.reset()
	}
	sent := res.sent
	if err != nil {
		if ps.ctx.Err() == nil && !errors.Is(err, context.Canceled) && res.bc != nil {
			c.brokers.drop(ps.tp.BrokerID, res.bc)
		}
		return 0, err
	}
	rep := res.rep
	if rep.Verb == protocol.VerbValue {
		var n int64
		if res.decoded {
			if res.batch != nil && res.decErr == nil {
				ps.prefetch(res.bc, req, *off+res.consumed, size)
			}
			n, err = ps.handDecoded(res.batch, res.consumed, res.decErr)
			ps.holding.Store(false)
		} else {
			n, err = ps.handleSet(*off, rep.Body, size)
		}
		if n > 0 {
			idle.reset()
			*off += n
			ps.mu.Lock()
			ps.fetchOffset = *off
			ps.mu.Unlock()
		}
		if err == nil && n == 0 && len(rep.Body) == 0 {
			return idle.next(), nil
		}
		return 0, err
	}
	switch rep.Code {
	case protocol.CodeMoved:
		to, perr := strconv.ParseInt(strings.TrimSpace(string(rep.Body)), 10, 64)
		if perr != nil || to < 0 {
			return 0, fmt.Errorf("consumer: 301 with a bad offset %q", rep.Body)
		}
		c.stats.redirects.Add(1)
		if *off != math.MaxInt64 {
			c.log.Info("consumer: broker moved the fetch offset", "partition", ps.tp, "from", *off, "to", to)
		}
		*off = to
		ps.mu.Lock()
		ps.fetchOffset = to
		ps.mu.Unlock()
		ps.setErr(nil)
		return 0, nil
	case protocol.CodeNotFound:
		// Caught up (or nothing written yet). A long poll that was held
		// needs no extra wait; one answered at once does.
		ps.setErr(nil)
		if !ps.checked && bc.longPoll {
			// A position beyond the end (a stale committed offset) also gets
			// 404: check it once against the log end. Only on our brokers,
			// whose offset verb returns the end or a message start (MetaQ's
			// returns the start of the segment, which would rewind).
			answered, err := ps.adoptValidOffset(bc, off, "fetch offset beyond the log end")
			if err != nil {
				return 0, err
			}
			ps.checked = answered
		}
		if *off == math.MaxInt64 && !ps.checked {
			// "latest" of a partition nothing was written to yet: its end is 0.
			*off = 0
			ps.mu.Lock()
			ps.fetchOffset = 0
			ps.mu.Unlock()
		}
		if req.MaxWaitMs > 0 && time.Since(sent) >= c.opts.longPoll/2 {
			idle.reset()
			return 0, nil
		}
		return idle.next(), nil
	case protocol.CodeInternal:
		if strings.Contains(string(rep.Body), "corrupt") {
			c.stats.checksumErrors.Add(1)
			c.log.Error("consumer: broker refuses to serve corrupt data; partition stopped at this offset (retrying)",
				"partition", ps.tp, "offset", *off, "reply", string(rep.Body))
			return 0, fmt.Errorf("%w at offset %d of %s: broker: %s", ErrCorrupt, *off, ps.tp, rep.Body)
		}
	}
	return 0, &conn.ServerError{Code: rep.Code, Msg: string(rep.Body)}
}

// adoptValidOffset asks the broker's offset verb for a valid offset at or
// before *off and moves there when it differs (counted as a redirect).
// answered is false when the broker has nothing for the partition yet.
func (ps *partState) adoptValidOffset(bc *brokerConn, off *int64, why string) (answered bool, err error) {
	to, err := bc.c.Offset(ps.ctx, &protocol.OffsetRequest{Topic: ps.tp.Topic, Group: ps.c.group,
		Partition: int32(ps.tp.Partition), Offset: *off})
	if err != nil {
		var se *conn.ServerError
		if errors.As(err, &se) && se.Code == protocol.CodeNotFound {
			return false, nil // nothing written yet
		}
		return false, err
	}
	if to != *off && to >= 0 {
		ps.c.stats.redirects.Add(1)
		ps.c.log.Info("consumer: "+why, "partition", ps.tp, "from", *off, "to", to)
		*off = to
		ps.mu.Lock()
		ps.fetchOffset = to
		ps.mu.Unlock()
	}
	return true, nil
}

// handleSet decodes a message set fetched at off and hands the complete,
// valid messages over; it returns the bytes consumed.
func (ps *partState) handleSet(off int64, body []byte, size int) (int64, error) {
	return ps.handDecoded(ps.decodeSet(off, body, size))
}

// handDecoded hands on a batch decodeSet returned (waiting for room) and
// returns the bytes consumed.
func (ps *partState) handDecoded(b *batch, consumed int64, err error) (int64, error) {
	if b == nil {
		return 0, err
	}
	if !ps.hand(b) {
		return 0, context.Canceled
	}
	return consumed, err
}

// decodeSet decodes a message set fetched at off into a batch of its
// complete, valid messages (nil when there is none) and the bytes they take;
// a message larger than size grows the partition's fetch size, corrupt data
// is counted, logged and returned as ErrCorrupt after the valid messages
// before it.
func (ps *partState) decodeSet(off int64, body []byte, size int) (*batch, int64, error) {
	c := ps.c
	count := countComplete(body)
	if count == 0 {
		if len(body) == 0 {
			return nil, 0, nil
		}
		if it := protocol.NewMessageIterator(body); !it.Next() && it.Err() != nil {
			c.stats.checksumErrors.Add(1)
			c.log.Error("consumer: corrupt message not delivered; partition stopped at it (retrying)",
				"partition", ps.tp, "offset", off, "err", it.Err())
			return nil, 0, fmt.Errorf("%w at offset %d of %s: %w", ErrCorrupt, off, ps.tp, it.Err())
		}
		// The first message does not fit: grow the fetch size.
		if size >= MaxFetchBytesCap {
			return nil, 0, fmt.Errorf("consumer: message at offset %d of %s exceeds the fetch size cap %d", off, ps.tp, MaxFetchBytesCap)
		}
		ps.mu.Lock()
		ps.fetchSize = min(2*size, MaxFetchBytesCap)
		if need := needed(body); need > ps.fetchSize && need <= MaxFetchBytesCap {
			ps.fetchSize = need
		}
		ps.mu.Unlock()
		c.stats.growths.Add(1)
		c.log.Info("consumer: message larger than the fetch size; growing it", "partition", ps.tp, "offset", off, "from", size)
		return nil, 0, nil
	}
	msgs := make([]Message, count)
	it := protocol.NewMessageIterator(body)
	n := 0
	for it.Next() {
		pm := it.Message()
		m := &msgs[n]
		m.Topic, m.BrokerID, m.Partition = ps.tp.Topic, ps.tp.BrokerID, ps.tp.Partition
		m.Offset = off + pm.Offset
		m.NextOffset = off + int64(it.Consumed())
		m.ID, m.Flag, m.ps = pm.ID, pm.Flag, ps
		m.Payload = pm.Data
		if pm.Flag&protocol.FlagAttribute != 0 {
			if attr, payload, err := protocol.ParsePutData(pm.Flag, pm.Data); err == nil {
				m.Attribute, m.Payload = string(attr), payload
			}
		}
		n++
	}
	consumed := int64(it.Consumed())
	var err error
	if ierr := it.Err(); ierr != nil {
		c.stats.checksumErrors.Add(1)
		c.log.Error("consumer: corrupt message not delivered; partition stopped at it (retrying)",
			"partition", ps.tp, "offset", off+consumed, "err", ierr)
		err = fmt.Errorf("%w at offset %d of %s: %w", ErrCorrupt, off+consumed, ps.tp, ierr)
	}
	if n == 0 {
		return nil, 0, err
	}
	ps.setErr(err)
	c.stats.fetches.Add(1)
	c.stats.fetchedMsgs.Add(int64(n))
	c.stats.fetchedBytes.Add(consumed)
	return &batch{ps: ps, msgs: msgs[:n]}, consumed, err
}

// hand passes a batch on (to the delivery goroutine or to Poll), waiting for
// room; false if the partition stopped first.
func (ps *partState) hand(b *batch) bool {
	ch := ps.batches
	if ch == nil {
		ch = ps.c.pollCh
	}
	select {
	case ch <- b:
		return true
	case <-ps.ctx.Done():
		return false
	}
}

// countComplete counts the complete messages at the start of set (headers
// only; CRCs are checked while decoding).
func countComplete(set []byte) int {
	n, pos := 0, 0
	for len(set)-pos >= protocol.MessageHeaderSize {
		l := int32(binary.BigEndian.Uint32(set[pos:]))
		if l < 0 || int64(l) > int64(len(set)-pos-protocol.MessageHeaderSize) {
			break
		}
		pos += protocol.MessageHeaderSize + int(l)
		n++
	}
	return n
}

// needed returns the size of the first message of set when its header is
// complete, else 0.
func needed(set []byte) int {
	if len(set) < protocol.MessageHeaderSize {
		return 0
	}
	l := int32(binary.BigEndian.Uint32(set))
	if l < 0 {
		return 0
	}
	return protocol.MessageHeaderSize + int(l)
}
