package store

import (
	"sync"
)

// FilesystemSyncer is implemented by Files that can make every file of their
// file system durable with one call (syncfs(2) on Linux for OSFS files; the
// strict in-memory FS of package storetest simulates it). The store uses it
// when one commit cycle has many dirty partitions: one call then costs about
// what one fsync does, however many partitions it covers.
type FilesystemSyncer interface {
	// SyncFilesystem makes the written data and the directory entries of
	// every file on the file system holding the file durable, and reports
	// any write-back error of that file system since the previous call.
	SyncFilesystem() error
}

// Defaults of the cross-partition group commit (see committer).
const (
	defaultSyncConcurrency   = 16
	defaultFilesystemSyncMin = 4
)

// syncReq is one partition's request to make its active segment durable.
// Each partition owns one and reuses it (at most one is in flight per
// partition: only its writer goroutine syncs).
type syncReq struct {
	file File
	root string    // the partition's data root: requests of one root share one file-system sync
	ch   chan bool // cap 1: true = synced (err set), false = lead the next cycle
	err  error     // the sync's result; written by the cycle's leader before ch
	next *syncReq  // in a cycle's batch
}

// committer is the Store's cross-partition group commit. A partition's
// writer that wants its data durable queues a request; the first writer to
// arrive while no cycle runs leads one: it takes every queued request, makes
// them all durable together and wakes their writers; requests that arrive
// meanwhile form the next cycle, led by the first of them. One partition
// alone is synced inline by its own writer (no hand-off). A cycle with at
// least FilesystemSyncMin requests on a file system that supports it is one
// syncfs per data root; otherwise the files are fdatasynced concurrently, at
// most SyncConcurrency at a time.
//
// Durability: a writer is told its sync succeeded only after the fsync (or
// syncfs) that started after its data was written returned without error;
// a failed syncfs is retried file by file, so an error is charged only to
// the partition whose file reports it.
type committer struct {
	conc  int // files fdatasynced at once
	fsMin int // requests from which a cycle uses one file-system sync per root

	mu   sync.Mutex // guards head, tail, busy
	head *syncReq   // queued for the next cycle
	tail *syncReq
	busy bool // a cycle runs (its leader owns the batch it took)

	scratch []*syncReq // owned by the running cycle's leader
}

func newCommitter(conc, fsMin int) *committer {
	return &committer{conc: conc, fsMin: fsMin}
}

// sync makes r.file durable together with whatever other partitions want
// the same, and returns the result for r.
func (c *committer) sync(r *syncReq) error {
	r.err, r.next = nil, nil
	c.mu.Lock()
	if c.tail == nil {
		c.head = r
	} else {
		c.tail.next = r
	}
	c.tail = r
	if c.busy {
		c.mu.Unlock()
		if <-r.ch {
			return r.err
		}
		c.mu.Lock() // lead the next cycle; busy stayed set
	}
	c.busy = true
	batch := c.head
	c.head, c.tail = nil, nil
	c.mu.Unlock()

	c.syncBatch(batch)

	// Wake the members (not r: it returns below). A member must not be
	// touched once woken: it may queue again at once.
	for q := batch; q != nil; {
		next := q.next
		if q != r {
			q.ch <- true
		}
		q = next
	}
	c.mu.Lock()
	lead := c.head
	if lead == nil {
		c.busy = false
	}
	c.mu.Unlock()
	if lead != nil {
		lead.ch <- false
	}
	return r.err
}

// syncBatch makes every request of the batch durable and sets its err.
func (c *committer) syncBatch(batch *syncReq) {
	n := 0
	for q := batch; q != nil; q = q.next {
		n++
	}
	if n == 1 {
		batch.err = batch.file.Sync()
		return
	}
	if n >= c.fsMin && c.syncFilesystems(batch) {
		return
	}
	c.syncFiles(batch)
}

// syncFilesystems syncs each data root of the batch once, if every file
// supports it (else it reports false and changes nothing). Requests of a
// root whose sync failed are retried file by file, so that only a file that
// reports an error fails its partition.
func (c *committer) syncFilesystems(batch *syncReq) bool {
	type rootSync struct {
		root string
		fs   FilesystemSyncer
		err  error
	}
	var roots []rootSync
next:
	for q := batch; q != nil; q = q.next {
		fs, ok := q.file.(FilesystemSyncer)
		if !ok {
			return false
		}
		for _, r := range roots {
			if r.root == q.root {
				continue next
			}
		}
		roots = append(roots, rootSync{root: q.root, fs: fs})
	}
	failed := false
	for i := range roots {
		roots[i].err = roots[i].fs.SyncFilesystem()
		failed = failed || roots[i].err != nil
	}
	if !failed {
		return true
	}
	reqs := c.scratch[:0]
	for q := batch; q != nil; q = q.next {
		for _, r := range roots {
			if r.root == q.root && r.err != nil {
				reqs = append(reqs, q)
			}
		}
	}
	c.syncEach(reqs)
	clear(reqs)
	c.scratch = reqs[:0]
	return true
}

// syncFiles fdatasyncs the batch's files, SyncConcurrency at a time.
func (c *committer) syncFiles(batch *syncReq) {
	reqs := c.scratch[:0]
	for q := batch; q != nil; q = q.next {
		reqs = append(reqs, q)
	}
	c.syncEach(reqs)
	clear(reqs)
	c.scratch = reqs[:0]
}

// syncEach syncs each request's file on up to conc goroutines (the caller
// is one of them) and waits for all.
func (c *committer) syncEach(reqs []*syncReq) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	work := func() {
		for {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			if i >= len(reqs) {
				return
			}
			reqs[i].err = reqs[i].file.Sync()
		}
	}
	for w := 1; w < min(c.conc, len(reqs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}
