package store

import (
	"sync"
	"time"
)

// cycler is a data root's commit loop for the partitions of group-commit
// topics. One goroutine runs cycles: each takes every partition whose queue
// became non-empty since the previous cycle began, writes each one's queued
// appends to its active segment (one pwrite per partition), makes all of
// them durable together (the committer's batch: fdatasync for one
// partition, one syncfs per data root from FilesystemSyncMin partitions on,
// concurrent fdatasyncs in between), publishes each partition's new end and
// runs the callbacks. Appends that arrive meanwhile form the next cycle.
//
// Why one loop and not a writer goroutine per partition: with many
// partitions each carries a message or two per cycle, and a goroutine per
// partition paid two wake-ups, a channel hand-off and the scheduler's cache
// misses for each of them; the loop pays a slice append. With one busy
// partition the loop is that partition's writer, as before.
//
// Work that blocks on its own fsyncs — the first write after a clean open
// (the clean marker is removed), batches protected by the BATCH guard, a
// write that rolls the segment, a truncation — runs on a goroutine of its
// own within the cycle, so one partition's extra fsyncs do not serialise
// the others'. Threshold-mode partitions keep a writer goroutine each
// (run): their appends are answered before any fsync, on a timer.
type cycler struct {
	mu     sync.Mutex
	queued []*Partition  // scheduled for the next cycle (a partition may appear twice)
	wake   chan struct{} // cap 1: queued became non-empty, or stop
	stop   chan struct{}
	done   chan struct{}

	// Owned by the loop.
	commit   *committer   // its own: the batch scratch belongs to the loop
	clog     *commitLog   // the data root's commit log; nil: cycles sync the segments
	logMin   int          // partitions from which a cycle commits through clog
	logBuf   []byte       // the cycle's commit log records
	n        uint64       // cycle number
	active   []*Partition // the cycle's partitions written inline
	blocking []*Partition // and those written on goroutines of their own
	spare    []*Partition

	answers chan *answerJob // the loop hands committed cycles to the answerer, in order
	free    chan *answerJob // and gets them back, for reuse
	adone   chan struct{}   // closed when the answerer exits
}

// answerJob is one committed cycle whose callbacks the answerer runs.
type answerJob struct {
	items []answerItem
}

type answerItem struct {
	p       *Partition
	chunks  []*reqChunk
	closing bool // close p.done once answered
}

func newCycler(conc, fsMin, logMin int, clog *commitLog) *cycler {
	c := &cycler{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		commit: newCommitter(conc, fsMin), clog: clog, logMin: logMin, answers: make(chan *answerJob, 2), free: make(chan *answerJob, 4),
		adone: make(chan struct{})}
	go c.run()
	go c.answer()
	return c
}

// schedule queues p for the next cycle.
func (c *cycler) schedule(p *Partition) {
	c.mu.Lock()
	first := len(c.queued) == 0
	c.queued = append(c.queued, p)
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// close stops the loop once every partition it serves has closed (their
// close drained them through it).
func (c *cycler) close() {
	close(c.stop)
	<-c.done
	<-c.adone
}

func (c *cycler) run() {
	defer close(c.done)
	defer close(c.answers)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		c.mu.Lock()
		parts := c.queued
		c.queued = c.spare[:0]
		c.mu.Unlock()
		if len(parts) == 0 {
			continue
		}
		c.cycle(parts)
		clear(parts)
		c.spare = parts[:0]
	}
}

// answer is the answerer goroutine: it runs each committed cycle's
// callbacks (the replies, in the broker) while the loop already writes and
// commits the next cycle.
func (c *cycler) answer() {
	defer close(c.adone)
	for job := range c.answers {
		for _, it := range job.items {
			callBack(it.chunks)
			freeChunks(it.chunks)
			if it.closing {
				close(it.p.done)
			}
		}
		select {
		case c.free <- job:
		default:
		}
	}
}

// job returns an empty answer job, reusing one the answerer finished:
// the chunk slices it carried go back to their partitions for reuse.
func (c *cycler) job() *answerJob {
	select {
	case job := <-c.free:
		for i, it := range job.items {
			if it.p.w.spare == nil {
				it.p.w.spare = it.chunks[:0]
			}
			job.items[i] = answerItem{}
		}
		job.items = job.items[:0]
		return job
	default:
		return &answerJob{}
	}
}

// cycle writes, commits and answers the queued appends of parts. The
// partitions whose write fsyncs by itself run on goroutines of their own
// and are committed and answered after the others, so that a roll or a
// guarded batch does not hold back the acknowledgements of the partitions
// written inline (only the start of the next cycle waits for it).
func (c *cycler) cycle(parts []*Partition) {
	c.n++
	inline, blocking := c.active[:0], c.blocking[:0]
	// A cycle of many partitions commits through the commit log: the
	// inline writes append their records to logBuf as they go.
	logged := len(parts) >= c.logMin && c.clog.usable()
	c.logBuf = c.logBuf[:0]
	var wg sync.WaitGroup
	for _, p := range parts {
		w := &p.w
		if w.cyc == c.n || w.exited {
			continue // scheduled twice
		}
		w.cyc = c.n
		w.chunks, w.closing = p.take()
		if len(w.chunks) > 0 && p.writeBlocks(w.chunks) {
			blocking = append(blocking, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.write(w.chunks)
			}()
			continue
		}
		inline = append(inline, p)
		if len(w.chunks) > 0 {
			if logged {
				w.logTo, w.logBytes = &c.logBuf, 0
			}
			p.write(w.chunks)
			w.logTo = nil
		}
	}
	c.commitAndAnswer(inline, logged)
	if cap(c.logBuf) > maxLogBuf {
		c.logBuf = nil
	}
	wg.Wait()
	c.commitAndAnswer(blocking, false)
	clear(inline)
	clear(blocking)
	c.active, c.blocking = inline[:0], blocking[:0]
}

// maxLogBuf is the capacity of a cycle's commit log buffer kept for the
// next cycle.
const maxLogBuf = 16 << 20

// commitAndAnswer makes what the cycle wrote to parts durable together
// (through the commit log when logged, else by syncing the segments),
// publishes it and hands the callbacks to the answerer.
func (c *cycler) commitAndAnswer(parts []*Partition, logged bool) {
	if len(parts) == 0 {
		return
	}
	var head, tail *syncReq
	for _, p := range parts {
		w := &p.w
		w.syncing = p.needsSync()
		if !w.syncing {
			continue
		}
		r := &p.sreq
		r.file, r.err, r.next = w.seg.file, nil, nil
		if tail == nil {
			head = r
		} else {
			tail.next = r
		}
		tail = r
	}
	var took time.Duration
	if head != nil {
		start := time.Now()
		if !benchNoWrite && (!logged || !c.commitLogged(parts)) { // benchNoWrite: no commit (nowrite_on.go)
			c.commit.syncBatch(head)
		}
		took = time.Since(start)
	}

	job := c.job()
	for _, p := range parts {
		w := &p.w
		if w.syncing {
			p.synced(p.sreq.err, took)
			p.sreq.next = nil
			w.syncing = false
		}
		p.settle(w.chunks)
		if len(w.chunks) > 0 || w.closing {
			// close set closed before it scheduled p and enqueue refuses
			// from then on: a closing take was the last.
			job.items = append(job.items, answerItem{p: p, chunks: w.chunks, closing: w.closing})
			w.exited = w.closing
		}
		w.chunks = nil
	}
	if len(job.items) > 0 {
		c.answers <- job
	}
}

// commitLogged makes the cycle's writes durable with one commit log append.
// It reports false, and the caller syncs the segments, when the log failed
// or a partition to commit has written bytes that no record covers.
func (c *cycler) commitLogged(parts []*Partition) bool {
	for _, p := range parts {
		if w := &p.w; w.syncing && w.logBytes != w.pos-w.synced {
			return false
		}
	}
	if c.clog.commit(c.logBuf) != nil {
		return false // the log said why
	}
	for _, p := range parts {
		if w := &p.w; w.syncing {
			p.sreq.err = nil
			w.logged = true
		}
	}
	return true
}

// writeBlocks reports whether writing chunks fsyncs on its own (see
// cycler), so the cycle runs it on a goroutine of its own.
func (p *Partition) writeBlocks(chunks []*reqChunk) bool {
	w := &p.w
	if w.unmark {
		return true
	}
	size := w.pos
	for _, c := range chunks {
		for i := range c.reqs[:c.n] {
			r := &c.reqs[i]
			if r.truncate || r.atomic && len(r.batch) > 1 {
				return true
			}
			size += r.size
		}
	}
	return size > p.opts.MaxSegmentSize
}
