package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/stretchr/testify/require"
)

// extendWith returns an ExtendQueued argument set that appends more to *batch.
func extendWith(batch *[]store.Message, more ...string) (int64, int, func() []store.Message) {
	var added int64
	largest := 0
	for _, m := range more {
		added += store.HeaderSize + int64(len(m))
		largest = max(largest, len(m))
	}
	return added, largest, func() []store.Message {
		for _, m := range more {
			*batch = append(*batch, store.Message{Data: []byte(m)})
		}
		return *batch
	}
}

// holdWriter makes the store's writer stop in the OnSync hook of its
// first commit (of any partition) until release is closed; entered is
// closed when it stopped.
func holdWriter(opts *store.Options) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts.OnSync = func(string, int, time.Duration, error) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	return entered, release
}

// Keys of two sources (connections, in the broker): the bits above the
// 40th name the source.
const (
	srcB = 1 << 40
	srcC = 2 << 40
)

// Messages added to a queued request while the writer is busy are written
// right behind it, in order, answered by its one callback with every id
// written back. A request can grow until the writer takes it, also once
// another source's requests queued behind it, but never past a later
// request of its own source or an unkeyed one.
func TestExtendQueuedGrowsAWaitingRequestOfItsSource(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		opts := store.Options{FS: fsys, MaxMessageSize: 64}
		entered, hold := holdWriter(&opts)
		s := mustOpen(t, dir, opts)
		defer s.Close()
		p := mustPart(t, s, "t", 0)

		// Hold the writer in its commit so that what follows queues up.
		require.NoError(t, p.Append([]byte("A"), 0, func(store.AppendResult, error) {}))
		<-entered

		type answer struct {
			res store.AppendResult
			err error
		}
		bDone, b2Done, cDone := make(chan answer, 1), make(chan answer, 1), make(chan answer, 1)
		b := []store.Message{{Data: []byte("B1")}}
		gen := p.QueueGen()
		require.NoError(t, p.AppendMessagesKeyed(srcB+1, b, func(r store.AppendResult, err error) { bDone <- answer{r, err} }))
		added, largest, ext := extendWith(&b, "B2", "B3")
		require.True(t, p.ExtendQueued(srcB+1, gen, added, largest, ext), "the queued request grows")
		require.False(t, p.ExtendQueued(srcB+7, gen, added, largest, ext), "another key does not match")
		require.False(t, p.ExtendQueued(srcB+1, gen+1, added, largest, ext), "another generation: taken")
		require.Len(t, b, 3)

		c := []store.Message{{Data: []byte("C1")}}
		require.NoError(t, p.AppendMessagesKeyed(srcC+1, c, func(r store.AppendResult, err error) { cDone <- answer{r, err} }))
		added, largest, ext = extendWith(&b, "B4")
		require.True(t, p.ExtendQueued(srcB+1, gen, added, largest, ext), "another source's request behind B does not stop it")
		require.Len(t, b, 4)
		tooBig := string(make([]byte, 65))
		a2, l2, ext2 := extendWith(&c, tooBig)
		require.False(t, p.ExtendQueued(srcC+1, gen, a2, l2, ext2), "a message over MaxMessageSize is refused")
		a2, l2, ext2 = extendWith(&c, "C2")
		require.True(t, p.ExtendQueued(srcC+1, gen, a2, l2, ext2))

		b2 := []store.Message{{Data: []byte("B5")}}
		require.NoError(t, p.AppendMessagesKeyed(srcB+2, b2, func(r store.AppendResult, err error) { b2Done <- answer{r, err} }))
		added, largest, ext = extendWith(&b, "B6")
		require.False(t, p.ExtendQueued(srcB+1, gen, added, largest, ext), "B's own later request is behind it")
		require.Len(t, b, 4, "a refused extension must not run extend")
		require.NoError(t, p.Append([]byte("D"), 0, func(store.AppendResult, error) {}))
		a2, l2, ext2 = extendWith(&c, "C3")
		require.False(t, p.ExtendQueued(srcC+1, gen, a2, l2, ext2), "an unkeyed request is behind C")

		close(hold)
		var rb, rb2, rc answer
		for _, w := range []struct {
			ch  chan answer
			got *answer
		}{{bDone, &rb}, {cDone, &rc}, {b2Done, &rb2}} {
			select {
			case *w.got = <-w.ch:
			case <-time.After(20 * time.Second):
				t.Fatal("not answered")
			}
			require.NoError(t, w.got.err)
		}
		require.Equal(t, 4, rb.res.Count)
		require.Equal(t, 2, rc.res.Count)
		for _, m := range append(append(b, c...), b2...) {
			require.NotZero(t, m.ID, "every message gets its id written back")
		}
		require.False(t, p.ExtendQueued(srcC+1, gen, a2, l2, ext2), "taken by the writer: cannot grow any more")
		require.False(t, p.ExtendQueued(srcC+1, p.QueueGen(), a2, l2, ext2), "taken by the writer: cannot grow any more")

		recs := readAll(t, p)
		var got []string
		for _, r := range recs {
			got = append(got, string(r.Data))
		}
		require.Equal(t, []string{"A", "B1", "B2", "B3", "B4", "C1", "C2", "B5", "D"}, got)
		require.Equal(t, recs[1].Offset, rb.res.Offset)
		require.Equal(t, recs[5].Offset, rc.res.Offset)
		require.Equal(t, recs[7].Offset, rb2.res.Offset)
		require.Equal(t, b[3].ID, recs[4].ID)
		require.Equal(t, c[1].ID, recs[6].ID)
	})
}

// A closed partition refuses to extend (the caller's new request then gets
// the partition's error).
func TestExtendQueuedRefusedWhenClosedOrFull(t *testing.T) {
	opts := store.Options{MaxQueueBytes: 200}
	entered, hold := holdWriter(&opts)
	s := mustOpen(t, t.TempDir(), opts)
	p := mustPart(t, s, "t", 0)
	require.NoError(t, p.Append([]byte("A"), 0, func(store.AppendResult, error) {}))
	<-entered
	b := []store.Message{{Data: []byte("B1")}}
	done := make(chan error, 1)
	gen := p.QueueGen()
	require.NoError(t, p.AppendMessagesKeyed(srcB+1, b, func(_ store.AppendResult, err error) { done <- err }))
	added, largest, ext := extendWith(&b, "x")
	require.True(t, p.ExtendQueued(srcB+1, gen, added, largest, ext), "room left")
	big := string(make([]byte, 180))
	added, largest, ext = extendWith(&b, big)
	require.False(t, p.ExtendQueued(srcB+1, gen, added, largest, ext), "over MaxQueueBytes")
	close(hold)
	require.NoError(t, <-done)
	require.NoError(t, s.Close())
	added, largest, ext = extendWith(&b, "x")
	require.False(t, p.ExtendQueued(srcB+1, p.QueueGen(), added, largest, ext))
}
