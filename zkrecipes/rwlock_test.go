package zkrecipes_test

import (
	"math/rand/v2"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func lkRWLock(t *testing.T, s *zkrecipes.Session, dir string) *zkrecipes.RWLock {
	t.Helper()
	l, err := zkrecipes.NewRWLock(s, dir)
	require.NoError(t, err)
	return l
}

// TestRWLockReadersShareWriterExcludes walks the queue: readers share, a
// writer waits for the readers before it, a reader waits for the writer
// before it, and each waiter watches only what it waits for.
func TestRWLockReadersShareWriterExcludes(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/rw"
	ctx := lkCtx(t, 30*time.Second)
	ss := make([]*zkrecipes.Session, 5)
	for i := range ss {
		ss[i] = connect(t, []string{srv.Addr})
	}
	readers := []*zkrecipes.Mutex{lkRWLock(t, ss[0], dir).ReadLock(), lkRWLock(t, ss[1], dir).ReadLock(), lkRWLock(t, ss[2], dir).ReadLock()}
	for _, r := range readers {
		require.NoError(t, r.Lock(ctx))
	}
	for _, r := range readers {
		require.True(t, r.Held(), "readers share the lock")
	}
	require.Empty(t, lkWatchers(t, srv.Addr, dir), "readers without writers watch nothing")

	w1 := lkRWLock(t, ss[3], dir).WriteLock()
	w1got := make(chan error, 1)
	go func() { w1got <- w1.Lock(ctx) }()
	require.Eventually(t, func() bool {
		ws := lkWatchers(t, srv.Addr, dir)[readers[2].Path()]
		return len(ws) == 1 && ws[0] == lkSessionHex(ss[3])
	}, 10*time.Second, 10*time.Millisecond, "the writer must watch only its immediate predecessor")
	require.Len(t, lkWatchers(t, srv.Addr, dir), 1)
	for i, r := range readers {
		require.False(t, w1.Held(), "writer held while reader %d still holds", i)
		require.NoError(t, r.Unlock(ctx))
	}
	require.NoError(t, <-w1got)
	require.True(t, w1.Held())

	// A reader behind the writer, and a second writer behind that reader.
	r4 := lkRWLock(t, ss[4], dir).ReadLock()
	ok, err := r4.TryLock(ctx)
	require.NoError(t, err)
	require.False(t, ok, "read TryLock must fail while a writer holds")
	r4got := make(chan error, 1)
	go func() { r4got <- r4.Lock(ctx) }()
	require.Eventually(t, func() bool { return len(lkWatchers(t, srv.Addr, dir)[w1.Path()]) == 1 }, 10*time.Second, 10*time.Millisecond)
	w2 := lkRWLock(t, ss[0], dir).WriteLock()
	w2got := make(chan error, 1)
	go func() { w2got <- w2.Lock(ctx) }()
	require.Eventually(t, func() bool { return len(lkChildren(t, ss[0], dir)) == 3 }, 10*time.Second, 10*time.Millisecond)
	var r4node string
	for _, k := range lkChildren(t, ss[0], dir) {
		if k != path.Base(w1.Path()) && zkrecipes.ProtectedGUID(k) != "" && containsKind(k, "read-") {
			r4node = path.Join(dir, k)
		}
	}
	require.NotEmpty(t, r4node)
	require.Eventually(t, func() bool { return len(lkWatchers(t, srv.Addr, dir)[r4node]) == 1 }, 10*time.Second, 10*time.Millisecond,
		"the second writer must watch the reader just before it")
	require.Len(t, lkWatchers(t, srv.Addr, dir)[w1.Path()], 1, "only the reader watches the first writer")

	require.NoError(t, w1.Unlock(ctx))
	require.NoError(t, <-r4got)
	require.True(t, r4.Held())
	require.False(t, w2.Held())
	require.NoError(t, r4.Unlock(ctx))
	require.NoError(t, <-w2got)
	require.NoError(t, w2.Unlock(ctx))
	require.Empty(t, lkChildren(t, ss[0], dir))
}

func containsKind(name, kind string) bool {
	return len(name) > 10 && len(name[:len(name)-10]) >= len(kind) && name[len(name)-10-len(kind):len(name)-10] == kind
}

// TestRWLockContentionAudit: under random contention a writer is always alone.
func TestRWLockContentionAudit(t *testing.T) {
	srv := zktest.Shared(t)
	dir := testRoot(t) + "/rw"
	ctx := lkCtx(t, 60*time.Second)
	var readers, writers, maxReaders atomic.Int64
	var violations atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		s := connect(t, []string{srv.Addr})
		l := lkRWLock(t, s, dir)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 8 {
				write := rng.IntN(3) == 0
				m := l.ReadLock()
				if write {
					m = l.WriteLock()
				}
				if err := m.Lock(ctx); err != nil {
					violations.Add(1000)
					return
				}
				if write {
					if writers.Add(1) != 1 || readers.Load() != 0 {
						violations.Add(1)
					}
				} else {
					n := readers.Add(1)
					if writers.Load() != 0 {
						violations.Add(1)
					}
					for cur := maxReaders.Load(); n > cur && !maxReaders.CompareAndSwap(cur, n); cur = maxReaders.Load() {
					}
				}
				_ = s.Sync(ctx, "/") // hold the lock across a server round trip
				if write {
					writers.Add(-1)
				} else {
					readers.Add(-1)
				}
				if err := m.Unlock(ctx); err != nil {
					violations.Add(1000)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, violations.Load())
	t.Logf("max concurrent readers: %d", maxReaders.Load())
	require.Empty(t, lkChildren(t, connect(t, []string{srv.Addr}), dir))
}
