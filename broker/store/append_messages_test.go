package store_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
)

// AppendMessages writes contiguously with one callback, like AppendBatch,
// and assigns ids; it does not write the BATCH guard (no all-or-nothing).
func TestAppendMessagesIsContiguousAndAssignsIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys})
		defer s.Close()
		p := mustPart(t, s, "many", 0)
		msgs := []store.Message{{Data: []byte("a")}, {Data: []byte("bb")}, {Data: []byte("ccc")}}
		done := make(chan store.AppendResult, 1)
		require.NoError(t, p.AppendMessages(msgs, func(r store.AppendResult, err error) {
			require.NoError(t, err)
			done <- r
		}))
		r := <-done
		require.Equal(t, int64(0), r.Offset)
		require.Equal(t, 3, r.Count)
		require.Equal(t, msgs[0].ID, r.MsgID)
		require.Less(t, msgs[0].ID, msgs[1].ID)
		require.Less(t, msgs[1].ID, msgs[2].ID)
		require.Equal(t, int64(3*store.HeaderSize+6), p.End())
		got := readAll(t, p)
		require.Len(t, got, 3)
	})
}

// OnSync sees every fsync that makes appends durable.
func TestOnSyncReportsEveryFsync(t *testing.T) {
	var syncs atomic.Int64
	s := mustOpen(t, t.TempDir(), store.Options{OnSync: func(topic string, part int, took time.Duration, err error) {
		if topic == "synced" && part == 0 && err == nil && took >= 0 {
			syncs.Add(1)
		}
	}})
	defer s.Close()
	p := mustPart(t, s, "synced", 0)
	for i := 0; i < 3; i++ {
		_, err := p.AppendSync(ctxT(t), payload(i), 0)
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, syncs.Load(), int64(3), "group commit fsyncs before each acknowledgement")
}

// A checksum the caller passes (Message.HasChecksum) is written as is: the
// right one reads back like a computed one, a wrong one is caught by the
// read's verification (ErrCorrupt), never served as good data.
func TestAppendMessagesWritesTheCallersChecksum(t *testing.T) {
	s := mustOpen(t, t.TempDir(), store.Options{})
	defer s.Close()
	p := mustPart(t, s, "t", 0)
	good := []byte("checksum passed by the caller")
	_, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: good, Checksum: store.Checksum(good), HasChecksum: true}})
	require.NoError(t, err)
	recs := readAll(t, p)
	require.Len(t, recs, 1)
	require.Equal(t, store.Checksum(good), recs[0].Checksum)

	bad := []byte("a wrong checksum")
	res, err := p.AppendBatchSync(ctxT(t), []store.Message{{Data: bad, Checksum: store.Checksum(bad) ^ 1, HasChecksum: true}})
	require.NoError(t, err)
	sl, err := p.Read(res.Offset, 4096)
	require.NoError(t, err)
	_, err = sl.ReadAll(nil)
	sl.Release()
	require.ErrorIs(t, err, store.ErrCorrupt)
}
