package producer

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// retryQueue holds messages waiting to be sent again, ordered by when they
// were first sent, and sends them again in that order from one goroutine.
// While it holds anything, new messages queue behind it, so a retry never
// lets a later message of this producer overtake an earlier one (a message
// that fails on its first attempt, e.g. while the topic's registration is
// still appearing in ZooKeeper, keeps its place).
//
// Messages already written on a connection that then breaks come back in
// the order their failures are reported, which the heap restores; messages
// sent on a new connection before those failures are seen can still get
// ahead of them (as in Kafka with more than one request in flight).
type retryQueue struct {
	p       *Producer
	mu      sync.Mutex // guards h and running
	h       recordHeap
	running bool
	busy    atomic.Int64 // records queued or being re-sent by the loop
	kick    chan struct{}
}

func (q *retryQueue) init(p *Producer) {
	q.p = p
	q.kick = make(chan struct{}, 1)
}

// pending reports whether new messages must queue behind retries.
func (q *retryQueue) pending() bool { return q.busy.Load() > 0 }

// push queues r to be sent at r.due, starting the loop if needed. A message
// whose ctx ends while it waits is failed at once.
func (q *retryQueue) push(r *record) {
	q.busy.Add(1)
	if r.ctx.Done() != nil {
		// Set up before r is visible to the loop; if ctx is already done,
		// cancel finds r not queued yet and the loop fails it instead.
		r.stopCtx = context.AfterFunc(r.ctx, func() { q.cancel(r) })
	}
	q.mu.Lock()
	heap.Push(&q.h, r)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		if !q.p.spawn(q.loop) {
			q.failAll(ErrClosed)
		}
		return
	}
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// cancel fails r if it is still queued (its ctx ended).
func (q *retryQueue) cancel(r *record) {
	q.mu.Lock()
	if r.heapIdx < 0 {
		q.mu.Unlock()
		return
	}
	heap.Remove(&q.h, r.heapIdx)
	q.mu.Unlock()
	q.busy.Add(-1)
	r.fail(errors.Join(r.ctx.Err(), r.lastErr))
}

func (q *retryQueue) loop() {
	for {
		q.mu.Lock()
		if len(q.h) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		head := q.h[0]
		wait := time.Until(head.due)
		if wait <= 0 {
			heap.Pop(&q.h) // now ours: cancel leaves it alone
			q.mu.Unlock()
			if head.stopCtx != nil {
				head.stopCtx()
				head.stopCtx = nil
			}
			if err := head.ctx.Err(); err != nil {
				q.busy.Add(-1)
				head.fail(errors.Join(err, head.lastErr))
				continue
			}
			q.p.dispatch(head) // may push it again
			q.busy.Add(-1)
			continue
		}
		q.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.kick:
		case <-q.p.abort:
			t.Stop()
			q.failAll(ErrClosed)
			return
		}
		t.Stop()
	}
}

// failAll fails everything queued (Close gave up on it).
func (q *retryQueue) failAll(err error) {
	q.mu.Lock()
	rs := q.h
	q.h = nil
	q.running = false
	for _, r := range rs {
		r.heapIdx = -1 // ours now: cancel leaves them alone
	}
	q.mu.Unlock()
	for _, r := range rs {
		if r.stopCtx != nil {
			r.stopCtx()
			r.stopCtx = nil
		}
		q.busy.Add(-1)
		r.fail(errors.Join(err, r.lastErr))
	}
}

// recordHeap orders records by first-send order.
type recordHeap []*record

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].order < h[j].order }
func (h recordHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *recordHeap) Push(x any) {
	r := x.(*record)
	r.heapIdx = len(*h)
	*h = append(*h, r)
}
func (h *recordHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.heapIdx = -1
	return r
}
