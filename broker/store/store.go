package store

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Store is a data directory holding many partition logs. It is safe for
// concurrent use.
type Store struct {
	dir   string
	opts  Options
	ids   *idGen
	lock  io.Closer
	roots []string              // dir, then the cleaned Options.TopicDirs (no duplicates)
	locks []io.Closer           // of roots[1:]
	files *fileCache            // open closed-segment files, bounded by MaxOpenSegments
	sync  *committer            // the cross-partition group commit
	loops map[string]*cycler    // the commit loop of each data root's group-commit partitions (set before openAll, then read-only)
	logs  map[string]*commitLog // the commit log of each data root (nil entries: none); like loops

	mu       sync.Mutex // guards parts, creating and closed
	parts    map[partID]*Partition
	creating map[partID]*creation // partitions Partition is creating without holding mu
	sorted   []*Partition         // Partitions' result; nil = to be rebuilt (parts changed)
	closed   bool
	creators sync.WaitGroup // Partition calls creating a partition

	stop   chan struct{}  // closed by Close to stop the retention loop
	replan chan struct{}  // cap 1: a partition was added, the retention loop plans again (nil: no loop)
	wg     sync.WaitGroup // the retention loop
}

// Open opens (creating it if needed) the data directory dir, takes its
// LOCK file (ErrLocked if another process holds it) and opens and recovers
// every partition found in it.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	if err := opts.FS.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return nil, fmt.Errorf("store: sync parent of data directory: %w", err)
	}
	lock, err := opts.FS.Lock(filepath.Join(dir, lockFileName))
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts, lock: lock, parts: map[partID]*Partition{}, stop: make(chan struct{}),
		files: newFileCache(opts.FS, opts.MaxOpenSegments), sync: newCommitter(opts.SyncConcurrency, opts.FilesystemSyncMin)}
	s.ids = newIDGen(opts.BrokerID, func() int64 { return opts.Now().UnixMilli() })
	if err := s.lockTopicDirs(); err != nil {
		s.Close()
		return nil, err
	}
	// One commit loop per data root: a slow disk holds back only the
	// partitions on it, and roots on separate disks commit in parallel.
	// The commit logs are replayed first, so the partitions recover
	// what they acknowledged through them.
	s.loops = make(map[string]*cycler, len(s.roots))
	s.logs = make(map[string]*commitLog, len(s.roots))
	for _, root := range s.roots {
		l, err := openCommitLog(opts.FS, root, opts.Logger, opts.CommitLogMaxBytes, opts.NoCommitLog)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.logs[root] = l
		s.loops[root] = newCycler(opts.SyncConcurrency, opts.FilesystemSyncMin, opts.CommitLogMin, l)
	}
	if err := s.openAll(); err != nil {
		s.Close()
		return nil, err
	}
	if opts.RetentionInterval > 0 {
		s.replan = make(chan struct{}, 1)
		s.wg.Add(1)
		go s.retentionLoop()
	}
	return s, nil
}

// lockTopicDirs creates and locks the directories of Options.TopicDirs.
func (s *Store) lockTopicDirs() error {
	s.roots = []string{filepath.Clean(s.dir)}
	for _, d := range s.opts.TopicDirs {
		d = filepath.Clean(d)
		if slices.Contains(s.roots, d) {
			continue
		}
		if err := s.opts.FS.MkdirAll(d, dirPerm); err != nil {
			return fmt.Errorf("store: create topic data directory: %w", err)
		}
		lock, err := s.opts.FS.Lock(filepath.Join(d, lockFileName))
		if err != nil {
			return fmt.Errorf("store: lock topic data directory %s: %w", d, err)
		}
		s.roots = append(s.roots, d)
		s.locks = append(s.locks, lock)
	}
	return nil
}

// rootOf is the directory holding topic's partition directories.
func (s *Store) rootOf(topic string) string {
	if d := s.opts.topic(topic).Dir; d != "" {
		return filepath.Clean(d)
	}
	return s.roots[0]
}

// partitionDir is the directory of partition topic-part.
func (s *Store) partitionDir(topic string, part int) string {
	return filepath.Join(s.rootOf(topic), PartitionDirName(topic, part))
}

func (s *Store) openAll() error {
	var names []string
	for _, root := range s.roots {
		ents, err := s.opts.FS.ReadDir(root)
		if err != nil {
			return fmt.Errorf("store: list %s: %w", root, err)
		}
		for _, e := range ents {
			topic, _, ok := ParsePartitionDirName(e.Name)
			if !ok || !e.IsDir {
				continue
			}
			if want := s.rootOf(topic); want != root {
				s.opts.Logger.Warn("store: partition directory ignored: its topic's data directory is another one",
					"dir", filepath.Join(root, e.Name), "topic_dir", want)
				continue
			}
			names = append(names, e.Name)
		}
	}
	parts := make([]*Partition, len(names))
	parallel(len(names), func(i int) {
		topic, part, _ := ParsePartitionDirName(names[i])
		p, err := openPartition(s, topic, part, true)
		if err != nil {
			// One bad partition must not keep the others (and the
			// broker) down: it stays in the store as failed.
			p = failedPartition(s, topic, part, err)
		}
		parts[i] = p
	})
	for _, p := range parts {
		s.parts[partID{p.topic, p.part}] = p
	}
	// The partition directories found may not be durable yet (a crash
	// right after one was created): one sync per root makes them all so
	// before anything is appended.
	if len(names) > 0 {
		for _, root := range s.roots {
			if err := s.opts.FS.SyncDir(root); err != nil {
				return fmt.Errorf("store: sync %s: %w", root, err)
			}
		}
	}
	return nil
}

// failedPartition is the stand-in for a partition that could not be opened:
// reads and appends get its error, FailedPartitions lists it.
func failedPartition(s *Store, topic string, part int, cause error) *Partition {
	p := &Partition{topic: topic, part: part, dir: s.partitionDir(topic, part),
		fs: s.opts.FS, opts: &s.opts, files: s.files, topt: s.opts.topic(topic), ids: s.ids,
		wake: make(chan struct{}, 1), done: make(chan struct{}), closed: true}
	p.log = s.opts.Logger.With("topic", topic, "partition", part)
	close(p.done) // no writer goroutine
	err := fmt.Errorf("%w: open partition %s: %w", ErrFailed, p.dir, cause)
	p.failed.Store(&failure{err: err, since: s.opts.Now(), reads: true})
	p.log.Error("store: partition could not be opened; it is unavailable until the cause is fixed and the broker restarts", "err", cause)
	return p
}

// parallel runs f(0..n-1) on a few goroutines and waits for them.
func parallel(n int, f func(i int)) {
	const workers = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Partition returns the open partition topic-part, creating it when create
// is set; otherwise a missing partition is ErrNoPartition. Looking up an
// open partition is a map access; creating one does file I/O (keep it off
// a network event loop). The Store's lock is not held during that I/O:
// lookups of other partitions go on meanwhile, and concurrent creations of
// the same partition wait for the one in progress.
func (s *Store) Partition(topic string, part int, create bool) (*Partition, error) {
	if err := validPartition(topic, part); err != nil {
		return nil, err
	}
	id := partID{topic, part}
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if p := s.parts[id]; p != nil {
			s.mu.Unlock()
			return p, nil
		}
		if !create {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrNoPartition, PartitionDirName(topic, part))
		}
		c := s.creating[id]
		if c == nil {
			break
		}
		s.mu.Unlock()
		<-c.done
		if c.err != nil {
			return nil, c.err
		}
		s.mu.Lock() // created (or the store closed meanwhile): look again
	}
	if root := s.rootOf(topic); !slices.Contains(s.roots, root) {
		s.mu.Unlock()
		return nil, fmt.Errorf("store: topic %q is to be stored in %s, which is not among Options.TopicDirs: add it there", topic, root)
	}
	c := &creation{done: make(chan struct{})}
	if s.creating == nil {
		s.creating = map[partID]*creation{}
	}
	s.creating[id] = c
	s.creators.Add(1)
	s.mu.Unlock()
	defer s.creators.Done()

	p, err := openPartition(s, topic, part, false)
	s.mu.Lock()
	delete(s.creating, id)
	c.err = err
	if err == nil {
		// Even when Close began meanwhile: it waits for the creators, then
		// closes every partition in the map, this one included.
		s.parts[id] = p
		s.sorted = nil
		if s.closed {
			p, err = nil, ErrClosed
		} else {
			s.replanRetention()
		}
	}
	s.mu.Unlock()
	close(c.done)
	return p, err
}

// creation is a partition being created by Store.Partition.
type creation struct {
	done chan struct{} // closed when it is in Store.parts, or failed
	err  error         // set before done is closed
}

// Partitions returns the open partitions sorted by topic and number (a
// copy: the caller may keep or change it). The sorted list is cached until a
// partition is added, so periodic callers cost a copy, not a sort.
func (s *Store) Partitions() []*Partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sorted == nil {
		s.sorted = make([]*Partition, 0, len(s.parts))
		for _, p := range s.parts {
			s.sorted = append(s.sorted, p)
		}
		sort.Slice(s.sorted, func(i, j int) bool {
			a, b := s.sorted[i], s.sorted[j]
			if a.topic != b.topic {
				return a.topic < b.topic
			}
			return a.part < b.part
		})
	}
	return slices.Clone(s.sorted)
}

// PartitionCount returns how many partitions the store has open. A store
// never removes a partition while it is open, so a change of the count is
// a change of the set (a follower's stream is sent the list only then).
func (s *Store) PartitionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts)
}

// NewMessageID returns a fresh message id (for callers that must know ids
// before appending, e.g. transactional puts).
func (s *Store) NewMessageID() int64 { return s.ids.reserve(1) }

// Close stops retention, drains every partition's queue, fsyncs, writes the
// clean markers of partitions that did not fail, and releases the lock.
// Segments still referenced by Slices are closed when released. Close is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.creators.Wait() // a partition being created joins s.parts first
	s.mu.Lock()
	parts := s.parts
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait() // the retention loop has stopped
	list := make([]*Partition, 0, len(parts))
	for _, p := range parts {
		list = append(list, p)
	}
	errs := make([]error, len(list), len(list)+1)
	parallel(len(list), func(i int) { errs[i] = list[i].close() })
	for _, c := range s.loops {
		c.close()
	}
	for _, l := range s.logs {
		if l != nil {
			errs = append(errs, l.close())
		}
	}
	errs = append(errs, s.lock.Close())
	for _, l := range s.locks {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
