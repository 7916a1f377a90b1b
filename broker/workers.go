package broker

import (
	"runtime/debug"
	"sync"
)

// queuePerWorker is how many jobs may wait per read worker before the event
// loops stop decoding requests that need one (the connections wait; nothing
// is refused).
const queuePerWorker = 64

// workers is the fixed pool that runs what must not block an event loop:
// disk reads (gets, offset lookups), partition creation and stats replies.
// Its queue is bounded; submit never blocks.
type workers struct {
	jobs    chan func()
	wg      sync.WaitGroup
	onPanic func(v any, stack []byte) // called when a job panics; the job's own defers have run

	mu     sync.RWMutex // guards closed against submits racing stop
	closed bool
}

func startWorkers(n int, onPanic func(any, []byte)) *workers {
	w := &workers{jobs: make(chan func(), n*queuePerWorker), onPanic: onPanic}
	w.wg.Add(n)
	for i := 0; i < n; i++ {
		go w.run()
	}
	return w
}

// submit queues job; false when the queue is full or the pool stopped.
func (w *workers) submit(job func()) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	select {
	case w.jobs <- job:
		return true
	default:
		return false
	}
}

// busy reports whether the queue is full (the loops then pause connections
// instead of submitting).
func (w *workers) busy() bool { return len(w.jobs) >= cap(w.jobs) }

func (w *workers) run() {
	defer w.wg.Done()
	for job := range w.jobs {
		w.safely(job)
	}
}

// safely runs a job, turning a panic into a report: one bad request must
// not take the broker down.
func (w *workers) safely(job func()) {
	defer func() {
		if v := recover(); v != nil {
			w.onPanic(v, debug.Stack())
		}
	}()
	job()
}

// stop lets the queued jobs finish and waits for the workers. Idempotent.
func (w *workers) stop() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
