package store_test

import (
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

// Messages added to a queued request while the writer is busy are written
// right behind it, in order, answered by its one callback with every id
// written back; only the last queued request can grow, and only until the
// writer takes it.
func TestExtendQueuedGrowsOnlyTheLastWaitingRequest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys, MaxMessageSize: 64})
		defer s.Close()
		p := mustPart(t, s, "t", 0)

		// Hold the writer in a callback so that what follows queues up.
		entered, hold := make(chan struct{}), make(chan struct{})
		require.NoError(t, p.Append([]byte("A"), 0, func(store.AppendResult, error) {
			close(entered)
			<-hold
		}))
		<-entered

		type answer struct {
			res store.AppendResult
			err error
		}
		bDone, cDone := make(chan answer, 1), make(chan answer, 1)
		b := []store.Message{{Data: []byte("B1")}}
		require.NoError(t, p.AppendMessagesKeyed(1, b, func(r store.AppendResult, err error) { bDone <- answer{r, err} }))
		added, largest, ext := extendWith(&b, "B2", "B3")
		require.True(t, p.ExtendQueued(1, added, largest, ext), "the last queued request grows")
		require.False(t, p.ExtendQueued(7, added, largest, ext), "another key does not match")
		require.Len(t, b, 3)

		c := []store.Message{{Data: []byte("C1")}}
		require.NoError(t, p.AppendMessagesKeyed(2, c, func(r store.AppendResult, err error) { cDone <- answer{r, err} }))
		require.False(t, p.ExtendQueued(1, added, largest, ext), "B is no longer last: C1 was queued behind it")
		require.Len(t, b, 3, "a refused extension must not run extend")
		tooBig := string(make([]byte, 65))
		a2, l2, ext2 := extendWith(&c, tooBig)
		require.False(t, p.ExtendQueued(2, a2, l2, ext2), "a message over MaxMessageSize is refused")
		a2, l2, ext2 = extendWith(&c, "C2")
		require.True(t, p.ExtendQueued(2, a2, l2, ext2))

		close(hold)
		var rb, rc answer
		select {
		case rb = <-bDone:
		case <-time.After(20 * time.Second):
			t.Fatal("B not answered")
		}
		rc = <-cDone
		require.NoError(t, rb.err)
		require.NoError(t, rc.err)
		require.Equal(t, 3, rb.res.Count)
		require.Equal(t, 2, rc.res.Count)
		for _, m := range append(b, c...) {
			require.NotZero(t, m.ID, "every message gets its id written back")
		}
		require.False(t, p.ExtendQueued(2, a2, l2, ext2), "taken by the writer: cannot grow any more")

		recs := readAll(t, p)
		var got []string
		for _, r := range recs {
			got = append(got, string(r.Data))
		}
		require.Equal(t, []string{"A", "B1", "B2", "B3", "C1", "C2"}, got)
		require.Equal(t, recs[1].Offset, rb.res.Offset)
		require.Equal(t, recs[4].Offset, rc.res.Offset)
		require.Equal(t, b[2].ID, recs[3].ID)
		require.Equal(t, c[1].ID, recs[5].ID)
	})
}

// A closed partition refuses to extend (the caller's new request then gets
// the partition's error).
func TestExtendQueuedRefusedWhenClosedOrFull(t *testing.T) {
	s := mustOpen(t, t.TempDir(), store.Options{MaxQueueBytes: 200})
	p := mustPart(t, s, "t", 0)
	entered, hold := make(chan struct{}), make(chan struct{})
	require.NoError(t, p.Append([]byte("A"), 0, func(store.AppendResult, error) {
		close(entered)
		<-hold
	}))
	<-entered
	b := []store.Message{{Data: []byte("B1")}}
	done := make(chan error, 1)
	require.NoError(t, p.AppendMessagesKeyed(1, b, func(_ store.AppendResult, err error) { done <- err }))
	big := string(make([]byte, 180))
	added, largest, ext := extendWith(&b, big)
	require.False(t, p.ExtendQueued(1, added, largest, ext), "over MaxQueueBytes")
	close(hold)
	require.NoError(t, <-done)
	require.NoError(t, s.Close())
	added, largest, ext = extendWith(&b, "x")
	require.False(t, p.ExtendQueued(1, added, largest, ext))
}
