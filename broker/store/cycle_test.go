package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/stretchr/testify/require"
)

// gatedFS counts the commits (fsyncs and file-system syncs) of segment
// files and, while armed, holds the first one until released.
type gatedFS struct {
	store.FS
	syncs, fsSyncs atomic.Int64
	mu             sync.Mutex
	armed          bool
	hit            chan struct{} // closed when an armed commit starts waiting
	release        chan struct{}
}

type gatedFile struct {
	store.File
	fs *gatedFS
}

func (g *gatedFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return gatedFile{File: f, fs: g}, nil
}

func (g *gatedFS) arm() {
	g.mu.Lock()
	g.armed, g.hit, g.release = true, make(chan struct{}), make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedFS) gate() {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	hit, release := g.hit, g.release
	g.mu.Unlock()
	if armed {
		close(hit)
		<-release
	}
}

func (f gatedFile) Sync() error {
	f.fs.gate()
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func (f gatedFile) SyncFilesystem() error {
	f.fs.gate()
	f.fs.fsSyncs.Add(1)
	if s, ok := f.File.(store.FilesystemSyncer); ok {
		return s.SyncFilesystem()
	}
	return f.File.Sync()
}

// TestOneCommitCoversEveryPartitionQueuedDuringTheLastOne: while a commit
// runs, appends to 63 other partitions queue; the next cycle makes all of
// them durable with one file-system sync (not 63 fsyncs), and only then
// acknowledges them.
func TestOneCommitCoversEveryPartitionQueuedDuringTheLastOne(t *testing.T) {
	g := &gatedFS{FS: store.OSFS{}}
	s := mustOpen(t, t.TempDir(), store.Options{FS: g})
	defer s.Close()
	const parts = 64
	ps := make([]*store.Partition, parts)
	for i := range ps {
		ps[i] = mustPart(t, s, "t", i)
		if _, err := ps[i].AppendSync(ctxT(t), payload(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	g.arm()
	first := make(chan error, 1)
	if err := ps[0].Append(payload(100), 0, func(_ store.AppendResult, err error) { first <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.hit:
	case <-time.After(20 * time.Second):
		t.Fatal("the first commit never started")
	}
	var acked sync.WaitGroup
	var early atomic.Int64 // acknowledged while the commit before them was held
	held := atomic.Bool{}
	held.Store(true)
	errs := make(chan error, parts)
	for i := 1; i < parts; i++ {
		acked.Add(1)
		err := ps[i].Append(payload(200+i), 0, func(_ store.AppendResult, err error) {
			if held.Load() {
				early.Add(1)
			}
			if err != nil {
				errs <- err
			}
			acked.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	before := g.syncs.Load() + g.fsSyncs.Load()
	held.Store(false)
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	acked.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := early.Load(); n > 0 {
		t.Fatalf("%d appends acknowledged before any commit could cover them", n)
	}
	commits := g.syncs.Load() + g.fsSyncs.Load() - before
	t.Logf("commits for 1 + %d partitions after the held one: %d (fsyncs %d, file-system syncs %d)",
		parts-1, commits, g.syncs.Load(), g.fsSyncs.Load())
	// The held commit itself, then one for the 63 partitions queued behind
	// it (a file-system sync), allowing one more for a cycle split by timing.
	if commits > 3 {
		t.Fatalf("%d commits for %d partitions queued together: the durability cost follows the partition count", commits, parts-1)
	}
	for i := 1; i < parts; i++ {
		if got := readAll(t, ps[i]); len(got) != 2 || string(got[1].Data) != string(payload(200+i)) {
			t.Fatalf("partition %d reads %d records", i, len(got))
		}
	}
}

// TestCloseWhileAppendingAnswersEveryAppendOnce: appends race Store.Close
// across many partitions. Every append is refused, or answered exactly once
// (durable, or ErrClosed); everything acknowledged is there after reopening.
func TestCloseWhileAppendingAnswersEveryAppendOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys})
		const parts, writers = 40, 4
		ps := make([]*store.Partition, parts)
		for i := range ps {
			ps[i] = mustPart(t, s, "t", i)
		}
		type ack struct {
			part  int
			data  string
			calls atomic.Int32
			err   error
		}
		var mu sync.Mutex
		var acks []*ack
		var wg, answered sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					i := (k*writers + w) % parts
					a := &ack{part: i, data: fmt.Sprintf("w%d-%d", w, k)}
					answered.Add(1)
					err := ps[i].Append([]byte(a.data), 0, func(_ store.AppendResult, err error) {
						a.err = err
						if a.calls.Add(1) == 1 {
							answered.Done()
						}
					})
					if err != nil {
						answered.Done()
						if !errors.Is(err, store.ErrClosed) {
							t.Errorf("append refused with %v, want ErrClosed", err)
						}
						return
					}
					mu.Lock()
					acks = append(acks, a)
					mu.Unlock()
				}
			}()
		}
		// Close once every partition has acknowledged something.
		eventually(t, 20*time.Second, "every partition acknowledges an append", func() bool {
			for _, p := range ps {
				if p.End() == 0 {
					return false
				}
			}
			return true
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		answered.Wait()
		want := make([]map[string]bool, parts)
		for i := range want {
			want[i] = map[string]bool{}
		}
		durable := 0
		for _, a := range acks {
			if n := a.calls.Load(); n != 1 {
				t.Fatalf("append %s answered %d times", a.data, n)
			}
			switch {
			case a.err == nil:
				want[a.part][a.data] = true
				durable++
			case !errors.Is(a.err, store.ErrClosed):
				t.Fatalf("append %s: %v", a.data, a.err)
			}
		}
		s = mustOpen(t, dir, store.Options{FS: fsys})
		defer s.Close()
		for i := range ps {
			for _, r := range readAll(t, mustPart(t, s, "t", i)) {
				delete(want[i], string(r.Data))
			}
			if len(want[i]) > 0 {
				t.Fatalf("partition %d lost %d acknowledged appends", i, len(want[i]))
			}
		}
		t.Logf("%d appends, %d acknowledged durable, all found after reopening", len(acks), durable)
	})
}

// rollGateFS holds the creation of a new segment file in one partition
// directory until released.
type rollGateFS struct {
	store.FS
	dir     string        // the partition directory's name, e.g. "t-0"
	hit     chan struct{} // closed when a creation starts waiting
	release chan struct{}
	once    sync.Once
}

func (g *rollGateFS) OpenFile(name string, flag int, perm os.FileMode) (store.File, error) {
	if flag&os.O_EXCL != 0 && filepath.Base(filepath.Dir(name)) == g.dir && filepath.Ext(name) == ".meta" {
		g.once.Do(func() {
			close(g.hit)
			<-g.release
		})
	}
	return g.FS.OpenFile(name, flag, perm)
}

// TestASlowRollDoesNotHoldBackOtherPartitions: a partition whose append
// rolls its segment (a file creation and fsyncs of its own) shares a cycle
// with another partition; the other partition's append is acknowledged
// while the roll is still held, and the rolled partition's once it is
// released, with both logs intact.
func TestASlowRollDoesNotHoldBackOtherPartitions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		g := &rollGateFS{FS: fsys, dir: "t-0", hit: make(chan struct{}), release: make(chan struct{})}
		opts := store.Options{FS: g, MaxSegmentSize: 4096}
		entered, hold := holdWriter(&opts)
		s := mustOpen(t, dir, opts)
		defer s.Close()
		a, b := mustPart(t, s, "t", 0), mustPart(t, s, "t", 1)
		defer func() {
			select {
			case <-g.release:
			default:
				close(g.release)
			}
		}()

		// Hold the writer in a commit of b, then queue an append that
		// rolls a's segment and one to b: the next cycle takes both.
		require.NoError(t, b.Append(payload(0), 0, func(store.AppendResult, error) {}))
		<-entered
		big := make([]byte, 3000)
		aDone, bDone := make(chan error, 2), make(chan error, 1)
		require.NoError(t, a.Append(big, 0, func(_ store.AppendResult, err error) { aDone <- err }))
		require.NoError(t, a.Append(big, 0, func(_ store.AppendResult, err error) { aDone <- err })) // does not fit: roll
		require.NoError(t, b.Append(payload(1), 0, func(_ store.AppendResult, err error) { bDone <- err }))
		close(hold)

		select {
		case <-g.hit:
		case <-time.After(20 * time.Second):
			t.Fatal("the roll never created a segment")
		}
		select {
		case err := <-bDone:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("b's append waited for a's roll")
		}
		select {
		case err := <-aDone:
			t.Fatalf("a's appends answered (%v) while its roll is held", err)
		default:
		}
		close(g.release)
		for range 2 {
			select {
			case err := <-aDone:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("a's appends never answered")
			}
		}
		require.Len(t, readAll(t, a), 2)
		require.Len(t, readAll(t, b), 2)
		require.Equal(t, 2, a.Stats().Segments)
	})
}

// TestAStalledDataRootDoesNotHoldBackAnother: each data root has its own
// commit loop, so a commit held on a topic's own directory (a slow disk)
// does not delay the acknowledgements of a topic in the main directory.
func TestAStalledDataRootDoesNotHoldBackAnother(t *testing.T) {
	main, away := t.TempDir(), t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts := store.Options{TopicDirs: []string{away},
		Topic: func(topic string) store.TopicOptions {
			if topic == "away" {
				return store.TopicOptions{Dir: away}
			}
			return store.TopicOptions{}
		},
		OnSync: func(topic string, _ int, _ time.Duration, _ error) {
			if topic == "away" {
				once.Do(func() {
					close(entered)
					<-release
				})
			}
		}}
	s := mustOpen(t, main, opts)
	defer s.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	away0, home0 := mustPart(t, s, "away", 0), mustPart(t, s, "home", 0)
	awayDone := make(chan error, 1)
	require.NoError(t, away0.Append(payload(0), 0, func(_ store.AppendResult, err error) { awayDone <- err }))
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the away topic's commit never ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := home0.AppendSync(ctx, payload(1), 0)
	require.NoError(t, err, "the main directory's partition waited for the held root")
	select {
	case err := <-awayDone:
		t.Fatalf("the held root's append answered early: %v", err)
	default:
	}
	close(release)
	require.NoError(t, <-awayDone)
}
